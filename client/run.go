package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// RunRequest computes a view over [StartTime, EndTime) of its source's
// data, or of mock rows, writing nothing (SPEC §6 run).
type RunRequest struct {
	StartTime time.Time `json:"start_time"`
	EndTime   time.Time `json:"end_time"`
	// AggregationLevel is "disabled" (the transformed rows), "partial"
	// (one row per key and tile) or "full" (the features as of EndTime).
	AggregationLevel string `json:"aggregation_level"`
	// MockSources maps the view's source name to rows used instead of its
	// data; values convert as the ingest API converts them.
	MockSources map[string][]map[string]any `json:"mock_sources,omitempty"`
}

// Run runs a feature view on the node
// (POST /api/v1/workspaces/{ws}/feature-views/{name}/run). Read the rows
// as GetFeaturesForEvents's; every column has a DataType.
func (c *Client) Run(ctx context.Context, workspace, view string, req RunRequest) (*Rows, error) {
	body := struct {
		RunRequest
		StartTime string `json:"start_time"`
		EndTime   string `json:"end_time"`
	}{req, req.StartTime.UTC().Format(time.RFC3339Nano), req.EndTime.UTC().Format(time.RFC3339Nano)}
	data, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("client: encoding the run request: %w", err)
	}
	hr, err := c.newRequest(ctx, http.MethodPost, apiPath("workspaces", workspace, "feature-views", view, "run"), bytes.NewReader(data), "application/json")
	if err != nil {
		return nil, err
	}
	return c.openRows(hr, nil)
}
