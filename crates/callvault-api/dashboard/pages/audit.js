// The audit log: who did what to which recording, when, why and from where; searched by user,
// action, recording, reason and time (the server's filters), a page of 100 at a time.

import { api, query } from '../api.js';
import { clear, field, h, isoToLocalInput, localInputToIso, select, timeEl, viewerZone } from '../ui.js';

const ACTIONS = ['login', 'play', 'download', 'lock', 'unlock', 'delete', 'annotate', 'update', 'pause', 'resume', 'users', 'fields'];

export async function auditPage(main, ctx) {
  const { query: q, navigate } = ctx;
  document.title = 'Audit log · callvault';
  const filters = {
    user: q.get('user') || '', action: q.get('action') || '', recording_id: q.get('recording_id') || '',
    reason: q.get('reason') || '', since: q.get('since') || '', until: q.get('until') || '',
  };
  const tbody = h('tbody');
  const status = h('p', { class: 'muted', role: 'status' });
  const more = h('button', { type: 'button', hidden: true }, 'Load older entries');
  let cursor = null;
  let loaded = [];

  const form = h('form', { class: 'filters wide', role: 'search', 'aria-label': 'Search the audit log' },
    field('User', h('input', { name: 'user', value: filters.user, autocomplete: 'off' })),
    field('Action', select('action', [['', 'Any'], ...ACTIONS.map((a) => [a, a])], filters.action)),
    field('Recording id', h('input', { name: 'recording_id', value: filters.recording_id, autocomplete: 'off' })),
    field('Reason contains', h('input', { name: 'reason', value: filters.reason, autocomplete: 'off' })),
    field('From', h('input', { name: 'since', type: 'datetime-local', value: isoToLocalInput(filters.since) })),
    field('Until', h('input', { name: 'until', type: 'datetime-local', value: isoToLocalInput(filters.until) })),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Search'),
      h('button', { type: 'button', onclick: () => navigate('/audit') }, 'Clear')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const el = form.elements;
    navigate('/audit' + query({
      user: el.user.value.trim(), action: el.action.value, recording_id: el.recording_id.value.trim(),
      reason: el.reason.value.trim(), since: localInputToIso(el.since.value), until: localInputToIso(el.until.value),
    }));
  });

  function draw() {
    clear(tbody, loaded.length ? loaded.map((e) => h('tr', {},
      h('td', { class: 'num' }, e.seq), h('td', { class: 'nowrap' }, timeEl(e.at)), h('td', {}, e.user), h('td', {}, e.action),
      h('td', { class: 'ident short' }, e.recording_id ? h('a', { href: `/recordings/${encodeURIComponent(e.recording_id)}`, title: e.recording_id }, e.recording_id) : ''),
      h('td', {}, e.reason || ''), h('td', {}, e.client || ''), h('td', { class: 'detail' }, e.detail || '')))
      : h('tr', {}, h('td', { colspan: 8, class: 'empty' }, 'No entries match.')));
    status.textContent = `${loaded.length} entr${loaded.length === 1 ? 'y' : 'ies'} shown${cursor ? '; older ones remain' : ''}.`;
    more.hidden = !cursor;
  }

  async function load() {
    const page = await api('GET', '/audit' + query({ ...filters, limit: 100, cursor }));
    loaded = loaded.concat(page.items);
    cursor = page.next_cursor;
    draw();
  }
  more.addEventListener('click', () => load().catch((err) => { status.textContent = err.message; }));

  clear(main, h('h1', {}, 'Audit log'),
    h('section', { class: 'panel' }, form),
    status,
    h('div', { class: 'table-wrap' }, h('table', {},
      h('caption', { class: 'visually-hidden' }, `Audit entries, newest first; times in ${viewerZone()}`),
      h('thead', {}, h('tr', {}, ['#', 'When', 'User', 'Action', 'Recording', 'Reason', 'Client', 'Detail'].map((t) => h('th', { scope: 'col' }, t)))),
      tbody)),
    more);
  try {
    await load();
  } catch (err) {
    status.textContent = err.message;
  }
}
