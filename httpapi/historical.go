package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/schema"
	"github.com/featurelog/featurelog/tabread"
	"github.com/featurelog/featurelog/tabular"
)

// POST /api/v1/feature-service/get-features-for-events (SPEC §5) answers
// a historical join as NDJSON, streamed: one object per spine row in spine
// order (the spine's members as given, then "<view>.<feature>": value with
// the encodings of §4), or in range mode one object per key and interval
// (join keys, "_valid_from", "_valid_to", then the features).
//
// Two request shapes:
//
//	Content-Type: application/json (or anything but NDJSON)
//	{"params": {"workspace_name", "feature_service_name", "timestamp_key",
//	  "from_source", "spine": [{...}, ...]}}               spine mode
//	{"params": {..., "start_time", "end_time", "entities": [{...}]}}  range mode
//
//	Content-Type: application/x-ndjson
//	?workspace_name=..&feature_service_name=..&timestamp_key=..&from_source=..
//	one spine row (a JSON object) per line; blank lines are skipped
//
// Errors and streaming. The status line is sent with the first answer row,
// so an error found before it (a malformed row, an unknown service) is an
// ordinary error response: 400 naming the row ("line N" for NDJSON,
// "params.spine[i]" for JSON), 404, 413, and so on. A JSON spine is
// validated whole before anything is sent: rows are held back until the
// engine has read the spine to its end (the engine validates each chunk
// of rows before answering any of it). An NDJSON spine streams: when an
// error comes after rows were sent (a malformed line late in a large
// spine, say), the answer ends with one last line
//
//	{"code": <gRPC code>, "error": "<message>", "message": "<message>"}
//
// and no more rows. A client must check the last line for that shape
// (package client does). The response header Featurelog-Columns lists the
// columns and their data types, as JSON, for clients that write typed files.

// Streaming constants.
const (
	// flushBytes and flushEvery: the answer is written to the client when
	// this much is buffered, or this long after the last write.
	flushBytes = 32 << 10
	flushEvery = 200 * time.Millisecond
	// ioWindow is how long one write of the answer, or one read of an
	// NDJSON body, may take. It replaces the server's whole-request
	// timeouts, which a long historical stream would exceed.
	ioWindow = 60 * time.Second
)

// ColumnsHeader is the response header that lists a historical answer's
// columns: [{"name": "ts", "spine": true}, {"name": "v.f",
// "dataType": {"type": "int64"}}, ...]. Non-ASCII is \u-escaped.
const ColumnsHeader = "Featurelog-Columns"

// historical serves POST /api/v1/feature-service/get-features-for-events.
func (s *Server) historical(w http.ResponseWriter, r *http.Request) {
	c, err := s.authenticate(r)
	if err != nil {
		writeServingError(w, http.StatusUnauthorized, grpcUnauthenticated, err.Error())
		return
	}
	p, ok := s.historicalParams(w, r)
	if !ok {
		return
	}
	if err := c.require(auth.Viewer, "read features")(p.workspace); err != nil {
		s.writeEngineError(w, err)
		return
	}
	rc := http.NewResponseController(w)
	defer clearDeadlines(rc)
	req := &engine.HistoricalRequest{Workspace: p.workspace, Service: p.service, TimestampKey: p.timestampKey,
		FromSource: p.fromSource, Start: p.start, End: p.end, Entities: p.entities, ChunkRows: s.opts.HistoricalChunkRows}
	if s.opts.Cluster != nil {
		s.clusterHistorical(w, r, rc, p, req)
		return
	}
	if p.rangeMode() {
		st := &stream{w: w, rc: rc}
		st.finish(r.Context(), s, s.db.GetFeaturesForRange(r.Context(), req, st))
		return
	}
	s.spineJoin(w, r, rc, p, req)
}

// spineJoin answers spine mode.
func (s *Server) spineJoin(w http.ResponseWriter, r *http.Request, rc *http.ResponseController, p *historicalParams, req *engine.HistoricalRequest) {
	if isNDJSON(r) {
		// Answer rows while the spine still arrives (HTTP/1.1; an error
		// means the protocol needs no opt-in). Closing the body before the
		// handler returns avoids golang/go#68560: with full duplex on, an
		// unread body makes the server panic when it reads the next request.
		rc.EnableFullDuplex()
		defer r.Body.Close()
	}
	sp, err := s.openSpine(p, w, r, rc)
	if err != nil {
		s.writeHistoricalError(w, err, nil)
		return
	}
	st := &stream{w: w, rc: rc, spine: sp, hold: !sp.lines}
	st.finish(r.Context(), s, s.db.GetFeaturesForEvents(r.Context(), req, sp, st))
}

// clearDeadlines undoes the deadlines the answer and an NDJSON spine set
// as they go (ioWindow), for the connection's next request: a server
// without timeouts would not reset them.
func clearDeadlines(rc *http.ResponseController) {
	rc.SetReadDeadline(time.Time{})
	rc.SetWriteDeadline(time.Time{})
}

// historicalParams reads the params from the query string (NDJSON) or the
// JSON body, writing the error response itself.
func (s *Server) historicalParams(w http.ResponseWriter, r *http.Request) (*historicalParams, bool) {
	if isNDJSON(r) {
		p, err := queryHistorical(r.URL.Query())
		if err != nil {
			s.writeEngineError(w, err)
			return nil, false
		}
		return p, true
	}
	buf := bodyPool.Get().(*[]byte)
	defer putBody(buf)
	body, tooLarge, err := s.readAll(w, r, buf)
	switch {
	case tooLarge:
		writeServingError(w, http.StatusRequestEntityTooLarge, grpcInvalidArgument, fmt.Sprintf(
			"request body is larger than the limit of %d bytes; send a large spine as NDJSON (Content-Type: application/x-ndjson), which streams", s.opts.MaxBodyBytes))
		return nil, false
	case err != nil:
		writeServingError(w, http.StatusBadRequest, grpcInvalidArgument, "reading the request body failed: "+err.Error())
		return nil, false
	}
	p, err := decodeHistorical(body)
	if err != nil {
		s.writeEngineError(w, err)
		return nil, false
	}
	return p, true
}

func isNDJSON(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "application/x-ndjson" || mt == "application/ndjson" || mt == "application/jsonl"
}

// openSpine returns the request's spine: the JSON body's, or the NDJSON
// body streamed (its first row is read here, for the columns).
func (s *Server) openSpine(p *historicalParams, w http.ResponseWriter, r *http.Request, rc *http.ResponseController) (*httpSpine, error) {
	if p.spine != nil {
		return &httpSpine{cols: p.spine.cols, next: p.spine.source()}, nil
	}
	body := &deadlineReader{r: http.MaxBytesReader(w, r.Body, s.opts.MaxSpineBytes), rc: rc}
	nd, err := openNDJSON(body, int(s.opts.MaxBodyBytes))
	if err != nil {
		return nil, err
	}
	return &httpSpine{cols: nd.cols, next: nd.next, lines: true}, nil
}

// deadlineReader extends the connection's read deadline before each read,
// so that a large NDJSON spine may take as long as it keeps arriving.
type deadlineReader struct {
	r  io.Reader
	rc *http.ResponseController
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	d.rc.SetReadDeadline(time.Now().Add(ioWindow)) // ErrNotSupported: no deadline to extend
	return d.r.Read(p)
}

// historicalError returns the status, gRPC code and message of a failed
// historical request. sp, when not nil, names spine rows.
func historicalError(err error, sp *httpSpine) (status, code int, msg string) {
	var (
		mbe *http.MaxBytesError
		le  *tabread.LineError
		be  *bodyError
		se  *engine.SpineError
		ue  *unavailableError
		ne  *nodeError
	)
	switch {
	case errors.As(err, &ue):
		return http.StatusServiceUnavailable, grpcUnavailable, ue.Error()
	case errors.As(err, &ne):
		return ne.status, ne.code, ne.msg
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, grpcInvalidArgument,
			fmt.Sprintf("the NDJSON spine is larger than the limit of %d bytes; split it over several requests", mbe.Limit)
	case errors.As(err, &le):
		return http.StatusBadRequest, grpcInvalidArgument, le.Error()
	case errors.As(err, &be):
		return http.StatusBadRequest, grpcInvalidArgument, be.Error()
	case errors.As(err, &se) && sp != nil:
		return http.StatusBadRequest, grpcInvalidArgument, sp.position(se.Row) + ": " + se.Err.Error()
	}
	status, code = engineStatus(err)
	return status, code, err.Error()
}

func (s *Server) writeHistoricalError(w http.ResponseWriter, err error, sp *httpSpine) {
	status, code, msg := historicalError(err, sp)
	if status >= 500 {
		s.opts.Logger.Error("historical request failed", "err", err)
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeServingError(w, status, code, msg)
}

// stream is the engine.HistoricalSink of a request: it encodes rows as
// NDJSON and writes them to the client in batches.
type stream struct {
	w     http.ResponseWriter
	rc    *http.ResponseController
	spine *httpSpine // spine mode: the source of each row's raw spine values; nil in range mode
	hold  bool       // write nothing until the engine has read the whole spine (JSON spines)

	cols    []engine.HistoricalColumn
	names   [][]byte // each column's `"name":`
	buf     []byte   // encoded rows not yet written
	started bool     // the status line and headers were written
	failed  bool     // a write to the client failed
	last    time.Time
}

func (st *stream) Begin(cols []engine.HistoricalColumn) error {
	st.cols = append([]engine.HistoricalColumn(nil), cols...)
	st.names = make([][]byte, len(cols))
	for i, c := range cols {
		st.names[i] = append(appendString(nil, c.Name), ':')
	}
	st.last = time.Now()
	return nil
}

func (st *stream) Row(lead []any, features []schema.Value) error {
	if st.names == nil {
		return errors.New("BUG: httpapi: Row before Begin")
	}
	if len(lead)+len(features) != len(st.names) {
		return fmt.Errorf("BUG: httpapi: a row of %d values for %d columns", len(lead)+len(features), len(st.names))
	}
	b := append(st.buf, '{')
	if st.spine != nil {
		row, ok := st.spine.pop()
		if !ok {
			return errors.New("BUG: httpapi: the engine answered a spine row it has not read")
		}
		for i := range lead {
			b = st.member(b, i)
			if i < len(row.raw) && row.raw[i] != nil {
				b = append(b, row.raw[i]...)
			} else {
				b = append(b, "null"...)
			}
		}
	} else {
		for i, v := range lead {
			b = tabular.AppendJSON(st.member(b, i), v)
		}
	}
	for j, v := range features {
		b = schema.AppendJSON(st.member(b, len(lead)+j), v)
	}
	st.buf = append(b, '}', '\n')
	if st.hold && !st.spine.allRead() {
		return nil
	}
	if len(st.buf) >= flushBytes || time.Since(st.last) >= flushEvery {
		return st.flush()
	}
	return nil
}

func (st *stream) member(b []byte, i int) []byte {
	if i > 0 {
		b = append(b, ',')
	}
	return append(b, st.names[i]...)
}

// flush writes the buffered rows, and the status line first if needed.
func (st *stream) flush() error {
	if !st.started {
		st.start()
	}
	st.last = time.Now()
	if len(st.buf) == 0 {
		return nil
	}
	st.rc.SetWriteDeadline(time.Now().Add(ioWindow)) // ErrNotSupported: no deadline to extend
	_, err := st.w.Write(st.buf)
	st.buf = st.buf[:0]
	if err == nil {
		if ferr := st.rc.Flush(); ferr != nil && !errors.Is(ferr, http.ErrNotSupported) {
			err = ferr
		}
	}
	if err != nil {
		st.failed = true
		return fmt.Errorf("httpapi: sending the answer: %w", err)
	}
	return nil
}

func (st *stream) start() {
	h := st.w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	h.Set(ColumnsHeader, string(appendColumns(nil, st.cols)))
	h.Set("Cache-Control", "no-store")
	st.w.WriteHeader(http.StatusOK)
	st.started = true
}

// finish ends the answer after the engine returned err: it sends what is
// buffered, or the error (as a response when nothing was sent yet, else
// as a last line).
func (st *stream) finish(ctx context.Context, s *Server, err error) {
	if err == nil {
		st.flush()
		return
	}
	if st.failed || ctx.Err() != nil {
		return // the client is gone
	}
	if !st.started {
		s.writeHistoricalError(st.w, err, st.spine)
		return
	}
	status, code, msg := historicalError(err, st.spine)
	if status >= 500 {
		s.opts.Logger.Error("historical request failed after the answer started", "err", err)
	}
	b := append(st.buf, `{"code":`...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, `,"error":`...)
	b = appendString(b, msg)
	b = append(b, `,"message":`...)
	b = appendString(b, msg)
	st.buf = append(b, "}\n"...)
	st.flush()
}

// appendColumns appends the Featurelog-Columns header's JSON, ASCII only.
func appendColumns(dst []byte, cols []engine.HistoricalColumn) []byte {
	var b []byte
	b = append(b, '[')
	for i, c := range cols {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = appendString(b, c.Name)
		if c.Spine {
			b = append(b, `,"spine":true`...)
		} else {
			b = append(b, `,"dataType":`...)
			b = appendDataType(b, c.Type)
		}
		b = append(b, '}')
	}
	b = append(b, ']')
	return appendASCII(dst, b)
}

// appendASCII appends JSON text with every non-ASCII rune \u-escaped (it
// can only occur inside strings), as header values should be ASCII.
func appendASCII(dst, js []byte) []byte {
	for _, r := range string(js) {
		switch {
		case r < utf8.RuneSelf:
			dst = append(dst, byte(r))
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			dst = fmt.Appendf(dst, `\u%04x\u%04x`, r1, r2)
		default:
			dst = fmt.Appendf(dst, `\u%04x`, r)
		}
	}
	return dst
}
