package engine

import (
	"time"

	"github.com/featurelog/featurelog/repo"
	"github.com/featurelog/featurelog/schema"
)

// What a view's summary says of its definition, versions and storage
// beyond SPEC §4's fields, for the console (docs/console-api-notes.md).
// All of it is read from the catalog snapshot and a few atomics: listing
// a workspace's views stays cheap.

// FeatureDefinition is one feature of a view as its repo file declares
// it, with its resolved name and served type.
type FeatureDefinition struct {
	Name     string
	Type     schema.Type // the served type
	Function string      // the aggregate function; "" for an attribute
	Column   string      // the input column (a source or transform column)
	// Window is an aggregate's window size as the file writes it ("1h",
	// "lifetime"), Offset its offset ("" when none); both "" for an
	// attribute.
	Window, Offset string
	// The function's parameters; zero when it has none.
	N          int      // last_n, first_n, last_distinct_n, first_distinct_n
	Percentile *float64 // approx_percentile (0 is a percentile: nil when none)
	Precision  int      // approx_count_distinct, approx_percentile (the default when the file gives none)
}

// TransformDefinition is a view's row-level transformation as its repo
// file declares it: columns computed in order, then a filter.
type TransformDefinition struct {
	Columns []TransformColumnDefinition
	Filter  string // "" when none
}

// TransformColumnDefinition is one computed column: its name and
// expression as written.
type TransformColumnDefinition struct {
	Name, Expr string
}

// VersionInfo is one version of a view the catalog holds.
type VersionInfo struct {
	Version   int
	CreatedAt time.Time // when the apply that created it ran; zero if unknown
	Serving   bool      // whether reads use it
	Job       string    // the job building it while it does not serve yet; "" otherwise
}

// ViewStorage is what a view version holds: the per-view gauges of
// DB.Collector (featurelog_segments, featurelog_segment_bytes,
// featurelog_memtable_records, featurelog_memtable_bytes).
type ViewStorage struct {
	Segments        int   // segment files
	SegmentBytes    int64 // their bytes
	MemtableRecords int64 // records in the active memtable
	MemtableBytes   int64 // their estimated bytes (docs/metrics.md)
}

// storage reads v's storage: its segments under the data's read lock,
// its memtable from atomics.
func (v *viewRT) storage() ViewStorage {
	d := v.data
	segs, bytes := d.segmentStats()
	return ViewStorage{Segments: segs, SegmentBytes: bytes, MemtableRecords: d.records.Load(), MemtableBytes: d.bytes.Load()}
}

// featureDefinitions lists def's features as declared.
func featureDefinitions(def *repo.FeatureView) []FeatureDefinition {
	out := make([]FeatureDefinition, len(def.Features))
	for i, f := range def.Features {
		fd := FeatureDefinition{Name: f.Name, Type: f.Type, Column: f.Input}
		if f.Kind == repo.AggregateFeature {
			fd.Function, fd.N, fd.Precision = f.Function, f.N, f.Precision
			if f.Function == "approx_percentile" {
				q := f.Percentile // a copy: the definition is shared
				fd.Percentile = &q
			}
			fd.Window = "lifetime"
			if !f.Window.Lifetime {
				fd.Window = repo.FormatDuration(f.Window.Size)
			}
			if f.Window.Offset > 0 {
				fd.Offset = repo.FormatDuration(f.Window.Offset)
			}
		}
		out[i] = fd
	}
	return out
}

// transformDefinition returns def's transform as declared, nil if none.
func transformDefinition(def *repo.FeatureView) *TransformDefinition {
	t := def.Transform
	if t == nil {
		return nil
	}
	out := &TransformDefinition{Columns: make([]TransformColumnDefinition, len(t.Columns))}
	for i, c := range t.Columns {
		out.Columns[i] = TransformColumnDefinition{Name: c.Name, Expr: c.Expr.Source}
	}
	if t.Filter != nil {
		out.Filter = t.Filter.Source
	}
	return out
}

// versions lists the versions of v the catalog holds, oldest first: the
// prior that serves while a backfill builds v, if any, then v. A
// materialization rebuilds the version that serves: it is one version,
// serving, with the job. The catalog keeps no others; the jobs API lists
// the backfills that built earlier ones.
func (v *viewRT) versions() []VersionInfo {
	cur := VersionInfo{Version: v.version, CreatedAt: v.createdAt, Serving: v.pending == "", Job: v.pending}
	p := v.prior
	switch {
	case v.pending == "" || p == nil:
		return []VersionInfo{cur}
	case p.version == v.version:
		cur.Serving = true
		return []VersionInfo{cur}
	}
	return []VersionInfo{{Version: p.version, CreatedAt: p.createdAt, Serving: true}, cur}
}
