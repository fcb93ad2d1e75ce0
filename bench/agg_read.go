package bench

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/schema"
)

// getFeaturesBatchPath is the batch serving endpoint.
const getFeaturesBatchPath = "/api/v1/feature-service/get-features-batch"

// aggFeatures is the number of features aggService serves, and
// aggCount7d the index of amount_count_7d among them.
const (
	aggFeatures = 9
	aggCount7d  = 6
)

// aggReadTimes returns phases read times spread evenly over the minute
// up to end, newest first: end, end−60s/phases, ... Reading at every
// phase of a minute makes the unaligned edges of the windows (read from
// raw events, not tiles) take every width they take in online reads at
// arbitrary times, which a read always at End would not.
func aggReadTimes(end time.Time, phases int) []time.Time {
	out := make([]time.Time, phases)
	for i := range out {
		out[i] = end.Add(-time.Duration(i) * time.Minute / time.Duration(phases))
	}
	return out
}

// AggReadConfig configures RunAggReadInProcess.
type AggReadConfig struct {
	// TempDir is where a history built by the run is created (and
	// removed afterwards). Default os.TempDir().
	TempDir string
	// History is a prepared history of aggSource to read (BuildAggHistory);
	// the run opens it and leaves it in place. Nil: the run builds one
	// from HistoryConfig.
	History *AggHistory
	// HistoryConfig is the history built when History is nil. Default:
	// one user, 7 days (and a minute) at 10 events/s.
	HistoryConfig AggHistoryConfig
	// Readers is the number of goroutines reading. Default 1.
	Readers int
	// Phases is the number of distinct read times, spread over the last
	// minute of the history (aggReadTimes). Default 600.
	Phases int
	Loop
}

// EnsureDefaults fills in unset fields.
func (c *AggReadConfig) EnsureDefaults() {
	if c.Readers == 0 {
		c.Readers = 1
	}
	if c.Phases == 0 {
		c.Phases = 600
	}
	if c.HistoryConfig.TempDir == "" {
		c.HistoryConfig.TempDir = c.TempDir
	}
	c.HistoryConfig.EnsureDefaults()
	c.Loop.EnsureDefaults()
}

// Validate reports a configuration that cannot run.
func (c *AggReadConfig) Validate() error {
	if c.Readers <= 0 || c.Phases <= 0 {
		return errors.New("bench: Readers and Phases must be positive")
	}
	if err := c.HistoryConfig.Validate(); err != nil {
		return err
	}
	return c.Loop.Validate()
}

// RunAggReadInProcess measures the latency of single engine.GetFeatures
// calls of aggService (count, sum and mean of amount over 1h, 24h and
// 7d) for a user with a long history, warm. Each read is as of one of
// Phases times in the last minute of the history (as_of reads the tiles
// exactly as an online read at that time would; the clock is stopped at
// the end of the history). Every feature must be PRESENT and the 7-day
// count positive.
func RunAggReadInProcess(cfg AggReadConfig) (Result, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	h, db, err := openOrBuild(cfg.History, cfg.HistoryConfig)
	if err != nil {
		return Result{}, err
	}
	if cfg.History == nil {
		defer h.Remove()
	}
	reqs := aggRequests(h, aggService, h.Keys, cfg.Phases)
	name := fmt.Sprintf("agg-read-inprocess events=%d", h.Events)
	res := closedLoop(name, cfg.Readers, cfg.Loop, newAggReadOp(db, reqs))
	return res, db.Close()
}

// openOrBuild opens h, or builds a history from cfg when h is nil.
func openOrBuild(h *AggHistory, cfg AggHistoryConfig) (*AggHistory, *engine.DB, error) {
	if h == nil {
		return openAggHistory(cfg)
	}
	db, err := h.Open()
	return h, db, err
}

// aggRequests builds one request per phase (and at least one per key),
// keys and read times cycling.
func aggRequests(h *AggHistory, service string, keys []string, phases int) []engine.GetFeaturesRequest {
	times := aggReadTimes(h.End, phases)
	reqs := make([]engine.GetFeaturesRequest, max(len(times), len(keys)))
	for i := range reqs {
		reqs[i] = engine.GetFeaturesRequest{Workspace: aggWorkspace, Service: service,
			JoinKeys: map[string]any{"user_id": keys[i%len(keys)]}, AsOf: times[i%len(times)]}
	}
	return reqs
}

// newAggReadOp returns ops that read a random request of reqs and check
// the answer (checkAggVector).
func newAggReadOp(db *engine.DB, reqs []engine.GetFeaturesRequest) func(int) op {
	return func(w int) op {
		r := newRNG(w + 1)
		return func() (int, error) {
			req := &reqs[r.intn(len(reqs))]
			vec, err := db.GetFeatures(req)
			if err != nil {
				return 0, err
			}
			return 1, checkAggVector(vec)
		}
	}
}

// checkAggVector checks an answer: every feature PRESENT, and some count
// positive (else the history is missing).
func checkAggVector(vec *engine.FeatureVector) error {
	counted := false
	for _, f := range vec.Features {
		if f.Status != engine.Present {
			return fmt.Errorf("feature %s is %s, want PRESENT", f.Name, f.Status)
		}
		counted = counted || f.Value.Kind == schema.Int64 && f.Value.I > 0
	}
	if !counted {
		return fmt.Errorf("no count is positive: the history is missing (%v)", vec.Features)
	}
	return nil
}

// AggReadHTTPConfig configures RunAggReadHTTP and RunAggReadHTTPRate.
type AggReadHTTPConfig struct {
	// Server is the server to read from. For featurelog, its DataDir is
	// set to the history's.
	Server Server
	// History is the prepared history to serve; the run leaves it in
	// place. Nil: featurelog runs build one from HistoryConfig (in
	// Server.TempDir); trivial runs need none (they only send the
	// same requests).
	History *AggHistory
	// HistoryConfig is as in AggReadConfig.
	HistoryConfig AggHistoryConfig
	// Clients is the number of closed-loop clients (RunAggReadHTTP).
	// Default 16.
	Clients int
	// Rate is the request rate of RunAggReadHTTPRate. Default 5,000/s.
	Rate float64
	// Workers bounds RunAggReadHTTPRate's requests in flight. Default 128.
	Workers int
	// Phases is as in AggReadConfig. Default 600.
	Phases int
	Loop
}

// EnsureDefaults fills in unset fields.
func (c *AggReadHTTPConfig) EnsureDefaults() {
	if c.Clients == 0 {
		c.Clients = 16
	}
	if c.Rate == 0 {
		c.Rate = 5000
	}
	if c.Workers == 0 {
		c.Workers = 128
	}
	if c.Phases == 0 {
		c.Phases = 600
	}
	if c.HistoryConfig.TempDir == "" {
		c.HistoryConfig.TempDir = c.Server.TempDir
	}
	c.HistoryConfig.EnsureDefaults()
	c.Loop.EnsureDefaults()
}

// Validate reports a configuration that cannot run.
func (c *AggReadHTTPConfig) Validate() error {
	if c.Clients <= 0 || c.Rate <= 0 || c.Workers <= 0 || c.Phases <= 0 {
		return errors.New("bench: Clients, Rate, Workers and Phases must be positive")
	}
	if err := c.HistoryConfig.Validate(); err != nil {
		return err
	}
	if err := c.Server.Validate(); err != nil {
		return err
	}
	return c.Loop.Validate()
}

// RunAggReadHTTP measures get-features of aggService over HTTP in a
// closed loop of Clients clients, each request for the history's user as
// of one of Phases times (as RunAggReadInProcess). Against the trivial
// server the same requests are sent.
func RunAggReadHTTP(cfg AggReadHTTPConfig) (Result, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	name := fmt.Sprintf("agg-read-http c=%d (%s)", cfg.Clients, cfg.Server.label())
	return runAggHTTP(&cfg, cfg.Clients, func(c *client, url string, bodies [][]byte, size *atomic.Int64) (Result, error) {
		return closedLoop(name, cfg.Clients, cfg.Loop, newAggGetOp(c, url, bodies, 1, size)), nil
	})
}

// RunAggReadHTTPRate is RunAggReadHTTP at a fixed rate (open loop;
// latency from the scheduled send time).
func RunAggReadHTTPRate(cfg AggReadHTTPConfig) (Result, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	name := fmt.Sprintf("agg-read-http @%s/s (%s)", fmtRate(cfg.Rate), cfg.Server.label())
	return runAggHTTP(&cfg, cfg.Workers, func(c *client, url string, bodies [][]byte, size *atomic.Int64) (Result, error) {
		return openLoop(name, cfg.Rate, cfg.Workers, cfg.Loop, newAggGetOp(c, url, bodies, 1, size))
	})
}

// runAggHTTP starts the server (featurelog on the history), builds the
// request bodies and runs measure.
func runAggHTTP(cfg *AggReadHTTPConfig, workers int, measure func(c *client, url string, bodies [][]byte, size *atomic.Int64) (Result, error)) (Result, error) {
	h, cleanup, err := serverHistory(&cfg.Server, cfg.History, cfg.HistoryConfig)
	if err != nil {
		return Result{}, err
	}
	defer cleanup()
	times := aggReadTimes(h.End, cfg.Phases)
	bodies := make([][]byte, max(len(times), len(h.Keys)))
	for i := range bodies {
		bodies[i] = appendAggGetBody(nil, h.Keys[i%len(h.Keys):i%len(h.Keys)+1], times[i%len(times)], false)
	}
	return serveAndMeasure(&cfg.Server, workers, getFeaturesPath, bodies, measure)
}

// serverHistory returns the history s serves and sets s.DataDir to it:
// hist, or one built from hcfg (removed by cleanup). The trivial server
// gets a stand-in with hcfg's user names and the current time, for the
// request bodies.
func serverHistory(s *Server, hist *AggHistory, hcfg AggHistoryConfig) (*AggHistory, func(), error) {
	switch {
	case s.Trivial && hist == nil:
		h := &AggHistory{End: time.Now().UTC().Truncate(time.Millisecond)}
		for k := range hcfg.Keys {
			h.Keys = append(h.Keys, hcfg.Prefix+strconv.Itoa(k))
		}
		return h, func() {}, nil
	case s.Trivial:
		return hist, func() {}, nil
	case hist == nil:
		h, err := BuildAggHistory(hcfg)
		if err != nil {
			return nil, nil, err
		}
		s.DataDir = h.Dir
		return h, func() { h.Remove() }, nil
	}
	s.DataDir = hist.Dir
	return hist, func() {}, nil
}

// serveAndMeasure starts the server, runs measure against path with the
// bodies, and stops the server.
func serveAndMeasure(s *Server, workers int, path string, bodies [][]byte, measure func(c *client, url string, bodies [][]byte, size *atomic.Int64) (Result, error)) (Result, error) {
	p, err := s.start()
	if err != nil {
		return Result{}, err
	}
	c := newClient(workers)
	var size atomic.Int64
	res, err := measure(c, p.url(path), bodies, &size)
	res.ResponseBytes = int(size.Load())
	c.close()
	return res, errors.Join(err, p.stop())
}

// newAggGetOp returns ops that POST a random body of bodies; each
// response must hold vectors vectors with no null.
func newAggGetOp(c *client, url string, bodies [][]byte, vectors int, size *atomic.Int64) func(int) op {
	return func(w int) op {
		r := newRNG(w + 1)
		return func() (int, error) {
			resp, err := c.post(w, url, bodies[r.intn(len(bodies))])
			if err != nil {
				return 0, err
			}
			size.Store(int64(len(resp)))
			return vectors, checkAggResponse(resp, vectors)
		}
	}
}

// checkAggResponse checks a featurelog get-features(-batch) answer; the
// trivial server's fixed answer ({"ok":"xxx..."}) passes as is.
func checkAggResponse(resp []byte, vectors int) error {
	if bytes.HasPrefix(resp, []byte(`{"ok":`)) {
		return nil
	}
	if n := bytes.Count(resp, []byte(`"features":[`)); n != vectors || bytes.Contains(resp, []byte("null")) {
		return fmt.Errorf("want %d vectors without null, got: %.300s", vectors, resp)
	}
	return nil
}

// appendAggGetBody appends a get-features body for keys[0], or with
// batch a get-features-batch body for all keys, as of t.
func appendAggGetBody(dst []byte, keys []string, t time.Time, batch bool) []byte {
	dst = append(dst, `{"params":{"workspace_name":"`+aggWorkspace+`","feature_service_name":"`+aggService+`",`...)
	if !batch {
		dst = append(dst, `"join_key_map":{"user_id":"`...)
		dst = append(dst, keys[0]...)
		dst = append(dst, `"}`...)
	} else {
		dst = append(dst, `"request_data":[`...)
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"join_key_map":{"user_id":"`...)
			dst = append(dst, k...)
			dst = append(dst, `"}}`...)
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `,"as_of":"`...)
	dst = t.UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, `"}}`...)
}

// AggBatchHTTPRateConfig configures RunAggBatchHTTPRate.
type AggBatchHTTPRateConfig struct {
	// Server is featurelog (its DataDir is set to the history's).
	Server Server
	// History is a prepared history to serve (left in place); nil
	// builds one from HistoryConfig.
	History *AggHistory
	// HistoryConfig is the history built when History is nil. Default:
	// BatchKeys users, each with events at 10/s within 2 minutes of every
	// edge the reads' windows have (now, −1h, −24h, −7d) and one a
	// minute elsewhere over 7 days: the read work of a full 7-day
	// history at 10 events/s (the same raw events at the unaligned
	// edges, the same tiles), which for 100 users would be 605M events,
	// more than fits in memory.
	HistoryConfig AggHistoryConfig
	// BatchKeys is the number of users per request. Default 100.
	BatchKeys int
	// Rate is the request rate per second. Default 100.
	Rate float64
	// Workers bounds the requests in flight. Default 32.
	Workers int
	// Phases is as in AggReadConfig. Default 600.
	Phases int
	Loop
}

// EnsureDefaults fills in unset fields.
func (c *AggBatchHTTPRateConfig) EnsureDefaults() {
	if c.BatchKeys == 0 {
		c.BatchKeys = 100
	}
	if c.Rate == 0 {
		c.Rate = 100
	}
	if c.Workers == 0 {
		c.Workers = 32
	}
	if c.Phases == 0 {
		c.Phases = 600
	}
	hc := &c.HistoryConfig
	if hc.TempDir == "" {
		hc.TempDir = c.Server.TempDir
	}
	if hc.Keys == 0 {
		hc.Keys = c.BatchKeys
	}
	if hc.DenseAt == nil {
		hc.DenseAt = []time.Duration{0, time.Hour, 24 * time.Hour, 7 * 24 * time.Hour}
		if hc.Span == 0 {
			hc.Span = 7*24*time.Hour + 2*time.Minute
		}
	}
	hc.EnsureDefaults()
	c.Loop.EnsureDefaults()
}

// Validate reports a configuration that cannot run.
func (c *AggBatchHTTPRateConfig) Validate() error {
	if c.BatchKeys <= 0 || c.Rate <= 0 || c.Workers <= 0 || c.Phases <= 0 {
		return errors.New("bench: BatchKeys, Rate, Workers and Phases must be positive")
	}
	if c.HistoryConfig.Keys < c.BatchKeys {
		return errors.New("bench: the history must have at least BatchKeys users")
	}
	if err := c.HistoryConfig.Validate(); err != nil {
		return err
	}
	if err := c.Server.Validate(); err != nil {
		return err
	}
	return c.Loop.Validate()
}

// RunAggBatchHTTPRate measures get-features-batch of aggService over
// HTTP at a fixed rate (open loop): each request asks for BatchKeys
// users as of one of Phases times in the last minute of the history.
// Result.Records counts the vectors read.
func RunAggBatchHTTPRate(cfg AggBatchHTTPRateConfig) (Result, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	h, cleanup, err := serverHistory(&cfg.Server, cfg.History, cfg.HistoryConfig)
	if err != nil {
		return Result{}, err
	}
	defer cleanup()
	times := aggReadTimes(h.End, cfg.Phases)
	bodies := make([][]byte, len(times))
	for i := range bodies {
		first := i * cfg.BatchKeys % (len(h.Keys) - cfg.BatchKeys + 1)
		bodies[i] = appendAggGetBody(nil, h.Keys[first:first+cfg.BatchKeys], times[i], true)
	}
	name := fmt.Sprintf("agg-batch-http keys=%d @%s/s (%s)", cfg.BatchKeys, fmtRate(cfg.Rate), cfg.Server.label())
	return serveAndMeasure(&cfg.Server, cfg.Workers, getFeaturesBatchPath, bodies, func(c *client, url string, bodies [][]byte, size *atomic.Int64) (Result, error) {
		return openLoop(name, cfg.Rate, cfg.Workers, cfg.Loop, newAggGetOp(c, url, bodies, cfg.BatchKeys, size))
	})
}
