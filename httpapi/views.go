package httpapi

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/go-json-experiment/json/v1"

	"github.com/featurelog/featurelog/engine"
)

// What a feature view's summary adds for the console
// (docs/console-api-notes.md), and its ingest rate:
//
//	"transformation":      null or {"columns": {"<name>": "<expression>", ...}, "filter": "<expression>" or null}
//	"feature_definitions": [{"name", "dataType", "function" (null: attribute), "column",
//	                         "time_window" ("1h", "lifetime", {"size", "offset"}; null: attribute),
//	                         and "n", "percentile", "precision" when the function has them}]
//	"versions":            [{"version", "created_at", "serving", "job"}], oldest first
//	"storage":             {"segments", "segment_bytes", "memtable_records", "memtable_bytes"}
//
//	GET /api/v1/workspaces/{ws}/feature-views/{name}/ingest-rate[?minutes=N]
//	    {"interval_seconds": 60, "points": [{"start": "2026-03-01T12:00:00Z", "records": 5}, ...]}

// transformJSON spells a transform as the repo file does; its columns
// keep their declared order, in which each may read the earlier ones.
func transformJSON(t *engine.TransformDefinition) json.RawMessage {
	if t == nil {
		return json.RawMessage("null")
	}
	b := []byte(`{"columns":{`)
	for i, c := range t.Columns {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, c.Name)
		b = append(b, ':')
		b = appendString(b, c.Expr)
	}
	b = append(b, `},"filter":`...)
	if t.Filter == "" {
		b = append(b, "null"...)
	} else {
		b = appendString(b, t.Filter)
	}
	return append(b, '}')
}

func featureDefsJSON(defs []engine.FeatureDefinition) []map[string]any {
	out := make([]map[string]any, len(defs))
	for i, f := range defs {
		m := map[string]any{"name": f.Name, "dataType": dataTypeJSON(f.Type), "column": f.Column, "function": nil, "time_window": nil}
		if f.Function != "" {
			m["function"] = f.Function
			m["time_window"] = f.Window
			if f.Offset != "" {
				m["time_window"] = map[string]string{"size": f.Window, "offset": f.Offset}
			}
		}
		if f.N > 0 {
			m["n"] = f.N
		}
		if f.Percentile != nil {
			m["percentile"] = *f.Percentile
		}
		if f.Precision > 0 {
			m["precision"] = f.Precision
		}
		out[i] = m
	}
	return out
}

func versionsJSON(vs []engine.VersionInfo) []map[string]any {
	out := make([]map[string]any, len(vs))
	for i, v := range vs {
		out[i] = map[string]any{"version": v.Version, "created_at": optTime(v.CreatedAt), "serving": v.Serving, "job": jobRef(v.Job)}
	}
	return out
}

func storageJSON(s engine.ViewStorage) map[string]any {
	return map[string]any{"segments": s.Segments, "segment_bytes": s.SegmentBytes,
		"memtable_records": s.MemtableRecords, "memtable_bytes": s.MemtableBytes}
}

// ingestRate serves GET /api/v1/workspaces/{ws}/feature-views/{name}/ingest-rate:
// the records live ingest applied online to the view in each of the
// last minutes (default 60), oldest first, ending with the current one.
// Viewer on {ws}, like the view's summary.
func (s *Server) ingestRate(w http.ResponseWriter, r *http.Request) {
	ws, ok := s.viewerOf(w, r, "read feature views")
	if !ok {
		return
	}
	minutes, err := rateMinutes(r.URL.Query())
	var pts []engine.RatePoint
	if err == nil {
		pts, err = s.db.IngestRate(ws, r.PathValue("name"), minutes)
	}
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	if s.opts.Cluster != nil {
		if err := s.clusterRate(r, ws, r.PathValue("name"), pts); err != nil { // the partitions' counts, summed (cluster_views.go)
			writeUnavailable(w, err)
			return
		}
	}
	b := make([]byte, 0, 48+len(pts)*52)
	b = append(b, `{"interval_seconds":60,"points":[`...)
	for i, p := range pts {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"start":`...)
		b = appendTime(b, p.Start)
		b = append(b, `,"records":`...)
		b = strconv.AppendInt(b, p.Records, 10)
		b = append(b, '}')
	}
	writeJSONBytes(w, http.StatusOK, append(b, "]}"...))
}

// rateMinutes reads ?minutes=N (1 to engine.MaxIngestRateMinutes), the
// only query parameter of the ingest rate.
func rateMinutes(q url.Values) (int, error) {
	if err := checkQuery(q, "minutes"); err != nil {
		return 0, err
	}
	vals := q["minutes"]
	switch {
	case len(vals) == 0:
		return engine.DefaultIngestRateMinutes, nil
	case len(vals) > 1:
		return 0, paramError("query parameter minutes is given %d times; give it once", len(vals))
	}
	n, err := strconv.Atoi(vals[0])
	if err != nil || n < 1 || n > engine.MaxIngestRateMinutes {
		return 0, paramError("query parameter minutes=%q must be a whole number from 1 to %d (default %d)",
			vals[0], engine.MaxIngestRateMinutes, engine.DefaultIngestRateMinutes)
	}
	return n, nil
}
