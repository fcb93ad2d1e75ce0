package tabular

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/historical"
	"github.com/featurelog/featurelog/schema"
	"github.com/featurelog/featurelog/tabread"
)

func TestFileCommitAndAbort(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.csv")
	cols := []historical.Column{{Name: "k", Spine: true}, {Name: "v.n", Type: schema.ScalarType(schema.Int64)}}

	f, err := CreateFile(path)
	require.NoError(t, err)
	require.NoError(t, f.Begin(cols))
	require.NoError(t, f.Row([]any{"a"}, []schema.Value{schema.Int(1)}))
	_, err = os.Stat(path)
	assert.True(t, os.IsNotExist(err), "nothing under the final name before Commit")
	require.NoError(t, f.Commit())
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "k,v.n\na,1\n", string(data))
	f.Abort() // a no-op after Commit

	f, err = CreateFile(path)
	require.NoError(t, err)
	require.NoError(t, f.Begin(cols))
	require.NoError(t, f.Row([]any{"b"}, []schema.Value{schema.Int(2)}))
	f.Abort()
	data, err = os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "k,v.n\na,1\n", string(data), "an aborted run leaves the old file")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "and no temp file")

	_, err = CreateFile(filepath.Join(dir, "out.xlsx"))
	assert.ErrorIs(t, err, tabread.ErrUnsupportedFormat)
	_, err = CreateFile(filepath.Join(dir, "missing", "out.csv"))
	assert.ErrorContains(t, err, "creating the output file")
}
