// Shared console state and the small UI pieces every view uses (dialogs, toasts).

import { t } from './i18n.js';
import { esc } from './util.js';

export const state = {
  user: null,          // {user, role, token}
  config: null,        // GET /api/v1/console/config
  vocab: null,         // GET /api/v1/vocabulary
  features: {},        // optional endpoints present
  alarms: new Map(),   // alarm_id -> alarm (open ones, from the stream)
  devices: [],         // GET /api/v1/devices
  flood: null,
  shift: null,         // GET /api/v1/shifts/current
  live: false,
  orders: null,        // work orders (when the endpoint exists)
};

const RANK = { viewer: 0, operator: 1, engineer: 2, admin: 3 };
export function canOperate() { return state.user && (RANK[state.user.role] ?? -1) >= 1; }

export function deviceById(id) { return state.devices.find((d) => d.id === id); }

export function deviceName(id) {
  const d = deviceById(id);
  return d ? (d.name || d.id) : id;
}

export function toast(text, kind = 'info') {
  const box = document.getElementById('toasts');
  const el = document.createElement('div');
  el.className = `toast toast-${kind}`;
  el.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  el.textContent = text;
  box.append(el);
  setTimeout(() => el.remove(), kind === 'error' ? 8000 : 3000);
}

// A modal form. fields: [{name, label, type: 'text'|'textarea'|'select'|'checkbox', options,
// required, value}]. Resolves to the values, or null when cancelled.
export function dialog({ title, body = '', fields = [], submit = t('confirm'), danger = false }) {
  const dlg = document.getElementById('dialog');
  const inputs = fields.map((f) => {
    const id = `dlg-${f.name}`;
    const req = f.required ? 'required' : '';
    if (f.type === 'select') {
      const opts = f.options.map(([v, l]) => `<option value="${esc(v)}" ${String(v) === String(f.value) ? 'selected' : ''}>${esc(l)}</option>`).join('');
      return `<label for="${id}">${esc(f.label)}</label><select id="${id}" name="${f.name}" ${req}>${opts}</select>`;
    }
    if (f.type === 'textarea') {
      return `<label for="${id}">${esc(f.label)}</label><textarea id="${id}" name="${f.name}" rows="3" maxlength="2000" ${req}>${esc(f.value || '')}</textarea>`;
    }
    if (f.type === 'checkbox') {
      return `<label class="check"><input type="checkbox" id="${id}" name="${f.name}" ${req}> ${esc(f.label)}</label>`;
    }
    return `<label for="${id}">${esc(f.label)}</label><input id="${id}" name="${f.name}" maxlength="500" value="${esc(f.value || '')}" ${req}>`;
  }).join('');
  dlg.innerHTML = `<form method="dialog" class="dialog-form">
      <h2>${esc(title)}</h2>${body}${inputs}
      <div class="dialog-actions">
        <button type="button" value="cancel" data-cancel>${esc(t('cancel'))}</button>
        <button type="submit" value="ok" class="${danger ? 'danger' : 'primary'}" data-submit>${esc(submit)}</button>
      </div></form>`;
  return new Promise((resolve) => {
    const form = dlg.querySelector('form');
    const done = (value) => { dlg.close(); resolve(value); };
    dlg.querySelector('[data-cancel]').addEventListener('click', () => done(null));
    dlg.addEventListener('cancel', () => resolve(null), { once: true });
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const out = {};
      for (const f of fields) {
        const el = form.elements[f.name];
        out[f.name] = f.type === 'checkbox' ? el.checked : el.value;
      }
      done(out);
    });
    dlg.showModal();
    const first = dlg.querySelector('input, select, textarea');
    if (first) first.focus();
  });
}
