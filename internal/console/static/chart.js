// Hand-written SVG charts: bars of counts per interval, and the step line
// of a value over time. Sizes are in SVG units; the SVG scales to its box.

const NS = 'http://www.w3.org/2000/svg';
const W = 720, H = 200, L = 48, R = 12, T = 12, B = 28;

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

function frame(label) {
  const svg = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': label });
  svg.append(s('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }));
  svg.append(s('line', { class: 'axis', x1: L, y1: T, x2: L, y2: H - B }));
  return svg;
}

function hhmm(ms) {
  return new Date(ms).toISOString().slice(5, 16).replace('T', ' ') + 'Z';
}

function yLabels(svg, lo, hi) {
  svg.append(s('text', { x: L - 4, y: H - B, 'text-anchor': 'end' }, fmt(lo)));
  svg.append(s('text', { x: L - 4, y: T + 10, 'text-anchor': 'end' }, fmt(hi)));
}

function xLabels(svg, t0, t1) {
  svg.append(s('text', { x: L, y: H - 8 }, hhmm(t0)));
  svg.append(s('text', { x: W - R, y: H - 8, 'text-anchor': 'end' }, hhmm(t1)));
}

function fmt(v) {
  return Number.isInteger(v) ? String(v) : v.toPrecision(4);
}

// barChart draws points [{start: RFC 3339, records}], oldest first, each
// intervalSeconds wide.
export function barChart(points, intervalSeconds, label) {
  const svg = frame(label);
  if (!points.length) return svg;
  const hi = Math.max(1, ...points.map((p) => p.records));
  const bw = (W - L - R) / points.length;
  points.forEach((p, i) => {
    const bh = (p.records / hi) * (H - T - B);
    const bar = s('rect', { class: 'bar', x: L + i * bw + 1, y: H - B - bh, width: Math.max(1, bw - 2), height: bh });
    bar.append(s('title', {}, `${p.start}: ${p.records} records`));
    svg.append(bar);
  });
  yLabels(svg, 0, hi);
  const t0 = Date.parse(points[0].start);
  xLabels(svg, t0, Date.parse(points[points.length - 1].start) + intervalSeconds * 1000);
  return svg;
}

// stepChart draws segments [{from: ms, to: ms, value: number}] over
// [t0, t1] as a step line.
export function stepChart(segments, t0, t1, label) {
  const svg = frame(label);
  const vals = segments.map((g) => g.value).filter((v) => Number.isFinite(v));
  if (!vals.length) return svg;
  let lo = Math.min(0, ...vals), hi = Math.max(...vals);
  if (hi === lo) hi = lo + 1;
  const x = (t) => L + ((Math.min(Math.max(t, t0), t1) - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => H - B - ((v - lo) / (hi - lo)) * (H - T - B);
  // Adjacent intervals join with a vertical step; a gap (or a null value)
  // breaks the line.
  let d = '';
  let end = null;
  for (const g of segments) {
    if (!Number.isFinite(g.value)) { end = null; continue; }
    d += `${end === g.from ? 'L' : 'M'}${x(g.from).toFixed(1)},${y(g.value).toFixed(1)}H${x(g.to).toFixed(1)}`;
    end = g.to;
  }
  svg.append(s('path', { class: 'line', d }));
  yLabels(svg, lo, hi);
  xLabels(svg, t0, t1);
  return svg;
}
