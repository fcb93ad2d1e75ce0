package repo

import (
	"errors"
	"testing"
	"time"

	"github.com/expr-lang/expr/file"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/schema"
)

// parseTransform parses a one-view repo whose source has the columns
// user_id, ts, clicked Int64, amt Float64, name String, tags Array(String),
// counts Array(Int64), and returns the view's transform.
func parseTransform(t *testing.T, transform string) *Transform {
	t.Helper()
	r, err := Parse("t.yaml", []byte(`
workspace: t
entities: [{name: user, join_keys: [user_id]}]
sources:
  - name: s
    schema:
      - {name: user_id, type: String}
      - {name: ts, type: Timestamp}
      - {name: clicked, type: Int64}
      - {name: small, type: Int32}
      - {name: amt, type: Float64}
      - {name: name, type: String}
      - {name: tags, type: Array(String)}
      - {name: counts, type: Array(Int64)}
feature_views:
  - name: v
    source: s
    entities: [user]
    transform:
`+transform+`
    features:
      - attribute: {name: clicked}
`))
	require.NoError(t, err)
	return r.FeatureViews[0].Transform
}

func TestApplyComputesColumnsInOrder(t *testing.T) {
	tr := parseTransform(t, `
      columns:
        sq: "clicked ** 2"
        plus: "clicked + small"
        ratio: "amt / 2"
        label: "upper(name)"
        first_count: "counts[0] + 1"
        n_tags: "len(tags)"
        day: "ts.Truncate(duration('24h'))"
        twice: "counts"
        total: "sum(counts)"`)
	ts := time.Date(2023, 1, 2, 3, 4, 5, 0, time.UTC)
	env := map[string]any{
		"user_id": "u", "ts": ts, "clicked": int64(3), "small": int64(4), "amt": 5.0, "name": "ab",
		"tags": []any{"x", "y"}, "counts": []any{int64(7), int64(8)},
	}
	keep, err := tr.Apply(env)
	require.NoError(t, err)
	assert.True(t, keep)
	assert.Equal(t, 9.0, env["sq"])
	assert.Equal(t, int64(7), env["plus"], "expr's int results are coerced to int64")
	assert.Equal(t, 2.5, env["ratio"])
	assert.Equal(t, "AB", env["label"])
	assert.Equal(t, int64(8), env["first_count"])
	assert.Equal(t, int64(2), env["n_tags"])
	assert.Equal(t, time.Date(2023, 1, 2, 0, 0, 0, 0, time.UTC), env["day"])
	assert.Equal(t, []any{int64(7), int64(8)}, env["twice"], "arrays come back as []any")
	assert.Equal(t, int64(15), env["total"])

	// Results convert to schema values with the declared types.
	for _, c := range tr.Columns {
		assert.Equal(t, c.Type.Kind, kindOf(env[c.Name]), c.Name)
	}
}

// kindOf is the schema kind of a value in Value.Any representation.
func kindOf(v any) schema.Kind {
	switch v.(type) {
	case int64:
		return schema.Int64
	case float64:
		return schema.Float64
	case string:
		return schema.String
	case bool:
		return schema.Bool
	case time.Time:
		return schema.Timestamp
	case []any:
		return schema.Array
	}
	return schema.Null
}

func TestApplyNullPropagates(t *testing.T) {
	tr := parseTransform(t, `
      columns:
        a: "clicked * 2"
        b: "a + 1"
        c: "amt + 1"
      filter: "c > 0"`)
	env := map[string]any{"clicked": nil, "amt": 1.0}
	keep, err := tr.Apply(env)
	require.NoError(t, err)
	assert.True(t, keep)
	assert.Nil(t, env["a"], "a null input makes a null column")
	assert.Contains(t, env, "a", "the null column is set")
	assert.Nil(t, env["b"], "nulls propagate through transform columns")
	assert.Equal(t, 2.0, env["c"])
}

func TestApplyFilter(t *testing.T) {
	tr := parseTransform(t, `
      columns:
        big: "amt > 10"
      filter: "clicked >= 0 && big"`)
	cases := []struct {
		env  map[string]any
		keep bool
	}{
		{map[string]any{"clicked": int64(1), "amt": 11.0}, true},
		{map[string]any{"clicked": int64(-1), "amt": 11.0}, false},
		{map[string]any{"clicked": int64(1), "amt": 1.0}, false},
		{map[string]any{"clicked": nil, "amt": 11.0}, false},     // a null input drops the record
		{map[string]any{"clicked": int64(1), "amt": nil}, false}, // big is null, so the filter is
		{map[string]any{"amt": 11.0}, false},                     // absent is null
	}
	for i, c := range cases {
		keep, err := tr.Apply(c.env)
		require.NoError(t, err, i)
		assert.Equal(t, c.keep, keep, "case %d", i)
	}
}

func TestApplyFilterYieldingNullDrops(t *testing.T) {
	tr := parseTransform(t, `
      filter: "clicked > 0 ? true : nil"`)
	keep, err := tr.Apply(map[string]any{"clicked": int64(-1)})
	require.NoError(t, err)
	assert.False(t, keep)
	keep, err = tr.Apply(map[string]any{"clicked": int64(1)})
	require.NoError(t, err)
	assert.True(t, keep)
}

func TestApplyRuntimeError(t *testing.T) {
	tr := parseTransform(t, `
      columns:
        ok: "clicked + 1"
        third: "counts[2]"`)
	_, err := tr.Apply(map[string]any{"clicked": int64(1), "counts": []any{int64(1)}})
	require.Error(t, err)
	var ee *EvalError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, "third", ee.Column)
	assert.Equal(t, "counts[2]", ee.Expr)
	var fe *file.Error
	assert.True(t, errors.As(err, &fe), "expr's error is wrapped")
	assert.Equal(t, `transform column "third" (counts[2]): index out of range: 2 (array length is 1)`, err.Error())
}

func TestApplyFilterRuntimeError(t *testing.T) {
	tr := parseTransform(t, `
      filter: "int(name) > 0"`)
	_, err := tr.Apply(map[string]any{"name": "abc"})
	var ee *EvalError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, "filter", ee.Column)
	assert.Contains(t, err.Error(), "transform filter (int(name) > 0): ")
}

func TestApplyNilTransformKeeps(t *testing.T) {
	var tr *Transform
	keep, err := tr.Apply(map[string]any{})
	require.NoError(t, err)
	assert.True(t, keep)
}

func TestApplyConcurrent(t *testing.T) {
	tr := parseTransform(t, `
      columns:
        sq: "clicked * clicked"`)
	done := make(chan struct{})
	for g := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 200 {
				env := map[string]any{"clicked": int64(g*1000 + i)}
				_, err := tr.Apply(env)
				assert.NoError(t, err)
				assert.Equal(t, int64((g*1000+i)*(g*1000+i)), env["sq"])
			}
		}()
	}
	for range 8 {
		<-done
	}
}

func TestCoerce(t *testing.T) {
	v, err := coerce(int32(5), tInt64)
	require.NoError(t, err)
	assert.Equal(t, int64(5), v)
	v, err = coerce(float32(1.5), tFloat64)
	require.NoError(t, err)
	assert.Equal(t, 1.5, v)
	v, err = coerce([]int{1, 2}, schema.ArrayOf(schema.Int64))
	require.NoError(t, err)
	assert.Equal(t, []any{int64(1), int64(2)}, v)
	_, err = coerce([]any{int64(1), nil}, schema.ArrayOf(schema.Int64))
	assert.ErrorContains(t, err, "element 1 is null")
	_, err = coerce("x", tInt64)
	assert.ErrorContains(t, err, "got string, want Int64")
	_, err = coerce(uint64(1<<63), tInt64)
	assert.Error(t, err)
}

func TestColumnType(t *testing.T) {
	for _, src := range []string{"clicked > 0 ? 1 : 'x'", "ts - ts", "map(tags, upper(#))", "{'a': 1}"} {
		_, typ, cerr := compileExpr(src, exprEnv([]schema.Column{col("clicked", tInt64), col("ts", tTimestamp), col("tags", schema.ArrayOf(schema.String))}))
		require.Nil(t, cerr, src)
		_, err := columnType(typ)
		assert.Error(t, err, src)
	}
}
