// Small DOM helpers: an element builder (text only, never HTML strings: everything shown comes
// from calls and people and is put in as text), formatting in the viewer's time zone, dialogs,
// tabs and a status line.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (['value', 'checked', 'disabled', 'hidden', 'selected', 'open'].includes(key)) el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

// Appends children (nested arrays flattened; null, undefined and false skipped).
export function add(el, ...children) {
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
const dateTime = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: '2-digit', day: '2-digit',
  hour: '2-digit', minute: '2-digit', second: '2-digit',
  timeZoneName: 'short',
});

export function viewerZone() {
  return zone;
}

// An RFC 3339 time as the viewer reads it (their time zone, named).
export function fmtTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : dateTime.format(d);
}

export function timeEl(iso) {
  return h('time', { datetime: iso, title: iso }, fmtTime(iso));
}

// Milliseconds as h:mm:ss or m:ss.
export function fmtDuration(ms) {
  if (ms === null || ms === undefined) return '';
  const total = Math.max(0, Math.floor(ms / 1000));
  const s = total % 60;
  const m = Math.floor(total / 60) % 60;
  const hours = Math.floor(total / 3600);
  const pad = (n) => String(n).padStart(2, '0');
  return hours ? `${hours}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
}

// An offset into a recording, to the tenth of a second.
export function fmtOffset(ms) {
  const tenths = Math.floor((ms % 1000) / 100);
  return `${fmtDuration(ms)}.${tenths}`;
}

// RFC 3339 (UTC) of a <input type="datetime-local"> value, read in the viewer's zone.
export function localInputToIso(value) {
  if (!value) return '';
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

export function isoToLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

let toastTimer = null;
export function toast(message, kind = 'info') {
  const el = document.getElementById('toast');
  el.textContent = message;
  el.dataset.kind = kind;
  el.classList.add('shown');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove('shown'), 5000);
}

let fieldSeq = 0;
// A labelled form field: the label names the control (for screen readers and tests alike).
export function field(label, control, hint) {
  const id = control.id || `f${++fieldSeq}`;
  control.id = id;
  const hintEl = hint ? h('small', { id: `${id}-hint`, class: 'hint' }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hintEl);
}

export function select(name, options, value) {
  return h('select', { name },
    options.map(([v, text]) => h('option', { value: v, selected: String(v) === String(value ?? '') }, text)));
}

// A modal dialog. `build(form)` fills it; resolves with what `submit(form)` returns (it may
// throw to show an error and stay open), or null when cancelled.
export function dialog({ title, build, submit, confirmLabel = 'OK', danger = false }) {
  return new Promise((resolve) => {
    const error = h('p', { class: 'error', role: 'alert', hidden: true });
    const confirm = h('button', { type: 'submit', class: danger ? 'danger' : 'primary' }, confirmLabel);
    const cancel = h('button', { type: 'button', onclick: () => close(null) }, 'Cancel');
    const form = h('form', { method: 'dialog', class: 'dialog-form' });
    const heading = h('h2', { id: `dlg-${++fieldSeq}` }, title);
    const box = h('dialog', { 'aria-labelledby': heading.id }, heading, form);
    build(form);
    form.append(error, h('div', { class: 'actions' }, cancel, confirm));
    let done = false;
    const close = (value) => {
      if (done) return;
      done = true;
      box.close();
      box.remove();
      resolve(value);
    };
    box.addEventListener('cancel', (e) => { e.preventDefault(); close(null); });
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      error.hidden = true;
      confirm.disabled = true;
      try {
        close(await submit(form));
      } catch (err) {
        error.textContent = err.message;
        error.hidden = false;
      } finally {
        confirm.disabled = false;
      }
    });
    document.body.append(box);
    box.showModal();
  });
}

// Asks for a reason (and optionally a confirmation), then runs `action(reason)`.
export function reasonDialog({ title, message, label = 'Reason', required = true, confirmLabel, danger, confirmText, action }) {
  return dialog({
    title,
    confirmLabel,
    danger,
    build(form) {
      if (message) form.append(h('p', {}, message));
      form.append(field(label, h('input', { name: 'reason', type: 'text', required, autocomplete: 'off' })));
      if (confirmText) {
        form.append(h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'confirm', required: true }), ' ', confirmText));
      }
    },
    submit: (form) => action(form.elements.reason.value.trim()),
  });
}

// ARIA tabs: arrow keys move between tabs; each panel is drawn when first shown.
export function tabs(label, items, onShow) {
  const list = h('div', { role: 'tablist', 'aria-label': label, class: 'tabs' });
  const panels = h('div', { class: 'tab-panels' });
  const buttons = [];
  items.forEach(({ id, title }, i) => {
    const tab = h('button', {
      type: 'button', role: 'tab', id: `tab-${id}`, 'aria-controls': `panel-${id}`,
      'aria-selected': i === 0 ? 'true' : 'false', tabindex: i === 0 ? '0' : '-1',
    }, title);
    const panel = h('div', { role: 'tabpanel', id: `panel-${id}`, 'aria-labelledby': tab.id, tabindex: '0', hidden: i !== 0 });
    tab.addEventListener('click', () => show(i));
    tab.addEventListener('keydown', (e) => {
      const moves = { ArrowRight: 1, ArrowLeft: -1, Home: -i, End: items.length - 1 - i };
      if (e.key in moves) {
        e.preventDefault();
        const next = (i + moves[e.key] + items.length) % items.length;
        show(next);
        buttons[next].focus();
      }
    });
    buttons.push(tab);
    list.append(tab);
    panels.append(panel);
  });
  const drawn = new Set();
  function show(i) {
    buttons.forEach((b, j) => {
      b.setAttribute('aria-selected', String(i === j));
      b.tabIndex = i === j ? 0 : -1;
      panels.children[j].hidden = i !== j;
    });
    if (!drawn.has(i)) {
      drawn.add(i);
      onShow(items[i].id, panels.children[i]);
    }
  }
  const element = h('div', { class: 'tabbed' }, list, panels);
  return {
    element,
    start: () => show(0),
    redraw(id) {
      const i = items.findIndex((it) => it.id === id);
      if (drawn.has(i)) onShow(id, panels.children[i]);
    },
  };
}

export function badge(text, kind, title) {
  return h('span', { class: `badge ${kind || ''}`, title }, text);
}

// A SIP or tel URI without its scheme, as people read an address (the title keeps it whole).
export function shortAddr(uri) {
  return (uri || '').replace(/^(sips?|tel):/i, '');
}

// "Deleted by X on D": how a tombstone reads everywhere.
export function tombstoneText(item) {
  return `Deleted by ${item.deleted_by} on ${fmtTime(item.deleted_at)}`;
}
