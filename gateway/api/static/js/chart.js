// A tiny SVG line chart (no library): numeric or boolean points against time.

import { esc, fmtTime, fmtValue } from './util.js';

const W = 800;
const H = 260;
const PAD = { l: 56, r: 16, t: 14, b: 30 };

function niceTicks(lo, hi, n) {
  if (lo === hi) { lo -= 1; hi += 1; }
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw) || raw;
  const ticks = [];
  for (let v = Math.floor(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(+v.toFixed(10));
  return ticks;
}

// points: [{at (seconds), value}], booleans drawn as 0/1 steps. Returns SVG markup.
export function lineChart(points, { unit = '', from, to, emptyText = '' } = {}) {
  const data = points
    .filter((p) => typeof p.value === 'number' || typeof p.value === 'boolean')
    .map((p) => [p.at, Number(p.value)]);
  const svgOpen = `<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" preserveAspectRatio="none">`;
  if (!data.length) {
    return `${svgOpen}<text x="${W / 2}" y="${H / 2}" class="chart-empty">${esc(emptyText)}</text></svg>`;
  }
  const steps = points.some((p) => typeof p.value === 'boolean');
  const x0 = from ?? data[0][0];
  const x1 = Math.max(to ?? data[data.length - 1][0], x0 + 1);
  const ys = data.map((d) => d[1]);
  const yTicks = niceTicks(Math.min(...ys), Math.max(...ys), 4);
  const y0 = yTicks[0];
  const y1 = yTicks[yTicks.length - 1];
  const sx = (x) => PAD.l + ((x - x0) / (x1 - x0)) * (W - PAD.l - PAD.r);
  const sy = (y) => H - PAD.b - ((y - y0) / (y1 - y0 || 1)) * (H - PAD.t - PAD.b);
  let path = '';
  data.forEach(([x, y], i) => {
    const X = sx(x).toFixed(1);
    const Y = sy(y).toFixed(1);
    if (i === 0) path += `M${X},${Y}`;
    else if (steps) path += `H${X}V${Y}`;
    else path += `L${X},${Y}`;
  });
  const grid = yTicks.map((v) => `<line class="grid" x1="${PAD.l}" x2="${W - PAD.r}" y1="${sy(v)}" y2="${sy(v)}"/>`
    + `<text class="tick" x="${PAD.l - 6}" y="${sy(v) + 4}" text-anchor="end">${esc(fmtValue(v))}</text>`).join('');
  const xTicks = [0, 0.25, 0.5, 0.75, 1].map((f) => x0 + f * (x1 - x0));
  const xs = xTicks.map((x, i) => `<text class="tick" x="${sx(x)}" y="${H - 8}" text-anchor="${i === 0 ? 'start' : i === 4 ? 'end' : 'middle'}">`
    + `${esc(fmtTime(x, { date: x1 - x0 > 86400, seconds: x1 - x0 < 600 }))}</text>`).join('');
  const last = data[data.length - 1];
  const unitText = unit ? `<text class="tick unit" x="4" y="${PAD.t + 4}">${esc(unit)}</text>` : '';
  return `${svgOpen}${grid}${xs}${unitText}<path class="line" d="${path}"/>`
    + `<circle class="dot" cx="${sx(last[0])}" cy="${sy(last[1])}" r="3.5"/></svg>`;
}
