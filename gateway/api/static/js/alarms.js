// The live alarm list: sorted by priority then time, filters, and the operator's actions.

import { post } from './api.js';
import { bilingual, label, t } from './i18n.js';
import { canOperate, deviceById, deviceName, dialog, state, toast } from './ui.js';
import { ago, esc, fmtTime, fmtValue, toMs } from './util.js';

const filters = { building: '', kind: '', priority: '', state: '' };
const SHELVE_MINUTES = [15, 30, 60, 120, 240, 480];
const ACKABLE = new Set(['active_unacknowledged', 'returned_unacknowledged']);
const SHELVABLE = new Set(['active_unacknowledged', 'active_acknowledged',
  'returned_unacknowledged', 'latched']);

export function sortedAlarms(list) {
  return [...list].sort((a, b) => a.priority - b.priority
    || toMs(b.last_raised_at) - toMs(a.last_raised_at));
}

function visible(a) {
  if (filters.state) { if (a.state !== filters.state) return false; }
  else if (a.state === 'shelved' || a.state === 'normal') return false;
  if (filters.priority && String(a.priority) !== filters.priority) return false;
  if (filters.building && a.building !== filters.building) return false;
  if (filters.kind && a.device_kind !== filters.kind) return false;
  return true;
}

function options(values, group, current) {
  return [`<option value="">${esc(t('all'))}</option>`,
    ...values.map((v) => `<option value="${esc(v)}" ${v === current ? 'selected' : ''}>${esc(group ? label(group, v) : v)}</option>`)].join('');
}

export function renderAlarmView(main) {
  const buildings = [...new Set(state.devices.map((d) => d.building))].sort();
  const kinds = [...new Set(state.devices.map((d) => d.kind))].sort();
  main.innerHTML = `<section class="view view-alarms" aria-labelledby="h-alarms">
    <div class="view-head"><h1 id="h-alarms">${esc(t('alarms'))}</h1>
      <form class="filters" id="alarm-filters" aria-label="${esc(t('filters'))}">
        <label>${esc(t('building'))}<select name="building">${options(buildings, null, filters.building)}</select></label>
        <label>${esc(t('kind'))}<select name="kind">${options(kinds, 'kind', filters.kind)}</select></label>
        <label>${esc(t('priority'))}<select name="priority">${options(['1', '2', '3', '4'], 'priority', filters.priority)}</select></label>
        <label>${esc(t('state'))}<select name="state">${options(['active_unacknowledged', 'active_acknowledged', 'returned_unacknowledged', 'latched', 'shelved', 'suppressed', 'out_of_service'], 'state', filters.state)}</select></label>
      </form></div>
    <table class="alarms" id="alarm-table">
      <thead><tr><th>${esc(t('priority'))}</th><th>${esc(t('time'))}</th><th>${esc(t('state'))}</th>
        <th>${esc(t('building'))}</th><th>${esc(t('device'))}</th><th>${esc(t('message'))}</th>
        <th>${esc(t('count'))}</th><th>${esc(t('actions'))}</th></tr></thead>
      <tbody id="alarm-rows"></tbody></table>
    <p class="muted" id="alarm-footer"></p></section>`;
  main.querySelector('#alarm-filters').addEventListener('change', (ev) => {
    filters[ev.target.name] = ev.target.value;
    renderAlarmRows();
  });
  main.querySelector('#alarm-rows').addEventListener('click', onAction);
  renderAlarmRows();
}

export function alarmRow(a, { withDevice = true } = {}) {
  const compact = !withDevice; // on a device's page: no building, device or count columns
  const dev = deviceById(a.device_id);
  const acts = [];
  const op = canOperate();
  if (op && (ACKABLE.has(a.state) || (a.state === 'latched' && !a.acked_at))) acts.push(['ack', t('ack'), 'primary']);
  if (op && a.state === 'latched' && !a.condition_active) acts.push(['reset', t('reset'), '']);
  if (op && SHELVABLE.has(a.state)) acts.push(['shelve', t('shelve'), '']);
  if (op && a.state === 'shelved') acts.push(['unshelve', t('unshelve'), '']);
  if (op && state.features.comment) acts.push(['comment', t('comment'), '']);
  if (withDevice) acts.push(['device', t('open'), 'link']);
  const shelvedNote = a.state === 'shelved' && a.shelved_until
    ? `<div class="sub">${esc(t('shelve'))} → ${esc(fmtTime(a.shelved_until, { seconds: false }))} · ${esc(a.shelve_reason || '')}</div>` : '';
  const value = a.value !== null && a.value !== undefined ? `<span class="sub"> (${esc(fmtValue(a.value))})</span>` : '';
  return `<tr class="alarm p${a.priority} s-${a.state}" data-alarm-id="${esc(a.alarm_id)}" data-state="${esc(a.state)}">
    <td data-th="${esc(t('priority'))}"><span class="prio p${a.priority}">${esc(label('priority', a.priority))}</span></td>
    <td data-th="${esc(t('time'))}" title="${esc(ago(a.last_raised_at))}">${esc(fmtTime(a.last_raised_at))}</td>
    <td data-th="${esc(t('state'))}" class="state">${esc(label('state', a.state))}</td>
    ${compact ? '' : `<td data-th="${esc(t('building'))}">${esc(a.building || (dev && dev.building) || '')}</td>
    <td data-th="${esc(t('device'))}">${esc(deviceName(a.device_id))}<div class="sub">${esc(label('kind', a.device_kind))}</div></td>`}
    <td data-th="${esc(t('message'))}" class="msg">${esc(bilingual(a.message))}${value}${shelvedNote}</td>
    ${compact ? '' : `<td data-th="${esc(t('count'))}">${a.count}</td>`}
    <td class="actions">${acts.map(([act, text, cls]) => `<button type="button" class="${cls}" data-action="${act}">${esc(text)}</button>`).join('')}</td></tr>`;
}

export function renderAlarmRows() {
  const body = document.getElementById('alarm-rows');
  if (!body) return;
  const all = [...state.alarms.values()];
  const rows = sortedAlarms(all.filter(visible));
  body.innerHTML = rows.length ? rows.map((a) => alarmRow(a)).join('')
    : `<tr class="empty"><td colspan="8">${esc(t('noAlarms'))}</td></tr>`;
  const shelved = all.filter((a) => a.state === 'shelved').length;
  document.getElementById('alarm-footer').textContent = shelved && !filters.state ? t('shelvedHidden', { n: shelved }) : '';
}

export async function onAction(ev) {
  const btn = ev.target.closest('button[data-action]');
  if (!btn) return;
  const row = btn.closest('[data-alarm-id]');
  const id = row.dataset.alarmId;
  const alarm = state.alarms.get(id) || { alarm_id: id, device_id: id.split(':').slice(1).join(':') };
  const path = `/api/v1/alarms/${encodeURIComponent(id)}`;
  try {
    btn.disabled = true;
    switch (btn.dataset.action) {
      case 'ack': update(await post(`${path}/ack`, {})); break;
      case 'reset': update(await post(`${path}/reset`, {})); break;
      case 'unshelve': update(await post(`${path}/unshelve`)); break;
      case 'shelve': {
        const v = await dialog({
          title: `${t('shelveTitle')}: ${bilingual(alarm.message || id)}`,
          fields: [
            { name: 'reason', label: t('reason'), required: true },
            { name: 'minutes', label: t('minutes'), type: 'select', value: 60,
              options: SHELVE_MINUTES.map((m) => [m, m < 60 ? t('minutesN', { n: m }) : t('hoursN', { n: m / 60 })]) },
          ],
          submit: t('shelve'),
        });
        if (v) update(await post(`${path}/shelve`, { reason: v.reason, minutes: Number(v.minutes) }));
        break;
      }
      case 'comment': {
        const v = await dialog({ title: t('commentTitle'), fields: [{ name: 'note', label: t('comment'), type: 'textarea', required: true }], submit: t('save') });
        if (v) {
          const url = state.features.comment.replace(/\{[^}]+\}/, encodeURIComponent(id));
          const out = await post(url, { note: v.note }); // the same body as ack/reset notes
          if (out && out.alarm_id) update(out);
          toast(t('save'));
        }
        break;
      }
      case 'device': location.hash = `#/device/${encodeURIComponent(alarm.device_id)}`; break;
      default: break;
    }
  } catch (err) {
    toast(err.message, 'error');
  } finally {
    btn.disabled = false;
  }
}

// An action's answer is the alarm's new state: show it at once (the stream confirms it).
function update(alarm) {
  if (!alarm || !alarm.alarm_id) return;
  const prev = state.alarms.get(alarm.alarm_id) || {};
  const merged = { ...prev, ...alarm };
  if (merged.state === 'normal') state.alarms.delete(merged.alarm_id);
  else state.alarms.set(merged.alarm_id, merged);
  document.dispatchEvent(new CustomEvent('alarms-changed'));
}
