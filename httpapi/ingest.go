package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/engine"
)

var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// readAll reads the whole body into *buf, up to the limit. tooLarge is set
// when the body exceeds it.
func (s *Server) readAll(w http.ResponseWriter, r *http.Request, buf *[]byte) (body []byte, tooLarge bool, err error) {
	if r.ContentLength > s.opts.MaxBodyBytes {
		return nil, true, nil
	}
	b := bytes.NewBuffer((*buf)[:0])
	if r.ContentLength > 0 {
		b.Grow(int(r.ContentLength))
	}
	_, err = b.ReadFrom(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	*buf = b.Bytes()
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, true, nil
	}
	return *buf, false, err
}

// ingest serves POST /ingest (SPEC §2).
func (s *Server) ingest(w http.ResponseWriter, r *http.Request) {
	c, err := s.authenticate(r)
	if err != nil {
		writeRequestError(w, http.StatusUnauthorized, "Unauthenticated", err.Error())
		return
	}
	buf := bodyPool.Get().(*[]byte)
	defer putBody(buf)
	body, tooLarge, err := s.readAll(w, r, buf)
	switch {
	case tooLarge:
		writeRequestError(w, http.StatusRequestEntityTooLarge, "RequestTooLarge",
			fmt.Sprintf("request body is larger than the limit of %d bytes; split the records over several requests", s.opts.MaxBodyBytes))
		return
	case err != nil:
		writeRequestError(w, http.StatusBadRequest, "RequestValidationError", "reading the request body failed: "+err.Error())
		return
	}
	key, err := idempotencyKey(r)
	if err != nil {
		writeRequestError(w, http.StatusBadRequest, "RequestValidationError", err.Error())
		return
	}
	if s.opts.Cluster != nil {
		s.clusterIngest(w, r, body, key, c.require(auth.Editor, "ingest"))
		return
	}
	resp, err := s.db.IngestJSONWithKey(body, key, c.require(auth.Editor, "ingest"))
	if err != nil {
		s.writeIngestError(w, err)
		return
	}
	if resp.Replayed {
		w.Header().Set(replayedHeader, "true")
	}
	writeJSONBytes(w, http.StatusOK, appendIngestResponse(make([]byte, 0, 256), resp))
}

// The idempotency headers of POST /ingest (SPEC §2).
const (
	// idempotencyHeader carries the client's key: a repeat of a key seen
	// in the workspace in the last 24h is answered with the first
	// response and writes nothing.
	idempotencyHeader = "Idempotency-Key"
	// replayedHeader is set to "true" on such a repeat's response.
	replayedHeader = "Idempotent-Replayed"
)

// idempotencyKey returns the request's Idempotency-Key, or "" without
// one. A header given empty or more than once is an error; the engine
// checks the key's length and bytes.
func idempotencyKey(r *http.Request) (string, error) {
	vals := r.Header.Values(idempotencyHeader)
	switch {
	case len(vals) == 0:
		return "", nil
	case len(vals) > 1:
		return "", fmt.Errorf("the %s header is given %d times; send it once", idempotencyHeader, len(vals))
	case vals[0] == "":
		return "", fmt.Errorf("the %s header is empty; send a non-empty key (e.g. a UUID), or no header", idempotencyHeader)
	}
	return vals[0], nil
}

func appendIngestResponse(dst []byte, resp *engine.IngestResponse) []byte {
	dst = append(dst, `{"workspaceName":`...)
	dst = appendString(dst, resp.Workspace)
	dst = append(dst, `,"ingestMetrics":{"featureViewIngestMetrics":[`...)
	for i, m := range resp.Metrics {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"featureViewName":`...)
		dst = appendString(dst, m.FeatureView)
		dst = append(dst, `,"onlineRecordIngestCount":"`...)
		dst = strconv.AppendInt(dst, m.Online, 10)
		dst = append(dst, `","offlineRecordIngestCount":"`...)
		dst = strconv.AppendInt(dst, m.Offline, 10)
		dst = append(dst, `"}`...)
	}
	return append(dst, "]}}"...)
}

func (s *Server) writeIngestError(w http.ResponseWriter, err error) {
	var re *engine.RecordErrors
	if errors.As(err, &re) {
		writeJSONBytes(w, http.StatusBadRequest, appendRecordErrors(nil, re))
		return
	}
	status, typ := ingestStatus(engine.CodeOf(err))
	if status >= 500 {
		s.opts.Logger.Error("ingest failed", "err", err)
	}
	if errors.Is(err, engine.ErrClosed) {
		status, typ = http.StatusServiceUnavailable, "Unavailable"
	}
	writeRequestError(w, status, typ, err.Error())
}

func ingestStatus(code engine.Code) (int, string) {
	switch code {
	case engine.CodeInvalidArgument:
		return http.StatusBadRequest, "RequestValidationError"
	case engine.CodeNotFound:
		return http.StatusNotFound, "NotFound"
	case engine.CodePermissionDenied:
		return http.StatusForbidden, "PermissionDenied"
	case engine.CodeUnavailable:
		return http.StatusServiceUnavailable, "Unavailable"
	case engine.CodeResourceExhausted:
		return http.StatusTooManyRequests, "ResourceExhausted"
	case engine.CodeTooLarge:
		return http.StatusRequestEntityTooLarge, "RequestTooLarge"
	case engine.CodeUnimplemented:
		return http.StatusNotImplemented, "Unimplemented"
	}
	return http.StatusInternalServerError, "Internal"
}

func appendRecordErrors(dst []byte, re *engine.RecordErrors) []byte {
	dst = append(dst, `{"workspaceName":`...)
	dst = appendString(dst, re.Workspace)
	dst = append(dst, `,"recordErrors":[`...)
	for i, e := range re.Errors {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"featureViewName":`...)
		dst = appendString(dst, e.FeatureView)
		dst = append(dst, `,"pushSourceName":`...)
		dst = appendString(dst, e.Source)
		dst = append(dst, `,"recordIndex":`...)
		dst = strconv.AppendInt(dst, int64(e.Index), 10)
		dst = append(dst, `,"errorType":"TectonObjectValidationError","errorMessage":`...)
		dst = appendString(dst, e.Msg)
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
}

func writeRequestError(w http.ResponseWriter, status int, typ, msg string) {
	dst := append([]byte(`{"requestError":{"errorMessage":`), []byte(nil)...)
	dst = appendString(dst, msg)
	dst = append(dst, `,"errorType":`...)
	dst = appendString(dst, typ)
	dst = append(dst, "}}"...)
	writeJSONBytes(w, status, dst)
}

// putBody returns a body buffer to the pool unless it grew huge.
func putBody(buf *[]byte) {
	if cap(*buf) <= 1<<20 {
		bodyPool.Put(buf)
	}
}
