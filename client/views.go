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

// Workspace is an applied workspace, with how many objects it holds.
type Workspace struct {
	Name            string `json:"name"`
	Sources         int    `json:"sources"`
	FeatureViews    int    `json:"feature_views"`
	FeatureServices int    `json:"feature_services"`
}

// ListWorkspaces lists the workspaces the key holds a role on, by name
// (GET /api/v1/workspaces).
func (c *Client) ListWorkspaces(ctx context.Context) ([]Workspace, error) {
	var out struct {
		Workspaces []Workspace `json:"workspaces"`
	}
	if err := c.call(ctx, http.MethodGet, apiPath("workspaces"), nil, &out, nil); err != nil {
		return nil, err
	}
	return out.Workspaces, nil
}

// ListFeatureViews returns the summaries of a workspace's views, in the
// order of its repo file (GET /api/v1/workspaces/{ws}/feature-views).
func (c *Client) ListFeatureViews(ctx context.Context, workspace string) ([]FeatureView, error) {
	var out struct {
		FeatureViews []FeatureView `json:"feature_views"`
	}
	if err := c.call(ctx, http.MethodGet, apiPath("workspaces", workspace, "feature-views"), nil, &out, nil); err != nil {
		return nil, err
	}
	return out.FeatureViews, nil
}

// FeatureService describes a feature service.
type FeatureService struct {
	Name                 string   `json:"name"`
	Description          string   `json:"description"`
	OnlineServingEnabled bool     `json:"online_serving_enabled"`
	FeatureViews         []string `json:"feature_views"` // the views its features come from
	// Features are the served features, <view>.<feature>, in order.
	Features []NamedType `json:"features"`
	// JoinKeys are the keys a read gives, with their types.
	JoinKeys []NamedType `json:"join_keys"`
	// Unavailable says why the service does not serve yet (a view's
	// first version being backfilled); empty when it serves.
	Unavailable string `json:"unavailable"`
}

// NamedType is a feature or join key with its type.
type NamedType struct {
	Name     string   `json:"name"`
	DataType DataType `json:"dataType"`
}

// ListFeatureServices returns a workspace's services, by name
// (GET /api/v1/workspaces/{ws}/feature-services).
func (c *Client) ListFeatureServices(ctx context.Context, workspace string) ([]FeatureService, error) {
	var out struct {
		FeatureServices []FeatureService `json:"feature_services"`
	}
	if err := c.call(ctx, http.MethodGet, apiPath("workspaces", workspace, "feature-services"), nil, &out, nil); err != nil {
		return nil, err
	}
	return out.FeatureServices, nil
}

// FeatureService returns one service
// (GET /api/v1/workspaces/{ws}/feature-services/{name}).
func (c *Client) FeatureService(ctx context.Context, workspace, name string) (*FeatureService, error) {
	var out FeatureService
	if err := c.call(ctx, http.MethodGet, apiPath("workspaces", workspace, "feature-services", name), nil, &out, nil); err != nil {
		return nil, err
	}
	return &out, nil
}

// FeatureServiceMetadata is Tecton's description of a service: what a
// read must give and what it returns.
type FeatureServiceMetadata struct {
	FeatureServiceType      string      `json:"featureServiceType"`
	InputJoinKeys           []NamedType `json:"inputJoinKeys"`
	InputRequestContextKeys []NamedType `json:"inputRequestContextKeys"`
	FeatureValues           []struct {
		Name            string   `json:"name"`
		DataType        DataType `json:"dataType"`
		FeatureViewName string   `json:"featureViewName"`
	} `json:"featureValues"`
}

// GetFeatureServiceMetadata describes a service in Tecton's shape
// (POST /api/v1/feature-service/metadata).
func (c *Client) GetFeatureServiceMetadata(ctx context.Context, workspace, service string) (*FeatureServiceMetadata, error) {
	in := map[string]any{"params": map[string]string{"workspace_name": workspace, "feature_service_name": service}}
	var out FeatureServiceMetadata
	if err := c.call(ctx, http.MethodPost, apiPath("feature-service", "metadata"), in, &out, nil); err != nil {
		return nil, err
	}
	return &out, nil
}
