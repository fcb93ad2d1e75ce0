package record

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/internal/schema"
)

var testColumns = []schema.Column{
	{Name: "user_id", Type: schema.ScalarType(schema.String)},
	{Name: "timestamp", Type: schema.ScalarType(schema.Timestamp)},
	{Name: "clicked", Type: schema.ScalarType(schema.Int64)},
	{Name: "i32", Type: schema.ScalarType(schema.Int32)},
	{Name: "f64", Type: schema.ScalarType(schema.Float64)},
	{Name: "f32", Type: schema.ScalarType(schema.Float32)},
	{Name: "ok", Type: schema.ScalarType(schema.Bool)},
	{Name: "tags", Type: schema.ArrayOf(schema.String)},
	{Name: "nums", Type: schema.ArrayOf(schema.Float64)},
}

func randomRow(r *rand.Rand) []schema.Value {
	row := []schema.Value{
		schema.Str(string(rune('a' + r.IntN(26)))), schema.TimeNanos(r.Int64()), schema.Int(r.Int64() - math.MaxInt64/2),
		schema.Int32Val(int32(r.Uint32())), schema.Float(r.NormFloat64()), schema.Float32Val(float32(r.NormFloat64())),
		schema.BoolVal(r.IntN(2) == 0), schema.ArrayVal([]schema.Value{schema.Str("x"), schema.Str("")}),
		schema.ArrayVal([]schema.Value{schema.Float(math.Inf(-1)), schema.Float(1.5)}),
	}
	for i := range row {
		if r.IntN(5) == 0 {
			row[i] = schema.Value{}
		}
	}
	return row
}

func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 200; iter++ {
		in := Entry{Workspace: "ads", IngestTime: r.Int64()}
		for s := 0; s < 1+r.IntN(3); s++ {
			sec := Section{Source: "src", Columns: testColumns}
			for i := 0; i < r.IntN(20); i++ {
				sec.Rows = append(sec.Rows, randomRow(r)...)
			}
			in.Sections = append(in.Sections, sec)
		}
		buf := AppendEntry(nil, &in)
		var out Entry
		require.NoError(t, Decode(buf, &out))
		require.Equal(t, in.Workspace, out.Workspace)
		require.Equal(t, in.IngestTime, out.IngestTime)
		require.Len(t, out.Sections, len(in.Sections))
		for i := range in.Sections {
			a, b := in.Sections[i], out.Sections[i]
			require.Equal(t, a.Columns, b.Columns)
			require.Equal(t, a.NumRows(), b.NumRows())
			for j := range a.Rows {
				assert.True(t, a.Rows[j].Equal(b.Rows[j]), "section %d value %d: %+v != %+v", i, j, a.Rows[j], b.Rows[j])
			}
		}
	}
}

func TestDecodeRejectsDamage(t *testing.T) {
	in := Entry{Workspace: "ads", Sections: []Section{{Source: "s", Columns: testColumns, Rows: randomRow(rand.New(rand.NewPCG(3, 4)))}}}
	buf := AppendEntry(nil, &in)
	for cut := 0; cut < len(buf); cut++ {
		var out Entry
		assert.ErrorIs(t, Decode(buf[:cut], &out), ErrCorrupt, "cut at %d", cut)
	}
	var out Entry
	assert.ErrorIs(t, Decode(append(buf, 0), &out), ErrCorrupt, "trailing byte")
	bad := append([]byte{}, buf...)
	bad[0] = 9
	assert.ErrorIs(t, Decode(bad, &out), ErrCorrupt, "bad version")
}

func FuzzDecode(f *testing.F) {
	r := rand.New(rand.NewPCG(5, 6))
	in := Entry{Workspace: "ads", Sections: []Section{{Source: "s", Columns: testColumns, Rows: randomRow(r)}}}
	f.Add(AppendEntry(nil, &in))
	f.Add([]byte{1, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var e Entry
		if Decode(data, &e) != nil {
			return
		}
		// What decodes must re-encode to the same bytes: the format has one
		// encoding per entry.
		again := AppendEntry(nil, &e)
		var e2 Entry
		require.NoError(t, Decode(again, &e2))
		require.Equal(t, len(e.Sections), len(e2.Sections))
	})
}
