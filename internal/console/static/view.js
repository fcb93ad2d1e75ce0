// #/view/{ws}/{name}: a feature view's definition, versions, counts,
// freshness, storage, and its ingest rate over the last hour.
//
// The summary's "transformation", "feature_definitions", "versions" and
// "storage", and the ingest-rate route, are newer than the rest of the
// API: where a node does not give them, the page shows "—".

import { getJSON, enc } from './api.js';
import { h, table, dash, fmtTime, fmtAge, fmtBytes, errorBox } from './dom.js';
import { barChart } from './chart.js';

export async function render(main, { parts, signal }) {
  const [ws, name] = parts;
  if (!ws || !name) {
    main.append(errorBox('Open a view from the Workspaces page.'));
    return;
  }
  const base = `/api/v1/workspaces/${enc(ws)}/feature-views/${enc(name)}`;
  main.append(h('h1', {}, h('a', { href: '#/workspaces' }, ws), ' / ', name));
  const v = await getJSON(base, signal);
  if (v.description) main.append(h('p', {}, v.description));
  main.append(stats(v));
  main.append(h('h2', {}, 'Ingest rate, last hour'));
  const chart = h('div', { class: 'card', id: 'ingest-rate' });
  main.append(chart);
  main.append(h('h2', {}, 'Definition'), definition(v));
  main.append(h('h2', {}, 'Features'), features(v));
  main.append(h('h2', {}, 'Versions'), versions(ws, v));
  const jobsBox = h('div', { id: 'view-jobs' });
  main.append(h('h2', {}, 'Recent jobs ', h('a', { href: `#/jobs/${enc(ws)}?view=${enc(name)}` }, '(all)')), jobsBox);
  await Promise.all([ingestRate(chart, base, v, signal), recentJobs(jobsBox, ws, name, signal)]);
}

function stat(label, value, sub) {
  return h('div', { class: 'card stat' }, h('div', { class: 'label' }, label), h('div', { class: 'v' }, dash(value)),
    sub ? h('div', { class: 'muted' }, sub) : null);
}

function stats(v) {
  const st = v.storage || {};
  return h('div', { class: 'grid', id: 'view-stats' },
    stat('Online records', v.online_record_count),
    stat('Offline records', v.offline_record_count),
    stat('Entity keys online', v.entity_keys_online),
    stat('Freshness', fmtTime(v.freshness), fmtAge(v.freshness)),
    stat('Serving version', v.serving_version ?? v.version, v.job ? `job ${v.job} building` : null),
    stat('Segments', st.segments, st.segment_bytes !== undefined ? fmtBytes(st.segment_bytes) : null),
    stat('Memtable', st.memtable_records !== undefined ? `${st.memtable_records} records` : null,
      st.memtable_bytes !== undefined ? fmtBytes(st.memtable_bytes) : null));
}

function kv(rows) {
  return h('table', { class: 'kv' }, h('tbody', {}, rows.map(([k, val]) => h('tr', {}, h('th', {}, k), h('td', {}, val)))));
}

function transformation(t) {
  if (t === undefined || t === null) return '—';
  if (typeof t === 'string') return h('code', {}, t);
  return h('pre', { class: 'mono' }, JSON.stringify(t, null, 2));
}

function definition(v) {
  const tags = v.tags ? Object.entries(v.tags).map(([k, val]) => `${k}=${val}`).join(', ') : '';
  return kv([
    ['Source', dash(v.source)],
    ['Entities', dash((v.entities || []).join(', '))],
    ['Join keys', dash((v.join_keys || []).join(', '))],
    ['Timestamp field', dash(v.timestamp_field)],
    ['Transformation', transformation(v.transformation)],
    ['Aggregation interval', dash(v.aggregation_interval)],
    ['TTL', dash(v.ttl)],
    ['Batch schedule', dash(v.batch_schedule)],
    ['Feature start time', fmtTime(v.feature_start_time)],
    ['Online / offline', `${v.online ? 'online' : '—'} / ${v.offline ? 'offline' : '—'}`],
    ['Owner', dash(v.owner)],
    ['Tags', dash(tags)],
    ['Created', fmtTime(v.created_at)],
  ]);
}

function features(v) {
  const defs = v.feature_definitions;
  if (!Array.isArray(defs)) {
    return table(['Feature', 'Type', 'Function', 'Column', 'Window'],
      (v.features || []).map((f) => h('tr', {}, h('td', {}, f), h('td', {}, '—'), h('td', {}, '—'), h('td', {}, '—'), h('td', {}, '—'))),
      { class: 'features' });
  }
  return table(['Feature', 'Type', 'Function', 'Column', 'Window'],
    defs.map((f) => h('tr', {},
      h('td', {}, f.name),
      h('td', {}, typeName(f.dataType)),
      h('td', {}, dash(f.function)),
      h('td', {}, dash(f.column)),
      h('td', {}, dash(f.time_window)))),
    { class: 'features' });
}

function typeName(t) {
  if (!t) return '—';
  if (typeof t === 'string') return t;
  return t.type === 'array' ? `array<${typeName(t.elementType)}>` : t.type;
}

function versions(ws, v) {
  if (!Array.isArray(v.versions)) {
    return h('p', { class: 'muted' }, `Version ${dash(v.version)} serves; this node lists no version history (—).`);
  }
  return table(['Version', 'Created', 'Serving', 'Job'],
    v.versions.map((x) => h('tr', {},
      h('td', { class: 'num' }, x.version),
      h('td', {}, fmtTime(x.created_at)),
      h('td', {}, x.serving ? 'serving' : '—'),
      h('td', {}, x.job ? h('a', { href: `#/jobs/${enc(ws)}?view=${enc(v.name)}` }, x.job) : '—'))),
    { class: 'versions' });
}

// ingestRate draws the last hour's records per minute. Only a node whose
// summary has "storage" has the route; an older one gets "no data"
// without a request that would answer 404.
async function ingestRate(box, base, v, signal) {
  if (!v.storage) {
    box.append(h('p', { class: 'muted' }, 'No data: this node does not report an ingest rate.'));
    return;
  }
  try {
    const r = await getJSON(`${base}/ingest-rate?minutes=60`, signal);
    const total = r.points.reduce((n, p) => n + p.records, 0);
    box.append(barChart(r.points, r.interval_seconds, 'records ingested per interval'),
      h('div', { class: 'muted' }, `${total} records in the last hour, per ${r.interval_seconds}s`));
  } catch (err) {
    if (!signal.aborted) box.append(errorBox(err));
  }
}

async function recentJobs(box, ws, name, signal) {
  try {
    const { jobs } = await getJSON(`/api/v1/workspaces/${enc(ws)}/jobs?feature_view=${enc(name)}&limit=5`, signal);
    if (!jobs.length) {
      box.append(h('p', { class: 'muted' }, 'No jobs.'));
      return;
    }
    box.append(table(['Job', 'Type', 'Version', 'State', 'Created'], jobs.map((j) => h('tr', {},
      h('td', { class: 'mono' }, j.id), h('td', {}, j.type), h('td', { class: 'num' }, dash(j.version)),
      h('td', { class: `state-${j.state}` }, j.state), h('td', {}, fmtTime(j.created_at))))));
  } catch (err) {
    if (!signal.aborted) box.append(errorBox(err));
  }
}
