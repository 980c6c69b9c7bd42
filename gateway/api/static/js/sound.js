// Alarm sounds made with WebAudio (no audio files). Emergency alarms repeat until they are
// acknowledged; silencing stops the sound of the alarms present now, but is not
// acknowledging: they stay unacknowledged, and a new or re-raised alarm sounds again.

const TONES = { 1: [880, 3, 0.18], 2: [660, 2, 0.2], 3: [520, 1, 0.25] };
const REPEAT_MS = 4000;

let ctx = null;
const silenced = new Map(); // alarm_id -> last_raised_at when silenced
export const soundLog = []; // [{priority, at}] for tests and diagnostics

export function unlockAudio() {
  if (ctx) { if (ctx.state === 'suspended') ctx.resume(); return; }
  const AC = window.AudioContext || window.webkitAudioContext;
  if (AC) ctx = new AC();
}

function beep(priority) {
  soundLog.push({ priority, at: Date.now() });
  if (soundLog.length > 200) soundLog.shift();
  const tone = TONES[priority];
  if (!ctx || !tone) return;
  const [freq, count, len] = tone;
  const t0 = ctx.currentTime + 0.01;
  for (let i = 0; i < count; i += 1) {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = priority === 1 ? 'square' : 'sine';
    osc.frequency.value = freq;
    const start = t0 + i * (len + 0.08);
    gain.gain.setValueAtTime(0.0001, start);
    gain.gain.exponentialRampToValueAtTime(0.25, start + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + len);
    osc.connect(gain).connect(ctx.destination);
    osc.start(start);
    osc.stop(start + len + 0.02);
  }
}

function needsSound(a) {
  return a.state === 'active_unacknowledged' && silenced.get(a.alarm_id) !== a.last_raised_at;
}

// A new annunciation: sound once for its priority (emergency repeats via tick()).
export function announce(alarm) {
  if (needsSound(alarm) && alarm.priority <= 3) beep(alarm.priority);
}

export function silence(alarms) {
  for (const a of alarms) if (a.state === 'active_unacknowledged') silenced.set(a.alarm_id, a.last_raised_at);
}

// Is an emergency alarm sounding now? How many unacknowledged alarms were silenced?
export function ringing(alarms) {
  return alarms.some((a) => a.priority === 1 && needsSound(a));
}

export function silencedCount(alarms) {
  return alarms.filter((a) => a.state === 'active_unacknowledged'
    && silenced.get(a.alarm_id) === a.last_raised_at).length;
}

let lastRepeat = 0;
export function tick(alarms) {
  if (Date.now() - lastRepeat < REPEAT_MS) return;
  if (alarms.some((a) => a.priority === 1 && needsSound(a))) {
    lastRepeat = Date.now();
    beep(1);
  }
}
