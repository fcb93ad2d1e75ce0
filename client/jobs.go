package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Job is a long-running piece of work (SPEC §6): a backfill,
// materialization or deletion.
type Job struct {
	ID          string     `json:"id"`
	Type        string     `json:"type"` // backfill, materialization or deletion
	Workspace   string     `json:"workspace"`
	FeatureView string     `json:"feature_view"`
	Version     int        `json:"version"`
	State       string     `json:"state"` // PENDING, RUNNING, SUCCESS, FAILED, MANUAL_CANCELLATION_REQUESTED, CANCELLED
	CreatedAt   time.Time  `json:"created_at"`
	StartedAt   *time.Time `json:"started_at"`
	FinishedAt  *time.Time `json:"finished_at"`
	Progress    struct {
		Done  int64  `json:"done"`
		Total int64  `json:"total"`
		Unit  string `json:"unit"`
	} `json:"progress"`
	// Params are what the job was started with, as the node reports them.
	Params map[string]any `json:"params"`
	// Result is what a finished job did, as the node reports it (log
	// records and batch rows taken, segments written; for deletions keys
	// found, views changed, records erased); nil until it ends.
	Result map[string]any `json:"result"`
	// Error says what failed and where; nil unless State is FAILED.
	Error *string `json:"error"`
	Runs  int     `json:"runs,omitempty"`
}

// Final reports whether the job has ended: SUCCESS, FAILED or CANCELLED.
func (j *Job) Final() bool {
	return j.State == "SUCCESS" || j.State == "FAILED" || j.State == "CANCELLED"
}

// JobFilter selects jobs for ListJobs; zero fields match all.
type JobFilter struct {
	FeatureView string // the view a job was started on
	Type        string // backfill, materialization or deletion
	State       string
	Limit       int // at most this many, newest first; 0: the node's default (100)
}

func jobsPath(ws string, rest ...string) string {
	return apiPath(append([]string{"workspaces", ws, "jobs"}, rest...)...)
}

// ListJobs lists a workspace's jobs, newest first
// (GET /api/v1/workspaces/{ws}/jobs).
func (c *Client) ListJobs(ctx context.Context, workspace string, f JobFilter) ([]Job, error) {
	q := url.Values{}
	for k, v := range map[string]string{"feature_view": f.FeatureView, "type": f.Type, "state": f.State} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Limit != 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	path := jobsPath(workspace)
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out struct {
		Jobs []Job `json:"jobs"`
	}
	if err := c.call(ctx, http.MethodGet, path, nil, &out, nil); err != nil {
		return nil, err
	}
	return out.Jobs, nil
}

// GetJob returns one job (GET /api/v1/workspaces/{ws}/jobs/{id}).
func (c *Client) GetJob(ctx context.Context, workspace, id string) (*Job, error) {
	return c.WaitJob(ctx, workspace, id, 0)
}

// WaitJob returns a job once it has ended or wait is over, whichever
// comes first (?wait=); with wait 0 it returns at once. The node bounds
// one wait; call again until Final. The client's own timeout is
// extended by wait.
func (c *Client) WaitJob(ctx context.Context, workspace, id string, wait time.Duration) (*Job, error) {
	path := jobsPath(workspace, id)
	cc := c
	if wait > 0 {
		path += "?wait=" + wait.String()
		if c.hc.Timeout > 0 {
			hc := *c.hc
			hc.Timeout += wait
			cc = &Client{base: c.base, apiKey: c.apiKey, hc: &hc, userAgent: c.userAgent}
		}
	}
	var j Job
	if err := cc.call(ctx, http.MethodGet, path, nil, &j, nil); err != nil {
		return nil, err
	}
	return &j, nil
}

// CancelJob cancels a pending or running job
// (POST /api/v1/workspaces/{ws}/jobs/{id}/cancel). A finished job is a
// 409 *Error; its effects stay.
func (c *Client) CancelJob(ctx context.Context, workspace, id string) (*Job, error) {
	var j Job
	if err := c.call(ctx, http.MethodPost, jobsPath(workspace, id, "cancel"), nil, &j, nil); err != nil {
		return nil, err
	}
	return &j, nil
}

// MaterializationRequest loads a view's batch rows with event time in
// [StartTime, EndTime).
type MaterializationRequest struct {
	StartTime time.Time `json:"start_time"`
	EndTime   time.Time `json:"end_time"`
	Online    *bool     `json:"online,omitempty"`  // default true
	Offline   *bool     `json:"offline,omitempty"` // default true
	// Overwrite replaces the rows an earlier materialization of an
	// overlapping range loaded; without it such a range is a 409.
	Overwrite bool `json:"overwrite,omitempty"`
}

// Materialize starts a materialization job
// (POST /api/v1/workspaces/{ws}/feature-views/{name}/materialization-jobs).
func (c *Client) Materialize(ctx context.Context, workspace, view string, req MaterializationRequest) (*Job, error) {
	var j Job
	if err := c.call(ctx, http.MethodPost, apiPath("workspaces", workspace, "feature-views", view, "materialization-jobs"), req, &j, nil); err != nil {
		return nil, err
	}
	return &j, nil
}

// DeleteKeysRequest deletes entity keys from a view (SPEC §6 delete_keys).
type DeleteKeysRequest struct {
	// Keys hold every join key of the view each, at most 10,000. An
	// Int64 key may be given as a string to stay exact.
	Keys    []map[string]any `json:"keys"`
	Online  *bool            `json:"online,omitempty"`  // default true
	Offline *bool            `json:"offline,omitempty"` // default true; needs Online
}

// DeleteKeys starts a deletion job
// (POST /api/v1/workspaces/{ws}/feature-views/{name}/delete-keys).
func (c *Client) DeleteKeys(ctx context.Context, workspace, view string, req DeleteKeysRequest) (*Job, error) {
	if req.Keys == nil {
		req.Keys = []map[string]any{}
	}
	var j Job
	if err := c.call(ctx, http.MethodPost, apiPath("workspaces", workspace, "feature-views", view, "delete-keys"), req, &j, nil); err != nil {
		return nil, err
	}
	return &j, nil
}
