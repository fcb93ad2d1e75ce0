package bench

import (
	"errors"
	"os"

	twal "github.com/tidwall/wal"

	"github.com/featurelog/featurelog/wal"
)

// TidwallConfig configures RunTidwallBaseline.
type TidwallConfig struct {
	// TempDir is where the log directory is created (and removed
	// afterwards). Default os.TempDir().
	TempDir string
	// RecordSize is the payload size of each write. Default 100 bytes.
	RecordSize int
	Loop
}

// EnsureDefaults fills in unset fields.
func (c *TidwallConfig) EnsureDefaults() {
	if c.RecordSize == 0 {
		c.RecordSize = 100
	}
	c.Loop.EnsureDefaults()
}

// Validate reports a configuration that cannot run.
func (c *TidwallConfig) Validate() error {
	if c.RecordSize <= 0 {
		return errors.New("bench: TidwallConfig.RecordSize must be positive")
	}
	return c.Loop.Validate()
}

// RunTidwallBaseline measures the durable-write baseline of the issue: raw
// github.com/tidwall/wal, one Write (one write and one fsync) per record,
// from one goroutine. It is what a naive log without group commit does.
func RunTidwallBaseline(cfg TidwallConfig) (Result, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	dir, err := os.MkdirTemp(cfg.TempDir, "featurelog-bench-tidwall-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	tw, err := twal.Open(dir, &twal.Options{SegmentSize: wal.DefaultSegmentSize, LogFormat: twal.Binary})
	if err != nil {
		return Result{}, err
	}
	payload := make([]byte, cfg.RecordSize)
	var index uint64
	res := closedLoop("tidwall-write-loop", 1, cfg.Loop, func(int) op {
		return func() (int, error) {
			index++
			return 1, tw.Write(index, payload)
		}
	})
	return res, tw.Close()
}
