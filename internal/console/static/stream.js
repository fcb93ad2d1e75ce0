// #/stream/{ws}/{view}: a live tail of a view's output stream from
// `latest`: the records the view applies after the page opened, newest
// first. The stream is read with fetch (the key goes in a header, which
// EventSource cannot send) and ends when the page is left.

import { follow, enc } from './api.js';
import { h, table, fmtTime, errorBox, show } from './dom.js';
import { picker, workspaceNames, viewNames } from './common.js';

const KEEP = 200; // rows kept on the page

export async function render(main, { parts, signal }) {
  main.append(h('h1', {}, 'Output stream'));
  const names = await workspaceNames(signal);
  if (!names.length) {
    main.append(h('p', { class: 'muted' }, 'No workspace to read.'));
    return;
  }
  const ws = names.includes(parts[0]) ? parts[0] : names[0];
  const views = await viewNames(ws, signal);
  const view = views.includes(parts[1]) ? parts[1] : views[0];
  main.append(h('form', { class: 'inline' },
    picker('Workspace', 'ws', names, ws, (w) => { location.hash = `#/stream/${enc(w)}`; }),
    picker('Feature view', 'view', views, view, (v) => { location.hash = `#/stream/${enc(ws)}/${enc(v)}`; })));
  if (!view) return;
  const status = h('p', { id: 'stream-status', class: 'muted' }, 'connecting…');
  const body = h('tbody', {});
  main.append(status, h('table', { class: 'stream', id: 'stream' },
    h('thead', {}, h('tr', {}, ['Offset', 'Feature timestamp', 'Entity keys', 'Feature values'].map((x) => h('th', {}, x)))), body));
  tail(ws, view, status, body, signal); // runs until the page is left
}

async function tail(ws, view, status, body, signal) {
  let n = 0;
  try {
    await follow(`/api/v1/workspaces/${enc(ws)}/feature-views/${enc(view)}/output-stream?from=latest`, {
      signal,
      onOpen: () => { status.dataset.state = 'live'; status.textContent = 'live: waiting for records ingested from now on'; },
      onLine: (rec) => {
        if (rec.offset === undefined && rec.error !== undefined) throw new Error(rec.message || rec.error);
        n++;
        status.textContent = `live: ${n} record${n === 1 ? '' : 's'} since the page opened`;
        body.prepend(h('tr', { 'data-offset': rec.offset },
          h('td', { class: 'mono' }, rec.offset),
          h('td', {}, fmtTime(rec.feature_timestamp)),
          h('td', { class: 'mono' }, JSON.stringify(rec.entity_keys)),
          h('td', { class: 'mono' }, rec.feature_values
            ? Object.entries(rec.feature_values).map(([k, v]) => h('div', {}, `${k} = ${v}`)) : '—')));
        while (body.children.length > KEEP) body.lastChild.remove();
      },
    });
    status.dataset.state = 'ended';
    status.textContent = 'the stream ended (the node closed it); reload to follow again';
  } catch (err) {
    if (signal.aborted) return;
    status.dataset.state = 'error';
    show(status, errorBox(err));
  }
}
