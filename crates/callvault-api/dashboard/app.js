// The shell: who is signed in, the navigation (only pages the role may use), and a router over
// the History API. Each page is `async (main, ctx) => cleanup?`.

import { api, setCsrf, whenUnauthenticated } from './api.js';
import { clear, h, toast } from './ui.js';
import { signInPage } from './pages/sign-in.js';
import { recordingsPage } from './pages/recordings.js';
import { recordingPage } from './pages/recording.js';
import { livePage } from './pages/live.js';
import { auditPage } from './pages/audit.js';
import { usersPage } from './pages/users.js';

const NAV = [
  { path: '/recordings', title: 'Recordings', permission: 'view' },
  { path: '/live', title: 'Live', permission: 'view' },
  { path: '/audit', title: 'Audit log', permission: 'read_audit' },
  { path: '/users', title: 'Users', permission: 'manage_users' },
];

const ROUTES = [
  [/^\/recordings\/([^/]+)$/, recordingPage, 'view'],
  [/^\/recordings$/, recordingsPage, 'view'],
  [/^\/live$/, livePage, 'view'],
  [/^\/audit$/, auditPage, 'read_audit'],
  [/^\/users$/, usersPage, 'manage_users'],
];

let session = null;
let cleanup = null;
let renderSeq = 0;

const can = (permission) => Boolean(session && session.permissions.includes(permission));

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  render();
}

function setSession(info) {
  session = info;
  setCsrf(info ? info.csrf_token : null);
  const top = document.getElementById('top');
  top.hidden = !info;
  if (!info) return;
  document.getElementById('who').textContent =
    `${info.user} (${info.role}${info.tenant ? ', ' + info.tenant : ''})`;
  clear(document.getElementById('nav'),
    NAV.filter((n) => can(n.permission)).map((n) => h('li', {}, h('a', { href: n.path, 'data-nav': n.path }, n.title))));
}

function markCurrent(path) {
  for (const a of document.querySelectorAll('#nav a')) {
    const current = path === a.dataset.nav || path.startsWith(a.dataset.nav + '/');
    if (current) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

async function render() {
  const seq = ++renderSeq;
  if (cleanup) {
    try { cleanup(); } catch { /* a page's teardown never blocks the next page */ }
    cleanup = null;
  }
  const main = document.getElementById('main');
  const path = location.pathname;
  if (!session) {
    if (path !== '/sign-in') {
      const next = path === '/' ? '' : `?next=${encodeURIComponent(path + location.search)}`;
      history.replaceState(null, '', '/sign-in' + next);
    }
    document.title = 'Sign in · callvault';
    await signInPage(main, { onSignedIn });
    return;
  }
  if (path === '/' || path === '/sign-in') {
    history.replaceState(null, '', '/recordings');
    return render();
  }
  markCurrent(path);
  const route = ROUTES.find(([pattern]) => pattern.test(path));
  clear(main);
  if (!route) {
    document.title = 'Not found · callvault';
    main.append(h('h1', {}, 'Not found'), h('p', {}, 'There is no such page.'));
    return;
  }
  const [pattern, page, permission] = route;
  if (!can(permission)) {
    document.title = 'Not allowed · callvault';
    main.append(h('h1', {}, 'Not allowed'), h('p', {}, 'Your role does not include this page.'));
    return;
  }
  const params = path.match(pattern).slice(1).map(decodeURIComponent);
  const ctx = { session, can, params, query: new URLSearchParams(location.search), navigate, isCurrent: () => seq === renderSeq };
  try {
    const done = await page(main, ctx);
    if (seq === renderSeq) cleanup = done || null;
    else if (done) done();
  } catch (error) {
    if (seq !== renderSeq) return;
    clear(main, h('h1', {}, 'Something went wrong'), h('p', { class: 'error', role: 'alert' }, error.message));
  }
}

async function onSignedIn(info) {
  setSession(info);
  const next = new URLSearchParams(location.search).get('next');
  // Only a path of this site: never `//host` or `/\host`, which browsers read as another origin.
  const local = next && next.startsWith('/') && !next.startsWith('//') && !next.includes('\\');
  navigate(local ? next : '/recordings', { replace: true });
}

async function signOut() {
  try {
    await api('DELETE', '/session');
  } catch {
    // Signed out already (expired): nothing to undo.
  }
  setSession(null);
  navigate('/sign-in', { replace: true });
  toast('Signed out.');
}

// Links inside the app change the page without a reload.
document.addEventListener('click', (e) => {
  const a = e.target.closest('a[href]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  if (a.target || a.hasAttribute('download')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/api/') || url.pathname.startsWith('/assets/')) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});

window.addEventListener('popstate', render);

whenUnauthenticated(() => {
  if (!session) return;
  setSession(null);
  toast('Your session has ended: sign in again.', 'error');
  render();
});

document.getElementById('sign-out').addEventListener('click', signOut);

async function boot() {
  try {
    setSession(await api('GET', '/session', undefined, { quiet401: true }));
  } catch {
    setSession(null);
  }
  render();
}

boot();
