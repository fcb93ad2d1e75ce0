// #/jobs/{ws}[?view=V]: the workspace's jobs, newest first, with their
// progress, refreshed while any runs; owners get a cancel button on
// PENDING and RUNNING jobs.

import { getJSON, postJSON, enc, APIError } from './api.js';
import { h, table, dash, fmtTime, errorBox, show } from './dom.js';
import { picker, workspaceNames } from './common.js';

const LIVE = new Set(['PENDING', 'RUNNING', 'MANUAL_CANCELLATION_REQUESTED']);
const REFRESH_MS = 2000;

export async function render(main, { parts, query, signal }) {
  main.append(h('h1', {}, 'Jobs'));
  const names = await workspaceNames(signal);
  if (!names.length) {
    main.append(h('p', { class: 'muted' }, 'No workspace to read.'));
    return;
  }
  const ws = names.includes(parts[0]) ? parts[0] : names[0];
  const view = query.get('view') || '';
  main.append(h('form', { class: 'inline' },
    picker('Workspace', 'ws', names, ws, (w) => { location.hash = `#/jobs/${enc(w)}`; }),
    view ? h('span', {}, `view ${view} `, h('a', { href: `#/jobs/${enc(ws)}` }, '(all views)')) : null));
  const owner = await mayCancel(ws, signal);
  const notice = h('div', { id: 'jobs-notice' });
  const box = h('div', { id: 'jobs' });
  main.append(notice, box);
  const refresh = async () => {
    const q = new URLSearchParams({ limit: '50' });
    if (view) q.set('feature_view', view);
    const { jobs } = await getJSON(`/api/v1/workspaces/${enc(ws)}/jobs?${q}`, signal);
    show(box, jobsTable(ws, jobs, owner, notice, refresh, signal));
    return jobs.some((j) => LIVE.has(j.state));
  };
  const live = await refresh();
  if (live) poll(refresh, signal);
}

// poll refreshes the table while jobs are live, until the page is left.
// One poller per page: polling marks the signal of the page that has one.
const polling = new WeakSet();

function poll(refresh, signal) {
  if (polling.has(signal)) return;
  polling.add(signal);
  const tick = () => {
    if (signal.aborted) return;
    refresh().then((live) => {
      if (live) setTimeout(tick, REFRESH_MS);
      else polling.delete(signal);
    }).catch(() => { if (!signal.aborted) setTimeout(tick, REFRESH_MS); });
  };
  setTimeout(tick, REFRESH_MS);
}

// mayCancel asks the API whether the key may cancel jobs of ws, by
// cancelling a job id that cannot exist: 404 means the owner role (or a
// node without auth), 403 that the key lacks it. The API has no route
// that states a key's roles; this one changes nothing.
async function mayCancel(ws, signal) {
  try {
    await postJSON(`/api/v1/workspaces/${enc(ws)}/jobs/job_console_role_probe/cancel`, undefined, signal);
    return true;
  } catch (err) {
    return err instanceof APIError && err.status === 404;
  }
}

function progress(p) {
  if (!p) return '—';
  const text = `${p.done}${p.total ? ' / ' + p.total : ''} ${p.unit || ''}`;
  return h('span', {}, p.total ? h('progress', { value: p.done, max: p.total }) : null, ' ', text);
}

function jobsTable(ws, jobs, owner, notice, refresh, signal) {
  if (!jobs.length) return h('p', { class: 'muted' }, 'No jobs.');
  return table(['Job', 'Type', 'View', 'Version', 'State', 'Progress', 'Created', 'Started', 'Finished', 'Error', ''],
    jobs.map((j) => h('tr', { 'data-job': j.id },
      h('td', { class: 'mono' }, j.id),
      h('td', {}, j.type),
      h('td', {}, j.feature_view ? h('a', { href: `#/view/${enc(ws)}/${enc(j.feature_view)}` }, j.feature_view) : '—'),
      h('td', { class: 'num' }, dash(j.version)),
      h('td', { class: `state state-${j.state}` }, j.state),
      h('td', {}, progress(j.progress)),
      h('td', {}, fmtTime(j.created_at)),
      h('td', {}, fmtTime(j.started_at)),
      h('td', {}, fmtTime(j.finished_at)),
      h('td', {}, j.error ? h('span', { class: 'state-FAILED' }, j.error) : ''),
      h('td', {}, owner && (j.state === 'PENDING' || j.state === 'RUNNING')
        ? h('button', { class: 'cancel', type: 'button', onclick: () => cancel(ws, j.id, notice, refresh, signal) }, 'Cancel')
        : null))),
    { class: 'jobs' });
}

async function cancel(ws, id, notice, refresh, signal) {
  show(notice);
  try {
    const j = await postJSON(`/api/v1/workspaces/${enc(ws)}/jobs/${enc(id)}/cancel`, undefined, signal);
    show(notice, h('p', { class: 'muted' }, `Job ${j.id}: ${j.state}`));
  } catch (err) {
    if (!signal.aborted) show(notice, errorBox(err));
  }
  if (!signal.aborted && await refresh().catch(() => false)) poll(refresh, signal);
}
