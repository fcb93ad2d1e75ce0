// Pieces the pages share: workspace and view pickers.

import { getJSON, enc } from './api.js';
import { h } from './dom.js';

export async function workspaceNames(signal) {
  const { workspaces } = await getJSON('/api/v1/workspaces', signal);
  return workspaces.map((w) => w.name);
}

export async function viewNames(ws, signal) {
  const { feature_views: views } = await getJSON(`/api/v1/workspaces/${enc(ws)}/feature-views`, signal);
  return views.map((v) => v.name);
}

// picker is a labelled select of names; onChange gets the chosen name.
export function picker(label, id, names, current, onChange) {
  const sel = h('select', { id, onchange: () => onChange(sel.value) },
    names.map((n) => h('option', { value: n, selected: n === current }, n)));
  return h('label', {}, label, sel);
}
