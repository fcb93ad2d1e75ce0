package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-json-experiment/json/v1"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/internal/atomicfile"
)

// The historical workload (issue #4): events {user_id, timestamp, amount}
// feeding a continuous aggregate view (count and sum over 1h and 24h), the
// same aggregates with aggregation_interval 1h, and an attribute view
// holding the latest amount. A service joins the continuous view with the
// attribute view, another the interval view with the attribute view.
const (
	histWorkspace       = "histbench"
	histSource          = "events"
	histService         = "spine_service"          // user_amounts + user_last
	histIntervalService = "spine_service_interval" // user_amounts_hourly + user_last
	histRepoName        = "histbench.yaml"
)

// histRepo is the repo file of the historical benchmarks. The attribute
// view has no TTL, so every event is accepted whatever its age (the
// aggregate views' TTL is their longest window, 24h, and a record outside
// every view's TTL would be refused).
const histRepo = `workspace: histbench

entities:
  - name: user
    join_keys: [user_id]

sources:
  - name: events
    schema:
      - {name: user_id, type: String}
      - {name: timestamp, type: Timestamp}
      - {name: amount, type: Float64}

feature_views:
  - name: user_amounts
    source: events
    entities: [user]
    timestamp_field: timestamp
    features:
      - aggregate: {input: amount, function: count, window: 1h}
      - aggregate: {input: amount, function: sum, window: 1h}
      - aggregate: {input: amount, function: count, window: 24h}
      - aggregate: {input: amount, function: sum, window: 24h}

  - name: user_amounts_hourly
    source: events
    entities: [user]
    timestamp_field: timestamp
    aggregation_interval: 1h
    features:
      - aggregate: {input: amount, function: count, window: 1h}
      - aggregate: {input: amount, function: sum, window: 1h}
      - aggregate: {input: amount, function: count, window: 24h}
      - aggregate: {input: amount, function: sum, window: 24h}

  - name: user_last
    source: events
    entities: [user]
    timestamp_field: timestamp
    features:
      - attribute: {name: amount}

feature_services:
  - name: spine_service
    online_serving_enabled: true
    features: [user_amounts, user_last]

  - name: spine_service_interval
    online_serving_enabled: true
    features: [user_amounts_hourly, user_last]
`

// histEnd is the end of every historical data set: the newest event is
// before it and the engine's clock stands at it. A fixed instant keeps
// cached data directories and spines reproducible.
var histEnd = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

// histKey names user i of the historical workload.
func histKey(i int) string { return "user-" + strconv.Itoa(i) }

// histMarkerFormat versions the marker; bump it when the data a marker
// vouches for changes (the repo text is hashed into it already).
const histMarkerFormat = 1

// HistoricalDataConfig configures BuildHistoricalData.
type HistoricalDataConfig struct {
	// CacheDir holds the data directory (CacheDir/data) and, written last,
	// the marker that says it is complete (CacheDir/complete.json). A
	// complete directory built with the same parameters is reused.
	// Required.
	CacheDir string
	// Events is the number of events. Default 20,000,000.
	Events int
	// Keys is the number of users; each event's user is drawn uniformly.
	// Default 1,000,000.
	Keys int
	// Span is the event-time range, ending at histEnd; each event's time
	// is drawn uniformly in it, to the millisecond. Default 30 days.
	Span time.Duration
	// BatchSize is the number of records per engine.Ingest call. Default
	// 2000.
	BatchSize int
	// Workers is the number of goroutines ingesting. Default 2.
	Workers int
	// Rebuild discards a cached directory and builds it again.
	Rebuild bool
	// Progress receives a line now and then while building. Default none.
	Progress io.Writer
}

// EnsureDefaults fills in unset fields.
func (c *HistoricalDataConfig) EnsureDefaults() {
	if c.Events == 0 {
		c.Events = 20_000_000
	}
	if c.Keys == 0 {
		c.Keys = 1_000_000
	}
	if c.Span == 0 {
		c.Span = 30 * 24 * time.Hour
	}
	if c.BatchSize == 0 {
		c.BatchSize = 2000
	}
	if c.Workers == 0 {
		c.Workers = 2
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
}

// Validate reports a configuration that cannot run.
func (c *HistoricalDataConfig) Validate() error {
	if c.CacheDir == "" {
		return errors.New("bench: HistoricalDataConfig.CacheDir is required")
	}
	if c.Events <= 0 || c.Keys <= 0 || c.BatchSize <= 0 || c.Workers <= 0 || c.Span < time.Millisecond {
		return errors.New("bench: HistoricalDataConfig: Events, Keys, BatchSize and Workers must be positive and Span at least 1ms")
	}
	return nil
}

// HistoricalData is a closed data directory built by BuildHistoricalData:
// the history is in segments (flushed and fully compacted).
type HistoricalData struct {
	// Dir is the data directory.
	Dir string
	// Start and End bound the events' times; the clock stands at End.
	Start, End time.Time
	// Build describes how the directory was built (possibly by an earlier
	// run, when Cached).
	Build HistoricalBuild
	// Cached is set when a complete directory from an earlier run was
	// reused.
	Cached bool
}

// HistoricalBuild is what building a historical data directory took; it
// is stored in the marker so a reused directory still reports it.
type HistoricalBuild struct {
	Format   int    `json:"format"`
	RepoHash string `json:"repo_hash"`
	Events   int    `json:"events"`
	Keys     int    `json:"keys"`
	SpanNs   int64  `json:"span_ns"`
	EndNs    int64  `json:"end_ns"`
	// Ingest is the time engine.Ingest took for every event (NoSync, with
	// the background flushes and merges running); Finish the final Flush,
	// CompactAll and Close; Total both, plus opening.
	Ingest time.Duration `json:"ingest_ns"`
	Finish time.Duration `json:"finish_ns"`
	Total  time.Duration `json:"total_ns"`
	// Built is when the build finished.
	Built time.Time `json:"built"`
}

// IngestRate is the events ingested per second.
func (b *HistoricalBuild) IngestRate() float64 {
	return float64(b.Events) / max(b.Ingest.Seconds(), 1e-9)
}

func (c *HistoricalDataConfig) marker() HistoricalBuild {
	sum := sha256.Sum256([]byte(histRepo))
	return HistoricalBuild{Format: histMarkerFormat, RepoHash: hex.EncodeToString(sum[:8]), Events: c.Events,
		Keys: c.Keys, SpanNs: int64(c.Span), EndNs: histEnd.UnixNano()}
}

// BuildHistoricalData returns the data directory cfg describes, building
// it unless a complete one with the same parameters is cached. The caller
// may open it (read-only use keeps the cache valid: a reader that flushes
// or compacts changes only how the same records are stored).
func BuildHistoricalData(cfg HistoricalDataConfig) (*HistoricalData, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h := &HistoricalData{Dir: filepath.Join(cfg.CacheDir, "data"), Start: histEnd.Add(-cfg.Span), End: histEnd}
	want := cfg.marker()
	markerPath := filepath.Join(cfg.CacheDir, "complete.json")
	if !cfg.Rebuild {
		if b, ok := readMarker(markerPath); ok && sameData(&b, &want) {
			err := checkReadable(h.Dir, b.Keys)
			if err == nil {
				h.Build, h.Cached = b, true
				fmt.Fprintf(cfg.Progress, "bench: reusing %s (built %s; --rebuild to build it again)\n", cfg.CacheDir, b.Built.Format(time.RFC3339))
				return h, nil
			}
			fmt.Fprintf(cfg.Progress, "bench: the cached %s is unreadable by this build (%v); rebuilding it\n", cfg.CacheDir, err)
		}
	}
	if err := os.RemoveAll(cfg.CacheDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.CacheDir, 0o755); err != nil {
		return nil, err
	}
	fmt.Fprintf(cfg.Progress, "bench: building %s: %d events, %d keys over %s\n", cfg.CacheDir, cfg.Events, cfg.Keys, cfg.Span)
	b, err := buildHistorical(h, &cfg)
	if err != nil {
		return nil, err
	}
	b.Format, b.RepoHash, b.Events, b.Keys, b.SpanNs, b.EndNs = want.Format, want.RepoHash, want.Events, want.Keys, want.SpanNs, want.EndNs
	data, err := json.MarshalIndent(&b, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(markerPath, data, 0o644); err != nil {
		return nil, err
	}
	h.Build = b
	return h, nil
}

// checkReadable opens a cached directory and reads a few keys through
// every view, as of a time inside the history: a directory written by a
// build with another on-disk format fails here rather than in the
// measured child.
func checkReadable(dir string, keys int) error {
	db, err := engine.Open(engine.Options{Dir: dir, Now: func() time.Time { return histEnd },
		Logger: slog.New(slog.DiscardHandler), Holder: "featurelog bench historical"})
	if err != nil {
		return err
	}
	defer db.Close()
	for _, svc := range []string{histService, histIntervalService} {
		for i := 0; i < keys; i += max(keys/16, 1) {
			_, err := db.GetFeatures(&engine.GetFeaturesRequest{Workspace: histWorkspace, Service: svc,
				JoinKeys: map[string]any{"user_id": histKey(i)}, AsOf: histEnd.Add(-time.Hour)})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func readMarker(path string) (HistoricalBuild, bool) {
	var b HistoricalBuild
	data, err := os.ReadFile(path)
	if err != nil {
		return b, false
	}
	return b, json.Unmarshal(data, &b) == nil
}

func sameData(a, b *HistoricalBuild) bool {
	return a.Format == b.Format && a.RepoHash == b.RepoHash && a.Events == b.Events && a.Keys == b.Keys &&
		a.SpanNs == b.SpanNs && a.EndNs == b.EndNs
}

// openHist opens a historical data directory with the clock at histEnd
// and the repo applied (a no-op when it already is).
func openHist(dir string, opts engine.Options) (*engine.DB, error) {
	opts.Dir = dir
	opts.Now = func() time.Time { return histEnd }
	opts.Holder = "featurelog bench historical"
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	db, err := engine.Open(opts)
	if err != nil {
		return nil, err
	}
	if _, err := db.ApplyWait(context.Background(), histRepoName, []byte(histRepo)); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// buildHistorical ingests the events into h.Dir, then flushes, compacts
// everything and closes the DB.
func buildHistorical(h *HistoricalData, cfg *HistoricalDataConfig) (HistoricalBuild, error) {
	var b HistoricalBuild
	t0 := time.Now()
	db, err := openHist(h.Dir, engine.Options{NoSync: true}) // building need not be durable
	if err != nil {
		return b, err
	}
	if err := ingestHistoricalSeeded(db, h.Start, cfg, 0); err != nil {
		db.Close()
		return b, err
	}
	b.Ingest = time.Since(t0)
	fmt.Fprintf(cfg.Progress, "bench: ingested %d events in %s (%s events/s); flushing and compacting\n",
		cfg.Events, fmtDur(b.Ingest), fmtRate(float64(cfg.Events)/b.Ingest.Seconds()))
	t1 := time.Now()
	err = db.Flush()
	if err == nil {
		err = db.CompactAll()
	}
	if err = errors.Join(err, db.Close()); err != nil {
		return b, err
	}
	b.Finish, b.Total, b.Built = time.Since(t1), time.Since(t0), time.Now().UTC()
	return b, nil
}

// ingestHistoricalSeeded ingests cfg.Events events from cfg.Workers
// goroutines. Batch i is drawn from seed base+i, so the data set does not
// depend on which worker ingests which batch.
func ingestHistoricalSeeded(db *engine.DB, start time.Time, cfg *HistoricalDataConfig, base int) error {
	batches := (cfg.Events + cfg.BatchSize - 1) / cfg.BatchSize
	spanMs := int(cfg.Span / time.Millisecond)
	errs := make([]error, cfg.Workers)
	var done atomic.Int64
	step := max(int64(cfg.Events)/10, 1)
	t0 := time.Now()
	var wg sync.WaitGroup
	for w := range cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			recs := make([]map[string]any, cfg.BatchSize)
			for i := range recs {
				recs[i] = make(map[string]any, 3)
			}
			for bi := w; bi < batches && errs[w] == nil; bi += cfg.Workers {
				n := min(cfg.BatchSize, cfg.Events-bi*cfg.BatchSize)
				r := newRNG(base + bi + 1)
				for _, rec := range recs[:n] {
					rec["user_id"] = histKey(r.intn(cfg.Keys))
					rec["timestamp"] = start.Add(time.Duration(r.intn(spanMs)) * time.Millisecond)
					rec["amount"] = float64(1 + r.intn(100))
				}
				req := &engine.IngestRequest{Workspace: histWorkspace, Records: map[string][]map[string]any{histSource: recs[:n]}}
				if _, errs[w] = db.Ingest(req); errs[w] != nil {
					errs[w] = fmt.Errorf("bench: ingesting historical events: %w", errs[w])
				}
				if d := done.Add(int64(n)); d/step != (d-int64(n))/step {
					fmt.Fprintf(cfg.Progress, "bench:   %d events (%s events/s)\n", d, fmtRate(float64(d)/time.Since(t0).Seconds()))
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// fmtCount prints a count with a k or M suffix when it divides evenly.
func fmtCount(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return strconv.Itoa(n/1_000_000) + "M"
	case n >= 1000 && n%1000 == 0:
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}

// dirBytes sums the sizes of the regular files under dir.
func dirBytes(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += info.Size()
		}
		return nil
	})
	return total, err
}
