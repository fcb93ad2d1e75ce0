package client

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error is an error the node answered: a refusal (Status is its HTTP
// status), or the error that ended an answer that had already started
// streaming (Status 200; historical, run and output-stream answers end so).
// Find it with errors.As:
//
//	var ce *client.Error
//	if errors.As(err, &ce) && ce.Status == http.StatusNotFound { ... }
//
// The node's errors come in two shapes (SPEC §2, §4): the ingest API's
// {"requestError": {"errorMessage", "errorType"}} or {"recordErrors": [...]},
// which fill Type, Message and RecordErrors; and every other route's
// {"code": <gRPC code>, "error", "message"}, which fill Code and Message.
type Error struct {
	// Status is the HTTP status; 200 for an error that ended a started
	// stream.
	Status int
	// Code is the gRPC status code of the serving API's shape (3 invalid
	// argument, 5 not found, 7 permission denied, 14 unavailable, 16
	// unauthenticated, ...); 0 for the ingest API's shape.
	Code int
	// Type is the ingest API's errorType ("RequestValidationError",
	// "NotFound", "TectonObjectValidationError" for record errors, ...);
	// empty for the serving API's shape.
	Type string
	// Message is what the node said; for record errors, the first one's.
	Message string
	// RecordErrors lists every invalid record of a refused ingest request.
	RecordErrors []RecordError
	// RetryAfter is the node's Retry-After (429, 503), 0 when absent.
	RetryAfter time.Duration
	// Job is the job a 409 names: the finished job a cancel cannot
	// change, the earlier materialization a range overlaps.
	Job *Job
}

// RecordError is one invalid record of an ingest request (SPEC §2).
type RecordError struct {
	FeatureViewName string `json:"featureViewName"`
	PushSourceName  string `json:"pushSourceName"`
	RecordIndex     int    `json:"recordIndex"`
	ErrorType       string `json:"errorType"`
	ErrorMessage    string `json:"errorMessage"`
}

func (e *Error) Error() string {
	switch {
	case e.Status == http.StatusOK:
		return fmt.Sprintf("%s (the node stopped the answer with code %d)", e.Message, e.Code)
	case len(e.RecordErrors) > 1:
		return fmt.Sprintf("%d invalid records; record %d of source %q: %s (HTTP %d)", len(e.RecordErrors),
			e.RecordErrors[0].RecordIndex, e.RecordErrors[0].PushSourceName, e.Message, e.Status)
	case len(e.RecordErrors) == 1:
		return fmt.Sprintf("record %d of source %q: %s (HTTP %d)", e.RecordErrors[0].RecordIndex,
			e.RecordErrors[0].PushSourceName, e.Message, e.Status)
	}
	return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status)
}

// errorBody is the union of the node's error shapes.
type errorBody struct {
	Code         *int   `json:"code"`
	Message      string `json:"message"`
	ErrorText    string `json:"error"`
	RequestError *struct {
		ErrorMessage string `json:"errorMessage"`
		ErrorType    string `json:"errorType"`
	} `json:"requestError"`
	RecordErrors []RecordError `json:"recordErrors"`
	Job          *Job          `json:"job"`
}

// fill sets e from the body; it reports whether the body had one of the
// node's shapes.
func (b *errorBody) fill(e *Error) bool {
	switch {
	case b.RequestError != nil:
		e.Type, e.Message = b.RequestError.ErrorType, b.RequestError.ErrorMessage
	case len(b.RecordErrors) > 0:
		e.Type, e.Message, e.RecordErrors = b.RecordErrors[0].ErrorType, b.RecordErrors[0].ErrorMessage, b.RecordErrors
	case b.Code != nil:
		e.Code, e.Message, e.Job = *b.Code, b.Message, b.Job
		if e.Message == "" {
			e.Message = b.ErrorText
		}
	default:
		return false
	}
	return true
}

// responseError reads a non-2xx answer into an *Error. A body of another
// shape (a proxy's page) becomes the Message, trimmed.
func responseError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	e := &Error{Status: resp.StatusCode}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	var b errorBody
	if json.Unmarshal(data, &b) != nil || !b.fill(e) {
		e.Message = strings.TrimSpace(string(data))
		if e.Message == "" {
			e.Message = http.StatusText(resp.StatusCode)
		}
	}
	return e
}

// streamEndError recognizes the last line of a failed streamed answer,
// {"code", "error", "message"}, and returns it as an *Error with Status
// 200; nil when line is not that object.
func streamEndError(line []byte) *Error {
	if !bytes.HasPrefix(line, []byte(`{"code":`)) {
		return nil
	}
	var members map[string]json.RawMessage
	if json.Unmarshal(line, &members) != nil || len(members) != 3 || members["error"] == nil || members["message"] == nil {
		return nil // a spine row may have a column named code
	}
	var b errorBody
	if json.Unmarshal(line, &b) != nil || b.Code == nil {
		return nil
	}
	e := &Error{Status: http.StatusOK}
	b.fill(e)
	return e
}
