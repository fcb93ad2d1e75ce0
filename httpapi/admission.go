package httpapi

import (
	"container/list"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Admission control for POST /ingest (SPEC §2, 429 ResourceExhausted).
//
// An ingest request is admitted before its body is read. At most
// MaxInflightIngest requests execute at once (read the body, validate,
// append, wait for the group commit's fsync, apply); up to
// MaxQueuedIngest more wait in FIFO order for a slot, each for at most
// IngestQueueTimeout. Every executing or queued request reserves its
// declared body size (Content-Length, or MaxBodyBytes when the body is
// chunked) from a budget of MaxPendingIngestBytes, so the body bytes the
// node will hold are bounded before any is read. A request that finds
// the queue full or the budget spent, or whose wait times out, is refused
// with 429 and Retry-After without its body being read: under overload
// the node sheds load at the cost of one header parse, and the requests
// it admits keep a latency bounded by the queue timeout plus one commit.
//
//	request ─▶ budget? ─no──▶ 429
//	             │yes
//	             ▼
//	        free slot? ─yes─▶ execute ─▶ release: hand the slot to the
//	             │no                      queue's head, or free it
//	             ▼
//	        queue full? ─yes─▶ 429
//	             │no
//	             ▼
//	        wait ≤ IngestQueueTimeout ─timeout─▶ 429
//	             │slot handed over
//	             ▼
//	          execute

// Reasons a request is refused, the label of featurelog_ingest_rejected_total.
const (
	rejectQueueFull = "queue_full"
	rejectBytes     = "bytes"
	rejectTimeout   = "timeout"
	rejectGone      = "client_gone"
)

// retryAfterSeconds is the Retry-After of a 429: by then the queue that
// was full has turned over (it waits at most IngestQueueTimeout).
func retryAfterSeconds(queueTimeout time.Duration) int {
	return max(1, int((queueTimeout+time.Second-1)/time.Second))
}

// admission is the gate in front of the ingest handler.
type admission struct {
	maxRunning int           // MaxInflightIngest
	maxQueued  int           // MaxQueuedIngest
	maxBytes   int64         // MaxPendingIngestBytes
	timeout    time.Duration // IngestQueueTimeout
	retryAfter string        // Retry-After header value, whole seconds

	rejected *prometheus.CounterVec // by reason
	waited   prometheus.Histogram   // queue wait of admitted requests that queued

	mu struct {
		sync.Mutex
		running int        // requests executing (slots taken)
		bytes   int64      // declared body bytes of running and queued requests
		queue   *list.List // of *waiter, oldest first
	}
}

// waiter is a queued request. granted is set, under admission.mu, when a
// releasing request hands it its slot; ready is closed at the same time.
type waiter struct {
	ready   chan struct{}
	granted bool
}

func newAdmission(o *Options) *admission {
	a := &admission{maxRunning: o.MaxInflightIngest, maxQueued: o.MaxQueuedIngest,
		maxBytes: o.MaxPendingIngestBytes, timeout: o.IngestQueueTimeout,
		retryAfter: strconv.Itoa(retryAfterSeconds(o.IngestQueueTimeout))}
	a.mu.queue = list.New()
	a.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "featurelog_ingest_rejected_total",
		Help: "Ingest requests refused with 429 by admission control, by reason (queue_full, bytes, timeout, client_gone).",
	}, []string{"reason"})
	a.waited = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "featurelog_ingest_queue_wait_seconds",
		Help:    "Time admitted ingest requests waited in the admission queue (those that found a free slot are not observed).",
		Buckets: prometheus.ExponentialBuckets(100e-6, 2, 15),
	})
	return a
}

// collectors are the gate's metrics, registered on the server's registry.
func (a *admission) collectors() []prometheus.Collector {
	gauge := func(name, help string, get func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, get)
	}
	return []prometheus.Collector{a.rejected, a.waited,
		gauge("featurelog_ingest_inflight", "Ingest requests executing.", func() float64 { r, _, _ := a.state(); return float64(r) }),
		gauge("featurelog_ingest_queued", "Ingest requests waiting for an execution slot.", func() float64 { _, q, _ := a.state(); return float64(q) }),
		gauge("featurelog_ingest_pending_bytes", "Declared body bytes of ingest requests executing or queued.", func() float64 { _, _, b := a.state(); return float64(b) }),
	}
}

// state returns the running and queued counts and the reserved bytes.
func (a *admission) state() (running, queued int, bytes int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.mu.running, a.mu.queue.Len(), a.mu.bytes
}

// acquire admits a request declaring n body bytes, waiting in the queue
// if every slot is taken. It returns "" once the request holds a slot
// (the caller must release(n)), or the reason it was refused.
func (a *admission) acquire(ctx context.Context, n int64) (reason string) {
	w, reason := a.enter(n)
	if w == nil {
		return reason
	}
	start := time.Now()
	t := time.NewTimer(a.timeout)
	defer t.Stop()
	select {
	case <-w.ready:
		a.waited.Observe(time.Since(start).Seconds())
		return ""
	case <-t.C:
		reason = rejectTimeout
	case <-ctx.Done():
		reason = rejectGone
	}
	if a.leave(w, n) {
		a.waited.Observe(time.Since(start).Seconds())
		return "" // the slot was handed over as the wait ended
	}
	return reason
}

// enter takes a slot at once (nil, ""), queues the request (w, ""), or
// refuses it (nil, reason).
func (a *admission) enter(n int64) (*waiter, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.mu.bytes+n > a.maxBytes {
		return nil, rejectBytes
	}
	if a.mu.running < a.maxRunning && a.mu.queue.Len() == 0 {
		a.mu.running++
		a.mu.bytes += n
		return nil, ""
	}
	if a.mu.queue.Len() >= a.maxQueued {
		return nil, rejectQueueFull
	}
	a.mu.bytes += n
	w := &waiter{ready: make(chan struct{})}
	a.mu.queue.PushBack(w)
	return w, ""
}

// leave takes a waiter that stopped waiting out of the queue, unless it
// was granted a slot meanwhile, which it reports.
func (a *admission) leave(w *waiter, n int64) (granted bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if w.granted {
		return true
	}
	for e := a.mu.queue.Front(); e != nil; e = e.Next() {
		if e.Value == w {
			a.mu.queue.Remove(e)
			break
		}
	}
	a.mu.bytes -= n
	return false
}

// release frees the slot and n reserved bytes of a finished request: the
// slot goes to the oldest queued request, if any.
func (a *admission) release(n int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.mu.bytes -= n
	if e := a.mu.queue.Front(); e != nil {
		w := a.mu.queue.Remove(e).(*waiter)
		w.granted = true
		close(w.ready)
		return
	}
	a.mu.running--
}

// admit wraps the ingest handler in the gate. A body larger than
// MaxBodyBytes by its Content-Length passes through uncounted: the
// handler refuses it (413) without reading it.
func (s *Server) admit(h http.HandlerFunc) http.HandlerFunc {
	a := s.ingestGate
	return func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > s.opts.MaxBodyBytes {
			h(w, r)
			return
		}
		n := r.ContentLength
		if n < 0 {
			n = s.opts.MaxBodyBytes // chunked: as much as the limit lets through
		}
		if reason := a.acquire(r.Context(), n); reason != "" {
			a.rejected.WithLabelValues(reason).Inc()
			s.refuse(w, reason)
			return
		}
		defer a.release(n)
		h(w, r)
	}
}

// refuse answers 429 ResourceExhausted with Retry-After. The body is left
// unread; net/http closes the connection after the response if the
// client keeps sending it.
func (s *Server) refuse(w http.ResponseWriter, reason string) {
	a := s.ingestGate
	var msg string
	switch reason {
	case rejectBytes:
		msg = fmt.Sprintf("the node is saturated: ingest requests holding %d bytes of bodies are executing or queued (limit MaxPendingIngestBytes); retry after %ss with backoff", a.maxBytes, a.retryAfter)
	case rejectQueueFull:
		msg = fmt.Sprintf("the node is saturated: %d ingest requests are executing and %d are queued (limits MaxInflightIngest and MaxQueuedIngest); retry after %ss with backoff", a.maxRunning, a.maxQueued, a.retryAfter)
	default:
		msg = fmt.Sprintf("the node is saturated: the request waited %s for one of %d ingest slots (IngestQueueTimeout); nothing was written; retry after %ss with backoff", a.timeout, a.maxRunning, a.retryAfter)
	}
	w.Header().Set("Retry-After", a.retryAfter)
	writeRequestError(w, http.StatusTooManyRequests, "ResourceExhausted", msg)
}
