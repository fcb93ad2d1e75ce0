package tabread

import (
	"errors"
	"fmt"
)

// ErrUnsupportedFormat is wrapped by the error for a file whose extension
// names no supported format.
var ErrUnsupportedFormat = errors.New("tabular: unsupported file format")

// LineError reports a malformed line of a CSV or JSON Lines file, or a
// malformed row of a Parquet file (Line is then the row, from 1). Find it
// with errors.As.
type LineError struct {
	Path string // the file's path as given; may be empty
	Line int    // from 1
	Row  bool   // Line counts rows (Parquet), not lines
	Err  error
}

func (e *LineError) Error() string {
	unit := "line"
	if e.Row {
		unit = "row"
	}
	if e.Path == "" {
		return fmt.Sprintf("%s %d: %v", unit, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %s %d: %v", e.Path, unit, e.Line, e.Err)
}

func (e *LineError) Unwrap() error { return e.Err }
