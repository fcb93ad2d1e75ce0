package engine

import (
	"errors"
	"fmt"
)

// Code classifies engine errors for the layers above (HTTP status, gRPC
// code). It says what kind of failure it was, never where.
type Code uint8

// The error codes.
const (
	CodeInternal          Code = iota // a bug or an unexpected storage failure (500)
	CodeInvalidArgument               // the request is malformed (400)
	CodeNotFound                      // workspace, source, view or service unknown (404)
	CodePermissionDenied              // the principal lacks the role (403)
	CodeUnavailable                   // the log cannot guarantee durability; restart needed (503)
	CodeUnimplemented                 // a capability not built yet (501)
	CodeResourceExhausted             // the node is saturated (429)
	CodeTooLarge                      // a request too large to store as one log entry (413)
	CodeGone                          // what was asked for is no longer retained, e.g. a truncated stream offset (410)
)

// Error is an engine error with a code. Find it with errors.As.
type Error struct {
	Code Code
	Msg  string
	Err  error // the cause, if any
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

func errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of err: its *Error's code, or CodeInternal.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// Sentinel errors.
var (
	// ErrClosed is returned by every call on a closed DB.
	ErrClosed = errors.New("engine: database closed")
)

// RecordError describes one invalid record of an ingest request.
type RecordError struct {
	FeatureView string // the view whose rules rejected it; empty for source schema errors
	Source      string // the push source the record was sent to
	Index       int    // the record's index within its source's list
	Msg         string
}

// RecordErrors is returned by Ingest when any record is invalid; nothing of
// the request was written. It lists every bad record, not just the first.
type RecordErrors struct {
	Workspace string
	Errors    []RecordError
}

func (e *RecordErrors) Error() string {
	if len(e.Errors) == 0 {
		return "engine: invalid records"
	}
	first := e.Errors[0]
	return fmt.Sprintf("engine: %d invalid record(s); first: source %q record %d: %s", len(e.Errors), first.Source, first.Index, first.Msg)
}
