package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"time"
)

// StreamRecord is one record of a view's output stream (SPEC §7).
type StreamRecord struct {
	// Offset names the record across restarts; a view's offsets compare
	// as byte strings and increase in log order.
	Offset string
	// JSON is the record's object as the node sent it (offset included):
	// version, producer, job_type, feature_view_name, feature_view_id,
	// feature_timestamp, entity_keys, feature_values.
	JSON json.RawMessage
}

// Record decodes the record's fields.
func (r StreamRecord) Record() (*OutputRecord, error) {
	var out OutputRecord
	if err := json.Unmarshal(r.JSON, &out); err != nil {
		return nil, fmt.Errorf("client: output record %s: %w", r.Offset, err)
	}
	return &out, nil
}

// OutputRecord is an output record's fields; all values are strings.
type OutputRecord struct {
	Version          string            `json:"version"`
	Producer         string            `json:"producer"`
	JobType          string            `json:"job_type"`
	FeatureViewName  string            `json:"feature_view_name"`
	FeatureViewID    string            `json:"feature_view_id"`
	FeatureTimestamp time.Time         `json:"feature_timestamp"`
	EntityKeys       map[string]string `json:"entity_keys"`
	FeatureValues    map[string]string `json:"feature_values,omitempty"`
	Offset           string            `json:"offset"`
}

// StreamOptions say where an output stream starts and how it is carried.
type StreamOptions struct {
	// From is "earliest", "latest" (also ""), or a record's offset,
	// inclusive.
	From string
	// After, when set, starts right after this offset (Last-Event-ID); it
	// wins over From.
	After string
	// SSE asks for server-sent events instead of NDJSON; the records are
	// the same.
	SSE bool
	// NoReconnect ends the stream when its connection ends; by default the
	// client reconnects and resumes after the last record it returned.
	NoReconnect bool
}

// OutputStream follows a view's output stream
// (GET /api/v1/workspaces/{ws}/feature-views/{name}/output-stream). Range
// over it; it ends when ctx is done (with ctx's error), when the node
// refuses the stream or reports an error in it (an *Error), or, with
// NoReconnect, when the connection ends. Breaking out of the loop closes
// the connection.
//
// When a started stream's connection ends without an error (a network
// failure, the node's write timeout or shutdown), it reconnects and
// resumes right after the last record it yielded (Last-Event-ID), so
// every record comes once; until the first record it starts again from
// From. After a connection that brought no record it first waits, from
// 100ms doubling up to 5s.
func (c *Client) OutputStream(ctx context.Context, workspace, view string, opts StreamOptions) iter.Seq2[StreamRecord, error] {
	return func(yield func(StreamRecord, error) bool) {
		last := opts.After
		backoff := 100 * time.Millisecond
		for {
			n, stopped, err := c.streamOnce(ctx, workspace, view, opts, last, func(r StreamRecord) bool {
				last = r.Offset
				return yield(r, nil)
			})
			if stopped {
				return
			}
			var (
				ce *Error
				oe *openError
			)
			switch {
			case ctx.Err() != nil:
				yield(StreamRecord{}, ctx.Err())
				return
			case errors.As(err, &oe):
				yield(StreamRecord{}, oe.err)
				return
			case errors.As(err, &ce), opts.NoReconnect && err != nil:
				yield(StreamRecord{}, err)
				return
			case opts.NoReconnect:
				return
			}
			if n > 0 {
				backoff = 100 * time.Millisecond
				continue
			}
			select {
			case <-ctx.Done():
				yield(StreamRecord{}, ctx.Err())
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}
}

// streamOnce reads one connection's stream and reports how many records
// it yielded, whether yield asked to stop, and why it ended: an *Error
// for a refusal or an error in the stream, a transport error when the
// connection could not be opened (an *openError), nil or a read error
// when it ended.
func (c *Client) streamOnce(ctx context.Context, ws, view string, opts StreamOptions, after string, yield func(StreamRecord) bool) (int, bool, error) {
	path := apiPath("workspaces", ws, "feature-views", view, "output-stream")
	if opts.From != "" {
		path += "?from=" + url.QueryEscape(opts.From)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := c.newRequest(ctx, http.MethodGet, path, nil, "")
	if err != nil {
		return 0, false, &openError{err}
	}
	req.Header.Set("Accept", "application/x-ndjson")
	if opts.SSE {
		req.Header.Set("Accept", "text/event-stream")
	}
	if after != "" {
		req.Header.Set("Last-Event-ID", after)
	}
	resp, err := c.send(c.streaming(), req)
	if err != nil {
		return 0, false, &openError{err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, false, responseError(resp)
	}
	next := nextNDJSON
	if opts.SSE {
		next = nextSSE
	}
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	n := 0
	for {
		rec, err := next(br)
		if err != nil {
			return n, false, err
		}
		if !yield(rec) {
			return n, true, nil
		}
		n++
	}
}

// nextNDJSON reads the next record of an NDJSON stream; empty lines are
// heartbeats.
func nextNDJSON(br *bufio.Reader) (StreamRecord, error) {
	for {
		line, err := readLine(br)
		if err != nil {
			return StreamRecord{}, err
		}
		if len(bytes.TrimSpace(line)) > 0 {
			return parseRecord(line)
		}
	}
}

// nextSSE reads the next record of a server-sent event stream:
// "id: OFFSET", "event: record|error", "data: {...}", then an empty line;
// lines starting with ":" are heartbeats.
func nextSSE(br *bufio.Reader) (StreamRecord, error) {
	var event string
	var data []byte
	for {
		line, err := readLine(br)
		if err != nil {
			return StreamRecord{}, err
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch {
		case len(line) == 0 && data != nil:
			if event == "error" {
				if e := streamEndError(data); e != nil {
					return StreamRecord{}, e
				}
				return StreamRecord{}, fmt.Errorf("output stream: a bad error event: %s", data)
			}
			return parseRecord(data)
		case len(line) == 0, len(field) == 0: // end of an empty event, a comment
		case string(field) == "event":
			event = string(value)
		case string(field) == "data":
			if data != nil {
				data = append(data, '\n')
			}
			data = append(data, value...)
		}
	}
}

// parseRecord reads a stream line: a record, or the error that ends the
// stream.
func parseRecord(line []byte) (StreamRecord, error) {
	if e := streamEndError(line); e != nil {
		return StreamRecord{}, e
	}
	var head struct {
		Offset string `json:"offset"`
	}
	if err := json.Unmarshal(line, &head); err != nil {
		return StreamRecord{}, fmt.Errorf("output stream: a record is not a JSON object: %w", err)
	}
	if head.Offset == "" {
		return StreamRecord{}, errors.New("output stream: a record has no offset")
	}
	return StreamRecord{Offset: head.Offset, JSON: line}, nil
}

// openError is the error of a connection that could not be opened,
// which ends OutputStream.
type openError struct{ err error }

func (e *openError) Error() string { return e.err.Error() }
func (e *openError) Unwrap() error { return e.err }
