package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/featurelog/featurelog/engine"
)

// GetFeaturesConfig configures RunGetFeaturesInProcess.
type GetFeaturesConfig struct {
	// TempDir is where the data directory is created (and removed
	// afterwards). Default os.TempDir().
	TempDir string
	// Keys is the number of users loaded before the run; each read asks
	// for a random one of them. Default 100,000.
	Keys int
	// Readers is the number of goroutines reading. Default 1.
	Readers int
	Loop
}

// EnsureDefaults fills in unset fields.
func (c *GetFeaturesConfig) EnsureDefaults() {
	if c.Keys == 0 {
		c.Keys = 100_000
	}
	if c.Readers == 0 {
		c.Readers = 1
	}
	c.Loop.EnsureDefaults()
}

// Validate reports a configuration that cannot run.
func (c *GetFeaturesConfig) Validate() error {
	if c.Keys <= 0 || c.Readers <= 0 {
		return errors.New("bench: Keys and Readers must be positive")
	}
	return c.Loop.Validate()
}

// RunGetFeaturesInProcess measures the latency of single engine.GetFeatures
// calls on the attribute view click_events_fv (service
// ad_ctr_feature_service), warm, for random users among Keys. The request
// structs are built before the run; every answer must be PRESENT.
func RunGetFeaturesInProcess(cfg GetFeaturesConfig) (Result, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	dir, err := os.MkdirTemp(cfg.TempDir, "featurelog-bench-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	db, err := openAds(dir, true, nil) // loading need not be durable
	if err != nil {
		return Result{}, err
	}
	if err := loadUsers(db, cfg.Keys); err != nil {
		db.Close()
		return Result{}, err
	}
	reqs := make([]engine.GetFeaturesRequest, cfg.Keys)
	for i := range reqs {
		reqs[i] = engine.GetFeaturesRequest{Workspace: adsWorkspace, Service: adsService,
			JoinKeys: map[string]any{"user_id": userKey(i)}}
	}
	name := fmt.Sprintf("get-features-inprocess keys=%d", cfg.Keys)
	res := closedLoop(name, cfg.Readers, cfg.Loop, func(w int) op {
		r := newRNG(w + 1)
		return func() (int, error) {
			vec, err := db.GetFeatures(&reqs[r.intn(len(reqs))])
			if err != nil {
				return 0, err
			}
			if vec.Features[0].Status != engine.Present {
				return 0, fmt.Errorf("feature %s is %s, want PRESENT", vec.Features[0].Name, vec.Features[0].Status)
			}
			return 1, nil
		}
	})
	return res, db.Close()
}

// loadUsers ingests one record for each of users 0..n-1, a second ago.
func loadUsers(db *engine.DB, n int) error {
	ts := time.Now().Add(-time.Second)
	for first := 0; first < n; first += 1000 {
		if _, err := db.Ingest(ingestRequest(userPrefix, first, min(1000, n-first), ts)); err != nil {
			return fmt.Errorf("bench: loading users: %w", err)
		}
	}
	return nil
}

// loadUsersHTTP is loadUsers over HTTP.
func loadUsersHTTP(c *client, url string, n int) error {
	ts := time.Now().Add(-time.Second)
	var body []byte
	for first := 0; first < n; first += 1000 {
		body = appendIngestBody(body[:0], userPrefix, first, min(1000, n-first), ts)
		if _, err := c.post(0, url, body); err != nil {
			return fmt.Errorf("bench: loading users: %w", err)
		}
	}
	return nil
}

// GetFeaturesHTTPConfig configures RunGetFeaturesHTTP.
type GetFeaturesHTTPConfig struct {
	Server Server
	// Clients is the number of concurrent clients. Default 16.
	Clients int
	// Keys is the number of users loaded before the run (featurelog
	// only); each request asks for a random one. Default 10,000.
	Keys int
	Loop
}

// EnsureDefaults fills in unset fields.
func (c *GetFeaturesHTTPConfig) EnsureDefaults() {
	if c.Clients == 0 {
		c.Clients = 16
	}
	if c.Keys == 0 {
		c.Keys = 10_000
	}
	c.Loop.EnsureDefaults()
}

// Validate reports a configuration that cannot run.
func (c *GetFeaturesHTTPConfig) Validate() error {
	if c.Clients <= 0 || c.Keys <= 0 {
		return errors.New("bench: Clients and Keys must be positive")
	}
	if err := c.Server.Validate(); err != nil {
		return err
	}
	return c.Loop.Validate()
}

// RunGetFeaturesHTTP measures get-features over HTTP in a closed loop.
func RunGetFeaturesHTTP(cfg GetFeaturesHTTPConfig) (Result, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	p, c, err := startReadServer(&cfg.Server, cfg.Keys, cfg.Clients)
	if err != nil {
		return Result{}, err
	}
	var size atomic.Int64
	name := fmt.Sprintf("get-features-http c=%d (%s)", cfg.Clients, cfg.Server.label())
	res := closedLoop(name, cfg.Clients, cfg.Loop, newGetOp(c, p.url(getFeaturesPath), cfg.Keys, &size))
	res.ResponseBytes = int(size.Load())
	c.close()
	return res, p.stop()
}

// GetFeaturesHTTPRateConfig configures RunGetFeaturesHTTPRate.
type GetFeaturesHTTPRateConfig struct {
	Server Server
	// Rate is the request rate per second. Default 5,000.
	Rate float64
	// Workers bounds the requests in flight. Default 128.
	Workers int
	// Keys is as in GetFeaturesHTTPConfig. Default 10,000.
	Keys int
	Loop
}

// EnsureDefaults fills in unset fields.
func (c *GetFeaturesHTTPRateConfig) EnsureDefaults() {
	if c.Rate == 0 {
		c.Rate = 5000
	}
	if c.Workers == 0 {
		c.Workers = 128
	}
	if c.Keys == 0 {
		c.Keys = 10_000
	}
	c.Loop.EnsureDefaults()
}

// Validate reports a configuration that cannot run.
func (c *GetFeaturesHTTPRateConfig) Validate() error {
	if c.Rate <= 0 || c.Workers <= 0 || c.Keys <= 0 {
		return errors.New("bench: Rate, Workers and Keys must be positive")
	}
	if err := c.Server.Validate(); err != nil {
		return err
	}
	return c.Loop.Validate()
}

// RunGetFeaturesHTTPRate measures get-features latency over HTTP at a
// fixed rate (open loop; latency from the scheduled send time).
func RunGetFeaturesHTTPRate(cfg GetFeaturesHTTPRateConfig) (Result, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	p, c, err := startReadServer(&cfg.Server, cfg.Keys, cfg.Workers)
	if err != nil {
		return Result{}, err
	}
	var size atomic.Int64
	name := fmt.Sprintf("get-features-http @%s/s (%s)", fmtRate(cfg.Rate), cfg.Server.label())
	res, err := openLoop(name, cfg.Rate, cfg.Workers, cfg.Loop, newGetOp(c, p.url(getFeaturesPath), cfg.Keys, &size))
	res.ResponseBytes = int(size.Load())
	c.close()
	return res, errors.Join(err, p.stop())
}

// startReadServer starts the server and, if it is featurelog, loads keys
// users into it.
func startReadServer(s *Server, keys, workers int) (*process, *client, error) {
	p, err := s.start()
	if err != nil {
		return nil, nil, err
	}
	c := newClient(workers)
	if !s.Trivial {
		if err := loadUsersHTTP(c, p.url(ingestPath), keys); err != nil {
			c.close()
			return nil, nil, errors.Join(err, p.stop())
		}
	}
	return p, c, nil
}

// newGetOp returns ops that ask for the features of a random loaded user.
func newGetOp(c *client, url string, keys int, size *atomic.Int64) func(int) op {
	return func(w int) op {
		r := newRNG(w + 1)
		var body []byte
		return func() (int, error) {
			body = appendGetFeaturesBody(body[:0], userKey(r.intn(keys)))
			resp, err := c.post(w, url, body)
			if err != nil {
				return 0, err
			}
			if bytes.Contains(resp, []byte("null")) {
				return 0, fmt.Errorf("a loaded user's feature is missing: %.300s", resp)
			}
			size.Store(int64(len(resp)))
			return 1, nil
		}
	}
}
