package bench

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

// AggCostGrowthConfig configures RunAggCostGrowth.
type AggCostGrowthConfig struct {
	// TempDir is where the data directory is created (and removed
	// afterwards). Default os.TempDir().
	TempDir string
	// SmallEvents and LargeEvents are the events of the two users whose
	// reads of aggService (count, sum, mean over 1h, 24h, 7d) are
	// compared, both spread evenly over Span. Defaults 10 and 1,000,000.
	SmallEvents, LargeEvents int
	// Span is the time those users' events cover, ending at the end of
	// the history. Default 7d+1m (as the read benchmarks).
	Span time.Duration
	// WindowEvents are the events of the user whose reads of one view per
	// window (count, sum, mean over 1h, 30d, lifetime) are compared,
	// spread evenly over WindowSpan. Default 1,000,000.
	WindowEvents int
	// WindowSpan is the time that user's events cover. Default 365 days,
	// so that lifetime reaches far beyond 30d.
	WindowSpan time.Duration
	// Phases is as in AggReadConfig. Default 600.
	Phases int
	// Loop bounds the measurement: the five reads take turns, 10 ms
	// each, for Duration in all (so each gets a fifth of it).
	Loop
}

// EnsureDefaults fills in unset fields.
func (c *AggCostGrowthConfig) EnsureDefaults() {
	if c.SmallEvents == 0 {
		c.SmallEvents = 10
	}
	if c.LargeEvents == 0 {
		c.LargeEvents = 1_000_000
	}
	if c.Span == 0 {
		c.Span = 7*24*time.Hour + time.Minute
	}
	if c.WindowEvents == 0 {
		c.WindowEvents = 1_000_000
	}
	if c.WindowSpan == 0 {
		c.WindowSpan = 365 * 24 * time.Hour
	}
	if c.Phases == 0 {
		c.Phases = 600
	}
	c.Loop.EnsureDefaults()
}

// Validate reports a configuration that cannot run.
func (c *AggCostGrowthConfig) Validate() error {
	if c.SmallEvents <= 0 || c.LargeEvents <= 0 || c.Span <= 0 || c.WindowEvents <= 0 || c.WindowSpan <= 0 || c.Phases <= 0 {
		return errors.New("bench: event counts, spans and Phases must be positive")
	}
	return c.Loop.Validate()
}

// AggCostGrowthResult holds RunAggCostGrowth's measurements.
type AggCostGrowthResult struct {
	// Small and Large read aggService for the users with SmallEvents and
	// LargeEvents events.
	Small, Large Result
	// Windows read the one-window views, in aggWindows order (1h, 30d,
	// lifetime), for the user with WindowEvents events.
	Windows []Result
}

// RunAggCostGrowth measures how the latency of single in-process reads
// (one reader, as RunAggReadInProcess) grows with the history of a user
// and with the window: it loads the three users into one DB, then
// measures the five reads taking turns (interleaved, so that a burst of
// load from elsewhere on the machine hits them alike).
func RunAggCostGrowth(cfg AggCostGrowthConfig) (AggCostGrowthResult, error) {
	var out AggCostGrowthResult
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return out, err
	}
	dir, err := os.MkdirTemp(cfg.TempDir, "featurelog-bench-agg-")
	if err != nil {
		return out, err
	}
	defer os.RemoveAll(dir)
	h := &AggHistory{Dir: dir, End: time.Now().UTC().Truncate(time.Millisecond)}
	var clock atomic.Int64
	db, err := openAgg(dir, true, func() time.Time { return time.Unix(0, clock.Load()).UTC() })
	if err != nil {
		return out, err
	}
	defer db.Close()
	users := []AggHistoryConfig{
		{Source: aggSource, Events: cfg.SmallEvents, Span: cfg.Span, Prefix: "small-"},
		{Source: aggSource, Events: cfg.LargeEvents, Span: cfg.Span, Prefix: "large-"},
		{Source: aggLongSource, Events: cfg.WindowEvents, Span: cfg.WindowSpan, Prefix: "long-"},
	}
	for i := range users {
		users[i].EnsureDefaults()
		if err := h.load(db, &clock, &users[i]); err != nil {
			return out, err
		}
	}
	ops := []op{newAggReadOp(db, aggRequests(h, aggService, h.Keys[0:1], cfg.Phases))(0),
		newAggReadOp(db, aggRequests(h, aggService, h.Keys[1:2], cfg.Phases))(0)}
	names := []string{"agg-read-inprocess " + h.Keys[0], "agg-read-inprocess " + h.Keys[1]}
	for _, w := range aggWindows {
		ops = append(ops, newAggReadOp(db, aggRequests(h, aggWindowService(w), h.Keys[2:3], cfg.Phases))(0))
		names = append(names, fmt.Sprintf("agg-read-inprocess window=%s %s", w, h.Keys[2]))
	}
	res := interleaved(names, cfg.Loop, ops)
	out.Small, out.Large, out.Windows = res[0], res[1], res[2:]
	return out, db.Close()
}

// interleavedTurn is how long each op of interleaved runs in a turn.
const interleavedTurn = 10 * time.Millisecond

// interleaved runs ops one at a time, back to back, each for a turn of
// interleavedTurn in rotation, for loop.Warmup unmeasured and then
// loop.Duration, and returns one Result per op. Each op's Elapsed is the
// time spent in its turns.
func interleaved(names []string, loop Loop, ops []op) []Result {
	res := make([]Result, len(ops))
	samples := make([][]int64, len(ops))
	start := time.Now()
	measureAt, stopAt := start.Add(loop.Warmup), start.Add(loop.Warmup+loop.Duration)
	var total int64
	for now := start; now.Before(stopAt) && total < loop.MaxOps; {
		measured := !now.Before(measureAt)
		for i, do := range ops {
			turnEnd := now.Add(interleavedTurn)
			t0 := now
			for t0.Before(turnEnd) {
				n, err := do()
				t1 := time.Now()
				if measured {
					switch {
					case err != nil:
						res[i].noteError(err)
					default:
						res[i].Ops++
						res[i].Records += int64(n)
						samples[i] = append(samples[i], int64(t1.Sub(t0)))
						total++
					}
					res[i].Elapsed += t1.Sub(t0)
				}
				t0 = t1
			}
			now = t0
		}
	}
	for i := range res {
		res[i].Name = names[i]
		res[i].Latency = summarize(samples[i])
		res[i].finish()
	}
	return res
}
