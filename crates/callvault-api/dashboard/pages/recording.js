// One recording: the player, its notes and digits on the timeline, and tabs for participants,
// metadata (every revision), legs with their quality figures, locks, and the review. Controls
// appear only for what the role may do; a deleted recording shows its tombstone.

import { api, ApiError, query } from '../api.js';
import { createPlayer } from '../player.js';
import { flags } from './recordings.js';
import {
  add, clear, dialog, field, fmtDuration, fmtOffset, h, reasonDialog, select, tabs, timeEl, toast, tombstoneText,
} from '../ui.js';

const path = (id, rest = '') => `/recordings/${encodeURIComponent(id)}${rest}`;

// Where a reason is required to play, the <audio> elements must carry it in their URL: the
// server's answer to a HEAD of the first leg says whether it is.
async function playReasonQuery(rec) {
  const leg = rec.legs[0];
  if (!leg) return '';
  const response = await fetch(`/api/v1${path(rec.id, `/legs/@${leg.position}/audio`)}`, { method: 'HEAD', credentials: 'same-origin' });
  if (response.status !== 422) return '';
  const reason = await reasonDialog({
    title: 'Why are you listening?',
    message: 'Your organisation asks for a reason before a recording is played; it is kept in the audit log.',
    confirmLabel: 'Continue',
    action: async (r) => r,
  });
  return reason ? query({ reason }) : null;
}

export async function recordingPage(main, ctx) {
  const { can, params } = ctx;
  const id = params[0];
  let rec;
  try {
    rec = await api('GET', path(id));
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      document.title = 'Not found · callvault';
      clear(main, h('h1', {}, 'Recording not found'),
        h('p', { role: 'alert' }, 'There is no recording with this id that you may see.'),
        h('p', {}, h('a', { href: '/recordings' }, 'Back to recordings')));
      return null;
    }
    throw err;
  }
  const deleted = rec.state === 'deleted';
  document.title = `${deleted ? 'Deleted recording' : `${rec.from} → ${rec.to}`} · callvault`;
  let player = null;
  let refreshTimer = null;

  const header = h('header', { class: 'rec-header' });
  const banner = h('div');
  const playerSlot = h('div', { class: 'player-slot' });
  const actions = h('div', { class: 'rec-actions' });

  function drawHeader() {
    clear(header,
      h('p', { class: 'crumbs' }, h('a', { href: '/recordings' }, '← Recordings')),
      h('h1', {}, rec.from || rec.to
        ? [h('span', { class: 'addr' }, rec.from), ' → ', h('span', { class: 'addr' }, rec.to)]
        : 'Deleted recording'),
      h('dl', { class: 'facts' },
        h('div', {}, h('dt', {}, 'Started'), h('dd', {}, timeEl(rec.started_at))),
        h('div', {}, h('dt', {}, 'Duration'), h('dd', {}, rec.state === 'active' ? 'recording…' : fmtDuration(rec.duration_ms))),
        h('div', {}, h('dt', {}, 'State'), h('dd', {}, rec.state, rec.end_reason ? ` (${rec.end_reason})` : '')),
        rec.tenant ? h('div', {}, h('dt', {}, 'Tenant'), h('dd', {}, rec.tenant)) : null,
        h('div', {}, h('dt', {}, 'Flags'), h('dd', { class: 'flags' }, flags(rec)))));
    clear(banner, deleted ? h('div', { class: 'tombstone', role: 'status' },
      h('strong', {}, tombstoneText(rec)),
      rec.delete_reason ? h('span', {}, ` — reason: ${rec.delete_reason}`) : null,
      h('p', { class: 'muted' }, 'The audio and metadata were removed; this record of the deletion stays.')) : null);
  }

  // `full`: the tabs too (after a change of ours); a live call's periodic refresh leaves
  // them alone, so nothing being typed there is lost.
  async function reload(full = true) {
    rec = await api('GET', path(id));
    drawHeader();
    drawActions();
    if (player) player.setMarkers(rec.annotations, rec.dtmf);
    if (full) {
      tabbed.redraw('locks');
      tabbed.redraw('review');
    }
  }

  function drawActions() {
    clear(actions);
    if (deleted) return;
    if (can('download')) {
      const format = select('format', [['wav', 'WAV'], ['mp3', 'MP3']], 'wav');
      const channels = select('channels', [['mono', 'Mono'], ['stereo', 'Stereo']], 'mono');
      format.setAttribute('aria-label', 'Download format');
      channels.setAttribute('aria-label', 'Download channels');
      actions.append(h('div', { class: 'inline' }, format, channels, h('button', { type: 'button', onclick: async () => {
        const url = `/api/v1${path(id, '/audio')}${query({ format: format.value, channels: channels.value })}`;
        const head = await fetch(url, { method: 'HEAD', credentials: 'same-origin' });
        let href = url;
        if (head.status === 422) {
          const reason = await reasonDialog({ title: 'Why are you downloading?', confirmLabel: 'Download', action: async (r) => r });
          if (!reason) return;
          href += `&reason=${encodeURIComponent(reason)}`;
        }
        const a = h('a', { href, download: '', hidden: true });
        document.body.append(a);
        a.click();
        a.remove();
      } }, 'Download')));
    }
    if (rec.state === 'active' && can('pause')) {
      const paused = (rec.paused || []).some((p) => p.to_ms === null);
      actions.append(h('button', { type: 'button', onclick: async () => {
        try {
          await api('POST', path(id, paused ? '/resume' : '/pause'), {});
          toast(paused ? 'Recording resumed.' : 'Recording paused: every leg records silence, no digits are kept.');
        } catch (err) { toast(err.message, 'error'); }
        await reload();
      } }, paused ? 'Resume recording' : 'Pause recording'));
    }
    if (can('delete')) {
      actions.append(h('button', { type: 'button', class: 'danger', onclick: deleteRecording }, 'Delete recording…'));
    }
  }

  function deleteRecording() {
    reasonDialog({
      title: 'Delete this recording',
      message: 'Its audio and metadata are removed for good. A tombstone keeps who deleted it, when, why and each file\'s SHA-256.',
      confirmLabel: 'Delete for good',
      danger: true,
      confirmText: 'I understand this cannot be undone.',
      action: async (reason) => {
        try {
          await api('DELETE', path(id), { reason });
        } catch (err) {
          if (err.code === 'locked') throw new Error(`Refused: ${err.message}. Remove every lock first.`);
          if (err.code === 'active') throw new Error('Refused: the call is still being recorded.');
          throw err;
        }
        toast('Recording deleted.');
        ctx.navigate(`/recordings/${encodeURIComponent(id)}`, { replace: true });
        return true;
      },
    });
  }

  async function annotateAt(offsetMs) {
    if (player) player.pause();
    await dialog({
      title: 'Add a note',
      confirmLabel: 'Add note',
      build(form) {
        form.append(
          field('Note', h('textarea', { name: 'text', required: true, rows: 3 })),
          field('At (seconds)', h('input', { name: 'at', type: 'number', min: '0', step: '0.1', value: offsetMs === null ? '' : (offsetMs / 1000).toFixed(1) }),
            'Empty for a note on the whole call'));
      },
      async submit(form) {
        const at = form.elements.at.value;
        const body = { text: form.elements.text.value.trim() };
        if (at !== '') body.offset_ms = Math.round(Number(at) * 1000);
        await api('POST', path(id, '/annotations'), body);
        toast('Note added.');
        await reload();
        return true;
      },
    });
  }

  // The tabs.
  const tabbed = tabs('About this recording', [
    { id: 'participants', title: 'Participants' },
    { id: 'metadata', title: 'Metadata' },
    { id: 'legs', title: 'Legs' },
    { id: 'dtmf', title: `Digits (${rec.dtmf.length})` },
    { id: 'locks', title: 'Locks' },
    { id: 'review', title: 'Review' },
  ], (tab, panel) => {
    const draw = { participants, metadata, legs, dtmf, locks, review }[tab];
    Promise.resolve(draw(panel)).catch((err) => clear(panel, h('p', { class: 'error', role: 'alert' }, err.message)));
  });

  function table(caption, head, rows, cls = '') {
    return h('div', { class: 'table-wrap' }, h('table', { class: cls },
      h('caption', { class: 'visually-hidden' }, caption),
      h('thead', {}, h('tr', {}, head.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: head.length, class: 'empty' }, 'None.')))));
  }

  function participants(panel) {
    const legOf = (p) => (rec.associations || []).filter((a) => a.participant === p.id)
      .map((a) => `leg ${a.leg} ${fmtOffset(a.from_ms)}–${a.to_ms === null ? 'end' : fmtOffset(a.to_ms)}`).join(', ');
    clear(panel, table('Participants', ['Name', 'Address', 'Id', 'On legs'],
      rec.participants.map((p) => h('tr', {}, h('td', {}, p.name || ''), h('td', { class: 'addr' }, p.aor || ''), h('td', {}, p.id), h('td', {}, legOf(p))))));
  }

  async function metadata(panel) {
    const ids = [
      ['Recording id', rec.id], ['Session ID', rec.session_id], ['Ingress Call-ID', rec.ingress_call_id],
      ['Egress Call-ID', rec.egress_call_id || '—'], ['Source', `${rec.source_address} (${rec.transport})`],
      ['Node', rec.node_id || '—'],
      ...(rec.correlation_ids || []).map((c) => [c.kind, c.value]),
    ];
    clear(panel, h('h3', {}, 'Identifiers'),
      h('dl', { class: 'pairs' }, ids.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', { class: 'ident' }, v)))),
      (rec.warnings || []).length ? [h('h3', {}, 'Warnings'), h('ul', {}, rec.warnings.map((w) => h('li', {}, w)))] : null,
      h('h3', {}, `Metadata revisions (${rec.metadata_revisions})`));
    if (deleted) {
      panel.append(h('p', { class: 'muted' }, 'Removed with the recording.'));
      return;
    }
    const revisions = await api('GET', path(id, '/metadata'));
    add(panel, revisions.length ? revisions.map((r, i) => h('details', { open: i === revisions.length - 1 },
      h('summary', {}, `Revision ${r.number} · `, timeEl(r.received_at), r.datamode ? ` · ${r.datamode}` : ''),
      h('pre', { class: 'xml' }, r.raw_xml))) : h('p', { class: 'muted' }, 'The call carried no metadata.'));
  }

  function legs(panel) {
    const loss = (l) => (l.packets + l.lost ? ((100 * l.lost) / (l.packets + l.lost)).toFixed(2) + ' %' : '—');
    clear(panel, table('Legs and their quality', ['Leg', 'Participant', 'Codec', 'Packets', 'Lost', 'Loss', 'Jitter', 'Late', 'Reordered', 'Gaps filled', 'SSRCs', 'Foreign', 'SHA-256'],
      rec.legs.map((l) => h('tr', {},
        h('td', {}, `${l.label} (#${l.position})`), h('td', {}, l.participant || '—'),
        h('td', {}, `${l.codec} ${l.sample_rate / 1000} kHz`), h('td', { class: 'num' }, l.packets), h('td', { class: 'num' }, l.lost),
        h('td', { class: 'num' }, loss(l)), h('td', { class: 'num' }, `${(l.jitter_ms ?? 0).toFixed(1)} ms`),
        h('td', { class: 'num' }, l.late), h('td', { class: 'num' }, l.out_of_order), h('td', { class: 'num' }, `${l.gaps_filled_ms} ms`),
        h('td', { class: 'num' }, l.ssrcs_seen), h('td', { class: 'num' }, l.foreign_packets ?? 0),
        h('td', { class: 'ident', title: l.sha256 || '' }, l.sha256 ? l.sha256.slice(0, 16) + '…' : (l.error || '—')))), 'legs'),
      deleted && rec.deleted_legs.length ? [h('h3', {}, 'Deleted files'),
        table('Deleted files', ['Leg', 'File', 'SHA-256'], rec.deleted_legs.map((d) => h('tr', {}, h('td', {}, d.label), h('td', { class: 'ident' }, d.path), h('td', { class: 'ident' }, d.sha256 || '—'))))] : null);
  }

  function dtmf(panel) {
    clear(panel, table('Digits', ['Digit', 'At', 'Duration', 'Leg', 'Source'],
      rec.dtmf.map((d) => h('tr', {},
        h('td', { class: 'digit-cell' }, d.digit),
        h('td', {}, player ? h('button', { type: 'button', class: 'link', onclick: () => player.seek(d.offset_ms / 1000) }, fmtOffset(d.offset_ms)) : fmtOffset(d.offset_ms)),
        h('td', {}, `${d.duration_ms} ms`), h('td', {}, d.leg || '—'), h('td', {}, d.source)))));
  }

  function locks(panel) {
    const inForce = rec.locks.filter((l) => !l.removed_at);
    const history = rec.locks.filter((l) => l.removed_at);
    const rows = inForce.map((l) => h('tr', {},
      h('td', {}, l.reason), h('td', {}, l.by), h('td', {}, timeEl(l.at)),
      h('td', {}, can('lock') ? h('button', { type: 'button', 'aria-label': `Remove the lock ${l.reason}`, onclick: () => reasonDialog({
        title: `Remove the lock "${l.reason}"`,
        label: 'Reason for removing it',
        confirmLabel: 'Remove lock',
        action: async (reason) => {
          await api('DELETE', path(id, `/locks/${encodeURIComponent(l.id)}`), { reason });
          toast('Lock removed.');
          await reload();
          return true;
        },
      }) }, 'Remove') : '')));
    clear(panel,
      h('h3', {}, 'In force'),
      table('Locks in force', ['Reason', 'By', 'Since', ''], rows));
    if (can('lock') && !deleted) {
      const reason = h('input', { name: 'reason', required: true, autocomplete: 'off', placeholder: 'LegalHold#245' });
      const form = h('form', { class: 'inline-form' }, field('Lock reason', reason), h('button', { type: 'submit' }, 'Add lock'));
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        try {
          await api('POST', path(id, '/locks'), { reason: reason.value.trim() });
          toast('Locked: nobody can delete it until every lock is removed.');
          await reload();
        } catch (err) { toast(err.message, 'error'); }
      });
      panel.append(form);
    }
    if (history.length) {
      panel.append(h('h3', {}, 'Removed'), table('Removed locks', ['Reason', 'By', 'At', 'Removed by', 'On', 'Why'],
        history.map((l) => h('tr', {}, h('td', {}, l.reason), h('td', {}, l.by), h('td', {}, timeEl(l.at)),
          h('td', {}, l.removed_by), h('td', {}, timeEl(l.removed_at)), h('td', {}, l.remove_reason || '')))));
    }
  }

  async function review(panel) {
    const notes = h('ol', { class: 'notes' }, rec.annotations.map((a) => h('li', {},
      a.offset_ms === null ? h('span', { class: 'muted' }, 'whole call') :
        h('button', { type: 'button', class: 'link', onclick: () => player && player.seek(a.offset_ms / 1000) }, fmtOffset(a.offset_ms)),
      ' ', h('span', { class: 'note-text' }, a.text), ' ', h('span', { class: 'muted' }, '— ', a.by, ', ', timeEl(a.at)))));
    clear(panel, h('h3', {}, 'Notes'), rec.annotations.length ? notes : h('p', { class: 'muted' }, 'No notes yet.'));
    if (can('annotate') && !deleted) {
      panel.append(h('button', { type: 'button', onclick: () => annotateAt(null) }, 'Add a note…'));
    }
    const editable = can('annotate') && !deleted;
    const fields = deleted ? [] : await api('GET', '/custom-fields');
    const score = h('fieldset', { class: 'score' }, h('legend', {}, 'Score'),
      [1, 2, 3, 4, 5].map((n) => h('label', {}, h('input', { type: 'radio', name: 'score', value: String(n), checked: rec.score === n, disabled: !editable }), ` ${n}`)),
      h('label', {}, h('input', { type: 'radio', name: 'score', value: '', checked: !rec.score, disabled: !editable }), ' none'));
    const complete = h('input', { type: 'checkbox', name: 'complete', checked: rec.complete === true, disabled: !editable });
    const reviewMinutes = h('input', { type: 'number', name: 'review', min: '0', step: '1', value: rec.review_seconds ?? '', disabled: !editable });
    const categories = h('input', { name: 'categories', value: (rec.categories || []).join(', '), disabled: !editable, autocomplete: 'off' });
    const custom = fields.map((f) => {
      const v = rec.custom ? rec.custom[f.name] : undefined;
      const input = f.kind === 'boolean'
        ? h('input', { type: 'checkbox', name: `custom-${f.name}`, checked: v === true, disabled: !editable })
        : h('input', { type: f.kind === 'number' ? 'number' : f.kind === 'date' ? 'date' : 'text', name: `custom-${f.name}`, value: v ?? '', disabled: !editable, step: 'any' });
      return { f, input };
    });
    const form = h('form', { class: 'review-form' },
      score,
      h('label', { class: 'check' }, complete, ' Complete transaction'),
      field('Review time (seconds)', reviewMinutes),
      field('Categories', categories, 'Separated by commas'),
      custom.length ? h('fieldset', {}, h('legend', {}, 'Custom fields'), custom.map(({ f, input }) => (f.kind === 'boolean'
        ? h('label', { class: 'check' }, input, ` ${f.name}`) : field(f.name, input)))) : null,
      editable ? h('button', { type: 'submit', class: 'primary' }, 'Save review') : null);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const chosen = form.querySelector('input[name=score]:checked');
      const body = {
        score: chosen && chosen.value ? Number(chosen.value) : null,
        complete: complete.checked,
        review_seconds: reviewMinutes.value === '' ? null : Number(reviewMinutes.value),
        categories: categories.value.split(',').map((c) => c.trim()).filter(Boolean),
        custom: Object.fromEntries(custom.map(({ f, input }) => [f.name,
          f.kind === 'boolean' ? input.checked : input.value === '' ? null : f.kind === 'number' ? Number(input.value) : input.value])),
      };
      try {
        await api('PATCH', path(id), body);
        toast('Review saved.');
        await reload();
      } catch (err) { toast(err.message, 'error'); }
    });
    panel.append(h('h3', {}, 'Review'), form);
  }

  drawHeader();
  drawActions();
  clear(main, header, banner, playerSlot, actions, tabbed.element);
  tabbed.start();

  if (!deleted && can('play') && rec.legs.length) {
    const [peaks, srcQuery] = await Promise.all([
      api('GET', path(id, '/peaks') + query({ buckets: 1200 })).catch(() => null),
      playReasonQuery(rec),
    ]);
    if (!ctx.isCurrent()) return null;
    if (srcQuery === null) {
      playerSlot.append(h('p', { class: 'muted' }, 'Not played: no reason given.'));
    } else {
      player = createPlayer({ rec, peaks, srcQuery, onAnnotateHere: can('annotate') ? annotateAt : null });
      playerSlot.append(player.element);
      player.draw();
      tabbed.redraw('dtmf');
    }
  } else if (!deleted && !rec.legs.length) {
    playerSlot.append(h('p', { class: 'muted' }, 'No audio was recorded.'));
  }
  if (rec.state === 'active') {
    refreshTimer = setInterval(() => reload(false).catch(() => {}), 3000);
  }
  return () => {
    clearInterval(refreshTimer);
    if (player) player.destroy();
  };
}

