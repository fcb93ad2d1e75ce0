"""Readers of the node's streamed answers.

NDJSON answers (historical joins, run, output streams) carry one JSON
object per line; an empty line is an output stream's heartbeat. An error
after the answer started ends it with one last line {"code", "error",
"message"}, raised here as an APIError with status 200.

Server-sent events (output streams with Accept: text/event-stream):

    id: <offset>
    event: record            (or "error")
    data: <JSON object>
    <empty line>

and heartbeats ": heartbeat" (a comment) followed by an empty line.
"""

import http.client
import json
import time

from .errors import APIError, is_error_line


def stream_error(obj, url=None):
    return APIError(200, str(obj.get("message")), code=obj.get("code"), body=obj, url=url)


def ndjson_objects(resp, url=None):
    """Yields each JSON object of an NDJSON answer; raises APIError for the
    error line that ends a failed answer. Empty lines are skipped."""
    for line in resp:
        line = line.strip()
        if not line:
            continue
        obj = json.loads(line.decode("utf-8"))
        if is_error_line(obj):
            raise stream_error(obj, url)
        yield obj


def sse_events(resp):
    """Yields (event, id, data) for each server-sent event; comments
    (heartbeats) are skipped. id is None for an event without one."""
    event, ident, data = None, None, []
    for raw in resp:
        line = raw.decode("utf-8").rstrip("\r\n")
        if line == "":
            if data:
                yield event or "message", ident, "\n".join(data)
            event, ident, data = None, None, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
        elif field == "id":
            ident = value


def sse_records(resp, url=None):
    """Yields the output records of an SSE answer; raises APIError for an
    "error" event."""
    for event, _, data in sse_events(resp):
        obj = json.loads(data)
        if event == "error":
            raise stream_error(obj, url)
        if event == "record":
            yield obj


_BROKEN = (OSError, http.client.HTTPException, ValueError)


class OutputStream:
    """Iterates over a feature view's output stream (SPEC §7).

    Created by Client.output_stream, which opens the first connection at
    once: with start="latest" the stream holds every record appended
    after that call returned, and a refusal (unknown view, bad offset,
    401/403) raises there. Iterating yields each output record as a dict
    (its "offset" included), waiting for new ones; it ends only when
    closed, when the node reports an error (APIError), or, with
    reconnect=False, when the connection ends.

    With reconnect=True (the default) a connection that ends or breaks
    without an error (the node restarting, a network failure, a read
    timeout of read_timeout seconds, which the node's heartbeats every
    15s prevent on a live connection) is opened again with Last-Event-ID
    set to the last offset yielded, so no record is missed or repeated;
    before any record it starts again from start. The wait between
    attempts doubles from 0.1s up to 5s; after max_retries connections
    in a row fail to open, the last error is raised.

    Use it as a context manager, or call close(), to end the connection.
    """

    def __init__(self, transport, path, start="latest", after=None, sse=False,
                 reconnect=True, read_timeout=60.0, max_retries=10, sleep=None):
        self._t = transport
        self._path = path
        self._start = start
        self.last_offset = after
        self._sse = sse
        self._reconnect = reconnect
        self._read_timeout = read_timeout
        self._max_retries = max_retries
        self._sleep = sleep or time.sleep
        self._conn = None
        self._resp = None
        self._closed = False
        self._open()

    def _open(self):
        headers = {"Accept": "text/event-stream" if self._sse else "application/x-ndjson"}
        if self.last_offset:
            headers["Last-Event-ID"] = self.last_offset
        query = None if self.last_offset else {"from": self._start}
        target = self._t.path(self._path, query)
        self._url = self._t.origin + target
        self._conn, self._resp = self._t.open("GET", target, headers=headers, timeout=self._read_timeout)

    def close(self):
        """Ends the stream's connection."""
        self._closed = True
        if self._conn is not None:
            self._conn.close()
            self._conn = self._resp = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __iter__(self):
        backoff = 0.1
        while not self._closed:
            got = False
            try:
                for rec in self._records():
                    got = True
                    self.last_offset = rec.get("offset", self.last_offset)
                    yield rec
                if self._closed:
                    return
            except APIError:
                self.close()
                raise
            except _BROKEN:
                if self._closed:
                    return
                if not self._reconnect:
                    self.close()
                    raise
            if not self._reconnect:
                self.close()
                return
            if got:
                backoff = 0.1
            try:
                backoff = self._reopen(backoff)
            except BaseException:
                self.close()
                raise

    def _records(self):
        if self._resp is None:
            return iter(())
        if self._sse:
            return sse_records(self._resp, self._url)
        return ndjson_objects(self._resp, self._url)

    def _reopen(self, backoff):
        """Opens the next connection, retrying; returns the next backoff."""
        if self._conn is not None:
            self._conn.close()
            self._conn = self._resp = None
        failures = 0
        while not self._closed:
            self._sleep(backoff)
            backoff = min(2 * backoff, 5.0)
            try:
                self._open()
                return backoff
            except APIError:
                raise
            except OSError:
                failures += 1
                if failures >= self._max_retries:
                    raise
        return backoff
