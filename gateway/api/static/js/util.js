// Small helpers: HTML escaping, times in the site's timezone, durations.

import { getLang } from './i18n.js';

let siteZone = 'Asia/Shanghai';
export function setZone(zone) { siteZone = zone; }
export function zone() { return siteZone; }

const ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export function esc(value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ESC[c]);
}

export function toMs(value) {
  if (value === null || value === undefined || value === '') return null;
  if (typeof value === 'number') return value < 1e12 ? value * 1000 : value;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? null : ms;
}

function fmt(options) {
  return new Intl.DateTimeFormat(getLang() === 'zh' ? 'zh-CN' : 'en-GB',
    { timeZone: siteZone, hour12: false, ...options });
}

export function fmtTime(value, { date = true, seconds = true } = {}) {
  const ms = toMs(value);
  if (ms === null) return '—';
  const opts = { hour: '2-digit', minute: '2-digit' };
  if (seconds) opts.second = '2-digit';
  if (date) Object.assign(opts, { month: '2-digit', day: '2-digit' });
  return fmt(opts).format(new Date(ms));
}

export function fmtDuration(seconds) {
  const neg = seconds < 0;
  let s = Math.floor(Math.abs(seconds));
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  const text = `${h}:${String(m).padStart(2, '0')}:${String(s).padStart(2, '0')}`;
  return neg ? `-${text}` : text;
}

export function ago(value) {
  const ms = toMs(value);
  if (ms === null) return '';
  const s = Math.max(0, (Date.now() - ms) / 1000);
  const zh = getLang() === 'zh';
  if (s < 60) return zh ? `${Math.round(s)} 秒前` : `${Math.round(s)} s ago`;
  if (s < 3600) return zh ? `${Math.round(s / 60)} 分钟前` : `${Math.round(s / 60)} min ago`;
  if (s < 86400) return zh ? `${Math.round(s / 3600)} 小时前` : `${Math.round(s / 3600)} h ago`;
  return zh ? `${Math.round(s / 86400)} 天前` : `${Math.round(s / 86400)} d ago`;
}

export function fmtValue(value, unit = '') {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'boolean') return getLang() === 'zh' ? (value ? '是' : '否') : (value ? 'yes' : 'no');
  if (typeof value === 'number') {
    const text = Number.isInteger(value) ? String(value) : value.toFixed(2).replace(/\.?0+$/, '');
    return unit ? `${text} ${unit}` : text;
  }
  return String(value);
}
