// Sign in: user name and password, answered by the session cookie and a CSRF token.

import { api } from '../api.js';
import { clear, field, h } from '../ui.js';

export async function signInPage(main, { onSignedIn }) {
  const error = h('p', { class: 'error', role: 'alert', hidden: true });
  const username = h('input', { name: 'username', autocomplete: 'username', required: true, autofocus: true });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h('form', { class: 'sign-in', 'aria-labelledby': 'sign-in-title' },
    h('h1', { id: 'sign-in-title' }, 'Sign in to callvault'),
    field('Username', username),
    field('Password', password),
    error,
    submit);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.hidden = true;
    submit.disabled = true;
    try {
      const info = await api('POST', '/session', { username: username.value, password: password.value }, { quiet401: true });
      await onSignedIn(info);
    } catch (err) {
      error.textContent = err.code === 'login_failed' ? 'Wrong username or password.' : err.message;
      error.hidden = false;
      password.value = '';
      password.focus();
    } finally {
      submit.disabled = false;
    }
  });
  clear(main, h('div', { class: 'centered' }, form));
  username.focus();
}
