package httpapi

import (
	"testing"

	"github.com/go-json-experiment/json/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/schema"
)

// TestTransformJSONKeepsOrder: a transform's columns are computed in
// declared order, each reading the earlier ones, so the JSON object
// lists them in that order, not sorted.
func TestTransformJSONKeepsOrder(t *testing.T) {
	got := transformJSON(&engine.TransformDefinition{Columns: []engine.TransformColumnDefinition{
		{Name: "z", Expr: "x * 2"}, {Name: "a", Expr: `z + "\""`}}})
	assert.Equal(t, `{"columns":{"z":"x * 2","a":"z + \"\\\"\""},"filter":null}`, string(got))
	assert.Equal(t, `null`, string(transformJSON(nil)))
}

// TestFeatureDefsJSON: windows as the repo file writes them (a string, or
// {size, offset}), and each function's parameters, only when it has them.
func TestFeatureDefsJSON(t *testing.T) {
	q := 0.0
	defs := []engine.FeatureDefinition{
		{Name: "a", Type: schema.Type{Kind: schema.Array, Elem: schema.String}, Function: "last_distinct_n", Column: "cat", Window: "1h", Offset: "30m", N: 3},
		{Name: "b", Type: schema.Type{Kind: schema.Float64}, Function: "approx_percentile", Column: "x", Window: "lifetime", Percentile: &q, Precision: 100},
		{Name: "c", Type: schema.Type{Kind: schema.Int64}, Column: "x"},
	}
	data, err := json.Marshal(featureDefsJSON(defs))
	require.NoError(t, err)
	assert.JSONEq(t, `[
	  {"name":"a","dataType":{"type":"array","elementType":{"type":"string"}},"function":"last_distinct_n","column":"cat",
	   "time_window":{"size":"1h","offset":"30m"},"n":3},
	  {"name":"b","dataType":{"type":"float64"},"function":"approx_percentile","column":"x","time_window":"lifetime","percentile":0,"precision":100},
	  {"name":"c","dataType":{"type":"int64"},"function":null,"column":"x","time_window":null}
	]`, string(data))
}
