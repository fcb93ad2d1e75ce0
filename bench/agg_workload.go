package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/featurelog/featurelog/engine"
)

// The aggregate workload: purchases {user_id, timestamp, amount} and
// continuous aggregate views over them. aggRepo is written here, not
// copied from examples/, so each benchmark's views are exactly what it
// needs; every benchmark ingests only into the sources it reads.
const (
	aggWorkspace = "aggbench"
	aggRepoName  = "aggbench.yaml"

	// aggSource feeds aggView, the view of the read benchmarks: count,
	// sum and mean of amount over 1h, 24h and 7d (9 features), served by
	// aggService.
	aggSource  = "purchases"
	aggView    = "user_amounts"
	aggService = "user_amounts_service"

	// aggLongSource feeds one view per window of the cost-growth
	// benchmark (count, sum and mean over that window), each served by
	// aggWindowService(window).
	aggLongSource = "purchases_long"

	// aggPlainSource stands in for a source with no view (which the
	// engine refuses to ingest into): its one view, an attribute view,
	// starts in 2200, so every record is logged and skipped before
	// reaching any online state. aggViewsSource has three aggregate
	// views. Both have aggSource's schema (agg-ingest).
	aggPlainSource = "purchases_plain"
	aggViewsSource = "purchases_views"
)

// aggWindows are the windows of the cost-growth views, as the repo
// spells them.
var aggWindows = []string{"1h", "30d", "lifetime"}

func aggWindowView(w string) string    { return "user_amounts_" + w }
func aggWindowService(w string) string { return aggWindowView(w) + "_service" }

// aggRepo is the repo file of the aggregate benchmarks.
func aggRepo() []byte {
	var b strings.Builder
	b.WriteString("workspace: " + aggWorkspace + "\n\nentities:\n  - name: user\n    join_keys: [user_id]\n\nsources:\n")
	for _, src := range []string{aggSource, aggLongSource, aggPlainSource, aggViewsSource} {
		fmt.Fprintf(&b, "  - name: %s\n    schema:\n      - {name: user_id, type: String}\n"+
			"      - {name: timestamp, type: Timestamp}\n      - {name: amount, type: Float64}\n", src)
	}
	b.WriteString("\nfeature_views:\n")
	countSumMean := []string{"count", "sum", "mean"}
	aggViewYAML(&b, aggView, aggSource, countSumMean, []string{"1h", "24h", "7d"})
	for _, w := range aggWindows {
		aggViewYAML(&b, aggWindowView(w), aggLongSource, countSumMean, []string{w})
	}
	fmt.Fprintf(&b, "  - name: ingest_none\n    source: %s\n    entities: [user]\n    timestamp_field: timestamp\n"+
		"    feature_start_time: 2200-01-01T00:00:00Z\n    features:\n      - attribute: {name: amount}\n", aggPlainSource)
	aggViewYAML(&b, "ingest_amounts", aggViewsSource, countSumMean, []string{"1h", "24h", "7d"})
	aggViewYAML(&b, "ingest_extremes", aggViewsSource, []string{"min", "max"}, []string{"1h", "24h"})
	aggViewYAML(&b, "ingest_totals", aggViewsSource, []string{"count", "sum"}, []string{"30d"})
	b.WriteString("\nfeature_services:\n")
	fmt.Fprintf(&b, "  - name: %s\n    features: [%s]\n", aggService, aggView)
	for _, w := range aggWindows {
		fmt.Fprintf(&b, "  - name: %s\n    features: [%s]\n", aggWindowService(w), aggWindowView(w))
	}
	return []byte(b.String())
}

// aggViewYAML writes a continuous view with every function over every
// window, functions varying fastest.
func aggViewYAML(b *strings.Builder, name, source string, functions, windows []string) {
	fmt.Fprintf(b, "  - name: %s\n    source: %s\n    entities: [user]\n    timestamp_field: timestamp\n    online: true\n    features:\n",
		name, source)
	for _, w := range windows {
		for _, f := range functions {
			fmt.Fprintf(b, "      - aggregate: {input: amount, function: %s, window: %s}\n", f, w)
		}
	}
}

// openAgg opens a DB in dir with the aggregate repo applied. now, if not
// nil, is its clock.
func openAgg(dir string, noSync bool, now func() time.Time) (*engine.DB, error) {
	db, err := engine.Open(engine.Options{Dir: dir, NoSync: noSync, Now: now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Holder: "featurelog bench"})
	if err != nil {
		return nil, err
	}
	if _, err := db.ApplyWait(context.Background(), aggRepoName, aggRepo()); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// AggHistory is a data directory holding aggregate history, prepared by
// BuildAggHistory and closed, so that a server process (Server.DataDir)
// or AggHistory.Open can open it by replaying its log.
type AggHistory struct {
	// Dir is the data directory.
	Dir string
	// End is the end of the history: the newest event is at End, and
	// the clock stood there when loading finished.
	End time.Time
	// Keys are the users with history, in order.
	Keys []string
	// Events is the number of events ingested.
	Events int
}

// Remove deletes the data directory.
func (h *AggHistory) Remove() error { return os.RemoveAll(h.Dir) }

// Open opens the history's DB (replaying its log) with its clock stopped
// at End.
func (h *AggHistory) Open() (*engine.DB, error) {
	return openAgg(h.Dir, true, func() time.Time { return h.End })
}

// AggHistoryConfig configures BuildAggHistory.
type AggHistoryConfig struct {
	// TempDir is where the data directory is created. Default
	// os.TempDir().
	TempDir string
	// Source receives the events: aggSource (default) or aggLongSource.
	Source string
	// Keys is the number of users; they all get the same event times.
	// Default 1.
	Keys int
	// Events is the number of events per user, spread evenly over Span,
	// the last at the end of the history (AggHistory.End). Default
	// 6,048,600: 7 days and 1 minute at 10 events/s, so that a 7d window
	// read anywhere in the last minute holds 7 full days.
	Events int
	// Span is the time each user's events cover. Default 7d+1m.
	Span time.Duration
	// DenseAt, if set, replaces the even spread: each user gets one event
	// every SparseStep over Span, plus events at DenseRate within
	// ±DenseWidth of End−age for every age in DenseAt. Events is then
	// ignored. RunAggBatchHTTPRate uses it to give 100 users the event
	// density of the full history exactly where its reads look (the
	// unaligned edges of their windows) without holding 605M events.
	DenseAt []time.Duration
	// DenseRate is the event rate in the dense ranges. Default 10/s.
	DenseRate float64
	// DenseWidth is the half width of a dense range. Default 2m.
	DenseWidth time.Duration
	// SparseStep is the gap between events outside the dense ranges.
	// Default 1m (every finest tile has an event, as in a full history).
	SparseStep time.Duration
	// BatchSize is the number of records per engine.Ingest call.
	// Default 20,000.
	BatchSize int
	// Prefix starts the users' names. Default "user-".
	Prefix string
}

// EnsureDefaults fills in unset fields.
func (c *AggHistoryConfig) EnsureDefaults() {
	if c.Source == "" {
		c.Source = aggSource
	}
	if c.Keys == 0 {
		c.Keys = 1
	}
	if c.Events == 0 {
		c.Events = 6_048_600
	}
	if c.Span == 0 {
		c.Span = 7*24*time.Hour + time.Minute
	}
	if c.DenseRate == 0 {
		c.DenseRate = 10
	}
	if c.DenseWidth == 0 {
		c.DenseWidth = 2 * time.Minute
	}
	if c.SparseStep == 0 {
		c.SparseStep = time.Minute
	}
	if c.BatchSize == 0 {
		c.BatchSize = 20_000
	}
	if c.Prefix == "" {
		c.Prefix = userPrefix
	}
}

// Validate reports a configuration that cannot run.
func (c *AggHistoryConfig) Validate() error {
	if c.Keys <= 0 || c.Events <= 0 || c.Span <= 0 || c.BatchSize <= 0 || c.DenseRate <= 0 || c.DenseWidth <= 0 || c.SparseStep <= 0 {
		return errors.New("bench: AggHistoryConfig: Keys, Events, Span, BatchSize, DenseRate, DenseWidth and SparseStep must be positive")
	}
	return nil
}

// offsets returns every user's event times as offsets before the end
// of the history, oldest first.
func (c *AggHistoryConfig) offsets() []time.Duration {
	if len(c.DenseAt) == 0 {
		step := c.Span / time.Duration(c.Events)
		out := make([]time.Duration, c.Events)
		for i := range out {
			out[i] = step * time.Duration(c.Events-1-i)
		}
		return out
	}
	var out []time.Duration
	for age := c.Span.Truncate(c.SparseStep); age >= 0; age -= c.SparseStep {
		out = append(out, age)
	}
	step := time.Duration(float64(time.Second) / c.DenseRate)
	for _, at := range c.DenseAt {
		for age := min(at+c.DenseWidth, c.Span); age >= max(at-c.DenseWidth, 0); age -= step {
			out = append(out, age)
		}
	}
	slices.SortFunc(out, func(a, b time.Duration) int { return cmp.Compare(b, a) })
	return slices.Compact(out)
}

// BuildAggHistory ingests the history cfg describes into a new data
// directory and closes it; the caller removes it (AggHistory.Remove).
func BuildAggHistory(cfg AggHistoryConfig) (*AggHistory, error) {
	h, db, err := openAggHistory(cfg)
	if err != nil {
		return nil, err
	}
	if err := db.Close(); err != nil {
		h.Remove()
		return nil, err
	}
	return h, nil
}

// openAggHistory is BuildAggHistory leaving the DB open, its clock
// stopped at the end of the history.
func openAggHistory(cfg AggHistoryConfig) (*AggHistory, *engine.DB, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp(cfg.TempDir, "featurelog-bench-agg-")
	if err != nil {
		return nil, nil, err
	}
	h := &AggHistory{Dir: dir, End: time.Now().UTC().Truncate(time.Millisecond)}
	var clock atomic.Int64
	db, err := openAgg(dir, true, func() time.Time { return time.Unix(0, clock.Load()).UTC() })
	if err == nil {
		if err = h.load(db, &clock, &cfg); err != nil {
			db.Close()
		}
	}
	if err != nil {
		h.Remove()
		return nil, nil, err
	}
	return h, db, nil
}

// load ingests cfg's history ending at h.End into db, in time order,
// users interleaved, with amounts cycling through 1..100, in batches of
// cfg.BatchSize records. The clock follows the events, as for a live
// stream: before each batch it is set to the batch's newest event, so
// every event is inside the views' TTL when ingested and none is in the
// future. The log is not fsynced (db is NoSync): the history is
// replayed, never recovered.
func (h *AggHistory) load(db *engine.DB, clock *atomic.Int64, cfg *AggHistoryConfig) error {
	offs := cfg.offsets()
	first := len(h.Keys)
	for k := range cfg.Keys {
		h.Keys = append(h.Keys, cfg.Prefix+strconv.Itoa(k))
	}
	keys := h.Keys[first:]
	total := len(keys) * len(offs)
	for lo := 0; lo < total; lo += cfg.BatchSize {
		n := min(cfg.BatchSize, total-lo)
		recs := make([]map[string]any, n)
		var ts time.Time
		for j := range recs {
			i := lo + j // event i/len(keys) of user i%len(keys)
			ts = h.End.Add(-offs[i/len(keys)])
			recs[j] = map[string]any{"user_id": keys[i%len(keys)], "timestamp": ts, "amount": float64(1 + i%100)}
		}
		clock.Store(ts.UnixNano())
		req := &engine.IngestRequest{Workspace: aggWorkspace, Records: map[string][]map[string]any{cfg.Source: recs}}
		if _, err := db.Ingest(req); err != nil {
			return fmt.Errorf("bench: loading aggregate history: %w", err)
		}
		h.Events += n
	}
	clock.Store(h.End.UnixNano())
	return nil
}
