package httpapi

import (
	"context"
	"errors"
	"mime"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/engine"
)

// GET /api/v1/workspaces/{ws}/feature-views/{name}/output-stream (SPEC §7)
// follows a view's output stream: every record the view applies from the
// push path, in log order, as the one-line JSON object of
// engine.OutputRecord.AppendJSON (its "offset" included). It needs the
// viewer role on the workspace.
//
// Where it starts:
//
//	?from=latest     the records appended after the request is received (the default)
//	?from=earliest   the first record the log retains
//	?from=OFFSET     the record at OFFSET, inclusive (24 hex digits, as sent)
//	Last-Event-ID: OFFSET   right after OFFSET; wins over from (either format)
//
// A consumer that resumes with Last-Event-ID set to the last offset it
// received misses nothing and sees nothing twice. With from=OFFSET the
// record at OFFSET comes again first.
//
// Formats. By default NDJSON (Content-Type: application/x-ndjson), one
// record per line. With Accept: text/event-stream, server-sent events
// (Content-Type: text/event-stream), one per record:
//
//	id: <offset>
//	event: record
//	data: <the record's JSON object>
//	<empty line>
//
// Heartbeats. After Options.OutputStreamHeartbeat (default 15s) without a
// record the node sends a heartbeat, again after each such interval: an
// SSE comment line ": heartbeat" followed by an empty line, or in NDJSON
// one empty line, which NDJSON readers must skip (package client does).
// They keep proxies and load balancers from closing an idle stream and
// tell the consumer the node is alive.
//
// Access. The key is checked again before each write: a stream whose
// key is revoked, or whose account loses the viewer role, ends with an
// error (below) of code 16 or 7 within a batch or a heartbeat interval.
//
// Errors. A refusal before the stream starts is an ordinary error
// response of the serving API's shape {"code", "error", "message"}: 401,
// 403, 400 for a malformed from or Last-Event-ID or an unknown query
// parameter, 404 for an unknown workspace or view or a view without
// output_stream, 410 for an offset the log no longer retains, 503 while
// a backfill builds the view's first version. The status line and
// headers are sent as soon as the stream is open; an error after that
// (the log truncated under a stream that started at an offset, the view
// removed, the engine closed) ends the stream with one last message
// holding that same object:
//
//	NDJSON: {"code": <gRPC code>, "error": "<message>", "message": "<message>"}
//	SSE:    event: error
//	        data: {"code": <gRPC code>, "error": "<message>", "message": "<message>"}
//
// the shape historical and run answers end with. A record never has a
// "code" member.
//
// Memory and slow consumers. The handler reads at most streamBatch
// records from the log (a log reader, never a buffer of the log), writes
// them and flushes, and reads the next batch only once the consumer's
// connection took them: a consumer that reads slowly holds the handler
// in its write (TCP backpressure), so a stream costs at most one batch
// whatever the consumer's lag. Each write must complete within
// Options.OutputStreamWriteTimeout (default 30s); a consumer that does
// not take it in time has its stream ended (logged, and counted in
// featurelog_output_stream_slow_consumers_total) and resumes from the
// last offset it received.
//
// The stream ends when the consumer disconnects, when the node shuts
// down (http.Server.Shutdown of a server from Server.HTTPServer: the
// response ends cleanly and the consumer reconnects elsewhere or later),
// after an error as above, or after a slow write. The server's
// WriteTimeout does not apply: the handler sets a write deadline per
// write. (Nor does ReadTimeout: net/http clears the read deadline once it
// has read a request without a body, to watch for the client closing.)

// Output stream constants.
const (
	// streamBatch bounds the records one write carries: with its encoded
	// form, the memory of one stream.
	streamBatch = 256
	// lastEventIDHeader resumes a stream after an offset.
	lastEventIDHeader = "Last-Event-ID"
	// grpcOutOfRange is the gRPC code of an offset no longer retained
	// (HTTP 410), as Kafka's OFFSET_OUT_OF_RANGE.
	grpcOutOfRange = 11
)

// outputStream serves GET .../feature-views/{name}/output-stream.
func (s *Server) outputStream(w http.ResponseWriter, r *http.Request) {
	c, err := s.authenticate(r)
	if err != nil {
		writeServingError(w, http.StatusUnauthorized, grpcUnauthenticated, err.Error())
		return
	}
	ws, view := r.PathValue("ws"), r.PathValue("name")
	if err := c.require(auth.Viewer, "read output streams")(ws); err != nil {
		s.writeEngineError(w, err)
		return
	}
	start, err := streamStart(r)
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	st, err := s.db.OpenOutputStream(ws, view, start)
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	defer st.Close()
	consumers := s.metrics.streamConsumers.WithLabelValues(ws, view)
	consumers.Inc()
	defer consumers.Dec()

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.streams, cancel)() // Shutdown ends the stream

	sw := &streamWriter{w: w, rc: http.NewResponseController(w), timeout: s.opts.OutputStreamWriteTimeout, sse: wantsSSE(r)}
	err = sw.begin()
	if err == nil {
		err = s.pump(ctx, st, sw, ws, view, func() error { return s.stillAllowed(r, ws) })
	}
	s.endStream(ctx, sw, err, ws, view, r.RemoteAddr)
}

// streamStart reads where a stream starts from the request.
func streamStart(r *http.Request) (engine.StreamStart, error) {
	q := r.URL.Query()
	if err := checkQuery(q, "from"); err != nil {
		return engine.StreamStart{}, err
	}
	if id := r.Header.Get(lastEventIDHeader); id != "" {
		off, err := engine.ParseStreamOffset(id)
		if err != nil {
			return engine.StreamStart{}, paramError("header %s: %s", lastEventIDHeader, err.Error())
		}
		return engine.StreamStart{Kind: engine.StartAfter, Offset: off}, nil
	}
	if len(q["from"]) > 1 {
		return engine.StreamStart{}, paramError("query parameter from is given %d times; give it once", len(q["from"]))
	}
	if !q.Has("from") {
		return engine.StreamStart{Kind: engine.StartLatest}, nil
	}
	switch from := q.Get("from"); from {
	case "latest":
		return engine.StreamStart{Kind: engine.StartLatest}, nil
	case "earliest":
		return engine.StreamStart{Kind: engine.StartEarliest}, nil
	default:
		off, err := engine.ParseStreamOffset(from)
		if err != nil {
			return engine.StreamStart{}, paramError("query parameter from: %s", err.Error())
		}
		return engine.StreamStart{Kind: engine.StartAt, Offset: off}, nil
	}
}

// stillAllowed checks the request's key again, before each write of a
// stream: a key revoked, or a role withdrawn, while the stream runs ends
// it within a batch or a heartbeat interval.
func (s *Server) stillAllowed(r *http.Request, ws string) error {
	c, err := s.authenticate(r)
	if err != nil {
		return &revokedError{code: grpcUnauthenticated, msg: err.Error()}
	}
	if err := c.require(auth.Viewer, "read output streams")(ws); err != nil {
		return &revokedError{code: grpcPermissionDenied, msg: err.Error()}
	}
	return nil
}

// revokedError ends a stream whose caller lost its access.
type revokedError struct {
	code int // gRPC code: Unauthenticated or PermissionDenied
	msg  string
}

func (e *revokedError) Error() string { return e.msg }

// wantsSSE reports whether the request accepts server-sent events.
func wantsSSE(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			if mt, _, err := mime.ParseMediaType(part); err == nil && mt == "text/event-stream" {
				return true
			}
		}
	}
	return false
}

// pump copies the stream to the consumer until ctx ends, the engine
// fails (its error), a write fails (a *writeError) or allowed fails (a
// *revokedError).
func (s *Server) pump(ctx context.Context, st *engine.OutputStream, sw *streamWriter, ws, view string, allowed func() error) error {
	sent := s.metrics.streamRecords.WithLabelValues(ws, view)
	recs := make([]engine.OutputRecord, 0, streamBatch)
	for {
		var err error
		recs, err = st.Next(ctx, recs, streamBatch, s.opts.OutputStreamHeartbeat)
		if aerr := allowed(); aerr != nil && ctx.Err() == nil {
			return aerr
		}
		switch {
		case len(recs) > 0:
			if werr := sw.records(recs); werr != nil {
				return werr
			}
			sent.Add(float64(len(recs)))
		case err == nil:
			if werr := sw.heartbeat(); werr != nil {
				return werr
			}
		}
		if err != nil {
			return err
		}
	}
}

// endStream ends a stream after pump returned err.
func (s *Server) endStream(ctx context.Context, sw *streamWriter, err error, ws, view, remote string) {
	var (
		we *writeError
		re *revokedError
	)
	switch {
	case errors.As(err, &we) && we.timeout():
		s.metrics.streamSlow.WithLabelValues(ws, view).Inc()
		s.opts.Logger.Warn("output stream ended: the consumer did not take a write within the write timeout; it resumes from the last offset it received",
			"workspace", ws, "feature_view", view, "remote", remote, "write_timeout", sw.timeout)
		return // the connection is broken: no deadline to clear
	case we != nil:
		s.opts.Logger.Debug("output stream ended: the consumer is gone", "workspace", ws, "feature_view", view, "remote", remote, "err", we.err)
		return
	case ctx.Err() != nil:
		// The consumer disconnected or the node shuts down: end the
		// response cleanly.
	case errors.As(err, &re):
		s.opts.Logger.Info("output stream ended: the caller lost its access", "workspace", ws, "feature_view", view, "remote", remote, "err", re.msg)
		if sw.fail(re.code, re.msg) != nil {
			return
		}
	default:
		status, code := engineStatus(err)
		if status >= 500 {
			s.opts.Logger.Error("output stream failed after it started", "workspace", ws, "feature_view", view, "err", err)
		}
		if sw.fail(code, err.Error()) != nil {
			return
		}
	}
	sw.rc.SetWriteDeadline(time.Time{}) // for the connection's next request
}

// streamWriter encodes a stream's records, heartbeats and error as NDJSON
// or server-sent events and writes them, one flushed write at a time,
// each within timeout.
type streamWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration // per write (Options.OutputStreamWriteTimeout)
	sse     bool          // server-sent events, not NDJSON
	buf     []byte        // the write being encoded; reused
}

// writeError is a failed write to the consumer.
type writeError struct{ err error }

func (e *writeError) Error() string { return "httpapi: writing the output stream: " + e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// timeout reports whether the write failed because its deadline passed.
func (e *writeError) timeout() bool {
	var ne net.Error
	return errors.Is(e.err, os.ErrDeadlineExceeded) || (errors.As(e.err, &ne) && ne.Timeout())
}

// begin sends the status line and headers.
func (sw *streamWriter) begin() error {
	h := sw.w.Header()
	if sw.sse {
		h.Set("Content-Type", "text/event-stream")
	} else {
		h.Set("Content-Type", "application/x-ndjson")
	}
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	sw.setDeadline()
	sw.w.WriteHeader(http.StatusOK)
	return sw.flush()
}

// records writes a batch of records.
func (sw *streamWriter) records(recs []engine.OutputRecord) error {
	b := sw.buf[:0]
	for i := range recs {
		if sw.sse {
			b = append(b, "id: "...)
			b = recs[i].Offset.AppendText(b)
			b = append(b, "\nevent: record\ndata: "...)
			b = recs[i].AppendJSON(b)
			b = append(b, '\n', '\n')
		} else {
			b = append(recs[i].AppendJSON(b), '\n')
		}
	}
	sw.buf = b
	return sw.send()
}

// heartbeat writes a heartbeat.
func (sw *streamWriter) heartbeat() error {
	if sw.sse {
		sw.buf = append(sw.buf[:0], ": heartbeat\n\n"...)
	} else {
		sw.buf = append(sw.buf[:0], '\n')
	}
	return sw.send()
}

// fail writes the error object that ends a stream.
func (sw *streamWriter) fail(code int, msg string) error {
	b := sw.buf[:0]
	if sw.sse {
		b = append(b, "event: error\ndata: "...)
	}
	b = append(b, `{"code":`...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, `,"error":`...)
	b = appendString(b, msg)
	b = append(b, `,"message":`...)
	b = appendString(b, msg)
	b = append(b, '}', '\n')
	if sw.sse {
		b = append(b, '\n')
	}
	sw.buf = b
	return sw.send()
}

// send writes and flushes the encoded buffer within the write timeout.
func (sw *streamWriter) send() error {
	sw.setDeadline()
	_, err := sw.w.Write(sw.buf)
	if cap(sw.buf) > 4*streamBatch<<10 {
		sw.buf = nil // a batch of huge records: do not keep its buffer
	}
	if err != nil {
		return &writeError{err}
	}
	return sw.flush()
}

func (sw *streamWriter) flush() error {
	if err := sw.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return &writeError{err}
	}
	return nil
}

// setDeadline gives the next write the write timeout. It replaces the
// server's WriteTimeout, which a stream outlives.
func (sw *streamWriter) setDeadline() {
	sw.rc.SetWriteDeadline(time.Now().Add(sw.timeout)) // ErrNotSupported: no deadline to set
}
