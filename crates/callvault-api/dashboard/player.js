// The player: one <audio> per leg (the server's leg URLs answer Range requests, so seeking
// fetches only what is played), kept in step with the first; one waveform lane per leg drawn
// from the server's peaks; play/pause, seek by click and keyboard, speed, mute and solo per
// leg; annotation markers, DTMF digits and paused intervals on the timeline.

import { fmtDuration, fmtOffset, h } from './ui.js';

const SPEEDS = [0.5, 0.75, 1, 1.25, 1.5, 2];
const DRIFT_S = 0.08;

function legName(rec, leg) {
  const who = rec.participants.find((p) => p.id === leg.participant);
  const name = who ? who.name || who.aor || who.id : null;
  return name ? `${name} (leg ${leg.label})` : `Leg ${leg.label}`;
}

export function createPlayer({ rec, peaks, srcQuery = '', onAnnotateHere }) {
  const legs = rec.legs;
  const durationMs = Math.max(peaks ? peaks.duration_ms : 0, rec.duration_ms || 0, 1);
  const duration = durationMs / 1000;
  const audios = legs.map((leg) => h('audio', {
    preload: 'auto',
    src: `/api/v1/recordings/${encodeURIComponent(rec.id)}/legs/@${leg.position}/audio${srcQuery}`,
    dataset: { leg: leg.label, position: String(leg.position) },
  }));
  const master = audios[0];
  const muted = legs.map(() => false);
  const solo = new Set();
  let playing = false;

  const playButton = h('button', { type: 'button', class: 'primary play', 'aria-label': 'Play' }, '▶ Play');
  const clock = h('span', { class: 'clock', 'aria-live': 'off' }, `0:00.0 / ${fmtDuration(durationMs)}`);
  const speed = h('select', { id: 'player-speed' },
    SPEEDS.map((s) => h('option', { value: String(s), selected: s === 1 }, `${s}×`)));
  const annotate = onAnnotateHere
    ? h('button', { type: 'button', onclick: () => onAnnotateHere(Math.round(position() * 1000)) }, 'Annotate here…')
    : null;

  const track = h('div', {
    class: 'track', role: 'slider', tabindex: '0', 'aria-label': 'Playback position',
    'aria-valuemin': '0', 'aria-valuemax': String(Math.round(duration)), 'aria-valuenow': '0',
    'aria-valuetext': `0:00 of ${fmtDuration(durationMs)}`,
    'aria-describedby': 'track-keys',
  });
  const progress = h('div', { class: 'progress' });
  const playhead = h('div', { class: 'playhead' });
  const markers = h('div', { class: 'markers', 'aria-label': 'Notes and digits on the timeline', role: 'group' });
  const heads = h('div', { class: 'lane-heads' });
  const canvases = [];

  const muteButtons = [];
  const soloButtons = [];
  legs.forEach((leg, i) => {
    const name = legName(rec, leg);
    const mute = h('button', { type: 'button', class: 'toggle', 'aria-pressed': 'false', 'aria-label': `Mute ${name}` }, 'Mute');
    const soloB = h('button', { type: 'button', class: 'toggle', 'aria-pressed': 'false', 'aria-label': `Solo ${name}` }, 'Solo');
    mute.addEventListener('click', () => { muted[i] = !muted[i]; applyVolumes(); });
    soloB.addEventListener('click', () => { if (solo.has(i)) solo.delete(i); else solo.add(i); applyVolumes(); });
    muteButtons.push(mute);
    soloButtons.push(soloB);
    heads.append(h('div', { class: 'lane-head' }, h('span', { class: 'lane-name', title: name }, name), h('span', { class: 'lane-buttons' }, mute, soloB)));
    const canvas = h('canvas', { class: 'wave', 'aria-hidden': 'true', dataset: { leg: leg.label } });
    canvases.push(canvas);
    track.append(canvas);
  });
  track.append(progress, playhead);
  for (const p of rec.paused || []) {
    const to = p.to_ms ?? durationMs;
    const span = h('div', { class: 'paused-span', title: `Paused by ${p.by}` });
    span.style.left = `${(100 * p.from_ms) / durationMs}%`;
    span.style.width = `${(100 * Math.max(0, to - p.from_ms)) / durationMs}%`;
    track.append(span);
  }

  function applyVolumes() {
    audios.forEach((a, i) => {
      a.muted = muted[i] || (solo.size > 0 && !solo.has(i));
      muteButtons[i].setAttribute('aria-pressed', String(muted[i]));
      soloButtons[i].setAttribute('aria-pressed', String(solo.has(i)));
      canvases[i].classList.toggle('silenced', a.muted);
    });
  }

  function position() {
    return master ? master.currentTime : 0;
  }

  function seek(seconds) {
    const t = Math.min(Math.max(0, seconds), duration);
    for (const a of audios) a.currentTime = t;
    update();
  }

  async function play() {
    playing = true;
    update();
    try {
      await Promise.all(audios.map((a) => a.play()));
    } catch (err) {
      playing = false;
      for (const a of audios) a.pause();
      update();
      if (err.name !== 'AbortError') throw err;
    }
  }

  function pause() {
    playing = false;
    for (const a of audios) a.pause();
    update();
  }

  function toggle() {
    if (playing) pause();
    else play().catch(() => {});
  }

  function update() {
    const t = position();
    const fraction = Math.min(1, t / duration);
    playhead.style.left = `${fraction * 100}%`;
    progress.style.width = `${fraction * 100}%`;
    clock.textContent = `${fmtOffset(t * 1000)} / ${fmtDuration(durationMs)}`;
    track.setAttribute('aria-valuenow', String(Math.round(t)));
    track.setAttribute('aria-valuetext', `${fmtDuration(t * 1000)} of ${fmtDuration(durationMs)}`);
    playButton.textContent = playing ? '❚❚ Pause' : '▶ Play';
    playButton.setAttribute('aria-label', playing ? 'Pause' : 'Play');
  }

  // The other legs follow the first; a leg that drifts (buffering) is put back in step.
  const drift = setInterval(() => {
    if (!playing || !master) return;
    for (const a of audios.slice(1)) {
      if (Math.abs(a.currentTime - master.currentTime) > DRIFT_S) a.currentTime = master.currentTime;
    }
  }, 250);
  if (master) {
    master.addEventListener('timeupdate', update);
    master.addEventListener('seeked', update);
    master.addEventListener('ended', () => { playing = false; for (const a of audios) a.pause(); update(); });
  }
  let frame = 0;
  const tick = () => { if (playing) update(); frame = requestAnimationFrame(tick); };
  frame = requestAnimationFrame(tick);

  playButton.addEventListener('click', toggle);
  speed.addEventListener('change', () => { for (const a of audios) a.playbackRate = Number(speed.value); });
  track.addEventListener('click', (e) => {
    const box = track.getBoundingClientRect();
    seek(((e.clientX - box.left) / box.width) * duration);
    track.focus();
  });
  track.addEventListener('keydown', (e) => {
    const step = e.shiftKey ? 1 : 5;
    const moves = {
      ArrowRight: () => seek(position() + step), ArrowLeft: () => seek(position() - step),
      ArrowUp: () => seek(position() + step), ArrowDown: () => seek(position() - step),
      PageUp: () => seek(position() + 30), PageDown: () => seek(position() - 30),
      Home: () => seek(0), End: () => seek(duration), ' ': toggle, k: toggle, Enter: toggle,
    };
    if (moves[e.key]) {
      e.preventDefault();
      moves[e.key]();
    }
  });

  function draw() {
    canvases.forEach((canvas, i) => {
      const lane = peaks && peaks.legs[i] ? peaks.legs[i].peaks : [];
      const ratio = window.devicePixelRatio || 1;
      const width = Math.max(1, Math.floor(canvas.clientWidth * ratio));
      const height = Math.max(1, Math.floor(canvas.clientHeight * ratio));
      canvas.width = width;
      canvas.height = height;
      const g = canvas.getContext('2d');
      g.clearRect(0, 0, width, height);
      g.fillStyle = getComputedStyle(canvas).color;
      const mid = height / 2;
      g.fillRect(0, mid - 0.5 * ratio, width, Math.max(1, ratio));
      if (!lane.length) return;
      for (let x = 0; x < width; x++) {
        const from = Math.floor((x * lane.length) / width);
        const to = Math.max(from + 1, Math.floor(((x + 1) * lane.length) / width));
        let peak = 0;
        for (let b = from; b < to && b < lane.length; b++) peak = Math.max(peak, lane[b]);
        const half = (peak / 255) * (mid - ratio);
        if (half > 0) g.fillRect(x, mid - half, 1, 2 * half);
      }
    });
  }
  const resize = new ResizeObserver(() => draw());
  resize.observe(track);

  function setMarkers(annotations, dtmf) {
    markers.replaceChildren();
    for (const d of dtmf || []) {
      const m = h('span', { class: 'digit', title: `Digit ${d.digit} at ${fmtOffset(d.offset_ms)} (${d.source})` }, d.digit);
      m.style.left = `${(100 * d.offset_ms) / durationMs}%`;
      markers.append(m);
    }
    for (const a of annotations || []) {
      if (a.offset_ms === null || a.offset_ms === undefined) continue;
      const m = h('button', {
        type: 'button', class: 'note-marker',
        'aria-label': `Note at ${fmtOffset(a.offset_ms)} by ${a.by}: ${a.text}`, title: `${a.by}: ${a.text}`,
        onclick: () => seek(a.offset_ms / 1000),
      }, '✎');
      m.style.left = `${(100 * a.offset_ms) / durationMs}%`;
      markers.append(m);
    }
  }
  setMarkers(rec.annotations, rec.dtmf);

  const element = h('section', { class: 'player', 'aria-label': 'Player' },
    h('div', { class: 'controls' }, playButton, clock,
      h('label', { for: 'player-speed' }, 'Speed'), speed, annotate),
    h('div', { class: 'timeline' },
      h('div', { class: 'corner' }, 'Notes · digits'), markers,
      heads, track),
    h('p', { id: 'track-keys', class: 'hint' },
      'On the waveform: ← → seek 5 s (Shift: 1 s), Page Up/Down 30 s, Home/End, Space plays or pauses. Click to seek.'),
    h('div', { hidden: true }, audios));
  element.style.setProperty('--lanes', String(Math.max(1, legs.length)));

  return {
    element,
    seek,
    play,
    pause,
    setMarkers,
    draw,
    destroy() {
      clearInterval(drift);
      cancelAnimationFrame(frame);
      resize.disconnect();
      // Dropping the source stops any download still going on.
      for (const a of audios) { a.pause(); a.removeAttribute('src'); a.load(); }
    },
  };
}
