package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/featurelog/featurelog/engine"
)

// StreamCatchUp is what the catch-up part measured.
type StreamCatchUp struct {
	// Events is the logged events of the data set; DirBytes the size of
	// its data directory.
	Events   int
	DirBytes int64
	// Copy is the time the data directory took to copy; Apply the apply
	// that added the output streams, and Rebuilt the views it rebuilt
	// (none: an output stream changes no state).
	Copy, Apply time.Duration
	Rebuilt     []string
	// Views has a run per catch-up view.
	Views []CatchUpView
	// RSSOpen is the node's peak RSS (VmHWM) once it opened the data
	// directory and served nothing; RSSPeak after every HTTP catch-up.
	RSSOpen, RSSPeak int64
}

// CatchUpView is one view's catch-up: the records its stream holds,
// read from earliest in-process and over HTTP.
type CatchUpView struct {
	View            string
	InProcess, HTTP CatchUpRun
	// RSSAfter is the node's peak RSS (VmHWM) after the HTTP catch-up.
	RSSAfter int64
}

// CatchUpRun is one read of a stream from earliest to its end.
type CatchUpRun struct {
	Records int64
	Elapsed time.Duration
	Err     string
}

// Rate is the records received per second.
func (r *CatchUpRun) Rate() float64 { return float64(r.Records) / max(r.Elapsed.Seconds(), 1e-9) }

// streamHistRepo is the historical workload's repo with output streams on
// its continuous aggregate view and its attribute view (an interval view
// may not have one).
func streamHistRepo() string {
	r := histRepo
	for _, view := range []string{"user_amounts", "user_last"} {
		head := "  - name: " + view + "\n    source: events\n    entities: [user]\n    timestamp_field: timestamp\n"
		r = strings.Replace(r, head, head+"    output_stream: {include_features: true}\n", 1)
	}
	return r
}

// streamCatchUp runs the catch-up part on a copy of the historical data
// set.
func streamCatchUp(cfg *StreamConfig) (*StreamCatchUp, error) {
	h, work, err := historicalWork(&cfg.Data, cfg.CacheRoot, cfg.TempDir, "stream")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	c := &StreamCatchUp{Events: cfg.Data.Events}
	dir := filepath.Join(work, "data")
	fmt.Fprintf(cfg.Progress, "bench: stream: copying the %s-event data directory\n", fmtCount(cfg.Data.Events))
	t0 := time.Now()
	if out, err := exec.Command("cp", "-a", h.Dir, dir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("bench: copying %s: %w\n%s", h.Dir, err, out)
	}
	c.Copy = time.Since(t0)
	if c.DirBytes, err = dirBytes(dir); err != nil {
		return c, err
	}
	if err := catchUpInProcess(cfg, c, dir); err != nil {
		return c, err
	}
	return c, catchUpHTTP(cfg, c, dir)
}

// catchUpInProcess applies the repo with output streams to dir and reads
// each view's stream from earliest with an engine.OutputStream.
func catchUpInProcess(cfg *StreamConfig, c *StreamCatchUp, dir string) error {
	db, err := engine.Open(engine.Options{Dir: dir, Logger: slog.New(slog.DiscardHandler), Holder: "featurelog bench stream"})
	if err != nil {
		return err
	}
	err = func() error {
		t0 := time.Now()
		res, err := db.ApplyWait(context.Background(), histRepoName, []byte(streamHistRepo()))
		if err != nil {
			return fmt.Errorf("bench: applying output streams to the historical workload: %w", err)
		}
		c.Apply, c.Rebuilt = time.Since(t0), res.Rebuilt
		for _, view := range cfg.CatchUpViews {
			fmt.Fprintf(cfg.Progress, "bench: stream: catch-up of %s from earliest, in-process\n", view)
			run, err := readStreamInProcess(db, view)
			c.Views = append(c.Views, CatchUpView{View: view, InProcess: run})
			if err != nil {
				return err
			}
		}
		return nil
	}()
	return errors.Join(err, db.Close())
}

// readStreamInProcess reads a view's stream from earliest to its end (no
// record within a second).
func readStreamInProcess(db *engine.DB, view string) (CatchUpRun, error) {
	var run CatchUpRun
	st, err := db.OpenOutputStream(histWorkspace, view, engine.StreamStart{Kind: engine.StartEarliest})
	if err != nil {
		return run, err
	}
	defer st.Close()
	recs := make([]engine.OutputRecord, 0, 256)
	t0 := time.Now()
	for {
		recs, err = st.Next(context.Background(), recs, 256, time.Second)
		if err != nil {
			return run, err
		}
		if len(recs) == 0 {
			return run, nil
		}
		run.Records += int64(len(recs))
		run.Elapsed = time.Since(t0)
	}
}

// catchUpHTTP serves dir from a node and reads each view's stream from
// earliest over HTTP NDJSON, as many records as in-process.
func catchUpHTTP(cfg *StreamConfig, c *StreamCatchUp, dir string) error {
	p, err := cfg.startNode(dir, nil, cfg.profilePath("catchup"))
	if err != nil {
		return err
	}
	status := "/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/status"
	c.RSSOpen = statusBytes(status, "VmHWM")
	for i := range c.Views {
		v := &c.Views[i]
		fmt.Fprintf(cfg.Progress, "bench: stream: catch-up of %s from earliest, HTTP NDJSON\n", v.View)
		v.HTTP = readStreamHTTP(p, v.View, v.InProcess.Records, cfg.Drain)
		v.RSSAfter = statusBytes(status, "VmHWM")
	}
	c.RSSPeak = statusBytes(status, "VmHWM")
	return p.stop()
}

// readStreamHTTP reads a view's stream from earliest over NDJSON until
// want records arrived, or none did for stall.
func readStreamHTTP(p *process, view string, want int64, stall time.Duration) CatchUpRun {
	var run CatchUpRun
	fs := newFollowerSet([]string{view})
	f := fs.fs[0]
	t0 := time.Now()
	if err := fs.followHTTP(context.Background(), "http://"+p.addr, histWorkspace, "earliest", false); err != nil {
		run.Err = err.Error()
		return run
	}
	defer fs.stop()
	lastN, lastMove := int64(0), time.Now()
	for {
		n := f.n.Load()
		if n != lastN {
			lastN, lastMove = n, time.Now()
		}
		if n >= want || time.Since(lastMove) > stall || f.errText() != "" {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	run.Records, run.Err = f.n.Load(), f.errText()
	if last := f.last.Load(); last > 0 {
		run.Elapsed = time.Unix(0, last).Sub(t0)
	}
	if run.Err == "" && run.Records != want {
		run.Err = fmt.Sprintf("received %d records, %d in-process", run.Records, want)
	}
	return run
}
