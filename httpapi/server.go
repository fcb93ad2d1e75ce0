package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/featurelog/featurelog/engine"
)

// Options configure a Server.
type Options struct {
	// Addr is the listen address. Default 127.0.0.1:8080.
	Addr string
	// NoAuth serves without API keys. Refused unless Addr is loopback.
	NoAuth bool
	// MaxBodyBytes bounds request bodies (413 beyond). Default 16 MiB.
	MaxBodyBytes int64
	// MaxSpineBytes bounds the NDJSON spine of a historical request, which
	// streams rather than being held in memory (413 beyond). Default 1 GiB.
	MaxSpineBytes int64
	// HistoricalChunkRows is how many spine rows a historical request has
	// the engine read, answer and write at a time: it bounds the request's
	// memory and how soon its first rows stream. Default 0: the engine's
	// (engine.HistoricalRequest.ChunkRows).
	HistoricalChunkRows int
	// Logger receives request errors. Default slog.Default().
	Logger *slog.Logger
}

// EnsureDefaults fills in unset fields.
func (o *Options) EnsureDefaults() {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:8080"
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = 16 << 20
	}
	if o.MaxSpineBytes == 0 {
		o.MaxSpineBytes = 1 << 30
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Validate refuses options that would be unsafe.
func (o *Options) Validate() error {
	if o.NoAuth && !IsLoopback(o.Addr) {
		return fmt.Errorf("httpapi: --no-auth is refused on %q: without API keys the node may only listen on a loopback address (127.0.0.1, ::1 or localhost)", o.Addr)
	}
	if o.MaxBodyBytes < 0 || o.MaxSpineBytes < 0 || o.HistoricalChunkRows < 0 {
		return errors.New("httpapi: MaxBodyBytes, MaxSpineBytes and HistoricalChunkRows must not be negative")
	}
	return nil
}

// IsLoopback reports whether a listen address binds only loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Server is the HTTP front of one engine.
type Server struct {
	db      *engine.DB
	opts    Options
	mux     *http.ServeMux
	metrics *metrics
}

// New returns a Server for db.
func New(db *engine.DB, opts Options) (*Server, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	s := &Server{db: db, opts: opts, mux: http.NewServeMux(), metrics: newMetrics(db)}
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	s.handle("POST /ingest", "ingest", s.ingest)
	s.handle("POST /api/v1/feature-service/get-features", "get_features", s.getFeatures)
	s.handle("POST /api/v1/feature-service/get-features-batch", "get_features_batch", s.getFeaturesBatch)
	s.handle("POST /api/v1/feature-service/get-features-for-events", "get_features_for_events", s.historical)
	s.handle("GET /api/v1/workspaces/{ws}/feature-views/{name}", "feature_view", s.featureView)
	s.handle("POST /api/v1/plan", "plan", s.plan)
	s.handle("POST /api/v1/apply", "apply", s.apply)
	s.handle("GET /api/v1/service-accounts", "service_accounts", s.listAccounts)
	s.handle("POST /api/v1/service-accounts", "service_accounts", s.createAccount)
	s.handle("DELETE /api/v1/service-accounts/{id}", "service_accounts", s.deleteAccount)
	s.handle("POST /api/v1/access-control/assign-role", "assign_role", s.assignRole)
	s.handle("GET /healthz", "healthz", s.healthz)
	s.handle("GET /readyz", "readyz", s.readyz)
	s.mux.Handle("GET /metrics", s.metrics.handler())
}

func (s *Server) handle(pattern, name string, h http.HandlerFunc) {
	s.mux.Handle(pattern, s.metrics.instrument(name, h))
}

// Handler returns the server's routes, for tests and embedding.
func (s *Server) Handler() http.Handler { return s.mux }

// HTTPServer returns an http.Server with timeouts that keep slow or idle
// clients from holding connections forever.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Addr:              s.opts.Addr,
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(s.opts.Logger.Handler(), slog.LevelWarn),
	}
}

// ListenAndServe serves until ctx is done, then stops accepting, lets
// in-flight requests finish (up to 30s) and returns. ready, if not nil, is
// called with the bound address once the listener is open.
func (s *Server) ListenAndServe(ctx context.Context, ready func(addr net.Addr)) error {
	hs := s.HTTPServer()
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("httpapi: listen on %s: %w", s.opts.Addr, err)
	}
	if ready != nil {
		ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return err
	}
	<-errc
	return nil
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSONBytes(w, http.StatusOK, []byte(`{"status":"ok"}`))
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if err := s.db.Healthy(); err != nil {
		writeJSONBytes(w, http.StatusServiceUnavailable, appendObject(nil, "status", "unavailable", "error", err.Error()))
		return
	}
	writeJSONBytes(w, http.StatusOK, []byte(`{"status":"ready"}`))
}
