// Recordings: find (every API filter, saved searches), a table a page at a time (keyset
// cursors), and several rows selected for lock, download or delete.

import { api, query } from '../api.js';
import { filterForm, filtersOf, forgetSearch, saveSearch, savedSearches } from '../filters.js';
import {
  badge, clear, dialog, field, fmtDuration, h, reasonDialog, select, shortAddr, timeEl, toast, tombstoneText, viewerZone,
} from '../ui.js';

export function flags(item) {
  const out = [];
  if (item.state === 'deleted') out.push(badge('deleted', 'deleted', item.delete_reason ? `Reason: ${item.delete_reason}` : undefined));
  if (item.state === 'active') out.push(badge(item.paused_now ? 'paused now' : 'recording', item.paused_now ? 'paused' : 'live'));
  if (item.state === 'interrupted' || item.state === 'failed') out.push(badge(item.state, 'warn', item.end_reason || undefined));
  if (item.locked) out.push(badge('locked', 'locked'));
  if (item.annotation_count > 0) out.push(badge('annotated', 'note', `${item.annotation_count} note(s)`));
  if (item.dtmf && item.dtmf.length) out.push(badge('DTMF', 'dtmf', `Digits: ${item.dtmf.map((d) => d.digit).join('')}`));
  if (item.pause_count > 0 && !item.paused_now) out.push(badge('was paused', 'paused', `Paused ${item.pause_count} time(s)`));
  if (item.score) out.push(badge(`score ${item.score}`, 'scored'));
  return out;
}

export async function recordingsPage(main, ctx) {
  const { session, can, query: urlQuery, navigate } = ctx;
  document.title = 'Recordings · callvault';
  const filters = filtersOf(urlQuery);
  const selected = new Map(); // id -> item
  const cursors = [null]; // the cursor of each page shown so far; the last is this page's
  let page = null;

  const status = h('p', { class: 'muted', role: 'status', 'aria-live': 'polite' });
  const tbody = h('tbody');
  const selectAll = h('input', { type: 'checkbox', 'aria-label': 'Select every recording on this page' });
  const count = h('span', { class: 'muted' }, 'None selected');
  const bulk = [];
  if (can('lock')) bulk.push(h('button', { type: 'button', onclick: () => lockSelected() }, 'Lock selected…'));
  if (can('download')) bulk.push(h('button', { type: 'button', onclick: () => downloadSelected() }, 'Download selected…'));
  if (can('delete')) bulk.push(h('button', { type: 'button', class: 'danger', onclick: () => deleteSelected() }, 'Delete selected…'));
  const prev = h('button', { type: 'button', onclick: () => { cursors.pop(); load(); } }, '← Previous page');
  const next = h('button', { type: 'button', onclick: () => { cursors.push(page.next_cursor); load(); } }, 'Next page →');
  const first = h('button', { type: 'button', onclick: () => { cursors.length = 1; load(); } }, 'First page');

  function syncSelection() {
    count.textContent = selected.size ? `${selected.size} selected` : 'None selected';
    for (const b of bulk) b.disabled = selected.size === 0;
    const boxes = [...tbody.querySelectorAll('input[type=checkbox]:not(:disabled)')];
    selectAll.checked = boxes.length > 0 && boxes.every((b) => b.checked);
  }
  selectAll.addEventListener('change', () => {
    for (const box of tbody.querySelectorAll('input[type=checkbox]:not(:disabled)')) {
      box.checked = selectAll.checked;
      box.dispatchEvent(new Event('change'));
    }
  });

  function row(item) {
    const deleted = item.state === 'deleted';
    const box = h('input', {
      type: 'checkbox', disabled: deleted, checked: selected.has(item.id),
      'aria-label': `Select the recording of ${item.from} to ${item.to}`,
    });
    box.addEventListener('change', () => {
      if (box.checked) selected.set(item.id, item);
      else selected.delete(item.id);
      syncSelection();
    });
    const cell = (text, cls, shown = text) => h('td', { class: cls, title: text || undefined }, shown || '');
    return h('tr', { class: deleted ? 'deleted' : undefined, dataset: { id: item.id } },
      h('td', {}, box),
      h('td', { class: 'nowrap' }, h('a', { href: `/recordings/${encodeURIComponent(item.id)}` }, timeEl(item.started_at))),
      cell(item.from, 'addr', shortAddr(item.from)),
      cell(item.to, 'addr', shortAddr(item.to)),
      cell(item.ingress_call_id, 'ident'),
      cell(item.egress_call_id, 'ident'),
      h('td', { class: 'num' }, item.state === 'active' ? '…' : fmtDuration(item.duration_ms)),
      cell(item.session_id, 'ident'),
      h('td', { class: 'flags' }, flags(item), deleted ? h('div', { class: 'tombstone-line' }, tombstoneText(item)) : null));
  }

  async function load() {
    status.textContent = 'Searching…';
    try {
      page = await api('GET', '/recordings' + query({ ...filters, cursor: cursors[cursors.length - 1] }));
    } catch (err) {
      status.textContent = '';
      clear(tbody, h('tr', {}, h('td', { colspan: 9, class: 'error', role: 'alert' }, err.message)));
      return;
    }
    if (!ctx.isCurrent()) return;
    clear(tbody, page.items.length ? page.items.map(row)
      : h('tr', {}, h('td', { colspan: 9, class: 'empty' }, 'No recordings match.')));
    const n = cursors.length;
    status.textContent = `Page ${n}: ${page.items.length} recording(s)${page.next_cursor ? '' : ', the last page'}.`;
    prev.disabled = n <= 1;
    first.disabled = n <= 1;
    next.disabled = !page.next_cursor;
    syncSelection();
  }

  async function eachSelected(verb, action) {
    const ids = [...selected.keys()];
    const failed = [];
    for (const id of ids) {
      try {
        await action(id);
      } catch (err) {
        failed.push(`${selected.get(id).from} → ${selected.get(id).to}: ${err.message}`);
      }
    }
    const done = ids.length - failed.length;
    toast(`${verb} ${done} of ${ids.length}.${failed.length ? ' Refused: ' + failed.join('; ') : ''}`, failed.length ? 'error' : 'info');
    selected.clear();
    await load();
  }

  function lockSelected() {
    reasonDialog({
      title: `Lock ${selected.size} recording(s)`,
      message: 'A locked recording cannot be deleted by anyone or anything until every lock is removed.',
      label: 'Reason (e.g. LegalHold#245)',
      confirmLabel: 'Lock',
      action: (reason) => eachSelected('Locked', (id) => api('POST', `/recordings/${encodeURIComponent(id)}/locks`, { reason })),
    });
  }

  function deleteSelected() {
    reasonDialog({
      title: `Delete ${selected.size} recording(s)`,
      message: 'Their audio and metadata are removed for good; a tombstone says who deleted them, when and why. Locked or live recordings are refused.',
      confirmLabel: 'Delete for good',
      danger: true,
      confirmText: 'I understand this cannot be undone.',
      action: (reason) => eachSelected('Deleted', (id) => api('DELETE', `/recordings/${encodeURIComponent(id)}`, { reason })),
    });
  }

  function downloadSelected() {
    dialog({
      title: `Download ${selected.size} recording(s)`,
      confirmLabel: 'Download zip',
      build(form) {
        form.append(
          field('Format', select('format', [['wav', 'WAV'], ['mp3', 'MP3']], 'wav')),
          field('Channels', select('channels', [['mono', 'Mono mix'], ['stereo', 'Stereo (caller left, callee right)']], 'mono')),
          field('Reason', h('input', { name: 'reason', autocomplete: 'off' }), 'Required where your organisation asks for one'));
      },
      async submit(form) {
        const body = { ids: [...selected.keys()], format: form.elements.format.value, channels: form.elements.channels.value };
        const reason = form.elements.reason.value.trim();
        if (reason) body.reason = reason;
        const response = await api('POST', '/downloads', body, { raw: true });
        const blob = await response.blob();
        const name = /filename="?([^";]+)"?/.exec(response.headers.get('Content-Disposition') || '');
        const url = URL.createObjectURL(blob);
        const a = h('a', { href: url, download: name ? name[1] : 'callvault-export.zip', hidden: true });
        document.body.append(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 60000);
        return true;
      },
    });
  }

  // Saved searches.
  const user = session.user;
  const currentQuery = () => new URLSearchParams(Object.entries(filters).filter(([, v]) => v)).toString();
  const saved = h('select', { id: 'saved-search' });
  const forget = h('button', { type: 'button', onclick: () => {
    if (!saved.value) return;
    forgetSearch(user, saved.value);
    fillSaved();
    toast('Saved search removed.');
  } }, 'Remove');
  function fillSaved() {
    const list = savedSearches(user);
    const here = currentQuery();
    clear(saved, h('option', { value: '' }, list.length ? 'Choose…' : 'None yet'),
      list.map((s) => h('option', { value: s.name, selected: s.query === here }, s.name)));
    forget.disabled = !saved.value;
  }
  saved.addEventListener('change', () => {
    const found = savedSearches(user).find((s) => s.name === saved.value);
    forget.disabled = !saved.value;
    if (found) navigate('/recordings' + (found.query ? '?' + found.query : ''));
  });
  const saveButton = h('button', { type: 'button', onclick: () => dialog({
    title: 'Save this search',
    confirmLabel: 'Save',
    build: (form) => form.append(field('Name', h('input', { name: 'name', required: true, autocomplete: 'off' }))),
    submit: (form) => {
      saveSearch(user, form.elements.name.value.trim(), currentQuery());
      fillSaved();
      toast('Search saved in this browser.');
      return true;
    },
  }) }, 'Save this search…');
  fillSaved();

  const form = filterForm(urlQuery, {
    showTenant: !session.tenant,
    onSearch: (params) => navigate('/recordings' + query(params)),
    onReset: () => navigate('/recordings'),
  });

  clear(main,
    h('h1', {}, 'Recordings'),
    h('div', { class: 'search-layout' },
      h('section', { class: 'panel', 'aria-labelledby': 'find-title' },
        h('h2', { id: 'find-title' }, 'Find'),
        form,
        h('div', { class: 'saved' },
          h('label', { for: 'saved-search' }, 'Saved searches'), saved, forget, saveButton)),
      h('section', { class: 'results', 'aria-labelledby': 'results-title' },
        h('h2', { id: 'results-title', class: 'visually-hidden' }, 'Results'),
        h('div', { class: 'toolbar' }, count, bulk, h('span', { class: 'spacer' }), status),
        h('div', { class: 'table-wrap' },
          h('table', { class: 'recordings' },
            h('caption', { class: 'visually-hidden' }, `Recordings, newest first; times in ${viewerZone()}`),
            h('thead', {}, h('tr', {},
              h('th', { scope: 'col' }, selectAll),
              ['Time', 'From', 'To', 'Ingress Call-ID', 'Egress Call-ID', 'Duration', 'Session ID', 'Flags']
                .map((t) => h('th', { scope: 'col' }, t)))),
            tbody)),
        h('nav', { class: 'pager', 'aria-label': 'Pages' }, first, prev, next))));
  await load();
}
