// The device board (every device by building and kind) and one device's page.

import { get, post } from './api.js';
import { alarmRow, onAction, sortedAlarms } from './alarms.js';
import { lineChart } from './chart.js';
import { label, labelFrom, t } from './i18n.js';
import { canOperate, dialog, state, toast } from './ui.js';
import { ordersTable } from './orders.js';
import { ago, esc, fmtTime, fmtValue } from './util.js';

const boardFilter = { kind: '', status: '' };
const STATUS_ORDER = { alarm: 0, offline: 1, maintenance: 2, unknown: 3, online: 4 };
// Commands the console offers per device kind (sent to POST /api/v1/devices/{id}/commands).
const COMMANDS = {
  parking_barrier: [['open', 'cmdOpen'], ['close', 'cmdClose']],
  access_gate: [['open', 'cmdRelease']],
};

export function renderBoard(main) {
  const kinds = [...new Set(state.devices.map((d) => d.kind))].sort();
  const sel = (name, values, group) => `<label>${esc(t(name === 'kind' ? 'kind' : 'status'))}<select name="${name}">`
    + `<option value="">${esc(t('all'))}</option>${values.map((v) => `<option value="${v}" ${boardFilter[name] === v ? 'selected' : ''}>${esc(label(group, v))}</option>`).join('')}</select></label>`;
  main.innerHTML = `<section class="view view-board" aria-labelledby="h-board">
    <div class="view-head"><h1 id="h-board">${esc(t('devices'))}</h1>
    <form class="filters" id="board-filters">${sel('kind', kinds, 'kind')}${sel('status', Object.keys(STATUS_ORDER), 'status')}</form></div>
    <div id="board"></div></section>`;
  main.querySelector('#board-filters').addEventListener('change', (ev) => {
    boardFilter[ev.target.name] = ev.target.value;
    renderBoardCards();
  });
  renderBoardCards();
}

export function renderBoardCards() {
  const box = document.getElementById('board');
  if (!box) return;
  const list = state.devices.filter((d) => (!boardFilter.kind || d.kind === boardFilter.kind)
    && (!boardFilter.status || d.status === boardFilter.status));
  const buildings = [...new Set(list.map((d) => d.building))].sort();
  box.innerHTML = buildings.length ? buildings.map((b) => {
    const devs = list.filter((d) => d.building === b)
      .sort((x, y) => x.kind.localeCompare(y.kind) || (x.name || x.id).localeCompare(y.name || y.id));
    return `<section class="building"><h2>${esc(t('building'))} ${esc(b)}</h2><div class="cards">${devs.map(card).join('')}</div></section>`;
  }).join('') : `<p class="muted">${esc(t('emptyBoard'))}</p>`;
}

function card(d) {
  return `<a class="card st-${d.status}" href="#/device/${encodeURIComponent(d.id)}" data-device-id="${esc(d.id)}">
    <div class="card-top"><span class="dev-name">${esc(d.name || d.id)}</span><span class="pill st-${d.status}">${esc(label('status', d.status))}</span></div>
    <div class="sub">${esc(label('kind', d.kind))} · ${esc(d.id)}</div>
    <div class="sub">${esc(t('lastSeen'))}: ${d.last_seen ? `${esc(fmtTime(d.last_seen))} (${esc(ago(d.last_seen))})` : esc(t('never'))}</div>
    ${d.active_alarms ? `<div class="badge-alarm">${esc(t('alarms'))}: ${d.active_alarms}</div>` : ''}</a>`;
}

let chartState = { metric: null, hours: 1 };

export async function renderDevice(main, id) {
  const d = await get(`/api/v1/devices/${encodeURIComponent(id)}`);
  const metrics = (state.vocab && state.vocab.metrics[d.kind]) || {};
  const numeric = Object.keys(d.latest).filter((m) => !metrics[m] || metrics[m].kind !== 'str');
  if (!numeric.includes(chartState.metric)) chartState = { metric: numeric[0] || null, hours: chartState.hours };
  const cmds = state.features.commands && canOperate() ? (COMMANDS[d.kind] || []) : [];
  const loc = [d.floor && `${t('floor')} ${d.floor}`, d.zone && `${t('zone')} ${d.zone}`].filter(Boolean).join(' · ');
  main.innerHTML = `<section class="view view-device" data-device-id="${esc(d.id)}">
    <div class="view-head"><h1>${esc(d.name || d.id)} <span class="pill st-${d.status}">${esc(label('status', d.status))}</span></h1>
      <a href="#/devices" class="link">← ${esc(t('back'))}</a></div>
    <p class="sub">${esc(label('kind', d.kind))} · ${esc(d.id)} · ${esc(t('building'))} ${esc(d.building)}${loc ? ` · ${esc(loc)}` : ''} · ${esc(t('lastSeen'))}: ${d.last_seen ? esc(fmtTime(d.last_seen)) : esc(t('never'))}</p>
    <div class="device-grid">
      <section class="panel"><h2>${esc(t('latest'))}</h2>
        <table class="kv" id="latest">${latestRows(d)}</table></section>
      <section class="panel panel-chart"><h2>${esc(t('history'))}</h2>
        <form class="filters" id="chart-form">
          <label>${esc(t('metric'))}<select name="metric">${numeric.map((m) => `<option value="${esc(m)}" ${m === chartState.metric ? 'selected' : ''}>${esc(labelFrom(metrics[m], m))}</option>`).join('')}</select></label>
          <label>${esc(t('range'))}<select name="hours">${[1, 6, 24].map((h) => `<option value="${h}" ${h === chartState.hours ? 'selected' : ''}>${esc(t(`hours${h}`))}</option>`).join('')}</select></label>
        </form><div id="chart"></div></section>
      <section class="panel panel-wide"><h2>${esc(t('deviceAlarms'))}</h2>
        <table class="alarms compact"><tbody id="device-alarms"></tbody></table></section>
      ${state.features.workOrders ? `<section class="panel panel-wide"><h2>${esc(t('workOrders'))}</h2><div id="device-orders"></div></section>` : ''}
      ${cmds.length ? `<section class="panel"><h2>${esc(t('commands'))}</h2><div class="commands">${cmds.map(([a, k]) => `<button type="button" class="danger" data-command="${a}" data-label="${esc(t(k))}">${esc(t(k))}</button>`).join('')}</div></section>` : ''}
    </div></section>`;
  main.querySelector('#chart-form').addEventListener('change', (ev) => {
    chartState[ev.target.name] = ev.target.name === 'hours' ? Number(ev.target.value) : ev.target.value;
    drawChart(d);
  });
  main.querySelector('#device-alarms').addEventListener('click', onAction);
  for (const btn of main.querySelectorAll('[data-command]')) {
    btn.addEventListener('click', () => sendCommand(d, btn.dataset.command, btn.dataset.label));
  }
  renderDeviceAlarms(d.id);
  await Promise.all([drawChart(d), deviceOrders(d.id)]);
}

function latestRows(d) {
  const metrics = (state.vocab && state.vocab.metrics[d.kind]) || {};
  return Object.entries(d.latest).sort().map(([m, v]) => {
    const spec = metrics[m];
    const unit = spec && spec.unit !== 'pH' ? spec.unit : ''; // "pH 7.2", not "7.2 pH"
    const shown = spec && spec.kind === 'str' ? v.value : fmtValue(v.value, unit);
    return `<tr data-metric="${esc(m)}"><th>${esc(labelFrom(spec, m))}</th><td>${esc(shown)}</td><td class="sub">${esc(fmtTime(v.at))}</td></tr>`;
  }).join('') || `<tr><td>${esc(t('noData'))}</td></tr>`;
}

// Called with the board's periodic refresh: the latest values of the device shown.
export function refreshDevicePage(id) {
  const table = document.getElementById('latest');
  const d = state.devices.find((x) => x.id === id);
  if (table && d) table.innerHTML = latestRows(d);
}

export function renderDeviceAlarms(id) {
  const body = document.getElementById('device-alarms');
  if (!body) return;
  const list = sortedAlarms([...state.alarms.values()].filter((a) => a.device_id === id));
  body.innerHTML = list.length ? list.map((a) => alarmRow(a, { withDevice: false })).join('')
    : `<tr class="empty"><td>${esc(t('noAlarms'))}</td></tr>`;
}

async function drawChart(d) {
  const box = document.getElementById('chart');
  if (!box) return;
  if (!chartState.metric) { box.innerHTML = lineChart([], { emptyText: t('noData') }); return; }
  const to = Date.now() / 1000;
  const from = to - chartState.hours * 3600;
  const q = new URLSearchParams({ metric: chartState.metric, from: String(from), to: String(to) });
  const hist = await get(`/api/v1/devices/${encodeURIComponent(d.id)}/history?${q}`);
  const spec = state.vocab && state.vocab.metrics[d.kind] && state.vocab.metrics[d.kind][chartState.metric];
  box.innerHTML = lineChart(hist.points, { unit: spec ? spec.unit : '', from, to, emptyText: t('noData') });
}

async function deviceOrders(id) {
  const box = document.getElementById('device-orders');
  if (!box || !state.features.workOrders) return;
  try {
    const list = await get(`${state.features.workOrders}?device_id=${encodeURIComponent(id)}`);
    const orders = (Array.isArray(list) ? list : list.items || list.work_orders || []).filter((o) => o.device_id === id);
    box.innerHTML = ordersTable(orders);
  } catch (err) {
    box.textContent = err.message;
  }
}

async function sendCommand(d, action, text) {
  const v = await dialog({
    title: t('commands'), danger: true, submit: text,
    body: `<p>${esc(t('cmdConfirm', { action: text, device: d.name || d.id }))}</p>`,
  });
  if (!v) return;
  try {
    const url = state.features.commands.replace(/\{[^}]+\}/, encodeURIComponent(d.id));
    await post(url, { action, args: {} });
    toast(t('cmdDone'));
  } catch (err) {
    toast(err.message, 'error');
  }
}
