// The console's entry point: the API key form and hash routing
// (#/workspaces, #/view/{ws}/{name}, #/lookup, #/jobs/{ws}, #/stream/{ws}/{view}).

import { apiKey, setAPIKey } from './api.js';
import { errorBox, h, show } from './dom.js';
import * as workspaces from './workspaces.js';
import * as view from './view.js';
import * as lookup from './lookup.js';
import * as jobs from './jobs.js';
import * as stream from './stream.js';

const pages = { workspaces, view, lookup, jobs, stream };
const main = document.getElementById('page');
let current = null; // the AbortController of the page shown

function parseHash() {
  const [path, q] = location.hash.replace(/^#/, '').split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { name: parts[0] || 'workspaces', parts: parts.slice(1), query: new URLSearchParams(q || '') };
}

async function route() {
  if (current) current.abort(); // ends the old page's streams and polls
  current = new AbortController();
  const { signal } = current;
  const { name, parts, query } = parseHash();
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.page === name);
  const page = pages[name];
  if (!page) {
    show(main, errorBox(`No page "${name}": use the links above.`));
    return;
  }
  document.body.dataset.page = name;
  document.body.dataset.ready = 'false';
  show(main);
  try {
    await page.render(main, { parts, query, signal });
  } catch (err) {
    if (signal.aborted) return;
    main.append(errorBox(err));
    if (err.status === 401) main.append(h('p', {}, apiKey()
      ? 'The node refused this key: enter another one above.'
      : 'This node needs an API key: enter one above (a fresh `featurelog serve` prints its first one). It is kept in this tab only.'));
  }
  if (!signal.aborted) document.body.dataset.ready = 'true';
}

function keyStatus() {
  document.getElementById('key-status').textContent = apiKey() ? 'key set for this tab' : 'no key (a --no-auth node needs none)';
}

document.getElementById('key-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = document.getElementById('key-input');
  setAPIKey(input.value.trim());
  input.value = '';
  keyStatus();
  route();
});
document.getElementById('key-forget').addEventListener('click', () => {
  setAPIKey('');
  keyStatus();
  route();
});
window.addEventListener('hashchange', route);
keyStatus();
route();
