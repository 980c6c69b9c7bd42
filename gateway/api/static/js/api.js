// HTTP and live-stream access to the gateway. The bearer token lives in sessionStorage
// (one login per tab and shift); the live stream is opened with a single-use ticket.

import { getLang } from './i18n.js';

const TOKEN_KEY = 'console.session';

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

export const session = {
  get() {
    try { return JSON.parse(sessionStorage.getItem(TOKEN_KEY)); } catch { return null; }
  },
  set(value) { sessionStorage.setItem(TOKEN_KEY, JSON.stringify(value)); },
  clear() { sessionStorage.removeItem(TOKEN_KEY); },
};

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

export async function request(method, path, body) {
  const headers = { Accept: 'application/json' };
  const s = session.get();
  if (s) headers.Authorization = `Bearer ${s.token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401 && s) onUnauthorized();
  const data = res.headers.get('content-type')?.includes('json') ? await res.json() : null;
  if (!res.ok) {
    let detail = data && data.detail;
    if (Array.isArray(detail)) detail = detail.map((d) => d.msg).join('; ');
    throw new ApiError(res.status, localise(detail || res.statusText));
  }
  return data;
}

// Server messages are "English / 中文": show the half in the console's language.
function localise(text) {
  const i = String(text).lastIndexOf(' / ');
  if (i < 0) return text;
  return getLang() === 'zh' ? text.slice(i + 3) : text.slice(0, i);
}

export const get = (path) => request('GET', path);
export const post = (path, body) => request('POST', path, body);

// Which optional endpoints this gateway has (other issues add them): read from the
// OpenAPI document, so the console never probes with requests that fail.
export async function features() {
  const res = await fetch('/openapi.json');
  const paths = res.ok ? Object.keys((await res.json()).paths || {}) : [];
  const has = (re) => paths.find((p) => re.test(p)) || null;
  return {
    comment: has(/^\/api\/v1\/alarms\/\{[^}]+\}\/comments?$/),
    workOrders: has(/^\/api\/v1\/work-orders$/),
    commands: has(/^\/api\/v1\/devices\/\{[^}]+\}\/commands$/),
  };
}

// The live feed. Calls handlers[event](data); reconnects with a fresh ticket after an error
// or when the server ends the stream (its lifetime is bounded).
export class LiveStream {
  constructor(handlers, onState) {
    this.handlers = handlers;
    this.onState = onState;
    this.source = null;
    this.stopped = false;
    this.retry = null;
  }

  async start() {
    this.stopped = false;
    this.close();
    let ticket;
    try {
      ({ ticket } = await post('/api/v1/stream/ticket'));
    } catch (err) {
      if (err.status !== 401) this.schedule();
      return;
    }
    if (this.stopped) return;
    const es = new EventSource(`/api/v1/stream?ticket=${encodeURIComponent(ticket)}`);
    this.source = es;
    for (const name of Object.keys(this.handlers)) {
      es.addEventListener(name, (ev) => this.handlers[name](JSON.parse(ev.data)));
    }
    es.addEventListener('open', () => this.onState(true));
    es.addEventListener('reconnect', () => this.start());
    es.addEventListener('error', () => {
      if (es !== this.source) return;
      this.close();
      this.onState(false);
      this.schedule();
    });
  }

  schedule() {
    clearTimeout(this.retry);
    if (!this.stopped) this.retry = setTimeout(() => this.start(), 2000);
  }

  close() {
    if (this.source) {
      this.source.close();
      this.source = null;
    }
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retry);
    this.close();
  }
}
