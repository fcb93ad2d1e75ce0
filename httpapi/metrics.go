package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/featurelog/featurelog/engine"
)

// metrics are the node's Prometheus metrics, on their own registry so two
// servers in one process (tests) do not collide: the HTTP layer's, the
// output streams', and the engine's (engine.DB.Collector).
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec

	// Output streams (outstream.go), by workspace and view.
	streamConsumers *prometheus.GaugeVec   // streams open
	streamRecords   *prometheus.CounterVec // records written to consumers
	streamSlow      *prometheus.CounterVec // streams ended by OutputStreamWriteTimeout
}

func newMetrics(db *engine.DB) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "featurelog_http_requests_total", Help: "HTTP requests by handler and status code.",
	}, []string{"handler", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "featurelog_http_request_duration_seconds", Help: "HTTP request latency by handler.",
		Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16),
	}, []string{"handler"})
	labels := []string{"workspace", "view"}
	m.streamConsumers = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "featurelog_output_stream_consumers", Help: "Output streams open over HTTP.",
	}, labels)
	m.streamRecords = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "featurelog_output_stream_records_sent_total", Help: "Output records written to HTTP stream consumers.",
	}, labels)
	m.streamSlow = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "featurelog_output_stream_slow_consumers_total",
		Help: "Output streams ended because the consumer did not take a write within OutputStreamWriteTimeout.",
	}, labels)
	m.reg.MustRegister(m.streamConsumers, m.streamRecords, m.streamSlow)
	// The engine's own metrics (flushes, merges, segments, caches, the
	// log, jobs: engine.DB.Collector), then the process's.
	m.reg.MustRegister(db.Collector())
	m.reg.MustRegister(m.requests, m.latency, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// statusRecorder remembers the status code a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection's Flush and
// deadlines through the recorder (historical answers stream).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (m *metrics) instrument(name string, h http.HandlerFunc) http.Handler {
	obs := m.latency.WithLabelValues(name)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h(rec, r)
		obs.Observe(time.Since(start).Seconds())
		m.requests.WithLabelValues(name, strconv.Itoa(rec.code)).Inc()
	})
}
