// The API client: JSON in and out, the session's CSRF token on every change, errors as
// ApiError with the server's stable code. The session cookie (HttpOnly) travels by itself.

let csrfToken = null;
let onUnauthenticated = () => {};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

export function setCsrf(token) {
  csrfToken = token;
}

export function whenUnauthenticated(handler) {
  onUnauthenticated = handler;
}

async function errorOf(response) {
  let code = 'http_' + response.status;
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.error) {
      code = body.error.code;
      message = body.error.message;
    }
  } catch {
    // Not JSON: keep the status line.
  }
  return new ApiError(response.status, code, message);
}

// `method path` under /api/v1. `body` is sent as JSON; `reason` as X-Callvault-Reason.
// Returns the parsed JSON (null for 204), or the Response itself with `raw`.
export async function api(method, path, body, { reason, raw, quiet401 } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (csrfToken && method !== 'GET' && method !== 'HEAD') headers['X-Callvault-CSRF'] = csrfToken;
  if (reason) headers['X-Callvault-Reason'] = reason;
  const response = await fetch('/api/v1' + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
  });
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401 && !quiet401) onUnauthenticated();
    throw error;
  }
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

// A query string of the defined, non-empty values of `params`.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? '?' + s : '';
}
