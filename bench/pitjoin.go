package bench

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-json-experiment/json/v1"

	"github.com/parquet-go/parquet-go"

	"github.com/featurelog/featurelog/internal/atomicfile"
)

// The point-in-time join workload of issue 14, measured as a user meets
// it: events generated into a parquet file in random event-time order,
// loaded into a fresh `featurelog serve` over HTTP /ingest (1000 records
// a request, 4 clients, fsync on, flushes and merges included), then a
// parquet spine joined by `featurelog historical --spine spine.parquet
// --out training.parquet` in a fresh process, timed with its CPU and its
// own peak RSS (watchPeakRSS). Everything runs the real CLI binary, so
// the peer comparison (the bench/peers module, DuckDB on the same files)
// measures the same program a user runs.
const (
	pitWorkspace = "pitbench"
	pitService   = "pit"
	pitMarker    = 1 // bump when the generated files or the load change
)

// Shapes of the workload: what the keys are and what the view computes.
const (
	// ShapeHours is issue 14's workload: String keys, count and sum
	// over 1h and 24h.
	ShapeHours = "hours"
	// ShapeDays is the other shape users bring: Int64 keys, count, sum,
	// min, max and mean over 7d and 30d, over 180 days of history by
	// default.
	ShapeDays = "days"
)

// PITFeature is one aggregate feature of the workload's continuous view.
type PITFeature struct {
	// Column is its column in featurelog historical's output.
	Column string
	// Function is count, sum, min, max or mean; Window its size (the
	// window is [T−Window, T)).
	Function string
	Window   time.Duration
}

// PITAttribute is the output column of the attribute view: the latest
// amount strictly before T.
const PITAttribute = "user_last.amount"

// PITFeatures returns the aggregate features of shape, in output order.
func PITFeatures(shape string) []PITFeature {
	fns, windows := []string{"count", "sum"}, []time.Duration{time.Hour, 24 * time.Hour}
	if shape == ShapeDays {
		fns, windows = []string{"count", "sum", "min", "max", "mean"}, []time.Duration{7 * 24 * time.Hour, 30 * 24 * time.Hour}
	}
	var out []PITFeature
	for _, w := range windows {
		for _, fn := range fns {
			out = append(out, PITFeature{Column: fmt.Sprintf("user_amounts.amount_%s_%s_continuous", fn, windowName(w)), Function: fn, Window: w})
		}
	}
	return out
}

// windowName prints a window as feature names do: in its largest whole
// unit.
func windowName(w time.Duration) string {
	switch day := 24 * time.Hour; {
	case w%day == 0:
		return strconv.Itoa(int(w/day)) + "d"
	case w%time.Hour == 0:
		return strconv.Itoa(int(w/time.Hour)) + "h"
	}
	return strconv.Itoa(int(w/time.Minute)) + "m"
}

// pitRepo is the workload's repo: a continuous view with shape's
// aggregates, and an attribute view with the latest amount (no ttl), in
// one service.
func pitRepo(shape string) string {
	keyType := "String"
	if shape == ShapeDays {
		keyType = "Int64"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `workspace: pitbench

entities:
  - name: user
    join_keys: [user_id]

sources:
  - name: events
    schema:
      - {name: user_id, type: %s}
      - {name: ts, type: Timestamp}
      - {name: amount, type: Float64}

feature_views:
  - name: user_amounts
    source: events
    entities: [user]
    timestamp_field: ts
    features:
`, keyType)
	for _, f := range PITFeatures(shape) {
		w := windowName(f.Window)
		if f.Window < 7*24*time.Hour {
			w = strconv.Itoa(int(f.Window/time.Hour)) + "h" // as issue 14 wrote it
		}
		fmt.Fprintf(&b, "      - aggregate: {input: amount, function: %s, window: %s}\n", f.Function, w)
	}
	b.WriteString(`
  - name: user_last
    source: events
    entities: [user]
    timestamp_field: ts
    features:
      - attribute: {name: amount}

feature_services:
  - name: pit
    online_serving_enabled: true
    features: [user_amounts, user_last]
`)
	return b.String()
}

// Key distributions of the workload.
const (
	DistUniform = "uniform" // every user equally likely
	DistZipf    = "zipf"    // Zipf-skewed users (s = 1.1)
	DistHot     = "hot"     // 10 users take 20% of the events, the rest uniform
)

// PITJoinConfig configures the point-in-time join workload.
type PITJoinConfig struct {
	// Featurelog is the argv prefix that runs the featurelog CLI (the
	// binary, e.g. {"/usr/local/bin/featurelog"}). Required.
	Featurelog []string
	// CacheDir keeps the generated files and the loaded data directory
	// between runs, under a subdirectory named by the parameters. Default
	// os.TempDir().
	CacheDir string
	// Events, Keys and SpineRows size the workload. Defaults 20,000,000,
	// 1,000,000 and 1,000,000.
	Events, Keys, SpineRows int
	// Span is the event-time range, ending at histEnd (fixed, so cached
	// files stay valid; the attribute view has no ttl and the aggregate
	// view applies old records too, so the node accepts them whatever its
	// clock says); times are uniform in it, to the microsecond. Default
	// 30 days.
	Span time.Duration
	// Dist is the key distribution of events and spine rows: DistUniform
	// (default), DistZipf or DistHot.
	Dist string
	// Shape is ShapeHours (default) or ShapeDays.
	Shape string
	// Clients and BatchSize shape the HTTP load. Defaults 4 and 1000.
	Clients, BatchSize int
	// Rebuild regenerates the files and reloads; Reload only reloads.
	Rebuild, Reload bool
	// JoinRuns is how many fresh processes run the join (the first is
	// reported with the others listed). Default 1.
	JoinRuns int
	// Progress receives a line as each step starts. Default none.
	Progress io.Writer
}

// Flags registers the workload's flags on fs, for featurelog bench
// pitjoin and bench/peers alike: the files' size, span, key distribution
// and shape, and whether to generate or load again.
func (c *PITJoinConfig) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.CacheDir, "dir", "", "where the generated files and the loaded data directory are cached (default the system temp dir)")
	fs.IntVar(&c.Events, "events", 20_000_000, "events")
	fs.IntVar(&c.Keys, "keys", 1_000_000, "users")
	fs.IntVar(&c.SpineRows, "spine-rows", 1_000_000, "spine rows")
	fs.DurationVar(&c.Span, "span", 0, "event-time range, ending 2025-06-01; 0 means 720h, or 4320h with --shape days")
	fs.StringVar(&c.Dist, "dist", DistUniform, "key distribution: uniform, zipf (s=1.1) or hot (10 keys take 20% of the events)")
	fs.StringVar(&c.Shape, "shape", ShapeHours, "workload shape: hours (String keys; count, sum over 1h, 24h) or days (Int64 keys; count, sum, min, max, mean over 7d, 30d)")
	fs.BoolVar(&c.Rebuild, "rebuild", false, "generate the files again, and reload")
	fs.BoolVar(&c.Reload, "reload", false, "load the events again (keeps the files)")
}

// EnsureDefaults fills in unset fields.
func (c *PITJoinConfig) EnsureDefaults() {
	if c.CacheDir == "" {
		c.CacheDir = os.TempDir()
	}
	if c.Events == 0 {
		c.Events = 20_000_000
	}
	if c.Keys == 0 {
		c.Keys = 1_000_000
	}
	if c.SpineRows == 0 {
		c.SpineRows = 1_000_000
	}
	if c.Shape == "" {
		c.Shape = ShapeHours
	}
	if c.Span == 0 {
		c.Span = 30 * 24 * time.Hour
		if c.Shape == ShapeDays {
			c.Span = 180 * 24 * time.Hour
		}
	}
	if c.Dist == "" {
		c.Dist = DistUniform
	}
	if c.Clients == 0 {
		c.Clients = 4
	}
	if c.BatchSize == 0 {
		c.BatchSize = 1000
	}
	if c.JoinRuns == 0 {
		c.JoinRuns = 1
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
}

// Validate reports a configuration that cannot run.
func (c *PITJoinConfig) Validate() error {
	switch {
	case len(c.Featurelog) == 0:
		return errors.New("bench: PITJoinConfig.Featurelog is required: the argv prefix that runs the featurelog CLI")
	case c.Events <= 0 || c.Keys <= 0 || c.SpineRows <= 0 || c.Clients <= 0 || c.BatchSize <= 0 || c.JoinRuns <= 0:
		return errors.New("bench: PITJoinConfig: Events, Keys, SpineRows, Clients, BatchSize and JoinRuns must be positive")
	case c.Span < time.Second:
		return errors.New("bench: PITJoinConfig.Span must be at least 1s")
	case c.Dist != DistUniform && c.Dist != DistZipf && c.Dist != DistHot:
		return fmt.Errorf("bench: unknown key distribution %q; use %s, %s or %s", c.Dist, DistUniform, DistZipf, DistHot)
	case c.Shape != ShapeHours && c.Shape != ShapeDays:
		return fmt.Errorf("bench: unknown workload shape %q; use %s or %s", c.Shape, ShapeHours, ShapeDays)
	}
	return nil
}

// PITJoinData is a prepared workload: its files and its loaded data
// directory.
type PITJoinData struct {
	// Dir holds everything below.
	Dir string
	// Events and Spine are the parquet files; Repo the repo file; Data
	// the loaded data directory (closed).
	Events, Spine, Repo, Data string
	// Load is what loading took (possibly in an earlier run, when
	// LoadCached).
	Load       PITLoad
	LoadCached bool
}

// PITLoad is what loading the events over HTTP took.
type PITLoad struct {
	Format int `json:"format"`
	Events int `json:"events"`
	// Elapsed is from the first request to the last 200; Rate events/s
	// over it; SlowestTenth the rate of the slowest tenth of the events.
	Elapsed      time.Duration `json:"elapsed_ns"`
	Rate         float64       `json:"rate"`
	SlowestTenth float64       `json:"slowest_tenth_rate"`
	// ServerCPU is the node's user+system CPU over its whole life (open,
	// load, shutdown); ServerPeakRSS its VmHWM; Close the time from
	// SIGTERM to exit.
	ServerCPU     time.Duration `json:"server_cpu_ns"`
	ServerPeakRSS int64         `json:"server_peak_rss"`
	Close         time.Duration `json:"close_ns"`
	// DataBytes is the data directory's size after the node stopped.
	DataBytes int64     `json:"data_bytes"`
	Built     time.Time `json:"built"`
}

// PITJoin is one fresh-process join.
type PITJoin struct {
	Wall, CPU time.Duration
	PeakRSS   int64
	Out       string
}

// pitName names the cache subdirectory of a configuration.
func (c *PITJoinConfig) pitName() string {
	span := c.Span.String()
	if c.Span%(24*time.Hour) == 0 {
		span = strconv.Itoa(int(c.Span/(24*time.Hour))) + "d"
	}
	name := fmt.Sprintf("featurelog-bench-pitjoin-%s-events-%s-keys-%s-spine-%s-%s", fmtCount(c.Events), fmtCount(c.Keys),
		fmtCount(c.SpineRows), span, c.Dist)
	if c.Shape != ShapeHours {
		name += "-" + c.Shape
	}
	return name
}

// PreparePITJoin generates the workload's files and loads its events into
// a data directory, reusing what an earlier run left under CacheDir.
func PreparePITJoin(cfg PITJoinConfig) (*PITJoinData, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &PITJoinData{Dir: filepath.Join(cfg.CacheDir, cfg.pitName())}
	d.Events, d.Spine, d.Repo, d.Data = filepath.Join(d.Dir, "events.parquet"), filepath.Join(d.Dir, "spine.parquet"),
		filepath.Join(d.Dir, "pitbench.yaml"), filepath.Join(d.Dir, "data")
	filesMarker, loadMarker := filepath.Join(d.Dir, "files.json"), filepath.Join(d.Dir, "load.json")
	if cfg.Rebuild {
		if err := os.RemoveAll(d.Dir); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(d.Dir, 0o755); err != nil {
		return nil, err
	}
	if b, err := os.ReadFile(filesMarker); err != nil || string(b) != pitFilesMarker() {
		fmt.Fprintf(cfg.Progress, "bench: pitjoin: generating %s events and a %s-row spine (%s keys) under %s\n",
			fmtCount(cfg.Events), fmtCount(cfg.SpineRows), cfg.Dist, d.Dir)
		if err := os.Remove(loadMarker); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if err := writePITFiles(&cfg, d); err != nil {
			return nil, err
		}
		if err := atomicfile.Write(filesMarker, []byte(pitFilesMarker()), 0o644); err != nil {
			return nil, err
		}
	}
	if !cfg.Reload {
		if b, err := os.ReadFile(loadMarker); err == nil && json.Unmarshal(b, &d.Load) == nil && d.Load.Format == pitMarker {
			d.LoadCached = true
			fmt.Fprintf(cfg.Progress, "bench: pitjoin: reusing the data directory loaded %s (--reload to load it again)\n",
				d.Load.Built.Format(time.RFC3339))
			return d, nil
		}
	}
	if err := os.Remove(loadMarker); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := os.RemoveAll(d.Data); err != nil {
		return nil, err
	}
	l, err := loadPIT(&cfg, d)
	if err != nil {
		return nil, err
	}
	l.Format, l.Built = pitMarker, time.Now().UTC()
	d.Load = l
	b, err := json.MarshalIndent(&l, "", "  ")
	if err != nil {
		return nil, err
	}
	return d, atomicfile.Write(loadMarker, b, 0o644)
}

// pitFilesMarker is the content of files.json, written once the files
// are complete.
func pitFilesMarker() string { return `{"format":` + strconv.Itoa(pitMarker) + `}` }

type pitEvent struct {
	User   string    `parquet:"user_id"`
	TS     time.Time `parquet:"ts,timestamp(microsecond)"`
	Amount float64   `parquet:"amount"`
}

type pitSpineRow struct {
	RowID int64     `parquet:"row_id"`
	User  string    `parquet:"user_id"`
	TS    time.Time `parquet:"ts,timestamp(microsecond)"`
}

// pitEventNum and pitSpineRowNum are ShapeDays' rows: Int64 keys.
type pitEventNum struct {
	User   int64     `parquet:"user_id"`
	TS     time.Time `parquet:"ts,timestamp(microsecond)"`
	Amount float64   `parquet:"amount"`
}

type pitSpineRowNum struct {
	RowID int64     `parquet:"row_id"`
	User  int64     `parquet:"user_id"`
	TS    time.Time `parquet:"ts,timestamp(microsecond)"`
}

// pitRow is an event row of either shape, as an /ingest record.
type pitRow interface {
	pitEvent | pitEventNum
	appendRecord(b []byte) []byte
}

func (e pitEvent) appendRecord(b []byte) []byte {
	b = append(b, `{"record":{"user_id":`...)
	b = strconv.AppendQuote(b, e.User)
	return appendPITRest(b, e.TS, e.Amount)
}

func (e pitEventNum) appendRecord(b []byte) []byte {
	b = append(b, `{"record":{"user_id":`...)
	b = strconv.AppendInt(b, e.User, 10)
	return appendPITRest(b, e.TS, e.Amount)
}

func appendPITRest(b []byte, ts time.Time, amount float64) []byte {
	b = append(b, `,"ts":"`...)
	b = ts.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z")
	b = append(b, `","amount":`...)
	b = strconv.AppendFloat(b, amount, 'g', -1, 64)
	return append(b, "}}"...)
}

// pitKeys draws users by the configured distribution.
type pitKeys struct {
	dist   string
	keys   int
	rng    *rand.Rand
	zipf   *rand.Zipf
	start  time.Time // of the event-time span
	spanUs int64
}

func newPITKeys(cfg *PITJoinConfig, seed uint64) *pitKeys {
	k := &pitKeys{dist: cfg.Dist, keys: cfg.Keys, rng: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)),
		start: histEnd.Add(-cfg.Span), spanUs: int64(cfg.Span / time.Microsecond)}
	if cfg.Dist == DistZipf {
		k.zipf = rand.NewZipf(k.rng, 1.1, 1, uint64(cfg.Keys-1))
	}
	return k
}

// next returns a user. Zipf ranks are scattered over the key space by a
// multiplicative hash, so hot users are not neighbours in key order.
func (k *pitKeys) next() string { return histKey(k.nextIndex()) }

// nextIndex returns a user's index, for Int64 keys.
func (k *pitKeys) nextIndex() int {
	switch k.dist {
	case DistZipf:
		r := k.zipf.Uint64()
		return int((r*0x9E3779B97F4A7C15 + 12345) % uint64(k.keys))
	case DistHot:
		if k.rng.IntN(5) == 0 {
			return k.rng.IntN(min(10, k.keys)) * max(k.keys/10, 1) % k.keys
		}
	}
	return k.rng.IntN(k.keys)
}

// time returns an instant uniform over the span, to the microsecond.
func (k *pitKeys) time() time.Time {
	return k.start.Add(time.Duration(k.rng.Int64N(k.spanUs)) * time.Microsecond)
}

// amount returns an amount in quarters, so that every sum is exact in
// float64 whatever the order of addition.
func (k *pitKeys) amount() float64 { return float64(1+k.rng.IntN(400)) / 4 }

// writePITFiles writes the events (in random time order, amounts in
// quarters so every sum is exact in float64 whatever the order of
// addition) and the spine.
func writePITFiles(cfg *PITJoinConfig, d *PITJoinData) error {
	if err := os.WriteFile(d.Repo, []byte(pitRepo(cfg.Shape)), 0o644); err != nil {
		return err
	}
	if cfg.Shape == ShapeDays {
		return writePITRows(cfg, d,
			func(k *pitKeys) pitEventNum {
				return pitEventNum{User: int64(k.nextIndex()), TS: k.time(), Amount: k.amount()}
			},
			func(k *pitKeys, row int64) pitSpineRowNum {
				return pitSpineRowNum{RowID: row, User: int64(k.nextIndex()), TS: k.time()}
			})
	}
	return writePITRows(cfg, d,
		func(k *pitKeys) pitEvent { return pitEvent{User: k.next(), TS: k.time(), Amount: k.amount()} },
		func(k *pitKeys, row int64) pitSpineRow { return pitSpineRow{RowID: row, User: k.next(), TS: k.time()} })
}

// writePITRows writes the events and the spine as rows of types E and S,
// which event and spine draw from k (user, then time, then amount: the
// order fixes the files a seed gives).
func writePITRows[E, S any](cfg *PITJoinConfig, d *PITJoinData, event func(k *pitKeys) E, spine func(k *pitKeys, row int64) S) error {
	keys := newPITKeys(cfg, 1)
	err := writeParquetRows(d.Events, cfg.Events, func(buf []E) {
		for i := range buf {
			buf[i] = event(keys)
		}
	}, parquet.Compression(&parquet.Snappy))
	if err != nil {
		return err
	}
	skeys := newPITKeys(cfg, 2)
	var row int64
	return writeParquetRows(d.Spine, cfg.SpineRows, func(buf []S) {
		for i := range buf {
			buf[i] = spine(skeys, row)
			row++
		}
	}, parquet.Compression(&parquet.Snappy))
}

// writeParquetRows writes n rows to path (a temporary file renamed once
// complete), fill filling each chunk.
func writeParquetRows[T any](path string, n int, fill func([]T), opts ...parquet.WriterOption) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	w := parquet.NewGenericWriter[T](bw, opts...)
	buf := make([]T, 64<<10)
	for done := 0; done < n && err == nil; {
		c := min(len(buf), n-done)
		fill(buf[:c])
		_, err = w.Write(buf[:c])
		done += c
	}
	if err == nil {
		err = w.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if err = errors.Join(err, f.Close()); err != nil {
		return fmt.Errorf("bench: writing %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}

// loadPIT starts `featurelog serve` on a fresh data directory and posts
// the events file to /ingest, in file order.
func loadPIT(cfg *PITJoinConfig, d *PITJoinData) (PITLoad, error) {
	var l PITLoad
	srv, err := startCLIServer(cfg.Featurelog, d.Data, d.Repo)
	if err != nil {
		return l, err
	}
	fmt.Fprintf(cfg.Progress, "bench: pitjoin: loading %s events over HTTP (%d clients × %d records/request) into %s\n",
		fmtCount(cfg.Events), cfg.Clients, cfg.BatchSize, srv.url)
	url := srv.url + "/ingest"
	bodies := make(chan pitBody, 2*cfg.Clients)
	free := make(chan []byte, 4*cfg.Clients)
	var (
		readErr error
		failed  atomic.Bool // stop reading and posting: the load has failed
	)
	go func() {
		defer close(bodies)
		readErr = encodePITBodies(cfg.Shape, d.Events, cfg.BatchSize, bodies, free, &failed)
	}()
	c := newClient(cfg.Clients)
	defer c.close()
	var (
		done     atomic.Int64
		firstErr error
		errOnce  sync.Once
		tenths   = make([]time.Duration, 10)
		mu       sync.Mutex
		t0       = time.Now()
		lastMark = t0
	)
	step := int64(max(cfg.Events/10, 1))
	var wg sync.WaitGroup
	for w := range cfg.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for body := range bodies {
				if failed.Load() {
					continue // drain, so the reader ends
				}
				if _, err := c.post(w, url, body.b); err != nil {
					errOnce.Do(func() { firstErr = err })
					failed.Store(true)
					continue
				}
				n := int64(body.n)
				select {
				case free <- body.b[:0]:
				default:
				}
				if dn := done.Add(n); dn/step != (dn-n)/step {
					mu.Lock()
					now := time.Now()
					if i := int(dn/step) - 1; i >= 0 && i < len(tenths) {
						tenths[i] = now.Sub(lastMark)
					}
					lastMark = now
					mu.Unlock()
					fmt.Fprintf(cfg.Progress, "bench: pitjoin:   %d events (%s events/s)\n", dn, fmtRate(float64(dn)/now.Sub(t0).Seconds()))
				}
			}
		}()
	}
	wg.Wait()
	l.Elapsed = time.Since(t0)
	if err := errors.Join(firstErr, readErr); err != nil {
		srv.stop()
		return l, fmt.Errorf("bench: pitjoin: loading: %w", err)
	}
	if got := done.Load(); got != int64(cfg.Events) {
		srv.stop()
		return l, fmt.Errorf("bench: pitjoin: loaded %d events of %d", got, cfg.Events)
	}
	l.Events, l.Rate = cfg.Events, float64(cfg.Events)/l.Elapsed.Seconds()
	var slowest time.Duration
	for _, t := range tenths {
		slowest = max(slowest, t)
	}
	if slowest > 0 {
		l.SlowestTenth = float64(step) / slowest.Seconds()
	}
	st, err := srv.stop()
	if err != nil {
		return l, err
	}
	l.ServerCPU, l.ServerPeakRSS, l.Close = st.cpu, st.peakRSS, st.wait
	l.DataBytes, err = dirBytes(d.Data)
	return l, err
}

// encodePITBodies reads the events file of shape and sends /ingest
// bodies of n records each, reusing the buffers that come back on free,
// until the file ends or stop is set.
func encodePITBodies(shape, path string, n int, out chan<- pitBody, free <-chan []byte, stop *atomic.Bool) error {
	if shape == ShapeDays {
		return encodeBodies[pitEventNum](path, n, out, free, stop)
	}
	return encodeBodies[pitEvent](path, n, out, free, stop)
}

func encodeBodies[T pitRow](path string, n int, out chan<- pitBody, free <-chan []byte, stop *atomic.Bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := parquet.NewGenericReader[T](f)
	defer r.Close()
	rows := make([]T, n)
	for !stop.Load() {
		k, err := r.Read(rows)
		if k > 0 {
			var b []byte
			select {
			case b = <-free:
			default:
				b = make([]byte, 0, 96*n)
			}
			out <- pitBody{b: appendPITBody(b, rows[:k]), n: k}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// pitBody is an /ingest request body of n records.
type pitBody struct {
	b []byte
	n int
}

// appendPITBody appends an /ingest request body for rows.
func appendPITBody[T pitRow](b []byte, rows []T) []byte {
	b = append(b, `{"workspace_name":"`+pitWorkspace+`","dry_run":false,"records":{"events":[`...)
	for i := range rows {
		if i > 0 {
			b = append(b, ',')
		}
		b = rows[i].appendRecord(b)
	}
	return append(b, "]}}"...)
}

// cliServer is a running `featurelog serve`.
type cliServer struct {
	cmd    *exec.Cmd
	rss    *peakRSS
	url    string
	stderr *tailBuffer
	done   chan error
}

type cliExit struct {
	cpu     time.Duration
	peakRSS int64
	wait    time.Duration // from SIGTERM to exit
}

// startCLIServer runs `featurelog serve --no-auth` on dir with repo, on a
// loopback port of its choosing, and waits until it serves.
func startCLIServer(argv []string, dir, repo string) (*cliServer, error) {
	args := append(append([]string(nil), argv[1:]...), "serve", "--data", dir, "--repo", repo, "--no-auth", "--addr", "127.0.0.1:0")
	cmd := exec.Command(argv[0], args...)
	pr, pw := io.Pipe()
	s := &cliServer{cmd: cmd, stderr: &tailBuffer{max: 8 << 10}, done: make(chan error, 1)}
	cmd.Stderr = pw
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: starting %s serve: %w", argv[0], err)
	}
	s.rss = watchPeakRSS(cmd.Process.Pid)
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.stderr.Write([]byte(line + "\n"))
			if u, ok := strings.CutPrefix(line, "featurelog: serving on "); ok {
				select {
				case urls <- u:
				default:
				}
			}
		}
		io.Copy(io.Discard, pr)
	}()
	go func() {
		err := cmd.Wait()
		pw.Close()
		s.done <- err
	}()
	select {
	case s.url = <-urls:
		return s, nil
	case err := <-s.done:
		return nil, fmt.Errorf("bench: featurelog serve exited before serving: %v%s", err, s.stderr.note())
	case <-time.After(5 * time.Minute):
		cmd.Process.Kill()
		<-s.done
		return nil, fmt.Errorf("bench: featurelog serve did not serve within 5m%s", s.stderr.note())
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (s *cliServer) stop() (cliExit, error) {
	var e cliExit
	t0 := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return e, err
	}
	err := <-s.done
	e.wait = time.Since(t0)
	e.peakRSS = s.rss.stop()
	if ps := s.cmd.ProcessState; ps != nil {
		e.cpu = ps.UserTime() + ps.SystemTime()
	}
	if err != nil {
		return e, fmt.Errorf("bench: featurelog serve: %w%s", err, s.stderr.note())
	}
	return e, nil
}

// RunPITJoinCLI runs `featurelog historical` on the prepared workload in
// a fresh process, writing out (a .parquet file).
func RunPITJoinCLI(argv []string, d *PITJoinData, out string) (*PITJoin, error) {
	args := append(append([]string(nil), argv[1:]...), "historical", "--data", d.Data, "--workspace", pitWorkspace,
		"--service", pitService, "--spine", d.Spine, "--out", out, "--quiet")
	cmd := exec.Command(argv[0], args...)
	stderr := &tailBuffer{max: 8 << 10}
	cmd.Stdout, cmd.Stderr = io.Discard, stderr
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: starting featurelog historical: %w", err)
	}
	rss := watchPeakRSS(cmd.Process.Pid)
	err := cmd.Wait()
	j := &PITJoin{Wall: time.Since(t0), Out: out, PeakRSS: rss.stop()}
	if err != nil {
		return nil, fmt.Errorf("bench: featurelog historical: %w%s", err, stderr.note())
	}
	ps := cmd.ProcessState
	j.CPU = ps.UserTime() + ps.SystemTime()
	return j, nil
}

// RunPITJoin prepares the workload, runs the join JoinRuns times in fresh
// processes and returns its rows (no peer: the bench/peers module adds
// DuckDB's run on the same files).
func RunPITJoin(cfg PITJoinConfig) ([]Row, *PITJoinData, []*PITJoin, error) {
	cfg.EnsureDefaults()
	d, err := PreparePITJoin(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	var joins []*PITJoin
	for i := range cfg.JoinRuns {
		fmt.Fprintf(cfg.Progress, "bench: pitjoin: featurelog historical, run %d of %d, fresh process\n", i+1, cfg.JoinRuns)
		j, err := RunPITJoinCLI(cfg.Featurelog, d, filepath.Join(d.Dir, "training.parquet"))
		if err != nil {
			return nil, d, joins, err
		}
		joins = append(joins, j)
	}
	return PITRows(&cfg, d, joins), d, joins, nil
}

// PITShape describes the workload in row names.
func (c *PITJoinConfig) PITShape() string {
	shape := ""
	if c.Shape == ShapeDays {
		shape = fmt.Sprintf(", Int64 keys, count/sum/min/max/mean over 7d and 30d, %s of history", windowName(c.Span))
	}
	return fmt.Sprintf("%s events (%s keys, %s%s), %s-row parquet spine", fmtCount(c.Events), fmtCount(c.Keys), c.Dist, shape, fmtCount(c.SpineRows))
}

// PITRows are the featurelog rows of the workload: the load and the join.
func PITRows(cfg *PITJoinConfig, d *PITJoinData, joins []*PITJoin) []Row {
	l := d.Load
	cached := ""
	if d.LoadCached {
		cached = ", loaded " + l.Built.Format(time.RFC3339) + " (cached)"
	}
	rows := []Row{{
		Benchmark: "pitjoin load: " + cfg.PITShape() + ", HTTP /ingest in random time order, " +
			strconv.Itoa(cfg.BatchSize) + " records/request, " + strconv.Itoa(cfg.Clients) + " clients, fsync, flushes and merges included",
		Result: fmt.Sprintf("%s events/s over all %s (slowest tenth %s/s; node CPU %s, peak RSS %s, close %s, data %s%s)",
			fmtRate(l.Rate), fmtCount(l.Events), fmtRate(l.SlowestTenth), fmtDur(l.ServerCPU), fmtMB(l.ServerPeakRSS),
			fmtDur(l.Close), fmtMB(l.DataBytes), cached),
		Baseline: "-", Ratio: "-", Target: ">= 500.0k events/s sustained", Verdict: verdictBool(l.Rate >= 500_000 && l.SlowestTenth >= 500_000),
	}}
	if len(joins) == 0 {
		return rows
	}
	j := joins[0]
	res := fmt.Sprintf("%s (CPU %s)", fmtDur(j.Wall), fmtDur(j.CPU))
	if len(joins) > 1 {
		var later []string
		for _, x := range joins[1:] {
			later = append(later, fmtDur(x.Wall))
		}
		res += "; then " + strings.Join(later, ", ")
	}
	peak := int64(0)
	for _, x := range joins {
		peak = max(peak, x.PeakRSS)
	}
	rows = append(rows,
		Row{Benchmark: "pitjoin: featurelog historical --spine spine.parquet --out training.parquet, fresh process, " + cfg.PITShape(),
			Result: res, Baseline: "-", Ratio: "-", Target: "reported (bench/peers: >= 5x DuckDB)", Verdict: "-"},
		Row{Benchmark: "pitjoin: peak RSS of that process (its VmHWM)", Result: fmtMB(peak), Baseline: "-", Ratio: "-",
			Target: "<= 1500 MB", Verdict: verdictBool(peak > 0 && peak <= 1_500_000_000)})
	return rows
}

// peakRSS follows a child's VmHWM (/proc/<pid>/status) until stopped.
// The kernel's rusage cannot be used: a child started by fork and exec
// inherits its parent's high-water mark in ru_maxrss, so a big parent
// (DuckDB's tables) would be charged to the child.
type peakRSS struct {
	max      int64 // written by the sampler, read after finished
	done     chan struct{}
	finished chan struct{}
}

// watchPeakRSS samples pid's VmHWM every 10ms until stop. VmHWM is the
// process's own high-water mark, so only growth in the last interval
// before exit can be missed.
func watchPeakRSS(pid int) *peakRSS {
	p := &peakRSS{done: make(chan struct{}), finished: make(chan struct{})}
	path := "/proc/" + strconv.Itoa(pid) + "/status"
	go func() {
		defer close(p.finished)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			p.max = max(p.max, statusBytes(path, "VmHWM"))
			select {
			case <-p.done:
				return
			case <-t.C:
			}
		}
	}()
	return p
}

// stop, called once the process has exited (or is about to), returns the
// largest VmHWM seen.
func (p *peakRSS) stop() int64 {
	close(p.done)
	<-p.finished
	return p.max
}

// PITPeer is another system's run of the workload's joins on the same
// files, measured in the same run by its caller (the bench/peers module,
// which links the peer so that this package need not).
type PITPeer struct {
	// Name names the peer and its version, e.g. "DuckDB v1.5.5"; Joins
	// says what it ran, e.g. "ASOF + RANGE windows".
	Name, Joins string
	// Setup is what loading its tables took (not timed as a join).
	Setup time.Duration
	// Runs are its runs of the joins, the i-th beside featurelog's i-th.
	Runs []PITPeerRun
	// PeakRSS is its process's VmHWM.
	PeakRSS int64
	// Agree reports whether featurelog's output equals the peer's, and
	// Comparison how it was compared and what differed.
	Agree      bool
	Comparison string
}

// PITPeerRun is one run of a peer's joins.
type PITPeerRun struct {
	Parts []PITPeerPart // each join, timed on its own
	CPU   time.Duration // the peer process's CPU over the run
}

// PITPeerPart is one timed join of a peer's run.
type PITPeerPart struct {
	Name string
	Took time.Duration
}

// Total is the run's time: its parts', summed.
func (r PITPeerRun) Total() time.Duration {
	var t time.Duration
	for _, p := range r.Parts {
		t += p.Took
	}
	return t
}

// PITPeerRows are the rows comparing featurelog's joins with the peer's,
// run for run: the speed-up against issue 14's target, and agreement.
func PITPeerRows(joins []*PITJoin, p *PITPeer) []Row {
	if len(joins) == 0 || len(p.Runs) == 0 {
		return nil
	}
	j, k := joins[0], p.Runs[0]
	res := fmt.Sprintf("%s (CPU %s, peak RSS %s)", fmtDur(j.Wall), fmtDur(j.CPU), fmtMB(j.PeakRSS))
	var later []string
	for i := 1; i < min(len(joins), len(p.Runs)); i++ {
		later = append(later, fmt.Sprintf("%s vs %s", fmtDur(joins[i].Wall), fmtDur(p.Runs[i].Total())))
	}
	if len(later) > 0 {
		res += "; later runs " + strings.Join(later, ", ")
	}
	var parts []string
	for _, x := range k.Parts {
		parts = append(parts, x.Name+" "+fmtDur(x.Took))
	}
	ratio := k.Total().Seconds() / j.Wall.Seconds()
	return []Row{
		{
			Benchmark: "pitjoin vs " + p.Name + ", same files, same run: featurelog historical (fresh process, parquet in and out) vs " +
				p.Name + " " + p.Joins + " (tables loaded beforehand, " + fmtDur(p.Setup) + ")",
			Result:   res,
			Baseline: fmt.Sprintf("%s (%s; CPU %s; process VmHWM %s)", fmtDur(k.Total()), strings.Join(parts, " + "), fmtDur(k.CPU), fmtMB(p.PeakRSS)),
			Ratio:    fmt.Sprintf("%.2fx faster", ratio),
			Target:   ">= 5x faster",
			Verdict:  verdictBool(ratio >= 5),
		},
		{
			Benchmark: "pitjoin results agree with " + p.Name + " (row by row on row_id, every column)",
			Result:    p.Comparison, Baseline: "-", Ratio: "-", Target: "equal", Verdict: verdictBool(p.Agree),
		},
	}
}

// SelfCPUTime is this process's user+system CPU so far.
func SelfCPUTime() time.Duration { return procCPUTime() }

// SelfPeakRSS is this process's own peak resident set (VmHWM): not
// rusage's ru_maxrss, which counts the high-water mark of the process
// that started this one.
func SelfPeakRSS() int64 { return procStatusBytes("VmHWM") }
