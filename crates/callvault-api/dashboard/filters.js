// The Recordings page's filters: every filter of GET /api/v1/recordings, kept in the page's
// URL under the API's own names (so a search is a link to share), and saved searches.
//
// Saved searches live in this browser's localStorage, per user: a saved search is a name and
// that URL's query string, a personal shortcut with nothing the server must enforce or audit,
// so it needs no table, no migration and no endpoint. (They do not follow a user to another
// browser; a shared search is its link.)

import { field, h, isoToLocalInput, localInputToIso, select } from './ui.js';

export const FILTER_KEYS = [
  'since', 'until', 'party', 'digits', 'id', 'call_id', 'session_id', 'state', 'locked',
  'annotated', 'min_duration_ms', 'max_duration_ms', 'tenant', 'limit',
];

// The filter form, filled from `query` (URLSearchParams); `onSearch(params)` gets the new
// query as a plain object when submitted.
export function filterForm(query, { showTenant, onSearch, onReset }) {
  const v = (k) => query.get(k) || '';
  const seconds = (k) => (query.get(k) ? String(Number(query.get(k)) / 1000) : '');
  const input = (name, attrs = {}) => h('input', { name, value: v(name), autocomplete: 'off', ...attrs });
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Find recordings' },
    field('Party', input('party', { type: 'search' }), 'From, To, or a participant\'s address or name'),
    field('DTMF digits', input('digits', { inputmode: 'tel', pattern: '[0-9*#A-Da-d!]*' })),
    field('Any id', input('id'), 'Recording, session, Call-ID or vendor id'),
    field('Call-ID', input('call_id')),
    field('Session ID', input('session_id')),
    field('Started after', h('input', { name: 'since', type: 'datetime-local', value: isoToLocalInput(v('since')) })),
    field('Started before', h('input', { name: 'until', type: 'datetime-local', value: isoToLocalInput(v('until')) })),
    field('Min duration (s)', h('input', { name: 'min_duration', type: 'number', min: '0', step: '1', value: seconds('min_duration_ms') })),
    field('Max duration (s)', h('input', { name: 'max_duration', type: 'number', min: '0', step: '1', value: seconds('max_duration_ms') })),
    field('State', select('state', [['', 'Any'], ['active', 'Recording now'], ['complete', 'Complete'],
      ['interrupted', 'Interrupted'], ['failed', 'Failed'], ['deleted', 'Deleted']], v('state'))),
    field('Locked', select('locked', [['', 'Any'], ['true', 'Locked'], ['false', 'Not locked']], v('locked'))),
    field('Annotated', select('annotated', [['', 'Any'], ['true', 'Annotated'], ['false', 'Not annotated']], v('annotated'))),
    showTenant ? field('Tenant', input('tenant')) : null,
    field('Per page', select('limit', [['25', '25'], ['50', '50'], ['100', '100'], ['200', '200']], v('limit') || '50')),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary' }, 'Search'),
      h('button', { type: 'button', onclick: onReset }, 'Clear')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const el = form.elements;
    const ms = (s) => (s === '' ? '' : String(Math.round(Number(s) * 1000)));
    onSearch({
      party: el.party.value.trim(),
      digits: el.digits.value.trim().toUpperCase(),
      id: el.namedItem('id').value.trim(),
      call_id: el.call_id.value.trim(),
      session_id: el.session_id.value.trim(),
      since: localInputToIso(el.since.value),
      until: localInputToIso(el.until.value),
      min_duration_ms: ms(el.min_duration.value),
      max_duration_ms: ms(el.max_duration.value),
      state: el.state.value,
      locked: el.locked.value,
      annotated: el.annotated.value,
      tenant: el.tenant ? el.tenant.value.trim() : '',
      limit: el.limit.value,
    });
  });
  return form;
}

// The filters of `query` that are set, as a plain object (for the API and the URL).
export function filtersOf(query) {
  const out = {};
  for (const k of FILTER_KEYS) if (query.get(k)) out[k] = query.get(k);
  if (!out.limit) out.limit = '50';
  return out;
}

const storeKey = (user) => `callvault:saved-searches:${user}`;

export function savedSearches(user) {
  try {
    const list = JSON.parse(localStorage.getItem(storeKey(user)) || '[]');
    return Array.isArray(list) ? list.filter((s) => s && typeof s.name === 'string' && typeof s.query === 'string') : [];
  } catch {
    return [];
  }
}

export function saveSearch(user, name, queryString) {
  const list = savedSearches(user).filter((s) => s.name !== name);
  list.push({ name, query: queryString });
  list.sort((a, b) => a.name.localeCompare(b.name));
  localStorage.setItem(storeKey(user), JSON.stringify(list));
}

export function forgetSearch(user, name) {
  localStorage.setItem(storeKey(user), JSON.stringify(savedSearches(user).filter((s) => s.name !== name)));
}
