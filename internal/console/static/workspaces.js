// #/workspaces: each workspace the key may view, with its feature views
// and feature services.

import { getJSON, enc } from './api.js';
import { h, table, dash, fmtTime, fmtAge, errorBox } from './dom.js';

export async function render(main, { signal }) {
  main.append(h('h1', {}, 'Workspaces'));
  const { workspaces } = await getJSON('/api/v1/workspaces', signal);
  if (!workspaces.length) {
    main.append(h('p', { class: 'muted' }, 'No workspace: the key holds no role, or no repo was applied.'));
    return;
  }
  const sections = workspaces.map((w) => h('section', { class: 'card', 'data-ws': w.name }, h('h2', {}, w.name)));
  main.append(...sections);
  await Promise.all(workspaces.map((w, i) => fill(sections[i], w.name, signal)));
}

async function fill(sec, ws, signal) {
  const base = `/api/v1/workspaces/${enc(ws)}`;
  sec.append(h('p', {}, h('a', { href: `#/jobs/${enc(ws)}` }, 'Jobs'), ' · ',
    h('a', { href: `#/lookup?ws=${enc(ws)}` }, 'Feature lookup')));
  const [views, services] = await Promise.allSettled([
    getJSON(`${base}/feature-views`, signal), getJSON(`${base}/feature-services`, signal)]);
  sec.append(h('h3', {}, 'Feature views'));
  if (views.status === 'rejected') sec.append(errorBox(views.reason));
  else sec.append(viewsTable(ws, views.value.feature_views));
  sec.append(h('h3', {}, 'Feature services'));
  if (services.status === 'rejected') sec.append(errorBox(services.reason));
  else sec.append(servicesTable(ws, services.value.feature_services));
}

function viewsTable(ws, views) {
  return table(['View', 'Entities', 'Features', 'Online records', 'Offline records', 'Freshness', 'Version', ''],
    views.map((v) => h('tr', {},
      h('td', {}, h('a', { href: `#/view/${enc(ws)}/${enc(v.name)}` }, v.name),
        v.description ? h('div', { class: 'muted' }, v.description) : null),
      h('td', {}, (v.entities || []).join(', ')),
      h('td', { class: 'num' }, (v.features || []).length),
      h('td', { class: 'num' }, dash(v.online_record_count)),
      h('td', { class: 'num' }, dash(v.offline_record_count)),
      h('td', {}, fmtTime(v.freshness), h('div', { class: 'muted' }, fmtAge(v.freshness))),
      h('td', { class: 'num' }, dash(v.serving_version ?? v.version)),
      h('td', {}, h('a', { href: `#/stream/${enc(ws)}/${enc(v.name)}` }, 'stream')))),
    { class: 'views' });
}

function servicesTable(ws, services) {
  return table(['Service', 'Views', 'Features', 'Join keys', 'Serving', ''],
    services.map((s) => h('tr', {},
      h('td', {}, s.name, s.description ? h('div', { class: 'muted' }, s.description) : null),
      h('td', {}, (s.feature_views || []).map((v, i) => [i ? ', ' : '', h('a', { href: `#/view/${enc(ws)}/${enc(v)}` }, v)])),
      h('td', { class: 'num' }, (s.features || []).length),
      h('td', {}, (s.join_keys || []).map((k) => k.name).join(', ')),
      h('td', {}, s.unavailable ? h('span', { class: 'state-FAILED' }, s.unavailable) : (s.online_serving_enabled ? 'online' : 'offline only')),
      h('td', {}, h('a', { href: `#/lookup?ws=${enc(ws)}&service=${enc(s.name)}` }, 'lookup')))),
    { class: 'services' });
}
