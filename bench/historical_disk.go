package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/featurelog/featurelog/compaction"
	"github.com/featurelog/featurelog/engine"
)

// DiskConfig configures RunDisk.
type DiskConfig struct {
	// TempDir is where the data directory is created (and removed
	// afterwards). Default os.TempDir().
	TempDir string
	// Events is the number of events ingested. Default 2,000,000.
	Events int
	// Users is the number of users; each event's user is drawn uniformly.
	// Default 100,000.
	Users int
	// Span is the event-time range, ending at histEnd. Default 7d−1h:
	// inside click_events_fv's 7d TTL with the clock at histEnd.
	Span time.Duration
	// ClickRate is the share of events with clicked = 1. Default 0.05.
	ClickRate float64
	// BatchSize is the number of records per engine.Ingest call, so per
	// log entry. Default 1000.
	BatchSize int
}

// EnsureDefaults fills in unset fields.
func (c *DiskConfig) EnsureDefaults() {
	if c.Events == 0 {
		c.Events = 2_000_000
	}
	if c.Users == 0 {
		c.Users = 100_000
	}
	if c.Span == 0 {
		c.Span = 7*24*time.Hour - time.Hour
	}
	if c.ClickRate == 0 {
		c.ClickRate = 0.05
	}
	if c.BatchSize == 0 {
		c.BatchSize = 1000
	}
}

// Validate reports a configuration that cannot run.
func (c *DiskConfig) Validate() error {
	if c.Events <= 0 || c.Users <= 0 || c.BatchSize <= 0 || c.Span < time.Millisecond {
		return errors.New("bench: DiskConfig: Events, Users and BatchSize must be positive and Span at least 1ms")
	}
	if c.Users > 2_600_000 {
		return errors.New("bench: DiskConfig.Users is at most 2,600,000 (8-character ids)")
	}
	if c.ClickRate < 0 || c.ClickRate > 1 {
		return errors.New("bench: DiskConfig.ClickRate must be in [0, 1]")
	}
	return nil
}

// DiskResult is what RunDisk measured, after Flush, CompactAll and Close.
type DiskResult struct {
	Events int
	// LogBytes and SegmentBytes are the sizes of the files under <dir>/wal
	// and <dir>/segments (the manifest included).
	LogBytes, SegmentBytes int64
	// SegmentRawBytes is the sum of len(key)+len(value) over the segments'
	// entries and SegmentFileBytes their files' sizes (compaction.Reader
	// RawBytes and FileBytes); Segments is how many there are.
	SegmentRawBytes, SegmentFileBytes int64
	Segments                          int
	// Ingest is the time the events took to ingest (2 goroutines, NoSync).
	Ingest time.Duration
}

// PerEvent returns bytes per event.
func (r *DiskResult) PerEvent(b int64) float64 { return float64(b) / float64(max(r.Events, 1)) }

// Compression is the segments' raw bytes over their file bytes.
func (r *DiskResult) Compression() float64 {
	return float64(r.SegmentRawBytes) / float64(max(r.SegmentFileBytes, 1))
}

// RunDisk measures the bytes on disk per event for the ads example
// (examples/ads/features.yaml: user_click_counts, an aggregate view, and
// click_events_fv, an attribute view, over impressions_event_source):
// Events events of Users users with 8-character ids ("C18947Z5"),
// clicked 1 for ClickRate of them, times uniform over Span, ingested in
// BatchSize-record requests, then flushed, fully compacted and closed.
func RunDisk(cfg DiskConfig) (DiskResult, error) {
	cfg.EnsureDefaults()
	res := DiskResult{Events: cfg.Events}
	if err := cfg.Validate(); err != nil {
		return res, err
	}
	dir, err := os.MkdirTemp(cfg.TempDir, "featurelog-bench-disk-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	db, err := engine.Open(engine.Options{Dir: dir, NoSync: true, Now: func() time.Time { return histEnd },
		Logger: quietLogger(), Holder: "featurelog bench disk"})
	if err != nil {
		return res, err
	}
	if _, err := db.ApplyWait(context.Background(), adsRepoName, adsRepo); err != nil {
		db.Close()
		return res, err
	}
	t0 := time.Now()
	err = ingestClicks(db, &cfg)
	res.Ingest = time.Since(t0)
	if err == nil {
		err = db.Flush()
	}
	if err == nil {
		err = db.CompactAll()
	}
	if err := errors.Join(err, db.Close()); err != nil {
		return res, err
	}
	return res, measureDisk(dir, &res)
}

// ingestClicks ingests cfg.Events ads events from 2 goroutines.
func ingestClicks(db *engine.DB, cfg *DiskConfig) error {
	const workers = 2
	start := histEnd.Add(-cfg.Span)
	spanMs := int(cfg.Span / time.Millisecond)
	clickPer1M := int(cfg.ClickRate * 1e6)
	ids := make([]string, cfg.Users)
	for i := range ids {
		ids[i] = clickUserID(i)
	}
	batches := (cfg.Events + cfg.BatchSize - 1) / cfg.BatchSize
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for bi := w; bi < batches && errs[w] == nil; bi += workers {
				n := min(cfg.BatchSize, cfg.Events-bi*cfg.BatchSize)
				r := newRNG(bi + 7)
				recs := make([]map[string]any, n)
				for j := range recs {
					clicked := int64(0)
					if r.intn(1_000_000) < clickPer1M {
						clicked = 1
					}
					recs[j] = map[string]any{"user_id": ids[r.intn(len(ids))],
						"timestamp": start.Add(time.Duration(r.intn(spanMs)) * time.Millisecond), "clicked": clicked}
				}
				_, errs[w] = db.Ingest(&engine.IngestRequest{Workspace: adsWorkspace, Records: map[string][]map[string]any{adsSource: recs}})
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// clickUserID is user i's id: a letter, five digits, a letter and a digit
// ("C18947Z5"); the digits are i mod 100,000 and the first letter i's
// hundred-thousands, so ids are distinct for i < 2,600,000.
func clickUserID(i int) string {
	h := uint32(i)*2654435761 + 12345
	b := []byte{byte('A' + i/100_000%26), '0', '0', '0', '0', '0', byte('A' + h>>8%26), byte('0' + h>>16%10)}
	for k, d := 5, i%100_000; k >= 1; k, d = k-1, d/10 {
		b[k] = byte('0' + d%10)
	}
	return string(b)
}

// measureDisk sums the log and segment files of the closed data directory
// dir and reads every segment's raw and file sizes.
func measureDisk(dir string, res *DiskResult) error {
	var err error
	if res.LogBytes, err = dirBytes(filepath.Join(dir, "wal")); err != nil {
		return err
	}
	segDir := filepath.Join(dir, "segments")
	if res.SegmentBytes, err = dirBytes(segDir); err != nil {
		return err
	}
	ents, err := os.ReadDir(segDir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".seg") {
			continue
		}
		r, err := compaction.Open(filepath.Join(segDir, e.Name()))
		if err != nil {
			return fmt.Errorf("bench: reading segment sizes: %w", err)
		}
		res.SegmentRawBytes += r.RawBytes()
		res.SegmentFileBytes += r.FileBytes()
		res.Segments++
		r.Close()
	}
	return nil
}
