package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/featurelog/featurelog/compaction"
	"github.com/featurelog/featurelog/vfs"
)

// Options configure a DB. The zero value of every field but Dir is a
// working default; EnsureDefaults fills them in.
type Options struct {
	// OwnsKey, when set (cluster mode: the DB of one Kafka partition),
	// says which entity keys the DB keeps: backfills and materializations
	// skip the batch rows of other keys, which other partitions load.
	OwnsKey func(key string) bool
	// Dir is the data directory. Required. It is created if absent and locked
	// while the DB is open.
	Dir string
	// Holder describes this process in the directory lock, for the error a
	// second process gets. Default "featurelog (embedded)".
	Holder string
	// Now returns the current time. Default time.Now. Tests set it.
	Now func() time.Time
	// MaxClockSkew is how far in the future an event time may lie before
	// ingest rejects the record. Default 5m.
	MaxClockSkew time.Duration
	// SegmentSize is the log's target segment size in bytes. Default 64 MiB.
	SegmentSize int
	// HotTierBytes is the size of the fastcache that holds merged tile
	// ranges of aggregate views (fastcache rounds it up to at least
	// 32 MiB). Default 64 MiB; -1 disables the hot tier.
	HotTierBytes int
	// FlushRecords is how many records a view's active memtable takes
	// before the background maintainer flushes every memtable to segments
	// (a checkpoint). Default 1,000,000.
	FlushRecords int
	// FlushInterval flushes memtables holding anything at least this often,
	// bounding the log replayed on open. Default 10m.
	FlushInterval time.Duration
	// BackfillRunRecords bounds the memory of a backfill or
	// materialization job: each view it builds writes its private
	// memtable to a segment whenever it holds this many records.
	// Default 1,000,000.
	BackfillRunRecords int
	// BackfillWorkers is how many cores a backfill or materialization
	// job keeps busy: with 1 it builds and writes its runs in turn, with 2
	// or more it writes a run while it builds the next and builds several
	// views at once. Default GOMAXPROCS/2 (at least 1), leaving ingest and
	// reads the rest; `featurelog replay`, with nothing else to serve,
	// uses every core.
	BackfillWorkers int
	// CompactionFanIn is how many segments of one level a merge combines.
	// Default 4.
	CompactionFanIn int
	// SegmentCodec compresses the blocks of the segments the DB writes
	// (flushes, merges, backfill runs, rewrites). Default
	// compaction.CodecS2: blocks decode 1.5-1.9x as fast as zstd's and
	// cost a tenth of the CPU to write, for segments 11-13% bigger
	// (docs/performance.md, "Segment block codec"). compaction.CodecZstd
	// writes backfill runs at zstd's fastest level and the rest at its
	// default. Segments of either codec are read whatever this says, so it
	// can change between opens; merges rewrite old segments in the new one.
	SegmentCodec compaction.Codec
	// StateCacheBytes bounds the cache of key states decoded from
	// segments. Default 256 MiB; -1 disables it.
	StateCacheBytes int64
	// DisableAutoFlush stops the background maintainer: memtables are
	// flushed and segments merged only by Flush and Compact. For tests.
	DisableAutoFlush bool
	// NoSync skips fsyncs. For tests and benchmarks only: a crash may lose
	// acknowledged records.
	NoSync bool
	// IdempotencyWindow is how long an Idempotency-Key is remembered after
	// the request that wrote with it (SPEC §2). Default 24h.
	IdempotencyWindow time.Duration
	// IdempotencyMaxKeys bounds the keys remembered at once; past it the
	// oldest are forgotten early, with a warning. Default 1<<20.
	IdempotencyMaxKeys int
	// FS is the file system under the log, the segments and the manifest
	// (tests inject faults through it). Default vfs.Default.
	FS vfs.FS
	// Logger receives structured logs. Default slog.Default().
	Logger *slog.Logger

	// Reads counts the online reads in flight that the DB's flushes,
	// merges and deletions' segment rewrites give way to (they wait, between
	// keys, while reads run). DBs that share processors should share one:
	// a cluster node passes one to all of its partitions. Default: the DB's
	// own.
	Reads *ReadGate

	// mergeHook, set by tests, runs in a background merge of the view
	// (its id) once the merge has written its first key.
	mergeHook func(view string)
}

// EnsureDefaults fills in the defaults of unset fields.
func (o *Options) EnsureDefaults() {
	if o.Holder == "" {
		o.Holder = "featurelog (embedded)"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxClockSkew == 0 {
		o.MaxClockSkew = 5 * time.Minute
	}
	if o.HotTierBytes == 0 {
		o.HotTierBytes = 64 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.IdempotencyWindow == 0 {
		o.IdempotencyWindow = DefaultIdempotencyWindow
	}
	if o.IdempotencyMaxKeys == 0 {
		o.IdempotencyMaxKeys = DefaultIdempotencyMaxKeys
	}
	if o.FlushRecords == 0 {
		o.FlushRecords = 1_000_000
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = 10 * time.Minute
	}
	if o.CompactionFanIn == 0 {
		o.CompactionFanIn = 4
	}
	if o.SegmentCodec == 0 {
		o.SegmentCodec = compaction.CodecS2
	}
	if o.BackfillRunRecords == 0 {
		o.BackfillRunRecords = 1_000_000
	}
	if o.BackfillWorkers == 0 {
		o.BackfillWorkers = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if o.StateCacheBytes == 0 {
		o.StateCacheBytes = 256 << 20
	}
}

// Validate reports options that cannot work.
func (o *Options) Validate() error {
	if o.Dir == "" {
		return errors.New("engine: Options.Dir is required")
	}
	if o.IdempotencyWindow < 0 || o.IdempotencyMaxKeys < 0 {
		return errors.New("engine: Options.IdempotencyWindow and IdempotencyMaxKeys must not be negative")
	}
	if o.MaxClockSkew < 0 {
		return errors.New("engine: Options.MaxClockSkew must not be negative")
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"SegmentSize", int64(o.SegmentSize)}, {"FlushRecords", int64(o.FlushRecords)}, {"FlushInterval", int64(o.FlushInterval)},
		{"BackfillRunRecords", int64(o.BackfillRunRecords)}, {"BackfillWorkers", int64(o.BackfillWorkers)}} {
		if f.v < 0 {
			return fmt.Errorf("engine: Options.%s must not be negative (0 takes the default), got %d", f.name, f.v)
		}
	}
	if o.CompactionFanIn < 0 || o.CompactionFanIn == 1 {
		return fmt.Errorf("engine: Options.CompactionFanIn must be at least 2 (0 takes the default, 4), got %d", o.CompactionFanIn)
	}
	if o.SegmentCodec != compaction.CodecS2 && o.SegmentCodec != compaction.CodecZstd {
		return fmt.Errorf("engine: Options.SegmentCodec must be compaction.CodecS2 (the default) or compaction.CodecZstd, got %v", o.SegmentCodec)
	}
	if o.HotTierBytes < -1 || o.StateCacheBytes < -1 {
		return fmt.Errorf("engine: Options.HotTierBytes and StateCacheBytes must be positive, 0 (the default) or -1 (disabled), got %d and %d", o.HotTierBytes, o.StateCacheBytes)
	}
	return nil
}
