package tabread

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
)

// csvSpine reads a CSV spine: a header row of column names, then one row
// per spine row. Values are strings; an empty cell is null.
type csvSpine struct {
	path  string
	r     *csv.Reader
	cols  []string
	lines rowLines
}

func openCSV(path string, r io.Reader) (*csvSpine, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if bom, _ := br.Peek(3); bytes.Equal(bom, []byte("\xef\xbb\xbf")) {
		br.Discard(3) // a UTF-8 byte order mark, as spreadsheets write
	}
	s := &csvSpine{path: path, r: csv.NewReader(br)}
	s.r.ReuseRecord = true
	header, err := s.r.Read()
	if err == io.EOF {
		return nil, &LineError{Path: path, Line: 1, Err: errors.New("the file is empty; a CSV spine starts with a header row of column names")}
	}
	if err != nil {
		return nil, s.wrap(err)
	}
	s.cols = append([]string(nil), header...)
	if err := CheckColumns(s.cols); err != nil {
		return nil, &LineError{Path: path, Line: 1, Err: err}
	}
	return s, nil
}

// CheckColumns refuses empty and duplicate column names.
func CheckColumns(cols []string) error {
	seen := make(map[string]bool, len(cols))
	for i, c := range cols {
		if c == "" {
			return fmt.Errorf("column %d has no name", i+1)
		}
		if seen[c] {
			return fmt.Errorf("column %q appears twice", c)
		}
		seen[c] = true
	}
	return nil
}

func (s *csvSpine) Columns() []string { return s.cols }
func (s *csvSpine) Len() int64        { return -1 }

func (s *csvSpine) Position(n int) string { return linePosition(&s.lines, n) }

func (s *csvSpine) Next() ([]any, error) {
	rec, err := s.r.Read()
	if err != nil {
		return nil, s.wrap(err)
	}
	line, _ := s.r.FieldPos(0)
	s.lines.add(line)
	row := make([]any, len(rec))
	for i, v := range rec {
		if v != "" {
			row[i] = v
		}
	}
	return row, nil
}

// wrap names the line of a CSV parse error.
func (s *csvSpine) wrap(err error) error {
	var pe *csv.ParseError
	if !errors.As(err, &pe) {
		return err
	}
	if errors.Is(pe.Err, csv.ErrFieldCount) {
		return &LineError{Path: s.path, Line: pe.StartLine, Err: fmt.Errorf("the row has a different number of fields than the header's %d", len(s.cols))}
	}
	return &LineError{Path: s.path, Line: pe.Line, Err: pe.Err}
}
