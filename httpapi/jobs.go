package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/engine"
)

// The jobs API (SPEC §6): viewers read jobs, owners start and cancel
// them.

// JobsResponse answers GET .../jobs.
type JobsResponse struct {
	Jobs []engine.Job `json:"jobs"`
}

// MaterializationRequest is the body of POST
// .../feature-views/{name}/materialization-jobs. Online and Offline
// default to true.
type MaterializationRequest struct {
	StartTime time.Time `json:"start_time"`
	EndTime   time.Time `json:"end_time"`
	Online    *bool     `json:"online,omitempty"`
	Offline   *bool     `json:"offline,omitempty"`
	Overwrite bool      `json:"overwrite,omitempty"`
}

// checkQuery refuses query parameters other than allowed, naming them.
func checkQuery(q url.Values, allowed ...string) error {
	var unknown []string
	for k := range q {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			unknown = append(unknown, strconv.Quote(k))
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	known := "none"
	if len(allowed) > 0 {
		known = strings.Join(allowed, ", ")
	}
	return paramError("unknown query parameter(s) %s (known: %s)", strings.Join(unknown, ", "), known)
}

// jobsCaller authenticates a jobs request, reads its body into into (when
// not nil) and checks role on the workspace {ws}; it writes the error
// response itself.
func (s *Server) jobsCaller(w http.ResponseWriter, r *http.Request, role auth.Role, action string, into any) (string, bool) {
	c, ok := s.admin(w, r, into)
	if !ok {
		return "", false
	}
	ws := r.PathValue("ws")
	if err := c.require(role, action)(ws); err != nil {
		s.writeEngineError(w, err)
		return "", false
	}
	return ws, true
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) {
	ws, ok := s.jobsCaller(w, r, auth.Viewer, "read jobs", nil)
	if !ok {
		return
	}
	q := r.URL.Query()
	if err := checkQuery(q, "feature_view", "type", "state", "limit"); err != nil {
		s.writeEngineError(w, err)
		return
	}
	f := engine.JobFilter{FeatureView: q.Get("feature_view"), Type: engine.JobType(q.Get("type")), State: engine.JobState(q.Get("state"))}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			s.writeEngineError(w, paramError("limit %q must be a whole number from 1 to 1000", l))
			return
		}
		f.Limit = n
	}
	if s.opts.Cluster != nil {
		s.clusterListJobs(w, r, ws, f)
		return
	}
	jobs, err := s.db.Jobs(ws, f)
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	writeJSONValue(w, http.StatusOK, JobsResponse{Jobs: jobs})
}

// maxJobWait bounds GET .../jobs/{id}?wait=, below the server's write
// timeout.
func (s *Server) maxJobWait() time.Duration {
	return max(time.Second, min(5*time.Minute, s.opts.WriteTimeout-5*time.Second))
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	ws, ok := s.jobsCaller(w, r, auth.Viewer, "read jobs", nil)
	if !ok {
		return
	}
	q := r.URL.Query()
	if err := checkQuery(q, "wait"); err != nil {
		s.writeEngineError(w, err)
		return
	}
	id := r.PathValue("id")
	var wait time.Duration
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > s.maxJobWait() {
			s.writeEngineError(w, paramError("wait %q must be a duration from 0s to %s, such as 30s", v, s.maxJobWait()))
			return
		}
		wait = d
	}
	if s.opts.Cluster != nil {
		s.clusterGetJob(w, r, ws, id, wait)
		return
	}
	var j engine.Job
	var err error
	if wait > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		j, err = s.db.WaitJob(ctx, ws, id)
		cancel()
	} else {
		j, err = s.db.Job(ws, id)
	}
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	writeJSONValue(w, http.StatusOK, j)
}

func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request) {
	ws, ok := s.jobsCaller(w, r, auth.Owner, "cancel jobs", nil)
	if !ok {
		return
	}
	if s.opts.Cluster != nil {
		s.clusterCancelJob(w, r, ws, r.PathValue("id"))
		return
	}
	j, err := s.db.CancelJob(ws, r.PathValue("id"))
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	writeJSONValue(w, http.StatusOK, j)
}

func (s *Server) materialize(w http.ResponseWriter, r *http.Request) {
	var req MaterializationRequest
	ws, ok := s.jobsCaller(w, r, auth.Owner, "start materialization jobs", &req)
	if !ok {
		return
	}
	mr := engine.MaterializeRequest{Start: req.StartTime, End: req.EndTime, Online: true, Offline: true, Overwrite: req.Overwrite}
	if req.Online != nil {
		mr.Online = *req.Online
	}
	if req.Offline != nil {
		mr.Offline = *req.Offline
	}
	if s.opts.Cluster != nil {
		s.clusterMaterialize(w, r, ws, r.PathValue("name"), mr)
		return
	}
	j, err := s.db.Materialize(ws, r.PathValue("name"), mr)
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	writeJSONValue(w, http.StatusCreated, j)
}
