package client

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// GetFeaturesRequest reads one feature vector (SPEC §4).
type GetFeaturesRequest struct {
	Workspace string
	Service   string
	// JoinKeyMap holds every join key of the service.
	JoinKeyMap map[string]any
	// Metadata selects the metadata returned beside the values.
	Metadata MetadataOptions
	// AsOf, when not zero, reads the vector as of that (past) time.
	AsOf time.Time
}

// MetadataOptions select what the metadata of an answer holds.
type MetadataOptions struct {
	IncludeNames          bool `json:"include_names,omitempty"`
	IncludeDataTypes      bool `json:"include_data_types,omitempty"`
	IncludeEffectiveTimes bool `json:"include_effective_times,omitempty"`
	IncludeServingStatus  bool `json:"include_serving_status,omitempty"`
}

func (m MetadataOptions) any() bool {
	return m.IncludeNames || m.IncludeDataTypes || m.IncludeEffectiveTimes || m.IncludeServingStatus
}

// servingParams is the "params" object of get-features and
// get-features-batch.
type servingParams struct {
	Workspace   string           `json:"workspace_name"`
	Service     string           `json:"feature_service_name"`
	JoinKeyMap  any              `json:"join_key_map,omitempty"` // a map, even empty, when set
	RequestData []requestData    `json:"request_data,omitempty"`
	Metadata    *MetadataOptions `json:"metadata_options,omitempty"`
	AsOf        string           `json:"as_of,omitempty"`
}

type requestData struct {
	JoinKeyMap map[string]any `json:"join_key_map"`
}

func newServingParams(ws, svc string, m MetadataOptions, asOf time.Time) servingParams {
	p := servingParams{Workspace: ws, Service: svc}
	if m.any() {
		p.Metadata = &m
	}
	if !asOf.IsZero() {
		p.AsOf = asOf.UTC().Format(time.RFC3339Nano)
	}
	return p
}

// DataType is a feature's type as the API names it: "int64", "float64",
// "string", "boolean", "timestamp", or "array" with ElementType.
type DataType struct {
	Type        string    `json:"type"`
	ElementType *DataType `json:"elementType,omitempty"`
}

// String returns "int64", or "array<string>" for an array.
func (t DataType) String() string {
	if t.ElementType != nil {
		return t.Type + "<" + t.ElementType.String() + ">"
	}
	return t.Type
}

// FeatureMetadata describes one feature of an answer; only the fields
// the request's MetadataOptions asked for are set.
type FeatureMetadata struct {
	Name     string    `json:"name,omitempty"`
	DataType *DataType `json:"dataType,omitempty"`
	// EffectiveTime is the window end of an aggregate, the event time of
	// an attribute; nil when the value is missing.
	EffectiveTime *time.Time `json:"effectiveTime,omitempty"`
	// Status is "PRESENT" or "MISSING_DATA".
	Status string `json:"status,omitempty"`
}

// GetFeaturesResponse is one feature vector.
type GetFeaturesResponse struct {
	Result struct {
		// Features are the values in the service's declared order, in the
		// JSON encodings of SPEC §4: int64 as a JSON string, floats as
		// numbers, arrays as arrays, timestamps as RFC 3339 strings,
		// missing values null.
		Features []json.RawMessage `json:"features"`
	} `json:"result"`
	Metadata struct {
		Features []FeatureMetadata `json:"features"`
	} `json:"metadata"`
}

// GetFeatures reads the latest feature vector of one key
// (POST /api/v1/feature-service/get-features).
func (c *Client) GetFeatures(ctx context.Context, req GetFeaturesRequest) (*GetFeaturesResponse, error) {
	p := newServingParams(req.Workspace, req.Service, req.Metadata, req.AsOf)
	p.JoinKeyMap = req.JoinKeyMap
	if p.JoinKeyMap == nil {
		p.JoinKeyMap = map[string]any{}
	}
	var out GetFeaturesResponse
	if err := c.call(ctx, http.MethodPost, apiPath("feature-service", "get-features"), map[string]any{"params": p}, &out, nil); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetFeaturesBatchRequest reads the vectors of up to 1000 keys.
type GetFeaturesBatchRequest struct {
	Workspace string
	Service   string
	// JoinKeyMaps holds one join-key map per vector wanted.
	JoinKeyMaps []map[string]any
	Metadata    MetadataOptions
	AsOf        time.Time
}

// GetFeaturesBatchResponse holds the vectors in request order.
type GetFeaturesBatchResponse struct {
	Result []struct {
		Features []json.RawMessage `json:"features"`
	} `json:"result"`
	Metadata struct {
		Features []BatchFeatureMetadata `json:"features"`
	} `json:"metadata"`
}

// BatchFeatureMetadata describes one feature of a batch answer: the
// effective times and statuses are lists, one per requested key.
type BatchFeatureMetadata struct {
	Name          string       `json:"name,omitempty"`
	DataType      *DataType    `json:"dataType,omitempty"`
	EffectiveTime []*time.Time `json:"effectiveTime,omitempty"`
	Status        []string     `json:"status,omitempty"`
}

// GetFeaturesBatch reads several vectors in one call
// (POST /api/v1/feature-service/get-features-batch).
func (c *Client) GetFeaturesBatch(ctx context.Context, req GetFeaturesBatchRequest) (*GetFeaturesBatchResponse, error) {
	p := newServingParams(req.Workspace, req.Service, req.Metadata, req.AsOf)
	p.RequestData = make([]requestData, len(req.JoinKeyMaps))
	for i, m := range req.JoinKeyMaps {
		p.RequestData[i].JoinKeyMap = m
	}
	body := map[string]any{"params": p}
	if len(p.RequestData) == 0 {
		// omitempty would drop an empty list; the node wants it present.
		body = map[string]any{"params": struct {
			servingParams
			RequestData []requestData `json:"request_data"`
		}{p, []requestData{}}}
	}
	var out GetFeaturesBatchResponse
	if err := c.call(ctx, http.MethodPost, apiPath("feature-service", "get-features-batch"), body, &out, nil); err != nil {
		return nil, err
	}
	return &out, nil
}
