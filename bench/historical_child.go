package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-json-experiment/json/v1"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/schema"
)

// childResultPrefix starts the line a historical child prints on stdout
// with its result: "RESULT {json}".
const childResultPrefix = "RESULT "

// childResult is what a historical child process measured.
type childResult struct {
	// Open is engine.Open of the data directory; Replayed and LogEntries
	// are what Open logged ("opened data directory").
	Open       time.Duration `json:"open_ns"`
	Replayed   int64         `json:"records_replayed"`
	LogEntries int64         `json:"log_entries"`
	// Spine is building the in-memory spine (not part of the join).
	Spine time.Duration `json:"spine_ns"`
	// Joins are the wall times of the successive joins, the first in the
	// freshly started process.
	Joins []time.Duration `json:"joins_ns"`
	// JoinsCPU are the CPU times (user+system, every thread) of the
	// joins: on a machine shared with other work they show what the join
	// itself cost (0 where /proc is missing).
	JoinsCPU []time.Duration `json:"joins_cpu_ns"`
	// Rows is the rows the sink received per join; Present the non-null
	// feature values among them.
	Rows    int64 `json:"rows"`
	Present int64 `json:"present"`
	// RSSBeforeJoin is VmRSS after open and spine building; PeakRSS is
	// VmHWM at the end: the process's peak resident set (bytes; 0 where
	// /proc is missing).
	RSSBeforeJoin int64 `json:"rss_before_join"`
	PeakRSS       int64 `json:"peak_rss"`
}

// HistoricalChildMain is the body of the child processes of the
// historical benchmarks: a program re-executes itself with args (built by
// runChild) and calls HistoricalChildMain with them. It opens the data
// directory, times the open, builds an in-memory spine and times
// GetFeaturesForEvents over it, then prints "RESULT {json}" on stdout.
//
//	--data DIR          the data directory (BuildHistoricalData)
//	--service NAME      the feature service to join
//	--spine-rows N      spine rows; user_id uniform among --keys, time uniform in [--start, --end)
//	--keys K --start NS --end NS --seed S
//	--runs R            joins to run, one after the other (default 1)
//	--open-only         only open and close the directory
//	--cpuprofile FILE   profile the joins (not the open or the spine)
func HistoricalChildMain(args []string) error {
	fs := flag.NewFlagSet("featurelog bench historical-child", flag.ContinueOnError)
	dir := fs.String("data", "", "data directory")
	service := fs.String("service", histService, "feature service")
	rows := fs.Int("spine-rows", 0, "spine rows")
	keys := fs.Int("keys", 0, "users the spine draws from")
	start := fs.Int64("start", 0, "spine times from (Unix ns)")
	end := fs.Int64("end", 0, "spine times until (Unix ns)")
	seed := fs.Int("seed", 1, "spine seed")
	runs := fs.Int("runs", 1, "joins to run")
	openOnly := fs.Bool("open-only", false, "only open the directory")
	cpuprofile := fs.String("cpuprofile", "", "CPU profile of the joins")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("bench: historical-child: --data is required")
	}
	res, err := childRun(*dir, *service, spineSpec{rows: *rows, keys: *keys, start: *start, end: *end, seed: *seed},
		*runs, *openOnly, *cpuprofile)
	if err != nil {
		return err
	}
	out, err := json.Marshal(res)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(os.Stdout, "%s%s\n", childResultPrefix, out)
	return err
}

func childRun(dir, service string, spec spineSpec, runs int, openOnly bool, cpuprofile string) (*childResult, error) {
	res := &childResult{}
	lh := &openLogHandler{}
	t0 := time.Now()
	db, err := engine.Open(engine.Options{Dir: dir, Now: func() time.Time { return histEnd }, Logger: slog.New(lh),
		Holder: "featurelog bench historical-child"})
	if err != nil {
		return nil, err
	}
	res.Open = time.Since(t0)
	res.Replayed, res.LogEntries = lh.replayed.Load(), lh.entries.Load()
	if openOnly {
		res.PeakRSS = procStatusBytes("VmHWM")
		return res, db.Close()
	}
	if spec.rows <= 0 || spec.keys <= 0 || spec.end <= spec.start {
		db.Close()
		return nil, errors.New("bench: historical-child: --spine-rows, --keys and --start < --end are required")
	}
	t1 := time.Now()
	sp := newMemSpine(spec)
	res.Spine = time.Since(t1)
	res.RSSBeforeJoin = procStatusBytes("VmRSS")
	if cpuprofile != "" {
		stop, err := StartCPUProfile(cpuprofile)
		if err != nil {
			db.Close()
			return nil, err
		}
		defer stop()
	}
	for range max(runs, 1) {
		sp.rewind()
		var sink countingSink
		cpu0 := procCPUTime()
		d, err := joinOnce(db, service, sp, &sink)
		if err != nil {
			db.Close()
			return nil, err
		}
		res.Joins = append(res.Joins, d)
		res.JoinsCPU = append(res.JoinsCPU, procCPUTime()-cpu0)
		res.Rows, res.Present = sink.rows, sink.present
	}
	res.PeakRSS = procStatusBytes("VmHWM")
	return res, db.Close()
}

// joinOnce runs one spine join of service into sink and times it.
func joinOnce(db *engine.DB, service string, sp engine.Spine, sink engine.HistoricalSink) (time.Duration, error) {
	req := &engine.HistoricalRequest{Workspace: histWorkspace, Service: service, TimestampKey: "ts"}
	t0 := time.Now()
	err := db.GetFeaturesForEvents(context.Background(), req, sp, sink)
	return time.Since(t0), err
}

// spineSpec describes a random spine: rows rows, user_id uniform among
// keys users, ts uniform in [start, end) to the millisecond.
type spineSpec struct {
	rows, keys int
	start, end int64 // Unix ns
	seed       int
}

// memSpine is an in-memory spine of rows {user_id string, ts time.Time}.
type memSpine struct {
	rows [][]any
	i    int
}

func newMemSpine(spec spineSpec) *memSpine {
	r := newRNG(spec.seed + 1_000_003)
	spanMs := int((spec.end - spec.start) / int64(time.Millisecond))
	start := time.Unix(0, spec.start).UTC()
	rows := make([][]any, spec.rows)
	cells := make([]any, 2*spec.rows) // one backing array for every row
	for i := range rows {
		row := cells[2*i : 2*i+2 : 2*i+2]
		row[0] = histKey(r.intn(spec.keys))
		row[1] = start.Add(time.Duration(r.intn(max(spanMs, 1))) * time.Millisecond)
		rows[i] = row
	}
	return &memSpine{rows: rows}
}

func (s *memSpine) Columns() []string { return []string{"user_id", "ts"} }

func (s *memSpine) Next() ([]any, error) {
	if s.i >= len(s.rows) {
		return nil, io.EOF
	}
	s.i++
	return s.rows[s.i-1], nil
}

func (s *memSpine) rewind() { s.i = 0 }

// countingSink discards the rows but reads every value, so the join
// cannot skip producing them.
type countingSink struct {
	rows, present int64
	sum           float64
	keep          int     // rows to keep in kept (tests)
	kept          [][]any // the first keep rows' lead values
	keptVals      [][]schema.Value
}

func (s *countingSink) Begin([]engine.HistoricalColumn) error { return nil }

func (s *countingSink) Row(lead []any, features []schema.Value) error {
	s.rows++
	for i := range features {
		if v := &features[i]; v.Kind != schema.Null {
			s.present++
			s.sum += v.F + float64(v.I)
		}
	}
	if len(s.kept) < s.keep {
		s.kept = append(s.kept, append([]any(nil), lead...))
		s.keptVals = append(s.keptVals, append([]schema.Value(nil), features...))
	}
	return nil
}

// openLogHandler picks records_replayed and log_entries out of the
// engine's "opened data directory" log line and passes warnings and
// errors on to stderr.
type openLogHandler struct {
	replayed, entries atomic.Int64
}

func (h *openLogHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *openLogHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "opened data directory" {
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "records_replayed":
				h.replayed.Store(attrInt(a.Value))
			case "log_entries":
				h.entries.Store(attrInt(a.Value))
			}
			return true
		})
	}
	if r.Level >= slog.LevelWarn {
		fmt.Fprintf(os.Stderr, "%s %s\n", r.Level, r.Message)
	}
	return nil
}

func (h *openLogHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *openLogHandler) WithGroup(string) slog.Handler      { return h }

func attrInt(v slog.Value) int64 {
	switch v.Kind() {
	case slog.KindInt64:
		return v.Int64()
	case slog.KindUint64:
		return int64(v.Uint64())
	}
	n, _ := strconv.ParseInt(v.String(), 10, 64)
	return n
}

// procStatusBytes reads a "kB" field of /proc/self/status (VmHWM, VmRSS)
// in bytes; 0 where there is no such file.
func procStatusBytes(field string) int64 { return statusBytes("/proc/self/status", field) }

// statusBytes reads a "kB" field of a /proc/.../status file; 0 when there
// is none.
func statusBytes(path, field string) int64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}

// procCPUTime returns this process's user+system CPU time (pidCPUTime).
func procCPUTime() time.Duration { return pidCPUTime(0) }

// pidCPUTime returns process pid's user+system CPU time from
// /proc/<pid>/stat, this process's for pid 0 (in clock ticks, taken as
// 100 Hz as on every Linux build that matters); 0 where there is no such
// file.
func pidCPUTime(pid int) time.Duration {
	path := "/proc/self/stat"
	if pid != 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/stat"
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; the fields after it
	// start after its closing parenthesis: state is field 3, utime 14,
	// stime 15.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// childSpec is one run of a historical child process.
type childSpec struct {
	command    []string // argv prefix of a program calling HistoricalChildMain
	dir        string
	service    string
	spine      spineSpec
	runs       int
	openOnly   bool
	cpuprofile string
}

// runChild starts a child process, waits for it and returns its result.
func runChild(c childSpec) (*childResult, error) {
	if len(c.command) == 0 {
		return nil, errors.New("bench: HistoricalConfig.Command is required: the argv prefix of a program that calls bench.HistoricalChildMain")
	}
	args := append([]string(nil), c.command[1:]...)
	args = append(args, "--data", c.dir, "--service", c.service, "--runs", strconv.Itoa(c.runs),
		"--spine-rows", strconv.Itoa(c.spine.rows), "--keys", strconv.Itoa(c.spine.keys),
		"--start", strconv.FormatInt(c.spine.start, 10), "--end", strconv.FormatInt(c.spine.end, 10),
		"--seed", strconv.Itoa(c.spine.seed))
	if c.openOnly {
		args = append(args, "--open-only")
	}
	if c.cpuprofile != "" {
		args = append(args, "--cpuprofile", c.cpuprofile)
	}
	cmd := exec.Command(c.command[0], args...)
	stderr := &tailBuffer{max: 8 << 10}
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("bench: historical child (%s): %w%s", c.command[0], err, childNote(stderr))
	}
	for _, line := range strings.Split(stdout.String(), "\n") {
		if js, ok := strings.CutPrefix(line, childResultPrefix); ok {
			var res childResult
			if err := json.Unmarshal([]byte(js), &res); err != nil {
				return nil, fmt.Errorf("bench: historical child's result: %w", err)
			}
			return &res, nil
		}
	}
	return nil, fmt.Errorf("bench: historical child printed no result%s", childNote(stderr))
}

// childNote returns "; child stderr: ..." or "".
func childNote(t *tailBuffer) string {
	return strings.Replace(t.note(), "; server stderr: ", "; child stderr: ", 1)
}
