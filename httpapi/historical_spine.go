package httpapi

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/tabread"
)

// A spine arrives as JSON objects. Each value is kept twice: as its raw
// JSON, which the answer repeats byte for byte, and decoded for the
// engine (string, engine.Number, bool, nil; objects and arrays stay raw
// and the engine refuses them as join keys or timestamps). The columns
// are the members' names in first-seen order; a row without a member
// passes null.

// spineRow is one received row: the raw JSON of each column's value (nil
// where the row lacks the member; the slice may be shorter than the
// columns) and, for NDJSON, the line it came from.
type spineRow struct {
	raw  []jsontext.Value
	line int
}

// jsonSpine is the spine of a JSON body, read whole with the body.
type jsonSpine struct {
	cols  []string
	index map[string]int
	rows  []spineRow
}

// readJSONSpine reads params.spine: a list of objects.
func readJSONSpine(d *jsontext.Decoder, where string) (*jsonSpine, error) {
	tok, err := d.ReadToken()
	if err != nil {
		return nil, jsonError(err)
	}
	if tok.Kind() != '[' {
		return nil, paramError("%s must be a list of row objects, like [{\"user_id\": \"u1\", \"ts\": \"2024-05-01T12:00:00Z\"}]", where)
	}
	s := &jsonSpine{index: map[string]int{}}
	for i := 0; d.PeekKind() != ']'; i++ {
		row, err := s.readRow(d, fmt.Sprintf("%s[%d]", where, i))
		if err != nil {
			return nil, err
		}
		s.rows = append(s.rows, row)
	}
	if _, err := d.ReadToken(); err != nil {
		return nil, jsonError(err)
	}
	return s, nil
}

func (s *jsonSpine) readRow(d *jsontext.Decoder, where string) (spineRow, error) {
	var row spineRow
	err := readObject(d, where, func(name string) error {
		raw, err := d.ReadValue()
		if err != nil {
			return jsonError(err)
		}
		i, ok := s.index[name]
		if !ok {
			i = len(s.cols)
			s.index[name] = i
			s.cols = append(s.cols, name)
		}
		for len(row.raw) <= i {
			row.raw = append(row.raw, nil)
		}
		row.raw[i] = raw.Clone()
		return nil
	})
	return row, err
}

// source returns the rows one by one.
func (s *jsonSpine) source() func() (spineRow, error) {
	next := 0
	return func() (spineRow, error) {
		if next == len(s.rows) {
			return spineRow{}, io.EOF
		}
		next++
		return s.rows[next-1], nil
	}
}

// ndjsonSpine streams the rows of an NDJSON body, one object per line;
// blank lines are skipped but counted. The first row fixes the columns,
// because the engine needs them before it reads any row.
type ndjsonSpine struct {
	lr    *tabread.LineReader
	cols  []string
	index map[string]int
	fixed bool      // the first row was read: cols is final
	first *spineRow // read by openNDJSON, returned by the first next
}

// bodyError is a failure to read the request body (a network error or
// the size limit), as opposed to a malformed row.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "reading the request body failed: " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

func openNDJSON(body io.Reader, maxLine int) (*ndjsonSpine, error) {
	s := &ndjsonSpine{lr: tabread.NewLineReader(body, maxLine), index: map[string]int{}, cols: []string{}}
	row, err := s.read()
	if err == io.EOF {
		return s, nil // an empty spine
	}
	if err != nil {
		return nil, err
	}
	s.first = &row
	return s, nil
}

func (s *ndjsonSpine) next() (spineRow, error) {
	if s.first != nil {
		row := *s.first
		s.first = nil
		return row, nil
	}
	return s.read()
}

func (s *ndjsonSpine) read() (spineRow, error) {
	line, n, err := s.lr.Next()
	var le *tabread.LineError
	switch {
	case err == io.EOF || errors.As(err, &le):
		return spineRow{}, err
	case err != nil:
		return spineRow{}, &bodyError{err}
	}
	fixed := s.fixed
	row := spineRow{raw: make([]jsontext.Value, len(s.cols)), line: n}
	err = tabread.ReadObject(line, func(name string, raw jsontext.Value) error {
		i, ok := s.index[name]
		switch {
		case ok:
		case fixed:
			return fmt.Errorf("member %q is not a column of the first row (%v); every row must use the first row's members, missing ones are null", name, s.cols)
		default:
			i = len(s.cols)
			s.index[name] = i
			s.cols = append(s.cols, name)
			row.raw = append(row.raw, nil)
		}
		row.raw[i] = raw.Clone()
		return nil
	})
	if err != nil {
		return spineRow{}, &tabread.LineError{Line: n, Err: err}
	}
	s.fixed = true
	return row, nil
}

// httpSpine is the engine.Spine of a request. It remembers the rows it
// handed to the engine until the sink has written their answers, so that
// the answer repeats each spine value's raw JSON, and so that an
// engine.SpineError can be told by its line.
type httpSpine struct {
	cols  []string
	next  func() (spineRow, error)
	lines bool // NDJSON: rows are named by line; JSON: by index in params.spine

	mu      sync.Mutex
	queue   []spineRow // rows read and not yet written, from head on
	head    int
	written int  // rows popped by the sink
	read    int  // rows handed to the engine
	eof     bool // Next returned io.EOF: the whole spine was read
}

func (s *httpSpine) Columns() []string { return s.cols }

func (s *httpSpine) Next() ([]any, error) {
	row, err := s.next()
	if err == io.EOF {
		s.mu.Lock()
		s.eof = true
		s.mu.Unlock()
	}
	if err != nil {
		return nil, err
	}
	vals := make([]any, len(s.cols))
	for i, raw := range row.raw {
		vals[i] = engineValue(raw)
	}
	s.mu.Lock()
	s.queue = append(s.queue, row)
	s.read++
	s.mu.Unlock()
	return vals, nil
}

// engineValue decodes a raw spine value for the engine.
func engineValue(raw jsontext.Value) any {
	switch raw.Kind() {
	case 0, 'n':
		return nil
	case 't':
		return true
	case 'f':
		return false
	case '"':
		s, _ := jsontext.AppendUnquote(nil, raw) // valid: the decoder checked it
		return string(s)
	case '0':
		return engine.Number(raw)
	}
	return raw
}

// pop returns the oldest row handed to the engine and not yet written.
func (s *httpSpine) pop() (spineRow, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.head == len(s.queue) {
		return spineRow{}, false
	}
	row := s.queue[s.head]
	s.queue[s.head] = spineRow{}
	s.head++
	s.written++
	if s.head >= 1024 && 2*s.head >= len(s.queue) {
		n := copy(s.queue, s.queue[s.head:])
		s.queue, s.head = s.queue[:n], 0
	}
	return row, true
}

func (s *httpSpine) allRead() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.eof
}

// position names spine row n (from 1): "params.spine[i]" for a JSON
// spine, "line N" for NDJSON while the row is remembered.
func (s *httpSpine) position(n int) string {
	if !s.lines {
		return fmt.Sprintf("params.spine[%d]", n-1)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n > s.written && n <= s.read {
		return fmt.Sprintf("line %d", s.queue[s.head+n-s.written-1].line)
	}
	return fmt.Sprintf("spine row %d", n)
}
