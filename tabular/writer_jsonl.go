package tabular

import (
	"bufio"
	"io"

	"github.com/featurelog/featurelog/historical"
	"github.com/featurelog/featurelog/schema"
)

// jsonlWriter writes one JSON object per row: the leading columns, then
// the features, with the encodings of the HTTP API (AppendJSON).
type jsonlWriter struct {
	w     *bufio.Writer
	names [][]byte // each column's `"name":`
	buf   []byte
	rows  int64
}

func newJSONLWriter(w io.Writer) *jsonlWriter {
	return &jsonlWriter{w: bufio.NewWriterSize(w, 64<<10)}
}

func (j *jsonlWriter) Begin(cols []historical.Column) error {
	if err := checkResultColumns(cols); err != nil {
		return err
	}
	j.names = make([][]byte, len(cols))
	for i, c := range cols {
		j.names[i] = append(appendQuoted(nil, c.Name), ':')
	}
	return nil
}

func (j *jsonlWriter) Row(lead []any, features []schema.Value) error {
	if j.names == nil {
		return errNoBegin
	}
	if err := checkWidth(len(j.names), lead, features); err != nil {
		return err
	}
	b := append(j.buf[:0], '{')
	for i, v := range lead {
		b = AppendJSON(j.member(b, i), v)
	}
	for i, v := range features {
		b = schema.AppendJSON(j.member(b, len(lead)+i), v)
	}
	b = append(b, '}', '\n')
	j.buf = b
	j.rows++
	_, err := j.w.Write(b)
	return err
}

// member appends the separator and name of column i.
func (j *jsonlWriter) member(b []byte, i int) []byte {
	if i > 0 {
		b = append(b, ',')
	}
	return append(b, j.names[i]...)
}

func (j *jsonlWriter) Rows() int64  { return j.rows }
func (j *jsonlWriter) Close() error { return j.w.Flush() }

// Chunk writes c row by row.
func (j *jsonlWriter) Chunk(ch *historical.Chunk) error { return ch.WriteRows(j) }
