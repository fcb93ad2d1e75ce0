package wal

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	twal "github.com/tidwall/wal"

	"github.com/featurelog/featurelog/vfs"
)

// Defaults applied by Options.EnsureDefaults.
const (
	// DefaultSegmentSize is the default target size of a segment file.
	DefaultSegmentSize = 64 << 20
	// DefaultMaxBatchBytes is the default bound on the payload bytes written
	// and fsynced together by one group commit.
	DefaultMaxBatchBytes = 16 << 20
)

// Options configures a Log. The zero value plus Dir is a valid configuration.
type Options struct {
	// Dir is the directory holding the segment files. Required. Open creates
	// it if it does not exist. Nothing else may write into it.
	Dir string

	// SegmentSize is the target size of a segment file in bytes: tidwall
	// starts a new segment once the current one reaches it, so a segment may
	// exceed it by up to one entry. tidwall keeps the tail segment in memory,
	// so this is also the log's memory footprint. Default 64 MiB.
	SegmentSize int

	// MaxBatchBytes bounds the payload bytes of one group commit (one write
	// and one fsync). It is also the largest payload Append accepts.
	// Default 16 MiB; at most 4 GiB - 1 (the frame's length field).
	MaxBatchBytes int

	// CompressMin: payloads of at least this many bytes are stored
	// zstd-compressed when that makes them at least an eighth smaller
	// (frame flag 1, docs/format/wal.md). 0 stores every payload as is.
	CompressMin int

	// NoSync skips every file and directory fsync, including those of a
	// repair (tidwall still fsyncs a segment it cycles out). Acknowledged
	// entries can be lost or torn by a crash. For tests and benchmarks only.
	NoSync bool

	// FS is the file system the log's files are read, fsynced, repaired
	// and listed through. tidwall writes the tail segment itself, telling
	// FS first (vfs.NoteWrite). Default vfs.Default.
	FS vfs.FS

	// Logger receives repair reports (Warn) and the error that fails the
	// log (Error). Default slog.Default().
	Logger *slog.Logger

	// OnSync, if set, is called by the committer after each successful
	// fsync of a segment file with how long it took (not with NoSync,
	// which makes none). It runs on the commit path, before the batch is
	// acknowledged: it must be as cheap as observing a histogram. The
	// engine feeds featurelog_wal_fsync_duration_seconds with it.
	OnSync func(time.Duration)

	// private holds test hooks; the zero value means production behaviour.
	private testHooks
}

// testHooks lets tests inject faults and observe I/O that has no other
// visible effect (pebble keeps the same kind of hooks in Options.private).
type testHooks struct {
	// wrapBackend, if set, wraps the tidwall log used by the committer.
	wrapBackend func(backend) backend
	// syncDir, if set, replaces the directory fsync.
	syncDir func(dir string) error
}

// EnsureDefaults fills in the default of every unset field.
func (o *Options) EnsureDefaults() {
	if o.SegmentSize == 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.MaxBatchBytes == 0 {
		o.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.FS == nil {
		o.FS = vfs.Default
	}
}

// Validate reports the first invalid field. Call it after EnsureDefaults.
func (o *Options) Validate() error {
	switch {
	case o.Dir == "":
		return errors.New("wal: Options.Dir is required")
	case o.SegmentSize <= 0:
		return fmt.Errorf("wal: Options.SegmentSize must be positive, got %d", o.SegmentSize)
	case o.MaxBatchBytes <= 0 || int64(o.MaxBatchBytes) > math.MaxUint32:
		return fmt.Errorf("wal: Options.MaxBatchBytes must be in [1, %d], got %d",
			uint64(math.MaxUint32), o.MaxBatchBytes)
	case o.Logger == nil || o.FS == nil:
		return errors.New("wal: Options.Logger or Options.FS is nil; call EnsureDefaults")
	}
	return nil
}

// tidwallOptions maps Options onto the tidwall log underneath.
func (o *Options) tidwallOptions() *twal.Options {
	return &twal.Options{
		// The committer fsyncs the tail itself, through FS, so that a
		// failing fsync can be injected and durable bytes tracked.
		// tidwall still fsyncs every segment it cycles out.
		NoSync:      true,
		SegmentSize: o.SegmentSize,
		LogFormat:   twal.Binary,
		// We never call tidwall's Read (see Replay), so its segment cache
		// only holds the previous segment after a cycle; the committer
		// clears it.
		SegmentCacheSize: 1,
		// AllowEmpty keeps Open working when the only segment is empty but
		// named after index 1 (earlier segments removed by an operator).
		AllowEmpty: true,
		DirPerms:   0o755,
		FilePerms:  0o644,
	}
}
