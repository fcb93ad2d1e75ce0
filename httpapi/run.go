package httpapi

import (
	"net/http"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/engine"
)

// POST /api/v1/workspaces/{ws}/feature-views/{name}/run (SPEC §6, "run")
// computes a view over [start_time, end_time) of its source's data, or of
// mock rows, at one aggregation level, and streams the rows as NDJSON
// (engine.DB.Run says what each level answers). A viewer may run: run
// writes nothing. The answer streams as historical answers do (see
// historical.go): Featurelog-Columns lists the columns and their types,
// an error before the first row is an ordinary error response (400 for a
// bad level, times, mock source or mock row; 404 for an unknown
// workspace or view), and an error after it a last line
// {"code", "error", "message"}.

// RunRequest is the body of POST .../feature-views/{name}/run. Mock rows
// map column names to JSON values, converted as the ingest API converts
// them (strings are also parsed for numeric, boolean and array columns,
// as CSV cells).
type RunRequest struct {
	StartTime        time.Time                              `json:"start_time"`
	EndTime          time.Time                              `json:"end_time"`
	AggregationLevel string                                 `json:"aggregation_level"`
	MockSources      map[string][]map[string]jsontext.Value `json:"mock_sources,omitempty"`
}

// engineRequest converts the body to the engine's request; mock values
// stay raw JSON, which the engine decodes with the ingest API's rules.
func (b *RunRequest) engineRequest() *engine.RunRequest {
	req := &engine.RunRequest{Start: b.StartTime, End: b.EndTime, Level: engine.RunLevel(b.AggregationLevel)}
	if b.MockSources != nil {
		req.MockSources = make(map[string][]map[string]any, len(b.MockSources))
	}
	for src, rows := range b.MockSources {
		out := make([]map[string]any, len(rows))
		for i, row := range rows {
			out[i] = make(map[string]any, len(row))
			for k, v := range row {
				out[i][k] = v
			}
		}
		req.MockSources[src] = out
	}
	return req
}

func (s *Server) runView(w http.ResponseWriter, r *http.Request) {
	var body RunRequest
	ws, ok := s.jobsCaller(w, r, auth.Viewer, "run feature views", &body)
	if !ok {
		return
	}
	rc := http.NewResponseController(w)
	defer clearDeadlines(rc)
	st := &stream{w: w, rc: rc}
	if s.opts.Cluster != nil {
		st.finish(r.Context(), s, s.clusterRun(r, st, ws, r.PathValue("name"), body.engineRequest()))
		return
	}
	st.finish(r.Context(), s, s.db.Run(r.Context(), ws, r.PathValue("name"), body.engineRequest(), st))
}
