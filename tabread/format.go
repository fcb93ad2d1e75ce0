package tabread

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Format is a file format, chosen by extension.
type Format uint8

// The formats.
const (
	Parquet Format = iota + 1
	CSV
	JSONL
)

func (f Format) String() string {
	switch f {
	case Parquet:
		return "parquet"
	case CSV:
		return "csv"
	case JSONL:
		return "jsonl"
	}
	return fmt.Sprintf("Format(%d)", uint8(f))
}

// Supported lists the extensions FormatOf accepts, for messages.
const Supported = ".parquet, .csv, .jsonl or .ndjson"

// FormatOf returns the format of path by its extension (case-insensitive).
func FormatOf(path string) (Format, error) {
	ext := strings.ToLower(filepath.Ext(path))
	switch ext {
	case ".parquet":
		return Parquet, nil
	case ".csv":
		return CSV, nil
	case ".jsonl", ".ndjson":
		return JSONL, nil
	case "":
		return 0, fmt.Errorf("%w: %s has no extension; name it %s", ErrUnsupportedFormat, path, Supported)
	}
	return 0, fmt.Errorf("%w: %s has extension %q; use %s", ErrUnsupportedFormat, path, ext, Supported)
}
