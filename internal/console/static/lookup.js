// #/lookup?ws=W&service=S&key.<join key>=V[&as_of=T]: a key's feature
// vector from get-features, with types, effective times and statuses;
// and, for its aggregate features, a timeline of the last day from the
// historical API's range mode.

import { getJSON, postJSON, postNDJSON, enc } from './api.js';
import { h, table, fmtTime, fmtValue, fmtType, errorBox } from './dom.js';
import { picker, workspaceNames } from './common.js';
import { stepChart } from './chart.js';

const DAY = 24 * 3600 * 1000;

export async function render(main, { query, signal }) {
  main.append(h('h1', {}, 'Feature lookup'));
  const names = await workspaceNames(signal);
  if (!names.length) {
    main.append(h('p', { class: 'muted' }, 'No workspace to read.'));
    return;
  }
  const ws = names.includes(query.get('ws')) ? query.get('ws') : names[0];
  const { feature_services: services } = await getJSON(`/api/v1/workspaces/${enc(ws)}/feature-services`, signal);
  if (!services.length) {
    main.append(h('p', { class: 'muted' }, `Workspace ${ws} has no feature service.`));
    return;
  }
  const svc = services.find((s) => s.name === query.get('service')) || services[0];
  const go = (params) => {
    const hash = '#/lookup?' + new URLSearchParams(params);
    // The same lookup again reads again (now moves on).
    if (location.hash === hash) window.dispatchEvent(new HashChangeEvent('hashchange'));
    else location.hash = hash;
  };
  const inputs = svc.join_keys.map((k) => h('input', { name: k.name, value: query.get('key.' + k.name) || '', required: true, placeholder: fmtType(k.dataType) }));
  const asOf = h('input', { name: 'as_of', id: 'as-of', value: query.get('as_of') || '', placeholder: 'now, or RFC 3339', size: 24 });
  const form = h('form', { class: 'inline', id: 'lookup-form', onsubmit: (ev) => {
    ev.preventDefault();
    const p = { ws, service: svc.name };
    inputs.forEach((i) => { p['key.' + i.name] = i.value.trim(); });
    if (asOf.value.trim()) p.as_of = asOf.value.trim();
    go(p);
  } },
  picker('Workspace', 'ws', names, ws, (w) => go({ ws: w })),
  picker('Feature service', 'service', services.map((s) => s.name), svc.name, (s) => go({ ws, service: s })),
  inputs.map((i) => h('label', {}, i.name, i)),
  h('label', {}, 'as_of (optional)', asOf),
  h('button', { type: 'submit' }, 'Look up'));
  main.append(form);
  const keys = {};
  for (const k of svc.join_keys) keys[k.name] = query.get('key.' + k.name);
  if (Object.values(keys).some((v) => !v)) return;
  const result = h('div', { id: 'lookup-result' });
  main.append(result);
  await lookup(result, ws, svc, keys, query.get('as_of'), signal);
}

// typed turns a join key's text into the JSON value its type wants.
function typed(text, dataType) {
  const t = dataType && dataType.type;
  if (t === 'int64') return text; // int64 travels as a JSON string
  if (t === 'float64' || t === 'int32' || t === 'float32') return Number(text);
  if (t === 'boolean') return text === 'true';
  return text;
}

async function lookup(box, ws, svc, rawKeys, asOf, signal) {
  const keys = {};
  for (const k of svc.join_keys) keys[k.name] = typed(rawKeys[k.name], k.dataType);
  const params = { workspace_name: ws, feature_service_name: svc.name, join_key_map: keys,
    metadata_options: { include_names: true, include_data_types: true, include_effective_times: true, include_serving_status: true } };
  if (asOf) params.as_of = asOf;
  const resp = await postJSON('/api/v1/feature-service/get-features', { params }, signal);
  const meta = resp.metadata.features;
  box.append(h('h2', {}, 'Vector', asOf ? ` as of ${asOf}` : ' now'),
    table(['Feature', 'Type', 'Value', 'Effective time', 'Status'],
      resp.result.features.map((v, i) => h('tr', { 'data-feature': meta[i].name },
        h('td', {}, meta[i].name),
        h('td', { class: 'type' }, fmtType(meta[i].dataType)),
        h('td', { class: 'value', 'data-json': JSON.stringify(v) }, fmtValue(v)),
        h('td', { class: 'effective', 'data-time': meta[i].effectiveTime || '' }, fmtTime(meta[i].effectiveTime)),
        h('td', { class: `status status-${meta[i].status}` }, meta[i].status || '—'))),
    { class: 'vector', id: 'vector' }));
  const timeline = h('div', { id: 'timeline' });
  box.append(h('h2', {}, 'Timeline, last day'), timeline);
  await drawTimeline(timeline, ws, svc, keys, meta, asOf, signal);
}

// aggregates names the service's aggregate features: from the views'
// feature_definitions where the node gives them; else, by SPEC §1's
// default names (<input>_<function>_<window>_<interval>), the numeric
// features whose name ends in an interval, and failing those every
// numeric feature.
async function aggregates(ws, svc, meta, signal) {
  const numeric = new Set(['int64', 'int32', 'float64', 'float32']);
  const interval = /_(continuous|\d+[smhd])$/;
  const byView = new Map();
  await Promise.all(svc.feature_views.map(async (v) => {
    try {
      const s = await getJSON(`/api/v1/workspaces/${enc(ws)}/feature-views/${enc(v)}`, signal);
      if (Array.isArray(s.feature_definitions)) byView.set(v, new Set(s.feature_definitions.filter((f) => f.function).map((f) => f.name)));
    } catch { /* the vector above already shows what the API refused */ }
  }));
  const guess = (m) => numeric.has(m.dataType && m.dataType.type);
  const named = meta.some((m) => !byView.has(m.name.split('.')[0]) && guess(m) && interval.test(m.name));
  return meta.filter((m) => {
    const [view, ...rest] = m.name.split('.');
    const defs = byView.get(view);
    if (defs) return defs.has(rest.join('.'));
    return guess(m) && (!named || interval.test(m.name));
  }).map((m) => m.name);
}

async function drawTimeline(box, ws, svc, keys, meta, asOf, signal) {
  const names = await aggregates(ws, svc, meta, signal);
  if (!names.length) {
    box.append(h('p', { class: 'muted' }, 'No aggregate feature in this service.'));
    return;
  }
  const end = asOf ? Date.parse(asOf) : Date.now();
  const start = end - DAY;
  let rows;
  try {
    rows = await postNDJSON('/api/v1/feature-service/get-features-for-events', { params: {
      workspace_name: ws, feature_service_name: svc.name,
      start_time: new Date(start).toISOString(), end_time: new Date(end).toISOString(), entities: [keys] } }, signal);
  } catch (err) {
    if (!signal.aborted) box.append(errorBox(err));
    return;
  }
  const chartBox = h('div', {});
  const draw = (name) => {
    const segs = rows.map((r) => ({ from: Date.parse(r._valid_from), to: Date.parse(r._valid_to), value: r[name] === null ? NaN : Number(r[name]) }));
    chartBox.replaceChildren(stepChart(segs, start, end, name),
      h('div', { class: 'muted' }, `${segs.length} intervals from range mode`));
  };
  box.append(h('form', { class: 'inline' }, picker('Feature', 'timeline-feature', names, names[0], draw)), chartBox);
  draw(names[0]);
}
