package tabular

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/historical"
	"github.com/featurelog/featurelog/schema"
	"github.com/featurelog/featurelog/tabread"
)

var wts = time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC)

// result is a small historical result with every kind of value.
func result() ([]historical.Column, [][]any, [][]schema.Value) {
	cols := []historical.Column{
		{Name: "user_id", Spine: true}, {Name: "ts", Spine: true}, {Name: "label", Spine: true},
		{Name: "w", Spine: true}, {Name: "note", Spine: true},
		{Name: "v.count", Type: schema.ScalarType(schema.Int64)},
		{Name: "v.sum", Type: schema.ScalarType(schema.Float64)},
		{Name: "v.f32", Type: schema.ScalarType(schema.Float32)},
		{Name: "v.name", Type: schema.ScalarType(schema.String)},
		{Name: "v.ok", Type: schema.ScalarType(schema.Bool)},
		{Name: "v.at", Type: schema.ScalarType(schema.Timestamp)},
		{Name: "v.last", Type: schema.ArrayOf(schema.Int64)},
		{Name: "v.tags", Type: schema.ArrayOf(schema.String)},
	}
	lead := [][]any{
		{"u1", wts, int64(1), 0.5, nil},
		{"u,2", wts.Add(time.Second), int64(-7), math.Inf(1), "a \"b\""},
		{"u3", wts.Add(2 * time.Second), nil, nil, nil},
	}
	features := [][]schema.Value{
		{schema.Int(math.MaxInt64), schema.Float(2.5), schema.Float32Val(0.1), schema.Str("é"), schema.BoolVal(true), schema.Time(wts),
			schema.ArrayVal([]schema.Value{schema.Int(1), schema.Int(2)}), schema.ArrayVal([]schema.Value{schema.Str("x")})},
		{schema.Int(0), schema.Float(math.NaN()), {}, {}, schema.BoolVal(false), {}, schema.ArrayVal(nil), {}},
		{{}, {}, {}, {}, {}, {}, {}, {}},
	}
	return cols, lead, features
}

func writeResult(t *testing.T, path string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := CreateWriter(path, &buf)
	require.NoError(t, err)
	cols, lead, features := result()
	require.NoError(t, w.Begin(cols))
	for i := range lead {
		require.NoError(t, w.Row(lead[i], features[i]))
	}
	assert.Equal(t, int64(len(lead)), w.Rows())
	require.NoError(t, w.Close())
	return buf.Bytes()
}

func TestWriterCSV(t *testing.T) {
	got := string(writeResult(t, "out.csv"))
	want := "user_id,ts,label,w,note,v.count,v.sum,v.f32,v.name,v.ok,v.at,v.last,v.tags\n" +
		`u1,2024-05-01T12:00:00.123456789Z,1,0.5,,9223372036854775807,2.5,0.1,é,true,2024-05-01T12:00:00.123456789Z,"[1,2]","[""x""]"` + "\n" +
		`"u,2",2024-05-01T12:00:01.123456789Z,-7,+Inf,"a ""b""",0,NaN,,,false,,[],` + "\n" +
		"u3,2024-05-01T12:00:02.123456789Z,,,,,,,,,,,\n"
	assert.Equal(t, want, got)

	// Read back as a spine: every cell is its text, empty cells null.
	s, err := tabread.OpenSpine("out.csv", strings.NewReader(got))
	require.NoError(t, err)
	rows := readAll(t, s)
	require.Len(t, rows, 3)
	assert.Equal(t, []any{"u,2", "2024-05-01T12:00:01.123456789Z", "-7", "+Inf", `a "b"`, "0", "NaN", nil, nil, "false", nil, "[]", nil}, rows[1])
}

func TestWriterJSONL(t *testing.T) {
	got := string(writeResult(t, "out.jsonl"))
	want := `{"user_id":"u1","ts":"2024-05-01T12:00:00.123456789Z","label":1,"w":0.5,"note":null,"v.count":"9223372036854775807","v.sum":2.5,"v.f32":0.1,"v.name":"é","v.ok":true,"v.at":"2024-05-01T12:00:00.123456789Z","v.last":["1","2"],"v.tags":["x"]}
{"user_id":"u,2","ts":"2024-05-01T12:00:01.123456789Z","label":-7,"w":"Infinity","note":"a \"b\"","v.count":"0","v.sum":"NaN","v.f32":null,"v.name":null,"v.ok":false,"v.at":null,"v.last":[],"v.tags":null}
{"user_id":"u3","ts":"2024-05-01T12:00:02.123456789Z","label":null,"w":null,"note":null,"v.count":null,"v.sum":null,"v.f32":null,"v.name":null,"v.ok":null,"v.at":null,"v.last":null,"v.tags":null}
`
	assert.Equal(t, want, got)
	for _, line := range strings.Split(strings.TrimSpace(got), "\n") {
		assert.True(t, json.Valid([]byte(line)), line)
	}
	s, err := tabread.OpenSpine("out.jsonl", strings.NewReader(got))
	require.NoError(t, err)
	rows := readAll(t, s)
	assert.Equal(t, []any{"u1", "2024-05-01T12:00:00.123456789Z", int64(1), 0.5, nil, "9223372036854775807", 2.5, 0.1, "é", true,
		"2024-05-01T12:00:00.123456789Z", jsontext.Value(`["1","2"]`), jsontext.Value(`["x"]`)}, rows[0])
}

// parquetRows reads a Parquet file written by the writer: flat columns
// through the spine converters, LIST columns as []any.
func parquetRows(t *testing.T, data []byte) (*parquet.File, []map[string]any) {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	cols := f.Root().Columns()
	convs := make([]func(parquet.Value) any, len(cols))
	for i, c := range cols {
		leaf := c
		if !c.Leaf() {
			leaf = c.Columns()[0].Columns()[0] // LIST: list.element
		}
		conv, err := tabread.ParquetConverter(leaf)
		require.NoError(t, err, c.Name())
		convs[i] = conv
	}
	var out []map[string]any
	for _, rg := range f.RowGroups() {
		rows := rg.Rows()
		buf := make([]parquet.Row, 100)
		for {
			n, err := rows.ReadRows(buf)
			for _, r := range buf[:n] {
				m := map[string]any{}
				for _, v := range r {
					c := cols[v.Column()]
					switch {
					case c.Leaf() && v.IsNull():
						m[c.Name()] = nil
					case c.Leaf():
						m[c.Name()] = convs[v.Column()](v)
					case v.DefinitionLevel() == 0:
						m[c.Name()] = nil
					case v.DefinitionLevel() == 1:
						m[c.Name()] = []any{}
					default:
						l, _ := m[c.Name()].([]any)
						m[c.Name()] = append(l, convs[v.Column()](v))
					}
				}
				out = append(out, m)
			}
			if err != nil {
				break
			}
		}
		rows.Close()
	}
	return f, out
}

func TestWriterParquet(t *testing.T) {
	data := writeResult(t, "out.parquet")
	f, rows := parquetRows(t, data)
	assert.Equal(t, `message featurelog {
	optional binary user_id (STRING);
	optional int64 ts (TIMESTAMP(isAdjustedToUTC=true,unit=NANOS));
	optional int64 label (INT(64,true));
	optional double w;
	optional binary note (STRING);
	optional int64 v.count (INT(64,true));
	optional double v.sum;
	optional double v.f32;
	optional binary v.name (STRING);
	optional boolean v.ok;
	optional int64 v.at (TIMESTAMP(isAdjustedToUTC=true,unit=NANOS));
	optional group v.last (LIST) {
		repeated group list {
			required int64 element (INT(64,true));
		}
	}
	optional group v.tags (LIST) {
		repeated group list {
			required binary element (STRING);
		}
	}
}`, f.Schema().String())
	require.Len(t, rows, 3)
	assert.Equal(t, map[string]any{"user_id": "u1", "ts": wts, "label": int64(1), "w": 0.5, "note": nil,
		"v.count": int64(math.MaxInt64), "v.sum": 2.5, "v.f32": float64(float32(0.1)), "v.name": "é", "v.ok": true, "v.at": wts,
		"v.last": []any{int64(1), int64(2)}, "v.tags": []any{"x"}}, rows[0])
	assert.True(t, math.IsNaN(rows[1]["v.sum"].(float64)))
	delete(rows[1], "v.sum")
	assert.Equal(t, map[string]any{"user_id": "u,2", "ts": wts.Add(time.Second), "label": int64(-7), "w": math.Inf(1), "note": `a "b"`,
		"v.count": int64(0), "v.f32": nil, "v.name": nil, "v.ok": false, "v.at": nil, "v.last": []any{}, "v.tags": nil}, rows[1])
	for k, v := range rows[2] {
		if k != "user_id" && k != "ts" {
			assert.Nil(t, v, k)
		}
	}
}

// TestWriterParquetRoundTrip reads a flat result back as a spine.
func TestWriterParquetRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w, err := CreateWriter("out.parquet", &buf)
	require.NoError(t, err)
	cols := []historical.Column{{Name: "k", Spine: true}, {Name: "at", Spine: true}, {Name: "v.n", Type: schema.ScalarType(schema.Int64)}}
	require.NoError(t, w.Begin(cols))
	require.NoError(t, w.Row([]any{"a", wts}, []schema.Value{schema.Int(3)}))
	require.NoError(t, w.Row([]any{"b", nil}, []schema.Value{{}}))
	require.NoError(t, w.Close())
	s, err := tabread.OpenSpine("out.parquet", bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	assert.Equal(t, []string{"k", "at", "v.n"}, s.Columns())
	assert.Equal(t, [][]any{{"a", wts, int64(3)}, {"b", nil, nil}}, readAll(t, s))
}

func TestWriterParquetRowGroups(t *testing.T) {
	var buf bytes.Buffer
	w, err := CreateWriter("out.parquet", &buf)
	require.NoError(t, err)
	require.NoError(t, w.Begin([]historical.Column{{Name: "k", Spine: true}, {Name: "v.n", Type: schema.ScalarType(schema.Int64)}}))
	const n = rowGroupRows + 1000
	for i := range n {
		require.NoError(t, w.Row([]any{int64(i)}, []schema.Value{schema.Int(int64(2 * i))}))
	}
	require.NoError(t, w.Close())
	f, err := parquet.OpenFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	require.NoError(t, err)
	assert.Equal(t, int64(n), f.NumRows())
	assert.Len(t, f.RowGroups(), 2, "a row group every %d rows bounds the writer's memory", rowGroupRows)
	s, err := tabread.OpenSpine("out.parquet", bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	rows := readAll(t, s)
	require.Equal(t, n, len(rows))
	for i, r := range rows {
		if r[0] != int64(i) || r[1] != int64(2*i) {
			t.Fatalf("row %d: %v", i, r)
		}
	}
}

func TestWriterParquetInfersSpineTypes(t *testing.T) {
	var buf bytes.Buffer
	w, err := CreateWriter("out.parquet", &buf)
	require.NoError(t, err)
	cols := []historical.Column{{Name: "mixed", Spine: true}, {Name: "empty", Spine: true}, {Name: "late", Spine: true}}
	require.NoError(t, w.Begin(cols))
	require.NoError(t, w.Row([]any{nil, nil, nil}, nil))
	require.NoError(t, w.Row([]any{int64(1), nil, nil}, nil))
	require.NoError(t, w.Row([]any{1.5, nil, nil}, nil))
	for range inferRows {
		require.NoError(t, w.Row([]any{nil, nil, nil}, nil))
	}
	require.NoError(t, w.Row([]any{int64(2), nil, "late"}, nil), "after the schema is fixed, an int still fits a double column")
	err = w.Row([]any{"x", nil, nil}, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `column "mixed", row 1029: a string value (x) does not fit the Parquet column's type Float64`)
	require.NoError(t, w.Close())
	f, err := parquet.OpenFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	require.NoError(t, err)
	assert.Equal(t, "message featurelog {\n\toptional double mixed;\n\toptional binary empty (STRING);\n\toptional binary late (STRING);\n}", f.Schema().String())
	assert.Equal(t, int64(inferRows+4), f.NumRows())
}

func TestWriterRangeColumns(t *testing.T) {
	cols := []historical.Column{
		{Name: "user_id", Type: schema.ScalarType(schema.Int64)},
		{Name: "_valid_from", Type: schema.ScalarType(schema.Timestamp)},
		{Name: "_valid_to", Type: schema.ScalarType(schema.Timestamp)},
		{Name: "v.n", Type: schema.ScalarType(schema.Int64)},
	}
	lead := []any{schema.Int(42), wts, wts.Add(time.Hour)}
	for path, want := range map[string]string{
		"r.csv":   "user_id,_valid_from,_valid_to,v.n\n42,2024-05-01T12:00:00.123456789Z,2024-05-01T13:00:00.123456789Z,7\n",
		"r.jsonl": `{"user_id":"42","_valid_from":"2024-05-01T12:00:00.123456789Z","_valid_to":"2024-05-01T13:00:00.123456789Z","v.n":"7"}` + "\n",
	} {
		var buf bytes.Buffer
		w, err := CreateWriter(path, &buf)
		require.NoError(t, err)
		require.NoError(t, w.Begin(cols))
		require.NoError(t, w.Row(lead, []schema.Value{schema.Int(7)}))
		require.NoError(t, w.Close())
		assert.Equal(t, want, buf.String(), path)
	}
	var buf bytes.Buffer
	w, err := CreateWriter("r.parquet", &buf)
	require.NoError(t, err)
	require.NoError(t, w.Begin(cols))
	require.NoError(t, w.Row(lead, []schema.Value{schema.Int(7)}))
	require.NoError(t, w.Close())
	_, rows := parquetRows(t, buf.Bytes())
	assert.Equal(t, []map[string]any{{"user_id": int64(42), "_valid_from": wts, "_valid_to": wts.Add(time.Hour), "v.n": int64(7)}}, rows)
}

func TestWriterEmptyResult(t *testing.T) {
	cols := []historical.Column{{Name: "k", Spine: true}, {Name: "v.n", Type: schema.ScalarType(schema.Int64)}}
	for path, want := range map[string]string{"e.csv": "k,v.n\n", "e.jsonl": ""} {
		var buf bytes.Buffer
		w, err := CreateWriter(path, &buf)
		require.NoError(t, err)
		require.NoError(t, w.Begin(cols))
		require.NoError(t, w.Close())
		assert.Equal(t, want, buf.String(), path)
	}
	var buf bytes.Buffer
	w, err := CreateWriter("e.parquet", &buf)
	require.NoError(t, err)
	require.NoError(t, w.Begin(cols))
	require.NoError(t, w.Close())
	s, err := tabread.OpenSpine("e.parquet", bytes.NewReader(buf.Bytes()))
	require.NoError(t, err, "an empty result is a valid Parquet file")
	assert.Equal(t, []string{"k", "v.n"}, s.Columns())
	assert.Empty(t, readAll(t, s))
}

func TestWriterRefusesDuplicateColumns(t *testing.T) {
	for _, path := range []string{"d.csv", "d.jsonl", "d.parquet"} {
		w, err := CreateWriter(path, &bytes.Buffer{})
		require.NoError(t, err)
		err = w.Begin([]historical.Column{{Name: "v.n", Spine: true}, {Name: "v.n", Type: schema.ScalarType(schema.Int64)}})
		assert.ErrorContains(t, err, `column "v.n" appears twice`, path)
	}
}

// readAll reads every row of a file written by a writer.
func readAll(t *testing.T, s tabread.Spine) [][]any {
	t.Helper()
	var rows [][]any
	for {
		row, err := s.Next()
		if err == io.EOF {
			return rows
		}
		require.NoError(t, err)
		rows = append(rows, row)
	}
}

// TestWriterParquetChunkEqualsRows writes the same rows row by row and
// as chunks (column by column, row groups on every core): the files must
// be byte for byte the same, over several row groups, with spine types
// inferred from rows that begin null, arrays, nulls and every kind of
// value, however the rows are cut into chunks.
func TestWriterParquetChunkEqualsRows(t *testing.T) {
	cols, lead0, feats0 := result()
	const n = 2*rowGroupRows + 1234
	lead, feats := make([][]any, n), make([][]schema.Value, n)
	for i := range n {
		lead[i] = append([]any(nil), lead0[i%len(lead0)]...)
		lead[i][2] = int64(i)
		if i < 10 { // the spine's types are unknown for a while
			lead[i][0], lead[i][1] = nil, nil
		}
		feats[i] = feats0[(i/7)%len(feats0)]
	}
	write := func(chunks ...int) []byte {
		var buf bytes.Buffer
		w, err := CreateWriter("out.parquet", &buf)
		require.NoError(t, err)
		require.NoError(t, w.Begin(cols))
		lo := 0
		for _, hi := range chunks {
			if hi < 0 { // row by row
				for i := lo; i < n; i++ {
					require.NoError(t, w.Row(lead[i], feats[i]))
				}
				break
			}
			require.NoError(t, w.(historical.ChunkSink).Chunk(historical.NewChunk(lead[lo:hi], feats[lo:hi])))
			lo = hi
		}
		require.Equal(t, int64(n), w.Rows())
		require.NoError(t, w.Close())
		return buf.Bytes()
	}
	read := func(b []byte) (string, []parquet.Row) {
		f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
		require.NoError(t, err)
		r := parquet.NewReader(f)
		defer r.Close()
		var rows []parquet.Row
		buf := make([]parquet.Row, 1000)
		for {
			k, err := r.ReadRows(buf)
			for _, row := range buf[:k] {
				rows = append(rows, row.Clone())
			}
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
		}
		return f.Schema().String(), rows
	}
	wantBytes := write(-1)
	wantSchema, want := read(wantBytes)
	require.Len(t, want, n)
	for _, chunks := range [][]int{{n}, {5, n}, {rowGroupRows + 3, 2*rowGroupRows + 3, n}, {1000, -1}, {rowGroupRows, n}} {
		gotBytes := write(chunks...)
		if bytes.Equal(wantBytes, gotBytes) {
			continue
		}
		gotSchema, got := read(gotBytes)
		require.Equal(t, wantSchema, gotSchema, "chunks %v", chunks)
		require.Len(t, got, n)
		for i := range want {
			// NaN != NaN: compare the rows' printed forms.
			require.Equal(t, fmt.Sprint(want[i]), fmt.Sprint(got[i]), "chunks %v, row %d", chunks, i)
		}
		t.Fatalf("chunks %v: the same rows, but not the same bytes as Row writes", chunks)
	}
}

// TestWriterParquetChunkErrors: a spine value that does not fit its
// column fails the chunk with the column and the row's number.
func TestWriterParquetChunkErrors(t *testing.T) {
	var buf bytes.Buffer
	w, err := CreateWriter("out.parquet", &buf)
	require.NoError(t, err)
	require.NoError(t, w.Begin([]historical.Column{{Name: "k", Spine: true}, {Name: "v.n", Type: schema.ScalarType(schema.Int64)}}))
	const n = rowGroupRows + 5000
	lead, feats := make([][]any, n), make([][]schema.Value, n)
	for i := range n {
		lead[i], feats[i] = []any{int64(i)}, []schema.Value{schema.Int(1)}
	}
	lead[rowGroupRows+17][0] = "x"
	err = w.(historical.ChunkSink).Chunk(historical.NewChunk(lead, feats))
	require.Error(t, err)
	assert.Contains(t, err.Error(), fmt.Sprintf(`column "k", row %d: a string value (x) does not fit`, rowGroupRows+18))
	err = w.(historical.ChunkSink).Chunk(historical.NewChunk([][]any{{int64(1), int64(2)}}, [][]schema.Value{{schema.Int(1)}}))
	require.Error(t, err, "a row of the wrong width")
}
