package tabread

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// readAll reads every row of a spine.
func readAll(t *testing.T, s Spine) [][]any {
	t.Helper()
	var rows [][]any
	for {
		row, err := s.Next()
		if err == io.EOF {
			return rows
		}
		require.NoError(t, err)
		require.Len(t, row, len(s.Columns()))
		rows = append(rows, row)
	}
}

// spineErr opens a spine and reads it to the first error.
func spineErr(path, content string) error {
	s, err := OpenSpine(path, strings.NewReader(content))
	if err != nil {
		return err
	}
	for {
		if _, err := s.Next(); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

func TestFormatOf(t *testing.T) {
	for path, want := range map[string]Format{
		"a.parquet": Parquet, "dir.x/B.PARQUET": Parquet, "a.csv": CSV, "a.jsonl": JSONL, "a.ndjson": JSONL,
	} {
		got, err := FormatOf(path)
		require.NoError(t, err, path)
		assert.Equal(t, want, got, path)
	}
	for _, path := range []string{"spine.json", "spine.txt", "spine", "spine.csv.gz"} {
		_, err := FormatOf(path)
		require.Error(t, err, path)
		assert.True(t, errors.Is(err, ErrUnsupportedFormat), path)
		assert.Contains(t, err.Error(), ".parquet, .csv, .jsonl or .ndjson", path)
		assert.Contains(t, err.Error(), path)
	}
	_, err := OpenSpine("spine.xlsx", strings.NewReader("x"))
	assert.ErrorIs(t, err, ErrUnsupportedFormat)
}

func TestSpineCSV(t *testing.T) {
	const data = "\xef\xbb\xbfuser_id,ts,label\n" +
		"u1,2024-05-01T12:00:00Z,1\n" +
		"u2,,\n" +
		"\"u\n3\",2024-05-01T12:00:01Z,\"0\"\n" +
		"u4,2024-05-01T12:00:02Z,x\n"
	s, err := OpenSpine("spine.csv", strings.NewReader(data))
	require.NoError(t, err)
	assert.Equal(t, []string{"user_id", "ts", "label"}, s.Columns(), "the byte order mark is not part of the first name")
	assert.Equal(t, int64(-1), s.Len())
	rows := readAll(t, s)
	assert.Equal(t, [][]any{
		{"u1", "2024-05-01T12:00:00Z", "1"},
		{"u2", nil, nil},
		{"u\n3", "2024-05-01T12:00:01Z", "0"},
		{"u4", "2024-05-01T12:00:02Z", "x"},
	}, rows)
	assert.Equal(t, "line 2", s.Position(1))
	assert.Equal(t, "line 4", s.Position(3))
	assert.Equal(t, "line 6", s.Position(4), "a quoted newline makes row 3 two lines long")
	assert.Equal(t, "row 9", s.Position(9))
}

func TestSpineCSVErrors(t *testing.T) {
	cases := []struct{ name, data, want string }{
		{"ragged row", "a,b\n1,2\n3\n", "spine.csv: line 3: the row has a different number of fields than the header's 2"},
		{"long row", "a,b\n1,2\n\n3,4,5\n", "spine.csv: line 4:"},
		{"bare quote", "a,b\n1,x\"y\n", "spine.csv: line 2:"},
		{"empty", "", "spine.csv: line 1: the file is empty"},
		{"duplicate column", "a,a\n1,2\n", `spine.csv: line 1: column "a" appears twice`},
		{"unnamed column", "a,\n1,2\n", "spine.csv: line 1: column 2 has no name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := spineErr("spine.csv", tc.data)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			var le *LineError
			assert.True(t, errors.As(err, &le), "a *LineError: %v", err)
		})
	}
}

func TestSpineJSONL(t *testing.T) {
	const data = `{"user_id": "u1", "ts": "2024-05-01T12:00:00Z", "label": 1, "w": 0.5, "ok": true, "meta": {"a": [1, 2]}}

{"user_id": "u\u00e92", "label": 9223372036854775807, "ts": null}
   ` + "\r\n" + `{"user_id": "u3", "label": 18446744073709551616, "ok": false, "meta": [1]}` + "\r\n" +
		`{}`
	s, err := OpenSpine("spine.jsonl", strings.NewReader(data))
	require.NoError(t, err)
	assert.Equal(t, []string{"user_id", "ts", "label", "w", "ok", "meta"}, s.Columns())
	rows := readAll(t, s)
	require.Len(t, rows, 4)
	assert.Equal(t, []any{"u1", "2024-05-01T12:00:00Z", int64(1), 0.5, true, jsontext.Value(`{"a": [1, 2]}`)}, rows[0])
	assert.Equal(t, []any{"ué2", nil, int64(math.MaxInt64), nil, nil, nil}, rows[1])
	assert.Equal(t, []any{"u3", nil, 1.8446744073709552e19, nil, false, jsontext.Value(`[1]`)}, rows[2])
	assert.Equal(t, []any{nil, nil, nil, nil, nil, nil}, rows[3])
	assert.Equal(t, "line 1", s.Position(1))
	assert.Equal(t, "line 3", s.Position(2), "blank lines count")
	assert.Equal(t, "line 5", s.Position(3))
	assert.Equal(t, "line 6", s.Position(4))

	s, err = OpenSpine("spine.ndjson", strings.NewReader(`{"a":"x"}`))
	require.NoError(t, err)
	assert.Equal(t, [][]any{{"x"}}, readAll(t, s), "a last line without a newline")
}

func TestSpineJSONLErrors(t *testing.T) {
	cases := []struct{ name, data, want string }{
		{"malformed", "{\"a\": 1}\n\n{\"a\": }\n", "spine.jsonl: line 3: invalid JSON"},
		{"truncated", "{\"a\": 1}\n{\"a\": 1", "spine.jsonl: line 2: invalid JSON: unexpected end of the line"},
		{"not an object", "{\"a\": 1}\n[1]\n", "spine.jsonl: line 2: expected a JSON object, found an array"},
		{"new member", "{\"a\": 1}\n{\"a\": 2, \"b\": 3}\n", `spine.jsonl: line 2: member "b" is not a column of the first row`},
		{"duplicate member", "{\"a\": 1, \"a\": 2}\n", "spine.jsonl: line 1: invalid JSON: duplicate object member name"},
		{"invalid UTF-8", "{\"a\": \"\xff\"}\n", "spine.jsonl: line 1: invalid JSON: invalid UTF-8"},
		{"two objects", "{\"a\": 1} {\"a\": 2}\n", "spine.jsonl: line 1: unexpected data after the JSON object"},
		{"empty", "\n\n", "spine.jsonl: line 1: the file has no rows"},
		{"number out of range", "{\"a\": 1e999}\n", `spine.jsonl: line 1: member "a"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := spineErr("spine.jsonl", tc.data)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			var le *LineError
			assert.True(t, errors.As(err, &le), "a *LineError: %v", err)
		})
	}
}

func TestLineReader(t *testing.T) {
	lr := NewLineReader(strings.NewReader("a\r\n\n \t\nbb\n"+strings.Repeat("c", 100)+"\nd"), 10)
	next := func() (string, int, error) {
		line, n, err := lr.Next()
		return string(line), n, err
	}
	line, n, err := next()
	assert.Equal(t, "a", line)
	assert.Equal(t, 1, n)
	require.NoError(t, err)
	line, n, _ = next()
	assert.Equal(t, "bb", line)
	assert.Equal(t, 4, n)
	_, _, err = next()
	var le *LineError
	require.True(t, errors.As(err, &le), "%v", err)
	assert.Equal(t, 5, le.Line)
	assert.Contains(t, err.Error(), "longer than 10 bytes")

	lr = NewLineReader(strings.NewReader(strings.Repeat("x", 200_000)+"\nend"), 1<<20)
	line, n, err = next()
	require.NoError(t, err)
	assert.Len(t, line, 200_000, "a line longer than the read buffer")
	line, n, err = next()
	require.NoError(t, err)
	assert.Equal(t, "end", line)
	assert.Equal(t, 2, n)
	_, _, err = next()
	assert.Equal(t, io.EOF, err)
}

// spineRecord is a Parquet spine with every type a spine column can have.
type spineRecord struct {
	User   string    `parquet:"user_id"`
	TS     time.Time `parquet:"ts,timestamp(nanosecond)"`
	Millis time.Time `parquet:"ts_ms,timestamp(millisecond)"`
	Micros time.Time `parquet:"ts_us,timestamp(microsecond)"`
	Day    int32     `parquet:"day,date"` // days since 1970 (parquet-go mis-writes a time.Time as a date)
	Label  *int64    `parquet:"label,optional"`
	Small  int32     `parquet:"small"`
	Weight float64   `parquet:"weight"`
	Ratio  float32   `parquet:"ratio"`
	OK     *bool     `parquet:"ok,optional"`
	Note   *string   `parquet:"note,optional"`
	Blob   []byte    `parquet:"blob"`
}

func writeParquetSpine(t *testing.T, recs []spineRecord, opts ...parquet.WriterOption) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[spineRecord](&buf, opts...)
	_, err := w.Write(recs)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return buf.Bytes()
}

func TestSpineParquet(t *testing.T) {
	ts := time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC)
	one, yes, note := int64(1), true, "hi"
	recs := []spineRecord{
		{User: "u1", TS: ts, Millis: ts.Truncate(time.Millisecond), Micros: ts.Truncate(time.Microsecond), Day: 19844,
			Label: &one, Small: -3, Weight: 0.25, Ratio: 1.5, OK: &yes, Note: &note, Blob: []byte("b")},
		{User: "u2", TS: time.Unix(0, -1).UTC(), Millis: time.Unix(-1, 0).UTC(), Micros: time.Unix(0, 0).UTC(), Day: -1},
	}
	data := writeParquetSpine(t, recs)
	path := filepath.Join(t.TempDir(), "spine.parquet")
	require.NoError(t, os.WriteFile(path, data, 0o644))
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()

	for name, r := range map[string]io.Reader{"file": f, "stream": io.MultiReader(bytes.NewReader(data))} {
		t.Run(name, func(t *testing.T) {
			s, err := OpenSpine("spine.parquet", r)
			require.NoError(t, err)
			assert.Equal(t, []string{"user_id", "ts", "ts_ms", "ts_us", "day", "label", "small", "weight", "ratio", "ok", "note", "blob"}, s.Columns())
			assert.Equal(t, int64(2), s.Len())
			rows := readAll(t, s)
			require.Len(t, rows, 2)
			assert.Equal(t, []any{"u1", ts, ts.Truncate(time.Millisecond), ts.Truncate(time.Microsecond), time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC),
				int64(1), int64(-3), 0.25, 1.5, true, "hi", "b"}, rows[0])
			assert.Equal(t, []any{"u2", time.Unix(0, -1).UTC(), time.Unix(-1, 0).UTC(), time.Unix(0, 0).UTC(), time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC),
				nil, int64(0), 0.0, 0.0, nil, nil, ""}, rows[1])
			assert.Equal(t, "row 2", s.Position(2))
		})
	}
}

func TestSpineParquetManyRowGroups(t *testing.T) {
	recs := make([]spineRecord, 3000)
	for i := range recs {
		recs[i] = spineRecord{User: "u", Small: int32(i)}
	}
	data := writeParquetSpine(t, recs, parquet.MaxRowsPerRowGroup(1000))
	s, err := OpenSpine("s.parquet", bytes.NewReader(data))
	require.NoError(t, err)
	rows := readAll(t, s)
	require.Equal(t, 3000, len(rows))
	for i, r := range rows {
		require.Equal(t, int64(i), r[6], "row %d in order across row groups", i)
	}
}

func TestSpineParquetRefusesNested(t *testing.T) {
	type nested struct {
		User string   `parquet:"user_id"`
		Tags []string `parquet:"tags,list"`
	}
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[nested](&buf)
	_, err := w.Write([]nested{{User: "u", Tags: []string{"a"}}})
	require.NoError(t, err)
	require.NoError(t, w.Close())
	_, err = OpenSpine("s.parquet", bytes.NewReader(buf.Bytes()))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `s.parquet: column "tags": nested and repeated columns cannot be spine columns`)
}

func TestSpineParquetCorrupt(t *testing.T) {
	good := writeParquetSpine(t, []spineRecord{{User: "u1"}, {User: "u2"}})
	flipped := bytes.Clone(good)
	for i := len(flipped) - 40; i < len(flipped)-8; i++ {
		flipped[i] ^= 0x5a // the footer's metadata
	}
	huge := bytes.Clone(good)
	copy(huge[len(huge)-8:], []byte{0xf0, 0xff, 0xff, 0xff}) // a footer length of ~4 GiB
	cases := map[string][]byte{
		"huge footer length": huge,
		"empty":              {},
		"not parquet":        []byte("user_id,ts\nu1,2024-05-01T12:00:00Z\n"),
		"truncated":          good[:len(good)/2],
		"no footer":          good[:len(good)-8],
		"flipped footer":     flipped,
		"magic only":         []byte("PAR1PAR1"),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			s, err := OpenSpine("spine.parquet", bytes.NewReader(data))
			if err == nil {
				for err == nil {
					_, err = s.Next()
				}
				require.NotEqual(t, io.EOF, err, "a corrupt file must not read as valid")
			}
			assert.Contains(t, err.Error(), "spine.parquet")
		})
	}
}

func FuzzSpineJSONL(f *testing.F) {
	f.Add([]byte("{\"a\": 1, \"b\": \"x\"}\n\n{\"a\": null}\n"))
	f.Add([]byte("{\"a\": {\"b\": [1, 2, {}]}}\r\n"))
	f.Add([]byte("{}\n{\"a\":1}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		spineErr("f.jsonl", string(data))
	})
}

func FuzzSpineCSV(f *testing.F) {
	f.Add([]byte("a,b\n1,2\n\"x\ny\",\n"))
	f.Add([]byte("a\n\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		spineErr("f.csv", string(data))
	})
}

func FuzzSpineParquet(f *testing.F) {
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[spineRecord](&buf)
	w.Write([]spineRecord{{User: "u1"}})
	w.Close()
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		spineErr("f.parquet", string(data))
	})
}
