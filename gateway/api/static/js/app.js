// The operator console: login, header (shift timer, clock, language, sound), routing between
// the alarm list, device board, device page, work orders and shift handover, and the live
// stream that keeps them current without reloading.

import { features, get, LiveStream, post, session, setUnauthorizedHandler } from './api.js';
import { renderAlarmRows, renderAlarmView } from './alarms.js';
import {
  refreshDevicePage, renderBoard, renderBoardCards, renderDevice, renderDeviceAlarms,
} from './devices.js';
import { getLang, label, setLang, t } from './i18n.js';
import { renderOrders, tickCountdowns } from './orders.js';
import { loadShift, renderShift, shiftOverdue, shiftSeconds } from './shift.js';
import * as sound from './sound.js';
import { canOperate, state, toast } from './ui.js';
import { esc, fmtDuration, fmtTime, setZone } from './util.js';

const main = () => document.getElementById('main');
let stream = null;
let deviceTimer = null;

// -- login ------------------------------------------------------------------------------

function showLogin(message = '') {
  document.body.classList.add('logged-out');
  document.getElementById('app').hidden = true;
  const box = document.getElementById('login');
  box.hidden = false;
  box.innerHTML = `<form id="login-form" class="login-card">
      <h1>${esc(t('title'))}</h1>
      <label for="login-user">${esc(t('username'))}</label><input id="login-user" name="username" autocomplete="username" required>
      <label for="login-pass">${esc(t('password'))}</label><input id="login-pass" name="password" type="password" autocomplete="current-password" required>
      <p class="error" id="login-error" role="alert">${esc(message)}</p>
      <div class="row"><button type="submit" class="primary">${esc(t('login'))}</button>
      <button type="button" class="link" data-lang-toggle>${esc(t('lang'))}</button></div></form>`;
  box.querySelector('[data-lang-toggle]').addEventListener('click', () => { switchLang(); showLogin(); });
  box.querySelector('form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    sound.unlockAudio();
    const f = ev.target.elements;
    try {
      const res = await post('/api/v1/login', { username: f.username.value, password: f.password.value });
      session.set({ token: res.token, user: res.user, role: res.role });
      await start();
    } catch (err) {
      document.getElementById('login-error').textContent = `${t('loginFailed')}: ${err.message}`;
    }
  });
}

function logout() {
  if (stream) stream.stop();
  clearInterval(deviceTimer);
  session.clear();
  state.alarms.clear();
  showLogin();
}

// -- header -----------------------------------------------------------------------------

function renderHeader() {
  const head = document.getElementById('header');
  const nav = [['alarms', t('alarms')], ['devices', t('devices')]];
  if (state.features.workOrders) nav.push(['orders', t('workOrders')]);
  nav.push(['shift', t('shift')]);
  const route = currentRoute()[0];
  head.innerHTML = `<div class="brand"><span class="site">${esc(state.config.site_name)}</span><span class="sub">${esc(t('title'))}</span></div>
    <nav aria-label="main">${nav.map(([r, text]) => `<a href="#/${r}" data-route="${r}" class="${route === r || (r === 'devices' && route === 'device') ? 'active' : ''}">${esc(text)}${r === 'alarms' ? ' <span class="count" id="alarm-count"></span>' : ''}</a>`).join('')}</nav>
    <div class="status">
      <span class="live" id="live-dot" title=""></span>
      <span class="shift-timer" id="shift-timer"></span>
      <span class="clock" id="clock"></span>
      <button type="button" id="silence" title="${esc(t('silenceHint'))}">${esc(t('silence'))}</button>
      <button type="button" id="lang-switch" lang="${getLang() === 'zh' ? 'en' : 'zh-CN'}">${esc(t('lang'))}</button>
      <span class="user">${esc(state.user.user)} · ${esc(label('role', state.user.role))}</span>
      <button type="button" id="logout" class="link">${esc(t('logout'))}</button>
    </div>`;
  head.querySelector('#lang-switch').addEventListener('click', () => { switchLang(); renderAll(); });
  head.querySelector('#logout').addEventListener('click', logout);
  head.querySelector('#silence').addEventListener('click', () => {
    sound.unlockAudio();
    sound.silence([...state.alarms.values()]);
    updateIndicators();
  });
  updateIndicators();
}

function updateIndicators() {
  const open = [...state.alarms.values()].filter((a) => a.state !== 'shelved');
  const unacked = open.filter((a) => a.state === 'active_unacknowledged' || a.state === 'returned_unacknowledged');
  const count = document.getElementById('alarm-count');
  if (count) {
    count.textContent = open.length ? String(open.length) : '';
    count.classList.toggle('hot', unacked.some((a) => a.priority === 1));
  }
  const dot = document.getElementById('live-dot');
  if (dot) {
    dot.classList.toggle('on', state.live);
    dot.textContent = state.live ? t('live') : t('offline');
  }
  const silenceBtn = document.getElementById('silence');
  if (silenceBtn) {
    const n = sound.silencedCount(open);
    silenceBtn.classList.toggle('ringing', sound.ringing(open));
    silenceBtn.textContent = n ? `${t('silenced')} (${n})` : t('silence');
  }
  const banner = document.getElementById('flood');
  const f = state.flood;
  banner.hidden = !(f && f.active);
  if (f && f.active) {
    banner.textContent = t('flood', { count: f.count, window: Math.round(f.window_s / 60), threshold: f.threshold });
  }
  const conn = document.getElementById('conn-banner');
  conn.hidden = state.live;
  conn.textContent = t('reconnecting');
}

function tickHeader() {
  const clock = document.getElementById('clock');
  if (clock) clock.textContent = fmtTime(Date.now(), { date: true });
  const timer = document.getElementById('shift-timer');
  if (timer && state.shift) {
    const s = shiftSeconds();
    const cur = state.shift.current;
    timer.textContent = cur ? `${t('onDuty')} ${cur.operator} ${fmtDuration(s)}` : t('noShift');
    const over = shiftOverdue();
    timer.classList.toggle('overdue', over);
    timer.title = over ? t('shiftOver', { h: state.shift.shift_max_hours }) : '';
    const warn = document.getElementById('shift-banner');
    warn.hidden = !(over && cur && cur.operator === state.user.user);
    warn.textContent = t('shiftOver', { h: state.shift.shift_max_hours });
    const duty = document.getElementById('duty-banner');
    const offDuty = canOperate() && (!cur || cur.operator !== state.user.user);
    duty.hidden = !offDuty || currentRoute()[0] === 'shift';
    duty.textContent = state.shift.pending ? t('dutyAccept', { from: state.shift.pending.from_operator })
      : cur ? t('dutyOther', { who: cur.operator }) : t('dutyNone');
  }
  for (const el of document.querySelectorAll('.shift-clock')) el.textContent = fmtDuration(shiftSeconds() ?? 0);
  tickCountdowns();
  sound.tick([...state.alarms.values()]);
}

function switchLang() {
  setLang(getLang() === 'zh' ? 'en' : 'zh');
}

// -- routing ----------------------------------------------------------------------------

function currentRoute() {
  const parts = (location.hash || '#/alarms').slice(2).split('/');
  return [parts[0] || 'alarms', decodeURIComponent(parts.slice(1).join('/'))];
}

async function renderRoute() {
  const [route, arg] = currentRoute();
  const el = main();
  document.title = `${t('title')} · ${state.config.site_name}`;
  for (const a of document.querySelectorAll('nav a')) {
    a.classList.toggle('active', a.dataset.route === route || (a.dataset.route === 'devices' && route === 'device'));
  }
  try {
    if (route === 'devices') renderBoard(el);
    else if (route === 'device') await renderDevice(el, arg);
    else if (route === 'orders' && state.features.workOrders) await renderOrders(el);
    else if (route === 'shift') await renderShift(el);
    else renderAlarmView(el);
  } catch (err) {
    el.innerHTML = `<p class="error">${esc(err.message)}</p>`;
  }
}

function renderAll() {
  renderHeader();
  renderRoute();
  tickHeader();
}

// -- live data --------------------------------------------------------------------------

function onAlarmsChanged() {
  renderAlarmRows();
  const [route, arg] = currentRoute();
  if (route === 'device') renderDeviceAlarms(arg);
  updateIndicators();
}

function applyAlarm(a) {
  const prev = state.alarms.get(a.alarm_id);
  if (a.state === 'normal') state.alarms.delete(a.alarm_id);
  else state.alarms.set(a.alarm_id, a);
  if (a.state === 'active_unacknowledged' && (!prev || prev.last_raised_at !== a.last_raised_at || prev.state !== a.state)) {
    sound.announce(a);
  }
}

async function refreshDevices() {
  try {
    state.devices = await get('/api/v1/devices');
    renderBoardCards();
    const [route, arg] = currentRoute();
    if (route === 'device') refreshDevicePage(arg);
  } catch { /* shown by the live indicator */ }
}

function startStream() {
  stream = new LiveStream({
    snapshot(data) {
      const before = new Set(state.alarms.keys());
      state.alarms.clear();
      for (const a of data.alarms) state.alarms.set(a.alarm_id, a);
      // one sound for what is new (its highest priority), not one per alarm at once
      const fresh = data.alarms.filter((a) => !before.has(a.alarm_id)
        && a.state === 'active_unacknowledged').sort((a, b) => a.priority - b.priority);
      if (fresh.length) sound.announce(fresh[0]);
      state.flood = data.flood;
      window.__console.snapshots += 1;
      onAlarmsChanged();
    },
    alarm(a) {
      applyAlarm(a);
      window.__console.lastAlarmAt = Date.now();
      onAlarmsChanged();
    },
    flood(f) { state.flood = f; updateIndicators(); },
    shift() {
      loadShift().then(() => {
        tickHeader();
        if (currentRoute()[0] === 'shift') renderShift(main());
      }).catch(() => {});
    },
    journal(j) {
      if (/work.?order/.test(j.type) && currentRoute()[0] === 'orders') renderOrders(main());
    },
  }, (live) => { state.live = live; updateIndicators(); });
  stream.start();
}

async function start() {
  const s = session.get();
  if (!s) { showLogin(); return; }
  state.user = s;
  try {
    [state.config, state.vocab, state.features, state.devices] = await Promise.all([
      get('/api/v1/console/config'), get('/api/v1/vocabulary'), features(), get('/api/v1/devices')]);
    await loadShift();
  } catch (err) {
    if (err.status === 401) return; // handled: back to login
    showLogin(err.message);
    return;
  }
  setZone(state.config.timezone);
  document.getElementById('login').hidden = true;
  document.getElementById('app').hidden = false;
  document.body.classList.remove('logged-out');
  renderAll();
  startStream();
  clearInterval(deviceTimer);
  deviceTimer = setInterval(refreshDevices, 5000);
}

window.__console = { state, soundLog: sound.soundLog, snapshots: 0, lastAlarmAt: 0 };
setUnauthorizedHandler(() => { if (stream) stream.stop(); session.clear(); showLogin(); });
document.addEventListener('alarms-changed', onAlarmsChanged);
document.addEventListener('shift-changed', () => { tickHeader(); renderShift(main()); });
document.addEventListener('click', () => sound.unlockAudio(), { once: true });
window.addEventListener('hashchange', () => { if (state.config) renderRoute(); });
setInterval(() => { if (state.config) tickHeader(); }, 1000);
start().catch((err) => toast(err.message, 'error'));
