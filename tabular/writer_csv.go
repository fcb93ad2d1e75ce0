package tabular

import (
	"encoding/csv"
	"io"

	"github.com/featurelog/featurelog/historical"
	"github.com/featurelog/featurelog/schema"
)

// csvWriter writes a header row of column names, then one row per result
// row, cells formatted by appendText.
type csvWriter struct {
	w      *csv.Writer
	cols   int
	record []string
	buf    []byte
	rows   int64
}

func newCSVWriter(w io.Writer) *csvWriter { return &csvWriter{w: csv.NewWriter(w)} }

func (c *csvWriter) Begin(cols []historical.Column) error {
	if err := checkResultColumns(cols); err != nil {
		return err
	}
	c.cols = len(cols)
	c.record = make([]string, len(cols))
	return c.w.Write(columnNames(cols))
}

func (c *csvWriter) Row(lead []any, features []schema.Value) error {
	if c.record == nil {
		return errNoBegin
	}
	if err := checkWidth(c.cols, lead, features); err != nil {
		return err
	}
	i := 0
	for _, v := range lead {
		c.record[i] = c.text(v)
		i++
	}
	for _, v := range features {
		c.record[i] = c.text(v)
		i++
	}
	c.rows++
	return c.w.Write(c.record[:i])
}

func (c *csvWriter) text(v any) string {
	c.buf = appendText(c.buf[:0], v)
	return string(c.buf)
}

func (c *csvWriter) Rows() int64 { return c.rows }

func (c *csvWriter) Close() error {
	c.w.Flush()
	return c.w.Error()
}

// Chunk writes c row by row.
func (c *csvWriter) Chunk(ch *historical.Chunk) error { return ch.WriteRows(c) }
