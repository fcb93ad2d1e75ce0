package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
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

	// Transformation is the view's row-level transformation as its repo
	// file declares it; nil if none.
	Transformation *Transformation `json:"transformation"`
	// FeatureDefinitions are the features as declared, in order.
	FeatureDefinitions []FeatureDefinition `json:"feature_definitions"`
	// Versions are the versions the node's catalog holds, oldest first:
	// the one serving while a backfill builds the current one, if any,
	// then the current one.
	Versions []FeatureViewVersion `json:"versions"`
	// Storage is what the version that serves holds.
	Storage FeatureViewStorage `json:"storage"`
}

// Transformation is a view's transform: columns computed in order, each
// able to read the earlier ones, then a filter.
type Transformation struct {
	Columns TransformColumns `json:"columns"`
	Filter  string           `json:"filter"` // empty when none
}

// TransformColumns are a transform's columns in declared order. Their
// JSON is an object of name → expression, as in the repo file, whose
// member order is kept.
type TransformColumns []TransformColumn

// TransformColumn is one computed column and its expression as written.
type TransformColumn struct {
	Name, Expression string
}

// MarshalJSON writes {"name": "expression", ...} in order.
func (cs TransformColumns) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, c := range cs {
		if i > 0 {
			b = append(b, ',')
		}
		for j, s := range []string{c.Name, c.Expression} {
			q, err := json.Marshal(s)
			if err != nil {
				return nil, err
			}
			b = append(b, q...)
			if j == 0 {
				b = append(b, ':')
			}
		}
	}
	return append(b, '}'), nil
}

// UnmarshalJSON reads {"name": "expression", ...}, keeping the order.
func (cs *TransformColumns) UnmarshalJSON(data []byte) error {
	d := json.NewDecoder(bytes.NewReader(data))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		return fmt.Errorf("client: transformation columns must be a JSON object of name → expression, not %s", data)
	}
	out := TransformColumns{}
	for d.More() {
		var c TransformColumn
		tok, err := d.Token()
		if err != nil {
			return fmt.Errorf("client: transformation columns: %w", err)
		}
		c.Name, _ = tok.(string)
		if err := d.Decode(&c.Expression); err != nil {
			return fmt.Errorf("client: transformation column %q: %w", c.Name, err)
		}
		out = append(out, c)
	}
	*cs = out
	return nil
}

// FeatureDefinition is one feature of a view as its repo file declares
// it.
type FeatureDefinition struct {
	Name     string   `json:"name"`
	DataType DataType `json:"dataType"`
	Function string   `json:"function"` // the aggregate function; empty for an attribute
	Column   string   `json:"column"`   // the input column; for an attribute, the column served
	// TimeWindow is an aggregate's window; nil for an attribute.
	TimeWindow *Window `json:"time_window"`
	// The function's parameters, set only when it has them.
	N          int      `json:"n,omitempty"`          // last_n, first_n, last_distinct_n, first_distinct_n
	Percentile *float64 `json:"percentile,omitempty"` // approx_percentile
	Precision  int      `json:"precision,omitempty"`  // approx_count_distinct, approx_percentile
}

// Window is an aggregate's window as the repo file writes it: a size
// ("1h", "lifetime") and an offset ("" when none). Its JSON is the size
// alone, or {"size", "offset"} when it has an offset.
type Window struct {
	Size, Offset string
}

type windowObject struct {
	Size   string `json:"size"`
	Offset string `json:"offset"`
}

// MarshalJSON writes "1h" or {"size": "1h", "offset": "1h"}.
func (w Window) MarshalJSON() ([]byte, error) {
	if w.Offset == "" {
		return json.Marshal(w.Size)
	}
	return json.Marshal(windowObject(w))
}

// UnmarshalJSON reads either form.
func (w *Window) UnmarshalJSON(data []byte) error {
	if len(data) > 0 && data[0] == '"' {
		*w = Window{}
		return json.Unmarshal(data, &w.Size)
	}
	var o windowObject
	if err := json.Unmarshal(data, &o); err != nil {
		return fmt.Errorf("client: a time window is a string or {\"size\", \"offset\"}: %w", err)
	}
	*w = Window(o)
	return nil
}

// FeatureViewVersion is one version of a view.
type FeatureViewVersion struct {
	Version   int        `json:"version"`
	CreatedAt *time.Time `json:"created_at"` // when the apply that created it ran
	Serving   bool       `json:"serving"`    // whether reads use it
	Job       string     `json:"job"`        // the job building it while it does not serve yet
}

// FeatureViewStorage is what a view's serving version holds: the
// per-view gauges of /metrics.
type FeatureViewStorage struct {
	Segments        int   `json:"segments"`
	SegmentBytes    int64 `json:"segment_bytes"`
	MemtableRecords int64 `json:"memtable_records"`
	MemtableBytes   int64 `json:"memtable_bytes"` // an estimate
}

// IngestRate is the records live ingest applied online to a view per
// minute, counted in memory since the node opened.
type IngestRate struct {
	IntervalSeconds int               `json:"interval_seconds"` // 60
	Points          []IngestRatePoint `json:"points"`           // oldest first, the last the current minute
}

// IngestRatePoint is one minute's records.
type IngestRatePoint struct {
	Start   time.Time `json:"start"` // the minute's start, UTC
	Records int64     `json:"records"`
}

// IngestRate returns a view's records per minute over the last minutes
// minutes, 1 to 1440; 0 asks for the node's default, 60
// (GET /api/v1/workspaces/{ws}/feature-views/{name}/ingest-rate).
func (c *Client) IngestRate(ctx context.Context, workspace, name string, minutes int) (*IngestRate, error) {
	path := apiPath("workspaces", workspace, "feature-views", name, "ingest-rate")
	if minutes != 0 {
		path += "?minutes=" + strconv.Itoa(minutes)
	}
	var out IngestRate
	if err := c.call(ctx, http.MethodGet, path, nil, &out, nil); err != nil {
		return nil, err
	}
	return &out, nil
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
