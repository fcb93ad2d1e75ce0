package batchsrc

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/repo"
	"github.com/featurelog/featurelog/schema"
)

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"b.csv", "a.csv", "notes.txt", "c.jsonl", "d.ndjson"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644))
	}
	require.NoError(t, os.Mkdir(filepath.Join(dir, "sub.csv"), 0o755))
	got, err := Files(".", "csv", dir)
	require.NoError(t, err)
	assert.Equal(t, []string{filepath.Join(dir, "a.csv"), filepath.Join(dir, "b.csv")}, got, "a directory: its files of the format, sorted")
	got, err = Files(dir, "jsonl", "/elsewhere")
	require.NoError(t, err)
	assert.Equal(t, []string{filepath.Join(dir, "c.jsonl"), filepath.Join(dir, "d.ndjson")}, got, "an absolute uri ignores the base; .ndjson is JSON Lines")
	got, err = Files("*.csv", "csv", dir)
	require.NoError(t, err)
	assert.Equal(t, []string{filepath.Join(dir, "a.csv"), filepath.Join(dir, "b.csv")}, got, "a glob: files only")
	got, err = Files("b.csv", "csv", dir)
	require.NoError(t, err)
	assert.Equal(t, []string{filepath.Join(dir, "b.csv")}, got)
	_, err = Files("[", "csv", dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not a valid glob")
}

// TestScanConverts: values convert per format; empty CSV fields and
// absent JSON members are null; arrays are JSON text in CSV.
func TestScanConverts(t *testing.T) {
	dir := t.TempDir()
	src := &repo.Source{Name: "s", Schema: []schema.Column{
		{Name: "k", Type: schema.ScalarType(schema.String)},
		{Name: "ts", Type: schema.ScalarType(schema.Timestamp)},
		{Name: "n", Type: schema.ScalarType(schema.Int32)},
		{Name: "f", Type: schema.ScalarType(schema.Float64)},
		{Name: "b", Type: schema.ScalarType(schema.Bool)},
		{Name: "a", Type: schema.Type{Kind: schema.Array, Elem: schema.Int64}},
	}}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "x.csv"), []byte("a,b,f,n,ts,k\n\"[1,2]\",true,1.5,7,2026-01-02T03:04:05Z,key\n,,,,2026-01-02T03:04:05Z,k2\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "x.jsonl"), []byte(`{"k":"key","ts":"2026-01-02T03:04:05Z","n":7,"f":1.5,"b":true,"a":[1,2],"other":{}}`+"\n"+`{"k":"k2","ts":"2026-01-02T03:04:05Z","n":null}`+"\n"), 0o644))
	for _, format := range []string{"csv", "jsonl"} {
		src.Batch = &repo.BatchConfig{URI: "x." + format, Format: format, TimestampField: "ts"}
		s, err := Open(src, dir)
		require.NoError(t, err)
		require.NoError(t, s.Check())
		var rows [][]schema.Value
		require.NoError(t, s.Scan(context.Background(), func(r *Row) error {
			rows = append(rows, append([]schema.Value(nil), r.Values...))
			return nil
		}))
		require.Len(t, rows, 2, format)
		assert.Equal(t, schema.Str("key"), rows[0][0], format)
		assert.Equal(t, int64(7), rows[0][2].I, format)
		assert.Equal(t, schema.Int32, rows[0][2].Kind, format)
		assert.Equal(t, 1.5, rows[0][3].F, format)
		assert.True(t, rows[0][4].Bool(), format)
		assert.Equal(t, schema.ArrayVal([]schema.Value{schema.Int(1), schema.Int(2)}), rows[0][5], format)
		for i := 2; i < 6; i++ {
			assert.True(t, rows[1][i].IsNull(), "%s: column %d of row 2 is null", format, i)
		}
	}
	src.Batch = &repo.BatchConfig{URI: "x.csv", Format: "csv", TimestampField: "ts"}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "x.csv"), []byte("a,b,f,n,ts,k\n,,,99999999999,2026-01-02T03:04:05Z,k\n"), 0o644))
	s, err := Open(src, dir)
	require.NoError(t, err)
	err = s.Check()
	require.Error(t, err)
	assert.Equal(t, "batch file "+filepath.Join(dir, "x.csv")+`: line 2: column "n": 99999999999 is out of range for Int32`, err.Error())
}
