package tabread

import (
	"fmt"
	"io"
)

// Spine is a table read from a file, row by row; it satisfies
// engine.Spine.
type Spine interface {
	// Columns names the columns, in order.
	Columns() []string
	// Next returns the next row, one value per column, or io.EOF after the
	// last: strings, int64, float64, bool, time.Time or nil.
	Next() ([]any, error)
	// Len returns the number of rows when the file records it (Parquet),
	// or -1.
	Len() int64
	// Position names where spine row n (from 1, as engine.SpineError
	// counts) is in the file: "line 7" for CSV and JSON Lines, "row 5" for
	// Parquet. Lines are remembered for recent rows only; for older ones
	// it says "row n".
	Position(n int) string
}

// maxLine bounds one line of a JSON Lines spine.
const maxLine = 16 << 20

// OpenSpine reads a spine from r in the format path's extension names.
// The header (CSV), first row (JSON Lines) or schema (Parquet) is read
// here, so that Columns is known. For Parquet, r should be an io.ReaderAt
// and io.Seeker (an *os.File); anything else is read into memory first.
func OpenSpine(path string, r io.Reader) (Spine, error) {
	f, err := FormatOf(path)
	if err != nil {
		return nil, err
	}
	switch f {
	case CSV:
		return openCSV(path, r)
	case JSONL:
		return openJSONL(path, r)
	}
	return openParquet(path, r)
}

func rowPosition(n int) string { return fmt.Sprintf("row %d", n) }

// linePosition describes row n by its line when it is remembered.
func linePosition(rl *rowLines, n int) string {
	if line, ok := rl.line(n); ok {
		return fmt.Sprintf("line %d", line)
	}
	return rowPosition(n)
}
