// Package batchsrc reads a source's batch files (SPEC §6, "Batch
// sources"): the historical events a user keeps in Parquet, CSV or JSON
// Lines files, named by a file, a directory or a glob. Rows come out in
// the source's schema order, converted to its types; every error names
// the file and the row (or line) it is about.
//
//	s, err := batchsrc.Open(src, "/path/of/the/repo/file/dir")
//	err = s.Check()                 // what plan checks: files, columns, types
//	err = s.Scan(ctx, func(r *batchsrc.Row) error { ... r.Values ... })
package batchsrc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json/v1"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/featurelog/featurelog/repo"
	"github.com/featurelog/featurelog/schema"
	"github.com/featurelog/featurelog/tabread"
)

// Source is a source's batch files, resolved.
type Source struct {
	src   *repo.Source
	files []string
	bytes int64
}

// RowError is a batch row (or file) that cannot be read: Pos says where
// ("line 7", "row 5"; empty for the file as a whole).
type RowError struct {
	File string
	Pos  string
	Err  error
}

func (e *RowError) Error() string {
	if e.Pos == "" {
		return fmt.Sprintf("batch file %s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("batch file %s: %s: %v", e.File, e.Pos, e.Err)
}

func (e *RowError) Unwrap() error { return e.Err }

// Open resolves src's batch uri against base (the repo file's directory)
// to a list of files. A uri naming nothing, a directory with no file of
// the format, and a glob matching no file are errors.
func Open(src *repo.Source, base string) (*Source, error) {
	b := src.Batch
	if b == nil {
		return nil, fmt.Errorf("source %q has no batch files", src.Name)
	}
	files, err := Files(b.URI, b.Format, base)
	if err != nil {
		return nil, err
	}
	s := &Source{src: src, files: files}
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			return nil, fmt.Errorf("batch file %s: %w", f, err)
		}
		s.bytes += st.Size()
	}
	return s, nil
}

// Files lists the files a batch uri names, sorted.
func Files(uri, format, base string) ([]string, error) {
	p := uri
	if !filepath.IsAbs(p) {
		p = filepath.Join(base, p)
	}
	st, err := os.Stat(p)
	switch {
	case err == nil && st.IsDir():
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, fmt.Errorf("batch directory %s: %w", p, err)
		}
		var out []string
		for _, e := range entries {
			if !e.IsDir() && matchesFormat(e.Name(), format) {
				out = append(out, filepath.Join(p, e.Name()))
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("batch directory %s holds no %s file (%s)", p, format, strings.Join(extensions(format), ", "))
		}
		return out, nil
	case err == nil:
		return []string{p}, nil
	case strings.ContainsAny(uri, "*?["):
		out, gerr := filepath.Glob(p)
		if gerr != nil {
			return nil, fmt.Errorf("batch uri %q is not a valid glob: %w", uri, gerr)
		}
		out = slices.DeleteFunc(out, func(f string) bool { st, err := os.Stat(f); return err != nil || st.IsDir() })
		if len(out) == 0 {
			return nil, fmt.Errorf("batch glob %s matches no file", p)
		}
		slices.Sort(out)
		return out, nil
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("batch file %s does not exist", p)
	}
	return nil, fmt.Errorf("batch uri %s: %w", p, err)
}

func extensions(format string) []string {
	if format == "jsonl" {
		return []string{".jsonl", ".ndjson"}
	}
	return []string{"." + format}
}

func matchesFormat(name, format string) bool {
	for _, ext := range extensions(format) {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

// Files returns the resolved files.
func (s *Source) Files() []string { return s.files }

// Bytes returns the files' total size.
func (s *Source) Bytes() int64 { return s.bytes }

// Check opens every file and checks what plan promises: every column of
// the source's schema is present (CSV: in the header; Parquet: in the
// schema; JSON Lines, where an absent member is null: the timestamp
// field in the first row), and the first row's values convert to the
// schema's types.
func (s *Source) Check() error {
	for _, f := range s.files {
		err := s.readFile(context.Background(), f, true, func(*Row) error { return errStop })
		if err != nil && !errors.Is(err, errStop) {
			return err
		}
	}
	return nil
}

var errStop = errors.New("stop")

// Row is one batch row.
type Row struct {
	File   string
	Pos    string         // "line 7" or "row 5"
	Values []schema.Value // in the source's schema order; reused by the next row
	Bytes  int64          // the bytes of the file read so far (for progress)
}

// Scan calls fn for every row of every file, in file order. A row that
// does not convert stops it with a *RowError; an error from fn stops it
// and is returned as is.
func (s *Source) Scan(ctx context.Context, fn func(*Row) error) error {
	for _, f := range s.files {
		if err := s.readFile(ctx, f, false, fn); err != nil {
			return err
		}
	}
	return nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (s *Source) readFile(ctx context.Context, path string, check bool, fn func(*Row) error) error {
	f, err := os.Open(path)
	if err != nil {
		return &RowError{File: path, Err: err}
	}
	defer f.Close()
	switch s.src.Batch.Format {
	case "jsonl":
		return s.readJSONL(ctx, path, f, check, fn)
	case "csv":
		return s.readTable(ctx, path, "csv", f, check, fn)
	}
	return s.readTable(ctx, path, "parquet", f, check, fn)
}

// readTable reads a CSV or Parquet file through tabread, matching columns
// by name.
func (s *Source) readTable(ctx context.Context, path, format string, f *os.File, check bool, fn func(*Row) error) error {
	cr := &countingReader{r: f}
	var in io.Reader = cr
	if format == "parquet" {
		in = f // needs io.ReaderAt; progress then counts rows, not bytes
	}
	t, err := tabread.OpenSpine("x."+format, in)
	if err != nil {
		return &RowError{File: path, Err: trimPath(err)}
	}
	cols := s.src.Schema
	idx := make([]int, len(cols))
	have := map[string]int{}
	for i, c := range t.Columns() {
		have[c] = i
	}
	var missing []string
	for i, c := range cols {
		j, ok := have[c.Name]
		if !ok {
			missing = append(missing, c.Name)
		}
		idx[i] = j
		if !ok {
			idx[i] = -1
		}
	}
	if len(missing) > 0 {
		return &RowError{File: path, Err: fmt.Errorf("missing column(s) %s of source %q (the file has %s)",
			quoteAll(missing), s.src.Name, quoteAll(t.Columns()))}
	}
	row := &Row{File: path, Values: make([]schema.Value, len(cols))}
	for n := 1; ; n++ {
		raw, err := t.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return &RowError{File: path, Pos: t.Position(n), Err: trimPath(err)}
		}
		if n&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		row.Pos = t.Position(n)
		for i, c := range cols {
			v, err := convert(raw[idx[i]], c.Type, format == "csv")
			if err != nil {
				return &RowError{File: path, Pos: row.Pos, Err: fmt.Errorf("column %q: %v", c.Name, err)}
			}
			row.Values[i] = v
		}
		row.Bytes = cr.n
		if format == "parquet" {
			if total := t.Len(); total > 0 {
				row.Bytes = int64(float64(n) / float64(total) * float64(fileSize(f)))
			}
		}
		if err := fn(row); err != nil {
			return err
		}
		if check {
			return errStop
		}
	}
}

func fileSize(f *os.File) int64 {
	st, err := f.Stat()
	if err != nil {
		return 0
	}
	return st.Size()
}

// trimPath drops the placeholder name tabread was given: RowError names
// the file.
func trimPath(err error) error {
	var le *tabread.LineError
	if errors.As(err, &le) {
		return le.Err
	}
	msg := strings.TrimPrefix(err.Error(), "x.csv: ")
	msg = strings.TrimPrefix(msg, "x.parquet: ")
	if msg != err.Error() {
		return errors.New(msg)
	}
	return err
}

// readJSONL reads a JSON Lines file: one object per line, members matched
// to columns by name; an absent member or null is null; members that are
// not columns are ignored.
func (s *Source) readJSONL(ctx context.Context, path string, f *os.File, check bool, fn func(*Row) error) error {
	cols := s.src.Schema
	index := make(map[string]int, len(cols))
	for i, c := range cols {
		index[c.Name] = i
	}
	cr := &countingReader{r: f}
	lr := tabread.NewLineReader(cr, 16<<20)
	row := &Row{File: path, Values: make([]schema.Value, len(cols))}
	seen := make([]bool, len(cols))
	for n := 0; ; n++ {
		line, ln, err := lr.Next()
		if err == io.EOF {
			if n == 0 && check {
				return &RowError{File: path, Err: errors.New("the file has no rows")}
			}
			return nil
		}
		if err != nil {
			return &RowError{File: path, Err: trimPath(err)}
		}
		if n&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		row.Pos = fmt.Sprintf("line %d", ln)
		clear(row.Values)
		clear(seen)
		err = tabread.ReadObject(line, func(name string, raw jsontext.Value) error {
			i, ok := index[name]
			if !ok {
				return nil
			}
			seen[i] = true
			x, err := tabread.DecodeJSONValue(raw)
			if err != nil {
				return fmt.Errorf("member %q: %v", name, err)
			}
			v, err := convert(x, cols[i].Type, false)
			if err != nil {
				return fmt.Errorf("column %q: %v", name, err)
			}
			row.Values[i] = v
			return nil
		})
		if err != nil {
			return &RowError{File: path, Pos: row.Pos, Err: err}
		}
		if check {
			if i := index[s.src.Batch.TimestampField]; !seen[i] {
				return &RowError{File: path, Pos: row.Pos, Err: fmt.Errorf("the timestamp field %q is absent", s.src.Batch.TimestampField)}
			}
		}
		row.Bytes = cr.n
		if err := fn(row); err != nil {
			return err
		}
		if check {
			return errStop
		}
	}
}

// convert turns a value read from a file into a value of type t. CSV
// fields are text, converted by parsing; arrays are JSON text in CSV and
// JSON arrays in JSON Lines.
func convert(x any, t schema.Type, text bool) (schema.Value, error) {
	if x == nil {
		return schema.Value{}, nil
	}
	if raw, ok := x.(jsontext.Value); ok { // an array or object of a JSON Lines row
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return schema.Value{}, err
		}
		x = v
	}
	if s, ok := x.(string); ok && text {
		return ParseText(s, t)
	}
	return schema.FromAny(x, t)
}

// ParseText converts the text of a CSV cell to a value of type t:
// integers and floats in decimal, booleans as strconv.ParseBool reads
// them, timestamps in RFC 3339, arrays as JSON text.
func ParseText(s string, t schema.Type) (schema.Value, error) {
	switch t.Kind {
	case schema.String, schema.Timestamp:
		return schema.FromAny(s, t)
	case schema.Int64, schema.Int32:
		i, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return schema.Value{}, fmt.Errorf("%q is not an integer", s)
		}
		return schema.IntOfKind(i, t.Kind)
	case schema.Float64, schema.Float32:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return schema.Value{}, fmt.Errorf("%q is not a number", s)
		}
		return schema.FloatOfKind(f, t.Kind)
	case schema.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return schema.Value{}, fmt.Errorf("%q is not a boolean (true or false)", s)
		}
		return schema.BoolVal(b), nil
	case schema.Array:
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return schema.Value{}, fmt.Errorf("%q is not a JSON array: %v", s, err)
		}
		return schema.FromAny(v, t)
	}
	return schema.Value{}, fmt.Errorf("unsupported type %v", t)
}

func quoteAll(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = strconv.Quote(x)
	}
	return strings.Join(q, ", ")
}
