package tabread

import (
	"errors"
	"fmt"
	"io"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/featurelog/featurelog/internal/jsondec"
)

// jsonlSpine reads a JSON Lines spine: one JSON object per line; blank
// lines are skipped. The first row fixes the columns.
type jsonlSpine struct {
	path  string
	lr    *LineReader
	cols  []string
	index map[string]int
	first []any // the first row, read by openJSONL, until Next returns it
	lines rowLines
}

func openJSONL(path string, r io.Reader) (*jsonlSpine, error) {
	s := &jsonlSpine{path: path, lr: NewLineReader(r, maxLine), index: map[string]int{}}
	row, err := s.read()
	if err == io.EOF {
		return nil, &LineError{Path: path, Line: 1, Err: errors.New("the file has no rows; a JSON Lines spine has one JSON object per line")}
	}
	if err != nil {
		return nil, err
	}
	s.first = row
	return s, nil
}

func (s *jsonlSpine) Columns() []string     { return s.cols }
func (s *jsonlSpine) Len() int64            { return -1 }
func (s *jsonlSpine) Position(n int) string { return linePosition(&s.lines, n) }

func (s *jsonlSpine) Next() ([]any, error) {
	if row := s.first; row != nil {
		s.first = nil
		return row, nil
	}
	return s.read()
}

func (s *jsonlSpine) read() ([]any, error) {
	line, n, err := s.lr.Next()
	if err != nil {
		var le *LineError
		if errors.As(err, &le) {
			le.Path = s.path
		}
		return nil, err
	}
	row, err := s.decode(line)
	if err != nil {
		return nil, &LineError{Path: s.path, Line: n, Err: err}
	}
	s.lines.add(n)
	return row, nil
}

// decode parses one line. While the columns are unknown (the first row)
// every member adds one.
func (s *jsonlSpine) decode(line []byte) ([]any, error) {
	fixed := s.cols != nil
	row := make([]any, len(s.cols))
	err := ReadObject(line, func(name string, raw jsontext.Value) error {
		v, err := DecodeJSONValue(raw)
		if err != nil {
			return fmt.Errorf("member %q: %v", name, err)
		}
		i, ok := s.index[name]
		switch {
		case ok:
			row[i] = v
		case fixed:
			return fmt.Errorf("member %q is not a column of the first row (%d columns); every row must use the first row's members, missing ones are null", name, len(s.cols))
		default:
			s.index[name] = len(s.cols)
			s.cols = append(s.cols, name)
			row = append(row, v)
		}
		return nil
	})
	if err == nil && !fixed && len(s.cols) == 0 {
		s.cols = []string{} // {} fixes an empty column set
	}
	return row, err
}

// ReadObject parses line as one JSON object and calls member for each of
// its members in order, with the raw value (valid only during the call).
// Duplicate names and invalid UTF-8 are errors, as is anything after the
// object.
func ReadObject(line []byte, member func(name string, raw jsontext.Value) error) error {
	d := jsondec.Get(line)
	defer jsondec.Put(d)
	tok, err := d.ReadToken()
	if err != nil {
		return syntaxError(err)
	}
	if tok.Kind() != '{' {
		return fmt.Errorf("expected a JSON object, found %s", jsondec.KindName(tok.Kind()))
	}
	for d.PeekKind() != '}' {
		tok, err := d.ReadToken()
		if err != nil {
			return syntaxError(err)
		}
		name := tok.String() // before the next read voids tok
		raw, err := d.ReadValue()
		if err != nil {
			return syntaxError(err)
		}
		if err := member(name, raw); err != nil {
			return err
		}
	}
	if _, err := d.ReadToken(); err != nil {
		return syntaxError(err)
	}
	if _, err := d.ReadToken(); err != io.EOF {
		return errors.New("unexpected data after the JSON object; put one object per line")
	}
	return nil
}

func syntaxError(err error) error {
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("invalid JSON: unexpected end of the line")
	}
	return fmt.Errorf("invalid JSON: %v", trimJSONPrefix(err.Error()))
}

func trimJSONPrefix(s string) string {
	const p = "jsontext: "
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}
