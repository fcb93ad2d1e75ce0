package tabular

import (
	"errors"
	"fmt"
	"io"

	"github.com/featurelog/featurelog/historical"
	"github.com/featurelog/featurelog/schema"
	"github.com/featurelog/featurelog/tabread"
)

// Writer writes a historical result to a file. It is an
// historical.Sink: the engine calls Begin once, then Row per row.
type Writer interface {
	historical.ChunkSink
	// Rows returns the number of rows written so far.
	Rows() int64
	// Close flushes what is buffered and ends the file (the Parquet
	// footer). It does not close the underlying io.Writer.
	Close() error
}

// CreateWriter returns a Writer of the format path's extension names,
// writing to w. Begin fixes the columns; every row must match them.
func CreateWriter(path string, w io.Writer) (Writer, error) {
	f, err := tabread.FormatOf(path)
	if err != nil {
		return nil, err
	}
	switch f {
	case tabread.CSV:
		return newCSVWriter(w), nil
	case tabread.JSONL:
		return newJSONLWriter(w), nil
	}
	return newParquetWriter(w), nil
}

var errNoBegin = errors.New("BUG: tabular: Row before Begin")

// checkResultColumns refuses a result whose column names repeat, as when
// a spine column is named like a feature.
func checkResultColumns(cols []historical.Column) error {
	if err := tabread.CheckColumns(columnNames(cols)); err != nil {
		return fmt.Errorf("the result's columns: %w (does a spine column have a feature's name? rename it)", err)
	}
	return nil
}

// columnNames returns the names of cols.
func columnNames(cols []historical.Column) []string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	return names
}

// cloneValue copies v deeply, so that a buffered row does not share an
// array with the engine.
func cloneValue(v schema.Value) schema.Value {
	if v.Kind == schema.Array {
		v.A = append([]schema.Value(nil), v.A...)
	}
	return v
}

// checkWidth refuses a row whose width differs from the columns'.
func checkWidth(cols int, lead []any, features []schema.Value) error {
	if n := len(lead) + len(features); n != cols {
		return fmt.Errorf("BUG: tabular: a row of %d values for %d columns", n, cols)
	}
	return nil
}
