// A small DOM builder: text is always set as text, never parsed as HTML.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k in el && k !== 'list') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

// dash shows an absent value as the API did not give it.
export function dash(v) {
  return v === undefined || v === null || v === '' ? '—' : v;
}

export function table(headers, rows, attrs = {}) {
  return h('table', attrs,
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', {}, x)))),
    h('tbody', {}, rows));
}

export function errorBox(err) {
  return h('div', { class: 'error', role: 'alert' }, String(err));
}

// show replaces el's content.
export function show(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

export function fmtTime(s) {
  if (!s) return '—';
  return s.replace('T', ' ').replace(/(\.\d{3})\d*/, '$1');
}

export function fmtAge(s) {
  if (!s) return '';
  const secs = Math.round((Date.now() - Date.parse(s)) / 1000);
  if (!Number.isFinite(secs)) return '';
  if (secs < 0) return 'in the future';
  if (secs < 90) return `${secs}s ago`;
  if (secs < 5400) return `${Math.round(secs / 60)}m ago`;
  if (secs < 172800) return `${Math.round(secs / 3600)}h ago`;
  return `${Math.round(secs / 86400)}d ago`;
}

export function fmtBytes(n) {
  if (n === undefined || n === null) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i ? v.toFixed(1) : v} ${units[i]}`;
}

// fmtValue prints a feature value as JSON shows it (int64 as its digits).
export function fmtValue(v) {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

export function fmtType(t) {
  if (!t) return '—';
  if (t.type === 'array') return `array<${fmtType(t.elementType)}>`;
  return t.type;
}
