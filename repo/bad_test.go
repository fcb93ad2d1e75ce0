package repo

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/bad")

// TestBadFiles parses every testdata/bad/*.yaml and compares the full
// error text with its .golden file. Run `go test ./repo -update`
// after changing a message, and review the diff of the goldens.
func TestBadFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 30)
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			r, err := Parse(name, data)
			require.Error(t, err, "the file parsed")
			assert.Nil(t, r)
			var errs *Errors
			require.True(t, errors.As(err, &errs), "want *Errors, got %T", err)
			checkErrors(t, name, errs)
			golden := strings.TrimSuffix(path, ".yaml") + ".golden"
			got := err.Error() + "\n"
			if *update {
				require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "run go test ./repo -update")
			assert.Equal(t, string(want), got)
		})
	}
}

// checkErrors checks every problem names the file and a line (only a file
// with no content has none), and that they come in line order.
func checkErrors(t *testing.T, file string, errs *Errors) {
	t.Helper()
	require.NotEmpty(t, errs.List)
	prev := 0
	for _, e := range errs.List {
		assert.Equal(t, file, e.File)
		assert.NotEmpty(t, e.Msg)
		if !strings.Contains(e.Msg, "the file is empty") {
			assert.Positive(t, e.Line, e.Error())
		}
		assert.GreaterOrEqual(t, e.Line, prev, "problems out of line order")
		prev = e.Line
		assert.NotContains(t, e.Error(), "\n", "a problem is one line")
	}
}
