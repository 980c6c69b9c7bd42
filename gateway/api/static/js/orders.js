// Work orders with their SLA countdown (shown only when the gateway has the endpoint).

import { get } from './api.js';
import { bilingual, label, t } from './i18n.js';
import { deviceName, state, toast } from './ui.js';
import { esc, fmtDuration, fmtTime, toMs } from './util.js';

const CLOSED = new Set(['done', 'followed_up', 'closed', 'cancelled']);

export function isOpen(o) { return !CLOSED.has(o.status); }

export async function loadOrders() {
  if (!state.features.workOrders) return [];
  const list = await get(state.features.workOrders);
  state.orders = Array.isArray(list) ? list : list.items || list.work_orders || [];
  return state.orders;
}

function remaining(o) {
  const due = toMs(o.due_at);
  if (due === null) return '';
  const left = (due - Date.now()) / 1000;
  return `<span class="countdown ${left < 0 ? 'breached' : left < 900 ? 'soon' : ''}" data-due="${due}">${esc(left < 0 ? `${t('woBreached')} ${fmtDuration(-left)}` : fmtDuration(left))}</span>`;
}

export function ordersTable(orders) {
  if (!orders.length) return `<p class="muted">${esc(t('woNone'))}</p>`;
  const sorted = [...orders].sort((a, b) => (toMs(a.due_at) ?? Infinity) - (toMs(b.due_at) ?? Infinity));
  return `<table class="orders"><thead><tr><th>${esc(t('woTitle'))}</th><th>${esc(t('device'))}</th>
    <th>${esc(t('priority'))}</th><th>${esc(t('woStatus'))}</th><th>${esc(t('woDue'))}</th><th>${esc(t('woRemaining'))}</th></tr></thead><tbody>
    ${sorted.map((o) => `<tr data-order-id="${esc(o.id)}" class="${isOpen(o) && toMs(o.due_at) !== null && toMs(o.due_at) < Date.now() ? 'breach' : ''}">
      <td data-th="${esc(t('woTitle'))}">${esc(bilingual(o.title || o.category || o.id))}<div class="sub">${esc(o.id)}</div></td>
      <td data-th="${esc(t('device'))}">${o.device_id ? `<a href="#/device/${encodeURIComponent(o.device_id)}">${esc(deviceName(o.device_id))}</a>` : ''}</td>
      <td data-th="${esc(t('priority'))}">${o.priority ? `<span class="prio p${esc(o.priority)}">${esc(label('priority', o.priority))}</span>` : ''}</td>
      <td data-th="${esc(t('woStatus'))}">${esc(label('wo', o.status))}</td>
      <td data-th="${esc(t('woDue'))}">${esc(fmtTime(o.due_at, { seconds: false }))}</td>
      <td data-th="${esc(t('woRemaining'))}">${isOpen(o) ? remaining(o) : ''}</td></tr>`).join('')}</tbody></table>`;
}

export async function renderOrders(main) {
  main.innerHTML = `<section class="view view-orders"><div class="view-head"><h1>${esc(t('workOrders'))}</h1></div><div id="orders"></div></section>`;
  try {
    const orders = await loadOrders();
    document.getElementById('orders').innerHTML = ordersTable(orders.filter(isOpen));
  } catch (err) {
    toast(err.message, 'error');
  }
}

// Called every second: count the SLA timers down without re-rendering.
export function tickCountdowns() {
  for (const el of document.querySelectorAll('.countdown[data-due]')) {
    const left = (Number(el.dataset.due) - Date.now()) / 1000;
    el.textContent = left < 0 ? `${t('woBreached')} ${fmtDuration(-left)}` : fmtDuration(left);
    el.classList.toggle('breached', left < 0);
    el.classList.toggle('soon', left >= 0 && left < 900);
  }
}
