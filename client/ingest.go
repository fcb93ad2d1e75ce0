package client

import (
	"context"
	"encoding/json"
	"net/http"
)

// IngestRequest is a Stream Ingest API request (SPEC §2).
type IngestRequest struct {
	// Workspace is the workspace of the sources.
	Workspace string
	// Records maps a push source's name to its records, each a map from
	// column name to value (string, number, bool, nil, time.Time,
	// json.Number, []any, ...; Int64 columns may take their value as a
	// string to stay exact).
	Records map[string][]map[string]any
	// DryRun validates and counts without writing anything.
	DryRun bool
	// IdempotencyKey, when set, is sent as the Idempotency-Key header: a
	// repeat of a key the node saw in the last 24h returns the first
	// response and writes nothing, so a retry is safe.
	IdempotencyKey string
}

// MarshalJSON encodes the request body:
// {"workspace_name", "dry_run", "records": {src: [{"record": {...}}]}}.
func (r IngestRequest) MarshalJSON() ([]byte, error) {
	type wrapped struct {
		Record map[string]any `json:"record"`
	}
	recs := make(map[string][]wrapped, len(r.Records))
	for src, rows := range r.Records {
		w := make([]wrapped, len(rows))
		for i, row := range rows {
			w[i].Record = row
		}
		recs[src] = w
	}
	return json.Marshal(struct {
		Workspace string               `json:"workspace_name"`
		DryRun    bool                 `json:"dry_run"`
		Records   map[string][]wrapped `json:"records"`
	}{r.Workspace, r.DryRun, recs})
}

// IngestResponse is the node's answer to an accepted ingest request.
type IngestResponse struct {
	WorkspaceName string `json:"workspaceName"`
	IngestMetrics struct {
		FeatureViewIngestMetrics []FeatureViewIngestMetrics `json:"featureViewIngestMetrics"`
	} `json:"ingestMetrics"`
}

// FeatureViewIngestMetrics counts the records a request gave one view.
// The API encodes the counts as strings (Tecton's int64); they are
// decoded to numbers here.
type FeatureViewIngestMetrics struct {
	FeatureViewName          string `json:"featureViewName"`
	OnlineRecordIngestCount  int64  `json:"onlineRecordIngestCount,string"`
	OfflineRecordIngestCount int64  `json:"offlineRecordIngestCount,string"`
}

// Ingest sends records (POST /ingest). With a 200 every record is
// durable and visible to reads that start afterwards. A refusal is an
// *Error: invalid records list every bad record in RecordErrors, a
// saturated node answers 429 with RetryAfter.
func (c *Client) Ingest(ctx context.Context, req IngestRequest) (*IngestResponse, error) {
	var h http.Header
	if req.IdempotencyKey != "" {
		h = http.Header{"Idempotency-Key": {req.IdempotencyKey}}
	}
	var out IngestResponse
	if err := c.call(ctx, http.MethodPost, "/ingest", req, &out, h); err != nil {
		return nil, err
	}
	return &out, nil
}
