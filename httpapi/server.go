package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"time"

	"github.com/featurelog/featurelog/api"
	"github.com/featurelog/featurelog/cluster"
	"github.com/featurelog/featurelog/engine"
)

// Options configure a Server.
type Options struct {
	// Addr is the listen address. Default 127.0.0.1:8080.
	Addr string
	// NoAuth serves without API keys. Refused unless Addr is loopback.
	NoAuth bool
	// Cluster, when set, serves in cluster mode (cluster.go): the DB
	// given to New must be Cluster.Catalog().
	Cluster *cluster.Node
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
	// Logger receives request errors, and at debug level a line per
	// request (the access log: no query, no headers). Default
	// slog.Default().
	Logger *slog.Logger

	// Admission control of POST /ingest (admission.go). A request over
	// these limits is refused with 429 ResourceExhausted and Retry-After
	// before its body is read.

	// MaxInflightIngest bounds the ingest requests executing at once
	// (reading the body, validating, waiting for the log's group commit,
	// applying). The log commits every waiting append with one fsync, so
	// this is also the largest group commit HTTP ingest can form. Default
	// 16 × GOMAXPROCS, at least 32.
	MaxInflightIngest int
	// MaxQueuedIngest bounds the ingest requests waiting, in FIFO order,
	// for an execution slot. Default 4 × MaxInflightIngest.
	MaxQueuedIngest int
	// MaxPendingIngestBytes bounds the declared body bytes
	// (Content-Length; MaxBodyBytes for a chunked body) of the ingest
	// requests executing or queued together, and so the ingest bodies the
	// node holds in memory. At least MaxBodyBytes. Default 4 × MaxBodyBytes.
	MaxPendingIngestBytes int64
	// IngestQueueTimeout is how long an ingest request waits for a slot
	// before it is refused; it bounds the latency a queued request adds.
	// Retry-After is this rounded up to whole seconds, at least 1.
	// Default 500ms.
	IngestQueueTimeout time.Duration

	// HTTP server limits (net/http.Server), against slow and idle
	// clients. Historical answers (get-features-for-events) stream for
	// longer than ReadTimeout and WriteTimeout: they extend their own
	// deadlines as long as data keeps moving.

	// ReadHeaderTimeout bounds reading a request's headers. Default 10s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, headers and body.
	// Default 60s.
	ReadTimeout time.Duration
	// WriteTimeout bounds the time from the end of a request's headers to
	// the end of its response. Default 60s.
	WriteTimeout time.Duration
	// IdleTimeout is how long a keep-alive connection may wait for its
	// next request. Default 120s.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's header block (431 beyond; net/http
	// allows 4 KiB of slack). Default 1 MiB.
	MaxHeaderBytes int
	// ShutdownTimeout is how long ListenAndServe waits, once its context
	// is done, for in-flight requests to finish before closing their
	// connections. Default 30s.
	ShutdownTimeout time.Duration

	// Output streams (GET .../feature-views/{name}/output-stream,
	// outstream.go). They outlive ReadTimeout and WriteTimeout.

	// OutputStreamHeartbeat is how long a stream may go without a record
	// before the node sends a heartbeat (an SSE comment, an empty NDJSON
	// line), and again after each such interval. Default 15s.
	OutputStreamHeartbeat time.Duration
	// OutputStreamWriteTimeout bounds each write of a stream: a consumer
	// that does not take a batch within it has its stream ended (it
	// resumes from the last offset it received), so a stalled consumer
	// holds neither memory nor a connection for long. Default 30s.
	OutputStreamWriteTimeout time.Duration

	// Sinks, if set, are the node's output stream sinks (sinks.go): their
	// metrics join /metrics, and one failing or lagging past its max_lag
	// makes /readyz answer 503.
	Sinks Sinks
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
	o.ensureAdmissionDefaults()
	setDefault(&o.ReadHeaderTimeout, 10*time.Second)
	setDefault(&o.ReadTimeout, 60*time.Second)
	setDefault(&o.WriteTimeout, 60*time.Second)
	setDefault(&o.IdleTimeout, 120*time.Second)
	setDefault(&o.MaxHeaderBytes, 1<<20)
	setDefault(&o.ShutdownTimeout, 30*time.Second)
	setDefault(&o.OutputStreamHeartbeat, 15*time.Second)
	setDefault(&o.OutputStreamWriteTimeout, 30*time.Second)
}

func (o *Options) ensureAdmissionDefaults() {
	setDefault(&o.MaxInflightIngest, max(32, 16*runtime.GOMAXPROCS(0)))
	setDefault(&o.MaxQueuedIngest, 4*o.MaxInflightIngest)
	setDefault(&o.MaxPendingIngestBytes, 4*o.MaxBodyBytes)
	setDefault(&o.IngestQueueTimeout, 500*time.Millisecond)
}

// setDefault sets *v to def if it is zero.
func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
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
	if o.MaxInflightIngest < 0 || o.MaxQueuedIngest < 0 || o.IngestQueueTimeout < 0 {
		return errors.New("httpapi: MaxInflightIngest, MaxQueuedIngest and IngestQueueTimeout must not be negative (0 means the default)")
	}
	if o.MaxPendingIngestBytes < o.MaxBodyBytes {
		return fmt.Errorf("httpapi: MaxPendingIngestBytes (%d) must be at least MaxBodyBytes (%d), or no request of the largest allowed size could ever be admitted", o.MaxPendingIngestBytes, o.MaxBodyBytes)
	}
	if o.ReadHeaderTimeout < 0 || o.ReadTimeout < 0 || o.WriteTimeout < 0 || o.IdleTimeout < 0 || o.MaxHeaderBytes < 0 || o.ShutdownTimeout < 0 {
		return errors.New("httpapi: ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout, MaxHeaderBytes and ShutdownTimeout must not be negative (0 means the default)")
	}
	if o.OutputStreamHeartbeat < 0 || o.OutputStreamWriteTimeout < 0 {
		return errors.New("httpapi: OutputStreamHeartbeat and OutputStreamWriteTimeout must not be negative (0 means the default)")
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
	db   *engine.DB
	opts Options
	mux  *http.ServeMux
	// handler serves the routes: mux behind the access log, unless a test
	// wrapped it (export_test.go) to validate every exchange against
	// api/openapi.yaml.
	handler    http.Handler
	metrics    *metrics
	ingestGate *admission // admission control of POST /ingest
	// forwarder sends reads to the nodes that serve them (cluster mode).
	forwarder       *http.Client
	streamForwarder *http.Client
	// streams is cancelled by the Shutdown of a server from HTTPServer:
	// it ends the output streams, which would otherwise hold Shutdown
	// until its timeout.
	streams     context.Context
	stopStreams context.CancelFunc
}

// New returns a Server for db.
func New(db *engine.DB, opts Options) (*Server, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	s := &Server{db: db, opts: opts, mux: http.NewServeMux(), metrics: newMetrics(db), ingestGate: newAdmission(&opts)}
	s.streams, s.stopStreams = context.WithCancel(context.Background())
	if opts.Cluster != nil {
		if db != opts.Cluster.Catalog() {
			return nil, errors.New("httpapi: in cluster mode the DB must be the cluster node's catalog")
		}
		s.forwarder = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second}}
		// Historical sub-requests stream as long as their answers keep
		// coming: the same connections, without the whole-request timeout.
		s.streamForwarder = &http.Client{Transport: s.forwarder.Transport}
	}
	s.metrics.reg.MustRegister(s.ingestGate.collectors()...)
	s.registerSinks()
	s.routes()
	s.clusterRoutes()
	s.consoleRoutes()
	s.handler = accessLog(opts.Logger, s.mux)
	return s, nil
}

func (s *Server) routes() {
	s.handle("POST /ingest", "ingest", s.admit(s.ingest))
	s.handle("POST /api/v1/feature-service/get-features", "get_features", s.getFeatures)
	s.handle("POST /api/v1/feature-service/get-features-batch", "get_features_batch", s.getFeaturesBatch)
	s.handle("POST /api/v1/feature-service/get-features-for-events", "get_features_for_events", s.historical)
	s.handle("POST /api/v1/feature-service/metadata", "feature_service_metadata", s.serviceMetadata)
	s.handle("GET /api/v1/workspaces", "workspaces", s.listWorkspaces)
	s.handle("GET /api/v1/workspaces/{ws}/feature-views", "feature_views", s.listFeatureViews)
	s.handle("GET /api/v1/workspaces/{ws}/feature-views/{name}", "feature_view", s.featureView)
	s.handle("GET /api/v1/workspaces/{ws}/feature-services", "feature_services", s.listFeatureServices)
	s.handle("GET /api/v1/workspaces/{ws}/feature-services/{name}", "feature_service", s.featureService)
	s.handle("GET /api/v1/workspaces/{ws}/jobs", "jobs", s.listJobs)
	s.handle("GET /api/v1/workspaces/{ws}/jobs/{id}", "job", s.getJob)
	s.handle("POST /api/v1/workspaces/{ws}/jobs/{id}/cancel", "cancel_job", s.cancelJob)
	s.handle("POST /api/v1/workspaces/{ws}/feature-views/{name}/materialization-jobs", "materialize", s.materialize)
	s.handle("POST /api/v1/workspaces/{ws}/feature-views/{name}/delete-keys", "delete_keys", s.deleteKeys)
	s.handle("POST /api/v1/workspaces/{ws}/feature-views/{name}/run", "run", s.runView)
	s.handle("GET /api/v1/workspaces/{ws}/feature-views/{name}/output-stream", "output_stream", s.outputStream)
	s.handle("GET /api/v1/workspaces/{ws}/feature-views/{name}/ingest-rate", "ingest_rate", s.ingestRate)
	s.handle("POST /api/v1/plan", "plan", s.plan)
	s.handle("POST /api/v1/apply", "apply", s.apply)
	s.handle("GET /api/v1/service-accounts", "service_accounts", s.listAccounts)
	s.handle("POST /api/v1/service-accounts", "service_accounts", s.createAccount)
	s.handle("DELETE /api/v1/service-accounts/{id}", "service_accounts", s.deleteAccount)
	s.handle("POST /api/v1/access-control/assign-role", "assign_role", s.assignRole)
	s.handle("GET /healthz", "healthz", s.healthz)
	s.handle("GET /readyz", "readyz", s.readyz)
	s.handle("GET /api/v1/openapi.yaml", "openapi", s.openapi)
	s.mux.Handle("GET /metrics", s.metrics.handler())
}

func (s *Server) handle(pattern, name string, h http.HandlerFunc) {
	if s.opts.Cluster != nil && !clusterOnly[name] {
		h = notInCluster(name)
	}
	s.mux.Handle(pattern, s.metrics.instrument(name, h))
}

// Handler returns the server's routes behind its access log (debug
// level), for tests and embedding.
func (s *Server) Handler() http.Handler { return s.handler }

// HTTPServer returns an http.Server with the timeouts of Options, which
// keep slow or idle clients from holding connections forever: a client
// trickling its headers (slowloris) is cut off after ReadHeaderTimeout,
// one trickling its body after ReadTimeout. Its Shutdown ends the
// Server's output streams, whichever http.Server serves them, and any
// opened later at once.
func (s *Server) HTTPServer() *http.Server {
	hs := &http.Server{
		Addr:              s.opts.Addr,
		Handler:           s.handler,
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout,
		ReadTimeout:       s.opts.ReadTimeout,
		WriteTimeout:      s.opts.WriteTimeout,
		IdleTimeout:       s.opts.IdleTimeout,
		MaxHeaderBytes:    s.opts.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.opts.Logger.Handler(), slog.LevelWarn),
	}
	hs.RegisterOnShutdown(s.stopStreams)
	return hs
}

// ListenAndServe serves until ctx is done, then drains: it stops
// accepting, closes idle connections and waits up to ShutdownTimeout for
// in-flight requests to finish. Requests still running then have their
// connections closed and ListenAndServe returns at once with an error;
// the caller then closes the engine, whose Close waits for the ingests
// still inside it and fails later ones with 503, so no request is
// acknowledged without its fsync. ready, if not nil, is called with the
// bound address once the listener is open.
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
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close() // cut the connections of requests still running
		return fmt.Errorf("httpapi: requests still running after the shutdown timeout of %s; their connections were closed: %w", s.opts.ShutdownTimeout, err)
	}
	<-errc
	return nil
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSONBytes(w, http.StatusOK, []byte(`{"status":"ok"}`))
}

// openapi serves the API's OpenAPI 3.1 description. It needs no key, like
// /healthz and /metrics: it describes the API, not any workspace's data,
// and clients and tools fetch it before they hold a key.
func (s *Server) openapi(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", api.ContentType)
	h.Set("Content-Length", strconv.Itoa(len(api.OpenAPI())))
	w.WriteHeader(http.StatusOK)
	w.Write(api.OpenAPI())
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	err := s.db.Healthy()
	if err == nil && s.opts.Cluster != nil {
		err = s.clusterReady()
	}
	if err != nil {
		writeJSONBytes(w, http.StatusServiceUnavailable, appendObject(nil, "status", "unavailable", "error", err.Error()))
		return
	}
	if s.sinksUnready(w) {
		return
	}
	if err := s.db.MaintenanceErr(); err != nil {
		writeJSONBytes(w, http.StatusOK, appendObject(nil, "status", "ready", "degraded",
			"background checkpoints are failing (nothing is lost; the log replayed on open grows): "+err.Error()))
		return
	}
	if s.opts.Cluster != nil {
		writeJSONValue(w, http.StatusOK, map[string]any{"status": "ready", "partitions": s.opts.Cluster.Owned()})
		return
	}
	writeJSONBytes(w, http.StatusOK, []byte(`{"status":"ready"}`))
}
