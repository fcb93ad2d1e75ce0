package repo

import (
	"github.com/featurelog/featurelog/schema"
)

// function describes one aggregate function of SPEC §3: what input it
// takes, its parameters and its result type.
type function struct {
	name       string
	anyInput   bool // input need not be numeric
	scalarOnly bool // input must not be an array
	n          bool // takes n (1..maxN)
	percentile bool // takes percentile (0..1)
	precision  bool // takes precision
	defPrec    int  // precision when unset
	minPrec    int
	maxPrec    int // 0: unbounded
	result     func(in schema.Type) schema.Type
}

// maxN bounds n of the last_n family (SPEC §3).
const maxN = 1000

var (
	int64Result   = func(schema.Type) schema.Type { return schema.ScalarType(schema.Int64) }
	float64Result = func(schema.Type) schema.Type { return schema.ScalarType(schema.Float64) }
	inputResult   = func(in schema.Type) schema.Type { return in }
	arrayResult   = func(in schema.Type) schema.Type { return schema.ArrayOf(in.Kind) }
)

// functions is SPEC §3's table, in its order.
var functions = []*function{
	{name: "count", anyInput: true, result: int64Result},
	{name: "sum", result: inputResult},
	{name: "min", result: inputResult},
	{name: "max", result: inputResult},
	{name: "mean", result: float64Result},
	{name: "last", anyInput: true, result: inputResult},
	// The n functions return Array(input), and arrays of arrays are no type.
	{name: "last_n", anyInput: true, scalarOnly: true, n: true, result: arrayResult},
	{name: "first_n", anyInput: true, scalarOnly: true, n: true, result: arrayResult},
	{name: "last_distinct_n", anyInput: true, scalarOnly: true, n: true, result: arrayResult},
	{name: "first_distinct_n", anyInput: true, scalarOnly: true, n: true, result: arrayResult},
	{name: "var_samp", result: float64Result},
	{name: "stddev_samp", result: float64Result},
	{name: "var_pop", result: float64Result},
	{name: "stddev_pop", result: float64Result},
	// HyperLogLog hashes scalar values; hashing whole arrays is not offered.
	{name: "approx_count_distinct", anyInput: true, scalarOnly: true, precision: true, defPrec: 8, minPrec: 4, maxPrec: 16, result: int64Result},
	{name: "approx_percentile", percentile: true, precision: true, defPrec: 100, minPrec: 1, result: float64Result},
}

// functionNames lists the function names, for suggestions.
var functionNames = func() []string {
	names := make([]string, len(functions))
	for i, f := range functions {
		names[i] = f.name
	}
	return names
}()

// functionSynonyms maps names from other systems to ours, for hints that
// edit distance cannot find.
var functionSynonyms = map[string]string{
	"avg":            `"mean"`,
	"average":        `"mean"`,
	"stddev":         `"stddev_samp"`,
	"std":            `"stddev_samp"`,
	"variance":       `"var_samp"`,
	"count_distinct": `"approx_count_distinct"`,
	"median":         `"approx_percentile" with percentile: 0.5`,
	"percentile":     `"approx_percentile"`,
}

// lookupFunction returns the function called name, or nil.
func lookupFunction(name string) *function {
	for _, f := range functions {
		if f.name == name {
			return f
		}
	}
	return nil
}
