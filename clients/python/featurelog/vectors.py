"""Answers of the online serving API (SPEC §4) as Python objects."""

from .values import decode


class FeatureVector:
    """One entity's feature vector, in the service's declared order.

    Attributes:
        names: the served names, "<view>.<feature>".
        values: the values, decoded (int64 as int; timestamps stay
            RFC 3339 strings; missing values None).
        data_types: each feature's data type, {"type": "int64"}, ...
        effective_times: each value's effective time (RFC 3339) or None.
        statuses: each value's serving status ("PRESENT", "MISSING_DATA").
        raw: the values as the API encoded them.
    """

    __slots__ = ("names", "values", "data_types", "effective_times", "statuses", "raw")

    def __init__(self, names, raw, data_types, effective_times, statuses):
        self.names = names
        self.raw = raw
        self.data_types = data_types
        self.values = [decode(v, t) for v, t in zip(raw, data_types)]
        self.effective_times = effective_times
        self.statuses = statuses

    def to_dict(self):
        """Returns {name: value} in the service's order."""
        return dict(zip(self.names, self.values))

    def __getitem__(self, name):
        """The value of the feature named name ("<view>.<feature>")."""
        try:
            return self.values[self.names.index(name)]
        except ValueError:
            raise KeyError(name) from None

    def __len__(self):
        return len(self.values)

    def __repr__(self):
        return "FeatureVector(%r)" % (self.to_dict(),)


def _meta(answer):
    return (answer.get("metadata") or {}).get("features") or []


def vector(answer):
    """Builds the FeatureVector of a get-features answer (asked with every
    metadata option)."""
    meta = _meta(answer)
    raw = answer["result"]["features"]
    return FeatureVector([m.get("name") for m in meta], raw, [m.get("dataType") for m in meta],
                         [m.get("effectiveTime") for m in meta], [m.get("status") for m in meta])


def vectors(answer):
    """Builds the FeatureVectors of a get-features-batch answer, whose
    metadata lists each feature's per-row effective times and statuses."""
    meta = _meta(answer)
    names = [m.get("name") for m in meta]
    types = [m.get("dataType") for m in meta]
    out = []
    for i, row in enumerate(answer["result"]):
        times = [_at(m.get("effectiveTime"), i) for m in meta]
        statuses = [_at(m.get("status"), i) for m in meta]
        out.append(FeatureVector(names, row["features"], types, times, statuses))
    return out


def _at(values, i):
    return values[i] if isinstance(values, list) and i < len(values) else None


class IngestResult:
    """The answer of an ingest request (SPEC §2).

    Attributes:
        workspace: the workspace name.
        metrics: {feature view: {"online": int, "offline": int}}, the
            records each view applied and kept in the offline log.
        replayed: True when the node answered a repeated Idempotency-Key
            with the first response and wrote nothing.
        raw: the answer as the API sent it.
    """

    __slots__ = ("workspace", "metrics", "replayed", "raw")

    def __init__(self, raw, replayed):
        self.raw = raw
        self.replayed = replayed
        self.workspace = raw.get("workspaceName")
        self.metrics = {}
        for m in (raw.get("ingestMetrics") or {}).get("featureViewIngestMetrics") or []:
            self.metrics[m["featureViewName"]] = {"online": int(m.get("onlineRecordIngestCount", "0")),
                                                  "offline": int(m.get("offlineRecordIngestCount", "0"))}

    def __repr__(self):
        return "IngestResult(workspace=%r, metrics=%r, replayed=%r)" % (self.workspace, self.metrics, self.replayed)
