package client

import (
	"context"
	"net/http"
	"time"
)

// FeatureView is a feature view's summary (SPEC §4).
type FeatureView struct {
	Name                string            `json:"name"`
	Description         string            `json:"description"`
	Owner               string            `json:"owner"`
	Source              string            `json:"source"` // the source the view reads
	Tags                map[string]string `json:"tags"`
	Entities            []string          `json:"entities"`
	JoinKeys            []string          `json:"join_keys"`
	Features            []string          `json:"features"`
	TimestampField      string            `json:"timestamp_field"`
	AggregationInterval string            `json:"aggregation_interval"` // "continuous" or a duration
	TTL                 string            `json:"ttl"`                  // a duration such as "7d"; empty when none
	BatchSchedule       string            `json:"batch_schedule"`
	FeatureStartTime    *time.Time        `json:"feature_start_time"`
	CreatedAt           *time.Time        `json:"created_at"`
	Version             int               `json:"version"`
	Online              bool              `json:"online"`
	Offline             bool              `json:"offline"`
	OnlineRecordCount   int64             `json:"online_record_count"`  // since the node opened
	OfflineRecordCount  int64             `json:"offline_record_count"` // since the node opened
	// Freshness is the event time of the newest record applied; nil if none.
	Freshness        *time.Time `json:"freshness"`
	EntityKeysOnline int        `json:"entity_keys_online"`
	// ServingVersion is the version that serves while Job builds this one
	// (0: none); Job is empty when this version serves.
	ServingVersion int    `json:"serving_version"`
	Job            string `json:"job"`
}

// FeatureView returns a view's summary
// (GET /api/v1/workspaces/{ws}/feature-views/{name}).
func (c *Client) FeatureView(ctx context.Context, workspace, name string) (*FeatureView, error) {
	var out FeatureView
	if err := c.call(ctx, http.MethodGet, apiPath("workspaces", workspace, "feature-views", name), nil, &out, nil); err != nil {
		return nil, err
	}
	return &out, nil
}
