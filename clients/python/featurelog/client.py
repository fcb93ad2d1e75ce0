"""The featurelog HTTP client."""

import http.client
import json
import time
import urllib.parse

from . import frames
from ._http import Transport
from .errors import Error
from .streams import OutputStream, ndjson_objects
from .values import decode, format_time, to_json
from .vectors import IngestResult, vector, vectors

_ALL_METADATA = {"include_names": True, "include_data_types": True,
                 "include_effective_times": True, "include_serving_status": True}

# MAX_BATCH is the node's limit of request_data items per get-features-batch
# request (SPEC §4); longer lists are sent in several requests.
MAX_BATCH = 1000

# FINAL_STATES are the states a job ends in (SPEC §6).
FINAL_STATES = frozenset(("SUCCESS", "FAILED", "CANCELLED"))


def _q(name):
    return urllib.parse.quote(name, safe="")


def _duration(seconds):
    """Formats seconds as a Go duration ("1.5s")."""
    return ("%.3f" % seconds).rstrip("0").rstrip(".") + "s"


class Client:
    """A client of one featurelog node.

    url is the node's base URL (http://127.0.0.1:8080); api_key, when set,
    is sent as "Authorization: Tecton-key <key>"; timeout is how many
    seconds to wait to connect and for each read of an answer.

    Every method raises featurelog.APIError when the node answers with an
    error, and featurelog.ClientConnectionError when it cannot be reached.
    """

    def __init__(self, url, api_key=None, timeout=60.0):
        self._t = Transport(url, api_key, timeout)

    @property
    def url(self):
        return self._t.url

    def __repr__(self):
        return "featurelog.Client(%r)" % self.url

    # Health.

    def health(self):
        """GET /healthz: {"status": "ok"} once the node serves HTTP."""
        return self._t.call("GET", "/healthz")[2]

    def ready(self):
        """GET /readyz: {"status": "ready"[, "degraded": ...]}; raises
        APIError (503) while the node cannot ingest and read."""
        return self._t.call("GET", "/readyz")[2]

    # Ingest (SPEC §2).

    def ingest(self, workspace, source, records, dry_run=False, idempotency_key=None):
        """Ingests one record (a dict) or a list of records into a push
        source, atomically: all are written or none.

        Values may be Python values (datetimes become RFC 3339; a naive
        datetime is UTC). With an idempotency_key, a repeat of a key the
        node saw in the last 24h returns the first response
        (IngestResult.replayed) and writes nothing. Bad records raise
        APIError (400) with record_errors listing every one.
        """
        if isinstance(records, dict):
            records = [records]
        return self.ingest_sources(workspace, {source: records}, dry_run, idempotency_key)

    def ingest_sources(self, workspace, records_by_source, dry_run=False, idempotency_key=None):
        """Ingests lists of records into several sources in one atomic
        request: records_by_source is {source: [record, ...]}."""
        body = {"workspace_name": workspace, "dry_run": bool(dry_run),
                "records": {src: [{"record": to_json(r)} for r in recs] for src, recs in records_by_source.items()}}
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        _, hdrs, answer = self._t.call("POST", "/ingest", body, headers=headers)
        return IngestResult(answer, hdrs.get("Idempotent-Replayed") == "true")

    # Online serving (SPEC §4).

    def get_features(self, workspace, service, join_keys, as_of=None):
        """Returns the FeatureVector of one entity: join_keys is
        {join key: value}; as_of (a datetime or RFC 3339 string, not
        later than now) reads the vector as of a past time."""
        params = self._serving_params(workspace, service, as_of)
        params["join_key_map"] = to_json(join_keys)
        return vector(self._t.call("POST", "/api/v1/feature-service/get-features", {"params": params})[2])

    def get_features_batch(self, workspace, service, join_keys_list, as_of=None):
        """Returns a FeatureVector per join-key map, in order. Lists longer
        than the node's limit (1000) are sent in several requests; without
        as_of each request reads at its own "now"."""
        keys = list(join_keys_list)
        out = []
        for i in range(0, len(keys), MAX_BATCH):
            params = self._serving_params(workspace, service, as_of)
            params["request_data"] = [{"join_key_map": to_json(k)} for k in keys[i:i + MAX_BATCH]]
            out.extend(vectors(self._t.call("POST", "/api/v1/feature-service/get-features-batch", {"params": params})[2]))
        return out

    @staticmethod
    def _serving_params(workspace, service, as_of):
        params = {"workspace_name": workspace, "feature_service_name": service, "metadata_options": dict(_ALL_METADATA)}
        if as_of is not None:
            params["as_of"] = format_time(as_of)
        return params

    def feature_view(self, workspace, name):
        """Returns a feature view's summary (SPEC §4): its definition,
        record counts and freshness; its transformation and
        feature_definitions as the repo file declares them, its versions
        and its storage."""
        return self._t.call("GET", "/api/v1/workspaces/%s/feature-views/%s" % (_q(workspace), _q(name)))[2]

    def ingest_rate(self, workspace, name, minutes=None):
        """Returns a view's records per minute, counted in memory since
        the node opened: {"interval_seconds": 60, "points": [{"start",
        "records"}, ...]}, oldest first, the last point the current minute.
        minutes is 1 to 1440 (None: the node's default, 60)."""
        path = "/api/v1/workspaces/%s/feature-views/%s/ingest-rate" % (_q(workspace), _q(name))
        if minutes is not None:
            path += "?" + urllib.parse.urlencode({"minutes": minutes})
        return self._t.call("GET", path)[2]

    # Listing (SPEC §8).

    def workspaces(self):
        """Lists the applied workspaces the key holds a role on (every one
        on a node without auth): dicts with name and the counts of
        sources, feature_views and feature_services."""
        return self._t.call("GET", "/api/v1/workspaces")[2]["workspaces"]

    def feature_views(self, workspace):
        """Lists the summaries of a workspace's feature views, in the
        order of its repo file."""
        return self._t.call("GET", "/api/v1/workspaces/%s/feature-views" % _q(workspace))[2]["feature_views"]

    def feature_services(self, workspace):
        """Lists a workspace's feature services, by name: each with its
        features and join keys and their data types, and why it does not
        serve yet (unavailable, None when it serves)."""
        return self._t.call("GET", "/api/v1/workspaces/%s/feature-services" % _q(workspace))[2]["feature_services"]

    def feature_service(self, workspace, name):
        """Describes one feature service, as feature_services does."""
        return self._t.call("GET", "/api/v1/workspaces/%s/feature-services/%s" % (_q(workspace), _q(name)))[2]

    def feature_service_metadata(self, workspace, service):
        """Tecton's feature-service metadata: featureServiceType,
        inputJoinKeys and featureValues with their data types."""
        body = {"params": {"workspace_name": workspace, "feature_service_name": service}}
        return self._t.call("POST", "/api/v1/feature-service/metadata", body)[2]

    # Historical retrieval (SPEC §5).

    def get_features_for_events(self, workspace, service, spine, timestamp_key=None, from_source=False,
                                max_request_bytes=8 << 20):
        """Point-in-time correct features for each spine row.

        spine is a list of dict rows (join keys, a timestamp column, any
        other columns) or a pandas DataFrame. Each output row is the spine
        row followed by "<view>.<feature>": value, the value an online
        read with as_of at the row's timestamp returns. A list gives a
        list of dicts (the spine's own values kept as given, features
        decoded as in get_features); a DataFrame gives a DataFrame (the
        spine's columns and dtypes kept, one feature column each).

        timestamp_key names the timestamp column; it may be left out when
        exactly one column holds RFC 3339 timestamps. Spines larger than
        max_request_bytes of JSON are sent in several requests, answered
        in spine order.
        """
        frame = frames.is_frame(spine)
        rows = frames.rows(spine) if frame else [dict(r) for r in spine]
        if not rows:  # nothing to join; the node refuses a spine without columns
            return spine.copy() if frame else []
        params = {"workspace_name": workspace, "feature_service_name": service, "from_source": bool(from_source)}
        if timestamp_key:
            params["timestamp_key"] = timestamp_key
        columns, answer = [], []
        for chunk in _chunks(rows, max_request_bytes):
            cols, got = self._historical(dict(params, spine=chunk))
            if len(got) != len(chunk):
                raise Error("featurelog: the node answered %d rows for a spine of %d" % (len(got), len(chunk)))
            columns = columns or cols
            answer.extend(got)
        features = [c for c in columns if not c.get("spine")]
        if frame:
            return frames.join(spine, features, answer)
        for row, got in zip(rows, answer):
            for c in features:
                row[c["name"]] = got.get(c["name"])
        return rows

    def get_features_for_range(self, workspace, service, start_time, end_time, entities=None, from_source=False):
        """Range mode (SPEC §5): for each key (of entities, a list of
        join-key maps, or every key with data) and each interval of
        [start_time, end_time) over which its values hold, a row of join
        keys, "_valid_from", "_valid_to" and the features (decoded)."""
        params = {"workspace_name": workspace, "feature_service_name": service, "from_source": bool(from_source),
                  "start_time": format_time(start_time), "end_time": format_time(end_time)}
        if entities is not None:
            params["entities"] = to_json(list(entities))
        return self._historical(params)[1]

    def _historical(self, params):
        """Sends one get-features-for-events request; returns its columns
        (from the Featurelog-Columns header) and its decoded rows."""
        return self._ndjson("POST", "/api/v1/feature-service/get-features-for-events", {"params": params})

    def _ndjson(self, method, path, payload):
        body = json.dumps(payload).encode("utf-8")
        path = self._t.path(path)
        conn, resp = self._t.open(method, path, body, {"Accept": "application/x-ndjson"})
        try:
            columns = json.loads(resp.headers.get("Featurelog-Columns") or "[]")
            types = {c["name"]: c.get("dataType") for c in columns if not c.get("spine")}
            rows = []
            for obj in ndjson_objects(resp, self._t.origin + path):
                for name, t in types.items():
                    if name in obj:
                        obj[name] = decode(obj[name], t)
                rows.append(obj)
            return columns, rows
        except (OSError, http.client.HTTPException) as e:
            raise self._t.connection_error(method, path, e) from e
        finally:
            conn.close()

    def run(self, workspace, view, start_time, end_time, level="full", mock_sources=None):
        """Runs a view over [start_time, end_time) without writing anything
        (SPEC §6 "run"): level "disabled" gives the transformed rows,
        "partial" the tiles' partial aggregates, "full" each key's values
        as of end_time. mock_sources ({source: [row, ...]}) replaces the
        offline data. Returns the rows, values decoded."""
        body = {"start_time": format_time(start_time), "end_time": format_time(end_time), "aggregation_level": level}
        if mock_sources is not None:
            body["mock_sources"] = to_json(mock_sources)
        return self._ndjson("POST", "/api/v1/workspaces/%s/feature-views/%s/run" % (_q(workspace), _q(view)), body)[1]

    # Jobs (SPEC §6).

    def jobs(self, workspace, feature_view=None, type=None, state=None, limit=None):
        """Lists a workspace's jobs, newest first (the node's default limit
        is 100), filtered by feature view, type ("backfill",
        "materialization", "deletion") and state."""
        query = {"feature_view": feature_view, "type": type, "state": state, "limit": limit}
        return self._t.call("GET", "/api/v1/workspaces/%s/jobs" % _q(workspace), query=query)[2]["jobs"]

    def get_job(self, workspace, job_id, wait=None):
        """Returns a job; with wait (seconds) the node answers when the job
        reaches a final state or the wait ends."""
        query = {"wait": _duration(wait)} if wait else None
        path = "/api/v1/workspaces/%s/jobs/%s" % (_q(workspace), _q(job_id))
        t = self._t
        if wait and t.timeout is not None and t.timeout <= wait:
            t = Transport(t.url, t.api_key, wait + 10)  # the node answers only after the wait
        return t.call("GET", path, query=query)[2]

    def wait_job(self, workspace, job_id, timeout=None, poll=25.0):
        """Waits until a job reaches a final state (SUCCESS, FAILED,
        CANCELLED) and returns it; after timeout seconds, returns it as it
        is. It does not raise for a failed job: check job["state"]."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = poll if deadline is None else max(0.0, min(poll, deadline - time.monotonic()))
            job = self.get_job(workspace, job_id, wait=wait or None)
            if job["state"] in FINAL_STATES or (deadline is not None and time.monotonic() >= deadline):
                return job

    def cancel_job(self, workspace, job_id):
        """Cancels a pending or running job and returns it. Cancelling a
        finished job raises APIError (409) whose job attribute is the job."""
        return self._t.call("POST", "/api/v1/workspaces/%s/jobs/%s/cancel" % (_q(workspace), _q(job_id)))[2]

    def materialize(self, workspace, view, start_time, end_time, online=True, offline=True, overwrite=False):
        """Starts a materialization job loading the source's batch rows of
        [start_time, end_time) into the view; returns the job. A range
        overlapping an earlier materialization raises APIError (409, its
        job attribute naming that job) unless overwrite."""
        body = {"start_time": format_time(start_time), "end_time": format_time(end_time),
                "online": bool(online), "offline": bool(offline), "overwrite": bool(overwrite)}
        return self._t.call("POST", "/api/v1/workspaces/%s/feature-views/%s/materialization-jobs" % (_q(workspace), _q(view)), body)[2]

    def delete_keys(self, workspace, view, keys, online=True, offline=True):
        """Starts a deletion job for keys (a list of {join key: value}, each
        with every join key of the view; at most 10,000) and returns it."""
        body = {"keys": to_json(list(keys)), "online": bool(online), "offline": bool(offline)}
        return self._t.call("POST", "/api/v1/workspaces/%s/feature-views/%s/delete-keys" % (_q(workspace), _q(view)), body)[2]

    def deletion_jobs(self, workspace, feature_view=None, state=None, limit=None):
        """The deletion jobs of a workspace (delete_keys' status)."""
        return self.jobs(workspace, feature_view=feature_view, type="deletion", state=state, limit=limit)

    # Definitions.

    def plan(self, content, file="features.yaml"):
        """Returns what applying a repo file (its YAML text) would change:
        {"workspace", "plan", "changed"}."""
        return self._t.call("POST", "/api/v1/plan", {"file": file, "content": content})[2]

    def apply(self, content, file="features.yaml"):
        """Applies a repo file (its YAML text); returns {"workspace",
        "plan", "changed", "rebuilt", "jobs"}, jobs being the backfills it
        started (wait for them with wait_job)."""
        return self._t.call("POST", "/api/v1/apply", {"file": file, "content": content})[2]

    # Output streams (SPEC §7).

    def output_stream(self, workspace, view, start="latest", after=None, sse=False, reconnect=True, read_timeout=60.0):
        """Opens a feature view's output stream and returns an
        OutputStream, an iterator over its records (dicts).

        start is "latest" (records appended after this call), "earliest"
        (the first the log retains), or an offset (that record first);
        after, an offset, resumes right after it (Last-Event-ID) and wins
        over start. sse=True reads server-sent events instead of NDJSON.
        See OutputStream for reconnection."""
        path = "/api/v1/workspaces/%s/feature-views/%s/output-stream" % (_q(workspace), _q(view))
        return OutputStream(self._t, path, start=start, after=after, sse=sse, reconnect=reconnect, read_timeout=read_timeout)


def _chunks(rows, max_bytes):
    """Splits rows into lists whose JSON stays under max_bytes (at least one
    row each), converting their values to JSON-ready ones."""
    chunk, size = [], 0
    for row in rows:
        r = to_json(row)
        n = len(json.dumps(r)) + 1
        if chunk and size + n > max_bytes:
            yield chunk
            chunk, size = [], 0
        chunk.append(r)
        size += n
    if chunk:
        yield chunk
