// Calls to the node's public HTTP API (api/openapi.yaml). The API key is
// kept in this tab's sessionStorage and sent in the Authorization header
// only: never in a URL. Without a key (a node run with --no-auth) no
// header is sent.

const KEY = 'featurelog.apiKey';

export function apiKey() { return sessionStorage.getItem(KEY) || ''; }

export function setAPIKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

// APIError is an answer other than 2xx: its message is the API's own,
// as the API states it.
export class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
  toString() { return `HTTP ${this.status}: ${this.message}`; }
}

function headers(extra = {}) {
  const h = { ...extra };
  const key = apiKey();
  if (key) h.Authorization = 'Bearer ' + key;
  return h;
}

// errorMessage reads an error answer in either of the API's shapes:
// {"code", "error", "message"} or the ingest API's {"requestError":
// {"errorMessage"}} and {"recordErrors": [...]}.
async function errorMessage(resp) {
  const text = await resp.text();
  try {
    const b = JSON.parse(text);
    if (b.message) return b.message;
    if (b.error) return b.error;
    if (b.requestError) return b.requestError.errorMessage;
    if (b.recordErrors) return b.recordErrors.map((e) => e.errorMessage).join('\n');
  } catch { /* not JSON: the text as it came */ }
  return text || resp.statusText;
}

async function call(method, path, body, extra = {}, signal) {
  const init = { method, headers: headers(extra), signal };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  const resp = await fetch(path, init);
  if (!resp.ok) throw new APIError(resp.status, await errorMessage(resp));
  return resp;
}

export async function getJSON(path, signal) {
  return (await call('GET', path, undefined, {}, signal)).json();
}

export async function postJSON(path, body, signal) {
  return (await call('POST', path, body, {}, signal)).json();
}

// postNDJSON posts a JSON body and returns the answer's NDJSON lines as
// objects. An error line that ends a stream ({"code", "error", ...}) is
// thrown.
export async function postNDJSON(path, body, signal) {
  const text = await (await call('POST', path, body, {}, signal)).text();
  const rows = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const row = JSON.parse(line);
    if (row.code !== undefined && row.error !== undefined && Object.keys(row).length <= 3) {
      throw new APIError(500, row.message || row.error);
    }
    rows.push(row);
  }
  return rows;
}

// follow reads an NDJSON stream (GET), calling onLine with each object
// as it arrives and onOpen once the answer's headers came. It returns
// when the stream ends or signal aborts. EventSource cannot send an
// Authorization header, so this is fetch with a stream reader.
export async function follow(path, { onOpen, onLine, signal }) {
  const resp = await call('GET', path, undefined, { Accept: 'application/x-ndjson' }, signal);
  if (onOpen) onOpen();
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.trim()) onLine(JSON.parse(line)); // empty lines are heartbeats
    }
  }
}

export const enc = encodeURIComponent;
