package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// columnsHeader lists a streamed answer's columns and their types.
const columnsHeader = "Featurelog-Columns"

// HistoricalRequest asks for point-in-time correct feature values
// (SPEC §5, POST /api/v1/feature-service/get-features-for-events), in
// spine mode (give Spine or SpineSource) or in range mode (give Start and
// End).
type HistoricalRequest struct {
	Workspace string
	Service   string
	// TimestampKey names the spine column holding each row's time; empty:
	// the spine's one column of RFC 3339 timestamps.
	TimestampKey string
	// FromSource recomputes the features from the offline log.
	FromSource bool

	// Spine is sent as one JSON body: the node validates the whole spine
	// before it answers any row.
	Spine []map[string]any
	// SpineSource is sent as NDJSON while the answer streams back, so a
	// spine of any size takes bounded memory on both sides. Each answer
	// row carries the Tag of the spine row it answers.
	SpineSource SpineSource

	// Range mode (neither Spine nor SpineSource): the intervals of
	// [Start, End) over which each key's features hold; Entities, when
	// not nil, are the join-key maps to report (default every key with
	// data).
	Start, End time.Time
	Entities   []map[string]any
}

// SpineSource streams spine rows to the node.
type SpineSource interface {
	// Next returns the next spine row as one JSON object without a
	// newline, and a tag that comes back with that row's answer
	// (Row.Tag), such as the row's typed values; io.EOF after the last.
	Next() (row []byte, tag any, err error)
}

// NDJSONSpine reads a spine of one JSON object per line from r; blank
// lines are skipped. Each row's tag is its line number (an int, from 1).
func NDJSONSpine(r io.Reader) SpineSource {
	return &ndjsonSpine{br: bufio.NewReaderSize(r, 64<<10)}
}

type ndjsonSpine struct {
	br   *bufio.Reader
	line int
}

func (s *ndjsonSpine) Next() ([]byte, any, error) {
	for {
		line, err := readLine(s.br)
		if err == io.ErrUnexpectedEOF {
			err = nil // a spine's last line may lack its newline
		}
		if err != nil {
			return nil, nil, err
		}
		s.line++
		if len(bytes.TrimSpace(line)) > 0 {
			return line, s.line, nil
		}
	}
}

// Column is one column of a streamed answer.
type Column struct {
	Name string `json:"name"`
	// Spine marks a column of the spine, passed through as given.
	Spine bool `json:"spine,omitempty"`
	// DataType is the type of a column the node computed (features, and
	// range mode's join keys, _valid_from and _valid_to).
	DataType *DataType `json:"dataType,omitempty"`
}

// Row is one row of a streamed answer.
type Row struct {
	// Line is the row's NDJSON object as the node sent it.
	Line []byte
	// Values are its values, one per column in Columns order, in the
	// JSON encodings of SPEC §4 (int64 as strings); they alias Line.
	Values []json.RawMessage
	// Tag is the SpineSource tag of the spine row this row answers (spine
	// mode with a SpineSource), else nil.
	Tag any
}

// Rows reads a streamed answer: call Next until io.EOF (or range over
// All), then Close.
type Rows struct {
	body   io.ReadCloser
	br     *bufio.Reader
	cols   []Column
	lead   int
	n      int          // lines read
	sender *spineSender // nil unless the spine streams
	done   bool
}

// GetFeaturesForEvents runs a historical request. It returns once the
// answer's header arrived: an error the node found before the first row
// (a malformed spine row, an unknown service) is an *Error. Read the rows
// with Next; an error the node reports after rows were sent ends them
// with an *Error whose Status is 200.
func (c *Client) GetFeaturesForEvents(ctx context.Context, req HistoricalRequest) (*Rows, error) {
	const path = "/api/v1/feature-service/get-features-for-events"
	if req.SpineSource != nil {
		if req.Spine != nil {
			return nil, errors.New("client: give Spine or SpineSource, not both")
		}
		return c.streamSpine(ctx, path, req)
	}
	params := map[string]any{"workspace_name": req.Workspace, "feature_service_name": req.Service, "from_source": req.FromSource}
	if req.Spine != nil {
		params["spine"] = req.Spine
		if req.TimestampKey != "" {
			params["timestamp_key"] = req.TimestampKey
		}
	} else {
		params["start_time"] = req.Start.UTC().Format(time.RFC3339Nano)
		params["end_time"] = req.End.UTC().Format(time.RFC3339Nano)
		if req.Entities != nil {
			params["entities"] = req.Entities
		}
	}
	data, err := json.Marshal(map[string]any{"params": params})
	if err != nil {
		return nil, fmt.Errorf("client: encoding the historical request: %w", err)
	}
	hr, err := c.newRequest(ctx, http.MethodPost, path, bytes.NewReader(data), "application/json")
	if err != nil {
		return nil, err
	}
	return c.openRows(hr, nil)
}

// streamSpine sends the spine as NDJSON, with the params in the query.
func (c *Client) streamSpine(ctx context.Context, path string, req HistoricalRequest) (*Rows, error) {
	v := url.Values{"workspace_name": {req.Workspace}, "feature_service_name": {req.Service}}
	if req.TimestampKey != "" {
		v.Set("timestamp_key", req.TimestampKey)
	}
	if req.FromSource {
		v.Set("from_source", "true")
	}
	s := newSpineSender(req.SpineSource)
	hr, err := c.newRequest(ctx, http.MethodPost, path+"?"+v.Encode(), s.pr, "application/x-ndjson")
	if err != nil {
		s.stop()
		return nil, err
	}
	return c.openRows(hr, s)
}

// openRows sends a request answered by a stream of NDJSON rows whose
// columns the Featurelog-Columns header lists.
func (c *Client) openRows(req *http.Request, s *spineSender) (*Rows, error) {
	resp, err := c.send(c.streaming(), req)
	if err != nil {
		return nil, s.cause(err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, s.cause(responseError(resp))
	}
	var cols []Column
	if err := json.Unmarshal([]byte(resp.Header.Get(columnsHeader)), &cols); err != nil {
		resp.Body.Close()
		s.stop()
		return nil, fmt.Errorf("client: the answer has a bad %s header: %w", columnsHeader, err)
	}
	return &Rows{body: resp.Body, br: bufio.NewReaderSize(resp.Body, 64<<10), cols: cols, lead: leadColumns(cols), sender: s}, nil
}

// leadColumns counts the leading columns: the spine's, or in range mode
// the join keys, _valid_from and _valid_to.
func leadColumns(cols []Column) int {
	n := 0
	for i, c := range cols {
		if c.Spine {
			n = i + 1
		}
		if c.Name == "_valid_to" && !c.Spine {
			return i + 1
		}
	}
	return n
}

// Columns returns the answer's columns.
func (r *Rows) Columns() []Column { return r.cols }

// Lead returns how many leading columns come before the features: the
// spine's columns, or in range mode the join keys, _valid_from and
// _valid_to.
func (r *Rows) Lead() int { return r.lead }

// Next returns the next row, or io.EOF after the last. A failed answer
// ends with an *Error (Status 200) carrying the node's message.
func (r *Rows) Next() (*Row, error) {
	if r.done {
		return nil, io.EOF
	}
	row, err := r.next()
	if err != nil {
		r.done = true
		if err != io.EOF {
			err = r.sender.cause(err)
		}
	}
	return row, err
}

func (r *Rows) next() (*Row, error) {
	line, err := readLine(r.br)
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		return nil, fmt.Errorf("reading the node's answer: %w", err)
	}
	r.n++
	if e := streamEndError(line); e != nil {
		return nil, e
	}
	row := &Row{Line: line, Values: make([]json.RawMessage, 0, len(r.cols))}
	err = eachMember(line, func(name, val []byte) error {
		i := len(row.Values)
		if i >= len(r.cols) || !nameIs(name, r.cols[i].Name) {
			return fmt.Errorf("member %d is %s, expected the columns %s", i+1, name, columnNames(r.cols))
		}
		row.Values = append(row.Values, val)
		return nil
	})
	if err == nil && len(row.Values) != len(r.cols) {
		err = fmt.Errorf("%d members for %d columns", len(row.Values), len(r.cols))
	}
	if err != nil {
		return nil, fmt.Errorf("the node's answer, line %d: %w", r.n, err)
	}
	if r.sender != nil {
		if row.Tag, err = r.sender.pop(); err != nil {
			return nil, err
		}
	}
	return row, nil
}

func columnNames(cols []Column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	data, _ := json.Marshal(names)
	return string(data)
}

// All ranges over the rows; a failure comes as the last pair's error.
func (r *Rows) All() iter.Seq2[*Row, error] {
	return func(yield func(*Row, error) bool) {
		for {
			row, err := r.Next()
			if err == io.EOF {
				return
			}
			if !yield(row, err) || err != nil {
				return
			}
		}
	}
}

// Close releases the answer, and stops sending a spine; call it also
// after an error.
func (r *Rows) Close() error {
	err := r.body.Close()
	r.sender.stop()
	return err
}

// spineSender writes a SpineSource into a pipe, the request body, and
// keeps the tags of the rows sent and not yet answered, in order.
type spineSender struct {
	src  SpineSource
	pr   *io.PipeReader
	done chan struct{}
	err  error // the source's error, set before done is closed

	mu   sync.Mutex
	tags []any
	head int
}

func newSpineSender(src SpineSource) *spineSender {
	pr, pw := io.Pipe()
	s := &spineSender{src: src, pr: pr, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		err := s.send(pw)
		if err != nil && !errors.Is(err, io.ErrClosedPipe) {
			s.err = err
		}
		pw.CloseWithError(err)
	}()
	return s
}

func (s *spineSender) send(w io.Writer) error {
	var buf []byte
	for {
		row, tag, err := s.src.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.tags = append(s.tags, tag)
		s.mu.Unlock()
		buf = append(append(buf[:0], row...), '\n')
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
}

// pop returns the tag of the oldest row not yet answered.
func (s *spineSender) pop() (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.head == len(s.tags) {
		return nil, errors.New("the node answered more rows than the spine has")
	}
	tag := s.tags[s.head]
	s.tags[s.head] = nil
	s.head++
	if s.head >= 1024 && 2*s.head >= len(s.tags) {
		n := copy(s.tags, s.tags[s.head:])
		s.tags, s.head = s.tags[:n], 0
	}
	return tag, nil
}

// stop ends the sending, unblocking a sender whose answer ended early,
// and waits for it. It accepts a nil sender.
func (s *spineSender) stop() {
	if s == nil {
		return
	}
	s.pr.Close()
	<-s.done
}

// cause stops the sender and returns the source's own error, when it
// failed, as the cause of a failed request (a spine file that cannot be
// read); else err.
func (s *spineSender) cause(err error) error {
	if s == nil {
		return err
	}
	s.stop()
	if s.err != nil {
		return s.err
	}
	return err
}
