// Shift on duty, its timer, and the handover: the outgoing operator confirms the open alarms
// and work orders, the incoming operator accepts them.

import { get, post } from './api.js';
import { bilingual, label, t } from './i18n.js';
import { isOpen, loadOrders } from './orders.js';
import { canOperate, deviceName, state, toast } from './ui.js';
import { esc, fmtDuration, fmtTime, toMs } from './util.js';

export async function loadShift() {
  state.shift = await get('/api/v1/shifts/current');
  return state.shift;
}

export function shiftSeconds() {
  const cur = state.shift && state.shift.current;
  return cur ? (Date.now() - toMs(cur.started_at)) / 1000 : null;
}

export function shiftOverdue() {
  const s = shiftSeconds();
  return s !== null && s >= state.shift.shift_max_hours * 3600;
}

function alarmItem(id) {
  const a = state.alarms.get(id);
  if (!a) return esc(id);
  return `<span class="prio p${a.priority}">${esc(label('priority', a.priority))}</span> ${esc(bilingual(a.message))} · ${esc(deviceName(a.device_id))} · ${esc(label('state', a.state))}`;
}

function orderItem(o) {
  return `${esc(bilingual(o.title || o.id))} · ${esc(label('wo', o.status))}${o.due_at ? ` · ${esc(t('woDue'))} ${esc(fmtTime(o.due_at, { seconds: false }))}` : ''}`;
}

function checklist(name, items) {
  if (!items.length) return `<p class="muted">${esc(t('none'))}</p>`;
  return `<ul class="checklist">${items.map(([id, html]) => `<li><label class="check"><input type="checkbox" name="${name}" value="${esc(id)}" required> ${html}</label></li>`).join('')}</ul>`;
}

export async function renderShift(main) {
  await loadShift();
  let orders = [];
  if (state.features.workOrders) {
    try { orders = (await loadOrders()).filter(isOpen); } catch { orders = []; }
  }
  const { current, pending } = state.shift;
  const me = state.user.user;
  let body = '';
  if (!current) {
    body = `<p class="big">${esc(t('noShift'))}</p>${canOperate() ? `<button type="button" class="primary" data-shift="start">${esc(t('startShift'))}</button>` : ''}`;
  } else {
    body = `<dl class="shift-now"><dt>${esc(t('operator'))}</dt><dd id="shift-operator">${esc(current.operator)}</dd>
      <dt>${esc(t('startedAt'))}</dt><dd>${esc(fmtTime(current.started_at))}</dd>
      <dt>${esc(t('shiftFor'))}</dt><dd><span class="shift-clock">${esc(fmtDuration(shiftSeconds()))}</span></dd></dl>
      ${current.took_over_from ? `<p class="sub">${esc(t('takeover'))}: ${esc(current.took_over_from)} — ${esc(current.takeover_reason)}</p>` : ''}`;
    if (pending && pending.from_operator === me) {
      body += `<p class="notice">${esc(t('handoverPending', { from: pending.from_operator, at: fmtTime(pending.offered_at) }))}</p>
        <button type="button" data-shift="withdraw">${esc(t('withdraw'))}</button>`;
    } else if (pending && canOperate()) {
      body += `<form id="accept-form" class="panel"><h2>${esc(t('acceptTitle'))}</h2>
        <p class="notice">${esc(t('handoverPending', { from: pending.from_operator, at: fmtTime(pending.offered_at) }))}</p>
        ${pending.note ? `<blockquote>${esc(pending.note)}</blockquote>` : ''}
        <h3>${esc(t('openAlarms'))} (${pending.alarms.length})</h3>${checklist('alarm', pending.alarms.map((id) => [id, alarmItem(id)]))}
        <h3>${esc(t('openOrders'))} (${pending.orders.length})</h3>${checklist('order', pending.orders.map((id) => [id, esc(id)]))}
        <label>${esc(t('acceptNote'))}<textarea name="note" rows="2" maxlength="2000"></textarea></label>
        <button type="submit" class="primary">${esc(t('accept'))}</button></form>`;
    } else if (current.operator === me) {
      const open = state.shift.open_alarms;
      body += `<form id="handover-form" class="panel"><h2>${esc(t('handoverTitle'))}</h2><p class="sub">${esc(t('checkAll'))}</p>
        <h3>${esc(t('openAlarms'))} (${open.length})</h3>${checklist('alarm', open.map((id) => [id, alarmItem(id)]))}
        ${state.features.workOrders ? `<h3>${esc(t('openOrders'))} (${orders.length})</h3>${checklist('order', orders.map((o) => [o.id, orderItem(o)]))}` : ''}
        <label>${esc(t('handoverNote'))}<textarea name="note" rows="2" maxlength="2000"></textarea></label>
        <label class="check"><input type="checkbox" name="confirm" required> ${esc(t('handoverConfirm'))}</label>
        <button type="submit" class="primary">${esc(t('handover'))}</button></form>`;
    } else if (canOperate()) {
      body += `<form id="takeover-form" class="panel"><label>${esc(t('takeoverReason'))}<input name="reason" required maxlength="500"></label>
        <button type="submit">${esc(t('takeover'))}</button></form>`;
    }
  }
  const history = await get('/api/v1/shifts/history');
  main.innerHTML = `<section class="view view-shift"><div class="view-head"><h1>${esc(t('shift'))}</h1></div>
    ${canOperate() ? '' : `<p class="muted">${esc(t('viewerOnly'))}</p>`}${body}
    <section class="panel"><h2>${esc(t('handoverHistory'))}</h2>
    <table class="history"><thead><tr><th>${esc(t('at'))}</th><th>${esc(t('from'))}</th><th>${esc(t('to'))}</th><th>${esc(t('openAlarms'))}</th><th>${esc(t('openOrders'))}</th></tr></thead>
    <tbody>${history.map((h) => `<tr><td>${esc(fmtTime(h.accepted_at))}</td><td>${esc(h.from_operator)}</td><td>${esc(h.accepted_by)}</td><td>${h.alarms.length}</td><td>${h.orders.length}</td></tr>`).join('')
    || `<tr><td colspan="5" class="muted">${esc(t('none'))}</td></tr>`}</tbody></table></section></section>`;
  wire(main, orders);
}

function wire(main, orders) {
  const act = async (fn) => {
    try { state.shift = await fn(); document.dispatchEvent(new CustomEvent('shift-changed')); } catch (err) { toast(err.message, 'error'); }
  };
  const start = main.querySelector('[data-shift="start"]');
  if (start) start.addEventListener('click', () => act(() => post('/api/v1/shifts/start', {})));
  const withdraw = main.querySelector('[data-shift="withdraw"]');
  if (withdraw) {
    withdraw.addEventListener('click', () => act(() => post(`/api/v1/shifts/handover/${state.shift.pending.id}/withdraw`)));
  }
  const hand = main.querySelector('#handover-form');
  if (hand) {
    hand.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const alarmIds = [...hand.querySelectorAll('input[name="alarm"]')].map((i) => i.value);
      const orderIds = orders.map((o) => o.id);
      act(() => post('/api/v1/shifts/handover', { alarm_ids: alarmIds, order_ids: orderIds, note: hand.elements.note.value }));
    });
  }
  const accept = main.querySelector('#accept-form');
  if (accept) {
    accept.addEventListener('submit', (ev) => {
      ev.preventDefault();
      act(() => post(`/api/v1/shifts/handover/${state.shift.pending.id}/accept`, { note: accept.elements.note.value }));
    });
  }
  const take = main.querySelector('#takeover-form');
  if (take) {
    take.addEventListener('submit', (ev) => {
      ev.preventDefault();
      act(() => post('/api/v1/shifts/start', { takeover_reason: take.elements.reason.value }));
    });
  }
}
