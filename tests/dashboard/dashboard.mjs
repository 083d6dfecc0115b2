// The dashboard end to end, in headless Chromium (Debian's `chromium`, driven by
// playwright-core), against a real `callvault serve` that the Rust test `dashboard::*` started
// with recorded calls and users. Usage: node dashboard.mjs SPEC.json
//
// SPEC: {url, password, screenshots, chromium?, users: {compliance, viewer, tenant, admin},
//        recordings: {main: {id, party, digits}, other_tenant: {id}, live: {id}}}
//
// Exits 0 when every step passed; otherwise prints the step that failed and exits 1. Each
// page's screenshot is saved under SPEC.screenshots.

import { readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

const spec = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const { url, password, users, recordings } = spec;
mkdirSync(spec.screenshots, { recursive: true });

let step = 'start';
const log = (message) => console.log(`[dashboard] ${message}`);
function check(condition, message) {
  if (!condition) throw new Error(`${step}: ${message}`);
}
async function eventually(probe, message, timeout = 10000) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await probe();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`${step}: ${message} (waited ${timeout} ms)`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const browser = await chromium.launch({
  executablePath: spec.chromium || '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required',
  ],
});

// Console errors and page errors are failures, except the refusals a step provokes on
// purpose (the browser logs every 4xx answer): each page says which statuses it expects.
const problems = [];
async function newPage(name, { width = 1366, height = 860, bypassCSP = false } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, timezoneId: 'Europe/Paris', locale: 'en-GB', bypassCSP });
  const page = await context.newPage();
  page.expected = new Set([401]);
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const status = /status of (\d{3})/.exec(msg.text());
    if (status && page.expected.has(Number(status[1]))) return;
    problems.push(`${name}: console error during "${step}": ${msg.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`${name}: page error during "${step}": ${error.message}`));
  return page;
}

async function shot(page, name) {
  await page.waitForTimeout(150); // let the toast and canvases settle; not a synchronisation
  await page.screenshot({ path: join(spec.screenshots, `${name}.png`), fullPage: true });
  log(`screenshot ${name}.png`);
}

async function signIn(page, user) {
  await page.goto(url + '/');
  await page.getByLabel('Username').waitFor();
  check(new URL(page.url()).pathname === '/sign-in', `signed-out visitors land on /sign-in, not ${page.url()}`);
  await page.getByLabel('Username').fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Recordings', level: 1 }).waitFor();
}

const rowsOf = (page) => page.locator('table.recordings tbody tr[data-id]');
const audioState = (page) => page.evaluate(() => [...document.querySelectorAll('audio')]
  .map((a) => ({ t: a.currentTime, muted: a.muted, paused: a.paused, rate: a.playbackRate, leg: a.dataset.leg })));

try {
  // --- A compliance officer ---------------------------------------------------------------
  step = 'sign in';
  const page = await newPage('compliance');
  await page.goto(url + '/');
  await page.getByLabel('Username').waitFor();
  await shot(page, 'sign-in');
  await page.getByLabel('Username').fill(users.compliance);
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('Wrong username or password.').waitFor();
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Recordings', level: 1 }).waitFor();
  await eventually(async () => (await rowsOf(page).count()) >= 3, 'the recordings table lists the calls');
  check(await page.getByRole('link', { name: 'Users' }).count() === 0, 'no Users page for a compliance officer');
  check(await page.getByRole('button', { name: 'Delete selected…' }).count() === 1, 'bulk delete offered');
  await shot(page, 'recordings');

  step = 'search by party';
  await page.getByLabel('Party').fill(recordings.main.party);
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await eventually(async () => new URL(page.url()).searchParams.get('party') === recordings.main.party, 'the search is in the URL');
  await eventually(async () => {
    const ids = await rowsOf(page).evaluateAll((rows) => rows.map((r) => r.dataset.id));
    return ids.length === 1 && ids[0] === recordings.main.id;
  }, `only the call with ${recordings.main.party} is found`);

  step = 'save the search';
  await page.getByRole('button', { name: 'Save this search…' }).click();
  await page.getByRole('dialog').getByLabel('Name').fill('Carol calls');
  await page.getByRole('dialog').getByRole('button', { name: 'Save' }).click();
  await eventually(async () => (await page.locator('#saved-search option', { hasText: 'Carol calls' }).count()) === 1, 'the saved search is listed');

  step = 'search by DTMF';
  await page.getByRole('button', { name: 'Clear' }).click();
  await eventually(async () => (await rowsOf(page).count()) >= 3, 'everything again after Clear');
  await page.getByLabel('DTMF digits').fill(recordings.main.digits);
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await eventually(async () => {
    const ids = await rowsOf(page).evaluateAll((rows) => rows.map((r) => r.dataset.id));
    return ids.length === 1 && ids[0] === recordings.main.id;
  }, `only the call where ${recordings.main.digits} was keyed is found`);
  const flagsText = await rowsOf(page).first().locator('td.flags').innerText();
  check(flagsText.includes('DTMF'), `the DTMF flag shows (${flagsText})`);

  step = 'the saved search comes back';
  await page.locator('#saved-search').selectOption('Carol calls');
  await eventually(async () => new URL(page.url()).searchParams.get('party') === recordings.main.party, 'the saved search is applied');

  step = 'open the recording';
  await rowsOf(page).first().getByRole('link').click();
  await eventually(async () => new URL(page.url()).pathname === `/recordings/${recordings.main.id}`, 'the recording page opens');
  await page.locator('canvas.wave').first().waitFor();
  const lanes = await page.locator('canvas.wave').count();
  check(lanes === 2, `one waveform lane per leg (${lanes})`);
  const painted = await page.evaluate(() => [...document.querySelectorAll('canvas.wave')].map((c) => {
    const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let ink = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] > 0) ink++;
    return ink / (c.width * c.height);
  }));
  check(painted.every((f) => f > 0.2), `the lanes show the tones' waveforms (${painted.map((f) => f.toFixed(2))})`);
  const digitMarks = await page.locator('.markers .digit').allInnerTexts();
  check(digitMarks.join('') === recordings.main.digits, `the digits are on the timeline (${digitMarks.join('')})`);

  step = 'play';
  await page.getByRole('button', { name: 'Play' }).click();
  await eventually(async () => (await audioState(page)).every((a) => a.t > 0.3 && !a.paused), 'both legs play: currentTime moves');
  await page.getByRole('button', { name: 'Pause' }).click();
  await eventually(async () => (await audioState(page)).every((a) => a.paused), 'paused');

  step = 'seek by click';
  const track = page.getByRole('slider', { name: 'Playback position' });
  const box = await track.boundingBox();
  await page.mouse.click(box.x + box.width * 0.75, box.y + box.height / 2);
  const duration = Number(await track.getAttribute('aria-valuemax'));
  await eventually(async () => (await audioState(page)).every((a) => Math.abs(a.t - duration * 0.75) < 0.6), `a click at 3/4 seeks to ~${(duration * 0.75).toFixed(1)} s`);

  step = 'seek by keyboard';
  await track.focus();
  await page.keyboard.press('Home');
  await eventually(async () => (await audioState(page)).every((a) => a.t < 0.05), 'Home goes to the start');
  await page.keyboard.press('Shift+ArrowRight');
  await eventually(async () => (await audioState(page)).every((a) => Math.abs(a.t - 1) < 0.05), 'Shift+→ moves 1 s');
  check(Number(await track.getAttribute('aria-valuenow')) === 1, 'the slider says where it is');

  step = 'speed';
  await page.getByLabel('Speed').selectOption('2');
  await eventually(async () => (await audioState(page)).every((a) => a.rate === 2), 'both legs at 2×');
  await page.getByLabel('Speed').selectOption('0.5');
  await eventually(async () => (await audioState(page)).every((a) => a.rate === 0.5), 'both legs at 0.5×');
  await page.getByLabel('Speed').selectOption('1');

  step = 'mute and solo a leg';
  const muteFirst = page.getByRole('button', { name: /^Mute / }).first();
  await muteFirst.click();
  await eventually(async () => {
    const a = await audioState(page);
    return a[0].muted && !a[1].muted;
  }, 'the first leg is muted, the second not');
  check(await muteFirst.getAttribute('aria-pressed') === 'true', 'the mute button says it is pressed');
  await muteFirst.click();
  await page.getByRole('button', { name: /^Solo / }).nth(1).click();
  await eventually(async () => {
    const a = await audioState(page);
    return a[0].muted && !a[1].muted;
  }, 'solo on the second leg silences the first');
  await page.getByRole('button', { name: /^Solo / }).nth(1).click();
  await eventually(async () => (await audioState(page)).every((a) => !a.muted), 'no leg muted after un-solo');

  step = 'annotate at an offset';
  await page.getByRole('button', { name: 'Annotate here…' }).click();
  const note = page.getByRole('dialog');
  check(await note.getByLabel('At (seconds)').inputValue() === '1.0', 'the note is placed where the player is');
  await note.getByLabel('Note').fill('Customer reads the card number here');
  await note.getByRole('button', { name: 'Add note' }).click();
  await page.getByRole('button', { name: /^Note at 0:01\.0 by .*: Customer reads the card number here$/ }).waitFor();
  await shot(page, 'recording');

  step = 'metadata and legs tabs';
  await page.getByRole('tab', { name: 'Metadata' }).click();
  await page.getByText('Revision 1 ·').waitFor();
  await page.getByRole('tab', { name: 'Legs' }).click();
  await page.getByRole('tabpanel').getByText('PCMU 8 kHz').first().waitFor();
  await shot(page, 'recording-legs');
  await page.getByRole('tab', { name: 'Participants' }).click();
  await page.getByRole('tabpanel').getByText(recordings.main.party).first().waitFor();

  step = 'add a lock';
  await page.getByRole('tab', { name: 'Locks' }).click();
  await page.getByLabel('Lock reason').fill('LegalHold#245');
  await page.getByRole('button', { name: 'Add lock' }).click();
  await page.getByRole('button', { name: 'Remove the lock LegalHold#245' }).waitFor();
  await page.locator('.rec-header .badge.locked').waitFor();

  step = 'delete refused while locked';
  page.expected.add(409);
  await page.getByRole('button', { name: 'Delete recording…' }).click();
  let dialog = page.getByRole('dialog');
  await dialog.getByLabel('Reason').fill('customer request');
  await dialog.getByLabel('I understand this cannot be undone.').check();
  await dialog.getByRole('button', { name: 'Delete for good' }).click();
  await dialog.getByRole('alert').filter({ hasText: 'Refused' }).waitFor();
  const refusal = await dialog.getByRole('alert').innerText();
  check(/locked/i.test(refusal), `the refusal says it is locked: ${refusal}`);
  await shot(page, 'delete-refused');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  page.expected.delete(409);

  step = 'remove the lock';
  await page.getByRole('button', { name: 'Remove the lock LegalHold#245' }).click();
  dialog = page.getByRole('dialog');
  await dialog.getByLabel('Reason for removing it').fill('matter closed');
  await dialog.getByRole('button', { name: 'Remove lock' }).click();
  await page.getByRole('cell', { name: 'matter closed' }).waitFor();
  check(await page.locator('.rec-header .badge.locked').count() === 0, 'no longer locked');

  step = 'delete';
  await page.getByRole('button', { name: 'Delete recording…' }).click();
  dialog = page.getByRole('dialog');
  await dialog.getByLabel('Reason').fill('customer request');
  await dialog.getByLabel('I understand this cannot be undone.').check();
  await dialog.getByRole('button', { name: 'Delete for good' }).click();
  const tombstone = page.locator('.tombstone');
  await tombstone.waitFor();
  const said = await tombstone.innerText();
  check(said.startsWith(`Deleted by ${users.compliance} on `) && said.includes('customer request'), `the tombstone says who, when and why: ${said}`);
  check(await page.locator('audio').count() === 0, 'nothing left to play');
  check(await page.getByRole('button', { name: 'Delete recording…' }).count() === 0, 'nothing left to delete');
  await shot(page, 'tombstone');

  step = 'the tombstone in the list';
  await page.getByRole('link', { name: '← Recordings' }).click();
  await page.getByLabel('State').selectOption('deleted');
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await eventually(async () => (await rowsOf(page).count()) === 1, 'one tombstone');
  const line = await rowsOf(page).first().locator('.tombstone-line').innerText();
  check(line.startsWith(`Deleted by ${users.compliance} on `), `the row says who deleted it: ${line}`);

  step = 'audit log';
  await page.getByRole('link', { name: 'Audit log' }).click();
  await page.getByLabel('Recording id').fill(recordings.main.id);
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await eventually(async () => (await page.getByRole('cell', { name: 'customer request' }).count()) === 1, 'the deletion is audited with its reason');
  for (const action of ['play', 'lock', 'unlock', 'annotate', 'delete']) {
    check(await page.getByRole('cell', { name: action, exact: true }).count() >= 1, `${action} is in the audit log`);
  }
  await page.getByLabel('Reason contains').fill('LegalHold');
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await eventually(async () => (await page.locator('tbody tr').count()) === 1, 'the reason search keeps only the lock');
  await page.getByRole('button', { name: 'Clear' }).click();
  await eventually(async () => (await page.locator('tbody tr').count()) > 3, 'the whole log again');
  await shot(page, 'audit');

  step = 'review another recording';
  await page.goto(`${url}/recordings/${recordings.other_tenant.id}`);
  await page.locator('canvas.wave').first().waitFor();
  await page.getByRole('tab', { name: 'Review' }).click();
  await page.getByRole('radio', { name: '4' }).check();
  await page.getByLabel('Complete transaction').check();
  await page.getByLabel('Review time (seconds)').fill('95');
  await page.getByLabel('Categories').fill('billing, escalation');
  await page.getByLabel('queue').fill('support-fr');
  await page.getByRole('button', { name: 'Save review' }).click();
  await page.locator('.rec-header .badge', { hasText: 'score 4' }).waitFor();
  check(await page.getByLabel('Categories').inputValue() === 'billing, escalation', 'the categories are kept');
  await shot(page, 'review');

  step = 'lock and download several from the list';
  await page.getByRole('link', { name: 'Recordings', exact: true }).click();
  const otherRow = page.locator(`tr[data-id="${recordings.other_tenant.id}"]`);
  await otherRow.waitFor();
  await otherRow.getByRole('checkbox').check();
  await page.getByText('1 selected').waitFor();
  await page.getByRole('button', { name: 'Lock selected…' }).click();
  dialog = page.getByRole('dialog');
  await dialog.getByLabel('Reason (e.g. LegalHold#245)').fill('Audit#7');
  await dialog.getByRole('button', { name: 'Lock' }).click();
  await page.locator(`tr[data-id="${recordings.other_tenant.id}"] .badge.locked`).waitFor();
  await page.locator(`tr[data-id="${recordings.other_tenant.id}"]`).getByRole('checkbox').check();
  await page.getByRole('button', { name: 'Download selected…' }).click();
  dialog = page.getByRole('dialog');
  await dialog.getByLabel('Format').selectOption('wav');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    dialog.getByRole('button', { name: 'Download zip' }).click(),
  ]);
  check(download.suggestedFilename().endsWith('.zip'), `a zip is downloaded (${download.suggestedFilename()})`);
  await download.delete();

  step = 'pause and resume a live call';
  await page.getByRole('link', { name: 'Live' }).click();
  const liveRow = page.locator(`tr[data-id="${recordings.live.id}"]`);
  await liveRow.waitFor();
  check((await liveRow.locator('td.state').innerText()).includes('recording'), 'the live call is recording');
  await liveRow.getByRole('button', { name: /^Pause / }).click();
  await eventually(async () => (await page.locator(`tr[data-id="${recordings.live.id}"] td.state`).innerText()).includes('paused'), 'shown paused without a reload');
  await shot(page, 'live');
  await page.locator(`tr[data-id="${recordings.live.id}"]`).getByRole('button', { name: /^Resume / }).click();
  await eventually(async () => (await page.locator(`tr[data-id="${recordings.live.id}"] td.state`).innerText()).includes('recording'), 'recording again after resume');

  step = 'the list afterwards';
  await page.getByRole('link', { name: 'Recordings', exact: true }).click();
  await eventually(async () => (await rowsOf(page).count()) >= 3, 'every call listed');
  await eventually(async () => (await page.locator('.badge', { hasText: 'was paused' }).count()) === 1, 'the live call shows it was paused');
  await page.waitForTimeout(5000); // let the last toast go before the picture (not a synchronisation)
  await shot(page, 'recordings-final');

  step = 'tablet layout';
  await page.setViewportSize({ width: 820, height: 1180 });
  await page.reload();
  await eventually(async () => (await rowsOf(page).count()) >= 3, 'the table on a tablet');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  check(overflow <= 0, `the page does not scroll sideways on a tablet (${overflow} px)`);
  await shot(page, 'recordings-tablet');

  step = 'sign out';
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('Username').waitFor();
  await page.goto(`${url}/recordings/${recordings.live.id}`);
  await page.getByLabel('Username').waitFor();
  check(new URL(page.url()).pathname === '/sign-in', 'signed out: pages need signing in again');

  // --- A viewer: nothing offered that the role may not do -----------------------------------
  step = 'viewer';
  const viewer = await newPage('viewer');
  await signIn(viewer, users.viewer);
  check(await viewer.getByRole('button', { name: /selected…$/ }).count() === 0, 'no bulk lock, download or delete for a viewer');
  check(await viewer.getByRole('link', { name: 'Audit log' }).count() === 0, 'no audit log for a viewer');
  await viewer.goto(`${url}/recordings/${recordings.other_tenant.id}`);
  await viewer.locator('canvas.wave').first().waitFor();
  check(await viewer.getByRole('button', { name: 'Play' }).count() === 1, 'a viewer may play');
  check(await viewer.getByRole('button', { name: 'Delete recording…' }).count() === 0, 'a viewer sees no delete control');
  check(await viewer.getByRole('button', { name: 'Annotate here…' }).count() === 0, 'a viewer sees no annotate control');
  check(await viewer.getByRole('button', { name: 'Download' }).count() === 0, 'a viewer sees no download control');
  await viewer.getByRole('tab', { name: 'Locks' }).click();
  check(await viewer.getByLabel('Lock reason').count() === 0, 'a viewer sees no lock control');
  await viewer.getByRole('tab', { name: 'Review' }).click();
  check(await viewer.getByRole('button', { name: 'Save review' }).count() === 0, 'a viewer cannot change the review');
  await viewer.goto(`${url}/live`);
  await viewer.locator(`tr[data-id="${recordings.live.id}"]`).waitFor();
  check(await viewer.getByRole('button', { name: /^(Pause|Resume) / }).count() === 0, 'a viewer cannot pause');

  // --- A tenant's user: another tenant's recording does not exist for them ------------------
  step = 'tenant isolation';
  const tenant = await newPage('tenant');
  tenant.expected.add(404);
  await signIn(tenant, users.tenant);
  const seen = await rowsOf(tenant).evaluateAll((rows) => rows.map((r) => r.dataset.id));
  check(!seen.includes(recordings.other_tenant.id), 'another tenant\'s call is not listed');
  await tenant.goto(`${url}/recordings/${recordings.other_tenant.id}`);
  await tenant.getByRole('heading', { name: 'Recording not found' }).waitFor();
  check(await tenant.locator('audio').count() === 0, 'nothing of it is loaded');
  await shot(tenant, 'other-tenant');

  // --- An admin: users ---------------------------------------------------------------------
  step = 'users';
  const admin = await newPage('admin');
  await signIn(admin, users.admin);
  await admin.getByRole('link', { name: 'Users' }).click();
  await admin.getByRole('cell', { name: users.compliance, exact: true }).waitFor();
  await admin.getByRole('button', { name: 'Add a user…' }).click();
  const add = admin.getByRole('dialog');
  await add.getByLabel('Username').fill('grace');
  await add.getByLabel('Password').fill('quiet harbour lantern 77');
  await add.getByLabel('Role').selectOption('reviewer');
  await add.getByRole('button', { name: 'Add user' }).click();
  await admin.getByRole('cell', { name: 'grace', exact: true }).waitFor();
  await shot(admin, 'users');

  // --- Accessibility: axe-core's WCAG 2 A/AA rules on every page (labels, roles, names,
  // contrast). Its script is injected, so this context alone lets the page run it (bypassCSP).
  const audited = await newPage('accessibility', { bypassCSP: true });
  await signIn(audited, users.admin);
  for (const [name, path, ready] of [
    ['recordings', '/recordings', 'table.recordings tbody tr[data-id]'],
    ['recording', `/recordings/${recordings.other_tenant.id}`, 'canvas.wave'],
    ['tombstone', `/recordings/${recordings.main.id}`, '.tombstone'],
    ['live', '/live', `tr[data-id="${recordings.live.id}"]`],
    ['audit', '/audit', 'tbody tr'],
    ['users', '/users', 'tbody tr'],
  ]) {
    step = `accessibility of ${name}`;
    await audited.goto(url + path);
    await audited.locator(ready).first().waitFor();
    await audited.addScriptTag({ content: axeSource });
    const found = await audited.evaluate(async () => {
      // eslint-disable-next-line no-undef
      const result = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
      return {
        passed: result.passes.map((p) => p.id),
        violations: result.violations.map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')})`),
      };
    });
    check(found.violations.length === 0, `WCAG violations:\n  ${found.violations.join('\n  ')}`);
    check(found.passed.includes('color-contrast'), `contrast was checked (${found.passed.join(' ')})`);
    log(`${name}: no WCAG 2 A/AA violation (${found.passed.length} rules passed)`);
  }

  step = 'no console errors';
  check(problems.length === 0, `\n  ${problems.join('\n  ')}`);
  log('every step passed');
  await browser.close();
  process.exit(0);
} catch (error) {
  console.error(`[dashboard] FAILED at "${step}": ${error.message}`);
  if (problems.length) console.error(`[dashboard] also: \n  ${problems.join('\n  ')}`);
  let n = 0;
  for (const context of browser.contexts()) {
    for (const p of context.pages()) {
      await p.screenshot({ path: join(spec.screenshots, `failure-${++n}.png`), fullPage: true }).catch(() => {});
    }
  }
  await browser.close();
  process.exit(1);
}
