// Users (admins): who may sign in, with which role and tenant; add a user, disable one.
// An admin with a tenant sees and adds users of that tenant only (the server decides).

import { api } from '../api.js';
import { add, clear, dialog, field, h, select, timeEl, toast } from '../ui.js';

const ROLES = [
  ['viewer', 'viewer: search, view, play'],
  ['reviewer', 'reviewer: + annotate, score'],
  ['compliance', 'compliance: + download, lock, delete, pause, audit'],
  ['admin', 'admin: everything, users'],
];

export async function usersPage(main, ctx) {
  const { session } = ctx;
  document.title = 'Users · callvault';
  const tbody = h('tbody');

  async function load() {
    const users = await api('GET', '/users');
    clear(tbody, users.map((u) => h('tr', { class: u.disabled_at ? 'disabled' : undefined },
      h('td', {}, u.name), h('td', {}, u.role), h('td', {}, u.tenant || 'all tenants'), h('td', {}, timeEl(u.created_at)),
      h('td', {}, u.disabled_at ? ['disabled ', timeEl(u.disabled_at)] : 'active'),
      h('td', {}, !u.disabled_at && u.name !== session.user ? h('button', {
        type: 'button', 'aria-label': `Disable ${u.name}`,
        onclick: () => dialog({
          title: `Disable ${u.name}?`,
          confirmLabel: 'Disable',
          danger: true,
          build: (form) => form.append(h('p', {}, 'They are signed out and every token of theirs stops working.')),
          submit: async () => {
            await api('POST', `/users/${encodeURIComponent(u.name)}/disable`, {});
            toast(`${u.name} disabled.`);
            await load();
            return true;
          },
        }),
      }, 'Disable') : ''))));
  }

  const addButton = h('button', { type: 'button', class: 'primary', onclick: () => dialog({
    title: 'Add a user',
    confirmLabel: 'Add user',
    build(form) {
      add(form,
        field('Username', h('input', { name: 'name', required: true, autocomplete: 'off' })),
        field('Password', h('input', { name: 'password', type: 'password', required: true, minlength: '10', autocomplete: 'new-password' }), 'At least 10 characters, hard to guess'),
        field('Role', select('role', ROLES, 'viewer')),
        session.tenant ? null : field('Tenant', h('input', { name: 'tenant', autocomplete: 'off' }), 'Empty: sees every tenant'));
    },
    async submit(form) {
      const el = form.elements;
      const body = { name: el.name.value.trim(), password: el.password.value, role: el.role.value };
      if (el.tenant && el.tenant.value.trim()) body.tenant = el.tenant.value.trim();
      await api('POST', '/users', body);
      toast(`${body.name} added.`);
      await load();
      return true;
    },
  }) }, 'Add a user…');

  clear(main, h('h1', {}, 'Users'), h('div', { class: 'toolbar' }, addButton),
    h('div', { class: 'table-wrap' }, h('table', {},
      h('caption', { class: 'visually-hidden' }, 'Users'),
      h('thead', {}, h('tr', {}, ['Username', 'Role', 'Tenant', 'Added', 'Status', ''].map((t) => h('th', { scope: 'col' }, t)))),
      tbody)));
  await load();
}
