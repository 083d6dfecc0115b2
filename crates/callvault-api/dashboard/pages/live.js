// Live: the calls being recorded now, refreshed every two seconds without a reload, each with
// its running time and whether it is paused; pause and resume for those who may.

import { api, query } from '../api.js';
import { badge, clear, fmtDuration, h, shortAddr, timeEl, toast } from '../ui.js';

const REFRESH_MS = 2000;

export async function livePage(main, ctx) {
  const { can } = ctx;
  document.title = 'Live · callvault';
  const tbody = h('tbody');
  const status = h('p', { class: 'muted' });
  let items = [];
  let timer = null;
  let ticker = null;
  let stopped = false;

  function row(item) {
    const running = h('td', { class: 'num', dataset: { started: item.started_at } }, fmtDuration(Date.now() - Date.parse(item.started_at)));
    const state = item.paused_now ? badge('paused', 'paused', 'Every leg records silence; no digits are kept') : badge('recording', 'live');
    const action = can('pause') ? h('button', {
      type: 'button',
      'aria-label': `${item.paused_now ? 'Resume' : 'Pause'} the recording of ${item.from} to ${item.to}`,
      onclick: async (e) => {
        e.currentTarget.disabled = true;
        try {
          await api('POST', `/recordings/${encodeURIComponent(item.id)}/${item.paused_now ? 'resume' : 'pause'}`, {});
          toast(item.paused_now ? 'Resumed.' : 'Paused: silence is recorded until you resume.');
        } catch (err) {
          toast(err.message, 'error');
        }
        await refresh();
      },
    }, item.paused_now ? 'Resume' : 'Pause') : null;
    return h('tr', { dataset: { id: item.id }, class: item.paused_now ? 'is-paused' : undefined },
      h('td', {}, h('a', { href: `/recordings/${encodeURIComponent(item.id)}` }, timeEl(item.started_at))),
      h('td', { class: 'addr', title: item.from }, shortAddr(item.from)),
      h('td', { class: 'addr', title: item.to }, shortAddr(item.to)),
      running,
      h('td', { class: 'ident', title: item.ingress_call_id }, item.ingress_call_id),
      h('td', { class: 'state' }, state),
      can('pause') ? h('td', {}, action) : null);
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      const page = await api('GET', '/recordings' + query({ state: 'active', limit: 200 }));
      if (stopped) return;
      items = page.items;
      clear(tbody, items.length ? items.map(row)
        : h('tr', {}, h('td', { colspan: can('pause') ? 7 : 6, class: 'empty' }, 'No call is being recorded.')));
      const paused = items.filter((i) => i.paused_now).length;
      status.textContent = `${items.length} call(s) recording${paused ? `, ${paused} paused` : ''}${page.next_cursor ? ' (the newest 200 shown)' : ''}. Updated ${new Date().toLocaleTimeString()}.`;
    } catch (err) {
      status.textContent = `Not updated: ${err.message}`;
    }
    if (!stopped) timer = setTimeout(refresh, REFRESH_MS);
  }

  clear(main,
    h('h1', {}, 'Live'),
    h('p', {}, 'Calls being recorded now. Pausing records silence on every leg and keeps no digits, e.g. while a card number is read.'),
    status,
    h('div', { class: 'table-wrap' }, h('table', { class: 'live' },
      h('caption', { class: 'visually-hidden' }, 'Calls being recorded'),
      h('thead', {}, h('tr', {}, ['Started', 'From', 'To', 'Running', 'Ingress Call-ID', 'State', can('pause') ? 'Action' : null]
        .filter(Boolean).map((t) => h('th', { scope: 'col' }, t)))),
      tbody)));
  await refresh();
  ticker = setInterval(() => {
    for (const cell of tbody.querySelectorAll('td[data-started]')) {
      cell.textContent = fmtDuration(Date.now() - Date.parse(cell.dataset.started));
    }
  }, 1000);
  return () => {
    stopped = true;
    clearTimeout(timer);
    clearInterval(ticker);
  };
}
