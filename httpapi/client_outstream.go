package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// maxStreamLine bounds one line of an output stream the Client reads.
const maxStreamLine = 64 << 20

// StreamError is an error the node reported for an output stream: a
// refusal (Status is its HTTP status: 404 unknown view, 410 offset no
// longer retained, ...) or the error that ended a started stream (Status
// 200).
type StreamError struct {
	Status  int    // HTTP status
	Code    int    // gRPC code
	Message string // what the node said
}

func (e *StreamError) Error() string {
	return fmt.Sprintf("output stream: %s (HTTP %d)", e.Message, e.Status)
}

// OutputStream follows a feature view's output stream (SPEC §7) from
// from: "earliest", "latest" (also ""), or an offset, inclusive. It calls
// fn with each record, its JSON object (fn may keep it) and offset, in
// stream order.
//
// When a started stream ends without an error (a network failure, the
// node's write timeout, a node shutting down) OutputStream reconnects and
// resumes right after the last offset fn was called with (Last-Event-ID),
// so fn sees every record once; until the first record it starts again
// from from. After a connection that brought no record it first waits,
// from 100ms doubling up to 5s. It returns ctx's error when ctx is done,
// fn's error when fn fails, a *StreamError when the node refuses the
// stream or reports an error in it, and the error of a connection that
// cannot be opened.
func (c *Client) OutputStream(ctx context.Context, ws, view, from string, fn func(rec json.RawMessage, offset string) error) error {
	last := ""
	backoff := 100 * time.Millisecond
	for {
		n, err := c.outputStreamOnce(ctx, ws, view, from, last, func(rec json.RawMessage, offset string) error {
			last = offset
			return fn(rec, offset)
		})
		var (
			se *StreamError
			fe *fnError
			re *refusal
		)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.As(err, &fe):
			return fe.err
		case errors.As(err, &re):
			return re.err
		case errors.As(err, &se):
			return se
		}
		if n > 0 {
			backoff = 100 * time.Millisecond
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// fnError is fn's error, which ends OutputStream.
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }
func (e *fnError) Unwrap() error { return e.err }

// refusal is the error of a stream that was not opened (a *StreamError
// or a transport error), which ends OutputStream.
type refusal struct{ err error }

func (e *refusal) Error() string { return e.err.Error() }
func (e *refusal) Unwrap() error { return e.err }

// outputStreamOnce reads one connection's stream, after the offset after
// when not empty, and returns how many records it passed to fn and why it
// ended.
func (c *Client) outputStreamOnce(ctx context.Context, ws, view, from, after string, fn func(json.RawMessage, string) error) (int, error) {
	path := "/api/v1/workspaces/" + url.PathEscape(ws) + "/feature-views/" + url.PathEscape(view) + "/output-stream"
	if from != "" {
		path += "?from=" + url.QueryEscape(from)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.BaseURL+path, nil)
	if err != nil {
		return 0, &refusal{err}
	}
	req.Header.Set("Accept", "application/x-ndjson")
	if after != "" {
		req.Header.Set(lastEventIDHeader, after)
	}
	if c.APIKey != "" {
		req.Header.Set("Authorization", "Tecton-key "+c.APIKey)
	}
	hc := *c.HTTP
	hc.Timeout = 0 // the stream lasts until ctx is done
	resp, err := hc.Do(req)
	if err != nil {
		return 0, &refusal{fmt.Errorf("calling %s: %w", c.BaseURL, err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, &refusal{streamRefusal(resp)}
	}
	return readStreamLines(resp.Body, fn)
}

// streamRefusal reads a non-200 answer's error body.
func streamRefusal(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	e := &StreamError{Status: resp.StatusCode}
	var body struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(data, &body) == nil && body.Message != "" {
		e.Code, e.Message = body.Code, body.Message
	} else {
		e.Message = string(bytes.TrimSpace(data))
	}
	return e
}

// readStreamLines passes an NDJSON stream's records to fn. Only lines
// ended by a newline count: a connection cut mid-line loses that line,
// which the next connection sends again. Empty lines are heartbeats.
func readStreamLines(body io.Reader, fn func(json.RawMessage, string) error) (int, error) {
	br := bufio.NewReaderSize(body, 64<<10)
	n := 0
	for {
		line, err := readLine(br)
		if err != nil {
			return n, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var head struct {
			Offset  string `json:"offset"`
			Code    *int   `json:"code"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(line, &head); err != nil {
			return n, fmt.Errorf("output stream: a line is not a JSON object: %w", err)
		}
		if head.Code != nil {
			return n, &StreamError{Status: http.StatusOK, Code: *head.Code, Message: head.Message}
		}
		if head.Offset == "" {
			return n, errors.New("output stream: a record has no offset")
		}
		if err := fn(json.RawMessage(line), head.Offset); err != nil {
			return n, &fnError{err}
		}
		n++
	}
}

// readLine returns the next line, with its newline removed, in a new
// slice. A last line without a newline is an io.ErrUnexpectedEOF.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > maxStreamLine+1 {
			return nil, fmt.Errorf("output stream: a line is longer than %d bytes", maxStreamLine)
		}
		switch {
		case err == nil:
			return append(line, chunk[:len(chunk)-1]...), nil
		case errors.Is(err, bufio.ErrBufferFull):
			line = append(line, chunk...)
		case err == io.EOF && len(line)+len(chunk) > 0:
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}
