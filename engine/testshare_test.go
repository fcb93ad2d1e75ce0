package engine

// Test helpers shared with the external test package (engine_test), which
// sees the exported names of this package's test files.

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/internal/record"
	"github.com/featurelog/featurelog/schema"
	"github.com/featurelog/featurelog/vfs/errorfs"
	"github.com/featurelog/featurelog/wal"
)

// EachLoggedRow calls fn for every record in the log of the closed data
// directory dir (opening the log repairs a torn tail, as the engine's open
// would); an error from fn fails the test.
func EachLoggedRow(t *testing.T, dir, msg string, fn func(seq uint64, sec *record.Section, row []schema.Value) error) {
	t.Helper()
	l, err := wal.Open(wal.Options{Dir: filepath.Join(dir, "wal"), Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err, "%s: open the log", msg)
	defer l.Close()
	var e record.Entry
	err = l.Replay(1, func(seq uint64, payload []byte) error {
		if err := record.Decode(payload, &e); err != nil {
			return fmt.Errorf("log entry %d: %w", seq, err)
		}
		for si := range e.Sections {
			sec := &e.Sections[si]
			for r := range sec.NumRows() {
				if err := fn(seq, sec, sec.Row(r)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	require.NoError(t, err, "%s: replay the log", msg)
}

// LogRowCounts counts, by id, the records in the log of the closed data
// directory dir.
func LogRowCounts(t *testing.T, dir, msg string, id func(cols []schema.Column, row []schema.Value) string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	EachLoggedRow(t, dir, msg, func(_ uint64, sec *record.Section, row []schema.Value) error {
		counts[id(sec.Columns, row)]++
		return nil
	})
	return counts
}

// TornImages takes the images of f with part of its unsynced bytes: cut
// after every stride-th byte past the durable prefix, and with each
// unsynced 4 KiB block zero-filled (written space the page cache never
// wrote back).
func TornImages(take func(string, func(errorfs.FileState, []byte) []byte), at string, f errorfs.FileState, stride int64) {
	for cut := f.Durable + 1; cut <= f.Size; cut += stride {
		take(fmt.Sprintf("%s: %s cut at %d (durable %d, written %d)", at, filepath.Base(f.Path), cut, f.Durable, f.Size),
			func(st errorfs.FileState, data []byte) []byte {
				if st.Path != f.Path {
					return nil
				}
				return data[:cut]
			})
	}
	const block = 4096
	for b := f.Durable / block * block; b < f.Size; b += block {
		take(fmt.Sprintf("%s: %s with block at %d zero-filled (durable %d, written %d)", at, filepath.Base(f.Path), b, f.Durable, f.Size),
			func(st errorfs.FileState, data []byte) []byte {
				if st.Path != f.Path {
					return nil
				}
				out := append([]byte(nil), data...)
				clear(out[max(b, st.Durable):min(b+block, int64(len(out)))])
				return out
			})
	}
}
