package record

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/internal/docgolden"
	"github.com/featurelog/featurelog/schema"
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

// randomIdem makes an entry of a random kind: plain, positioned, keyed
// with a response, or keyed and positioned with response positions.
func randomIdem(r *rand.Rand, e *Entry) {
	kind := r.IntN(4)
	if kind == 0 {
		return
	}
	if kind == 1 || kind == 3 {
		e.Positioned = true
		e.Position = Position{Partition: r.Int32N(1 << 20), Offset: r.Int64()}
	}
	if kind == 1 {
		return
	}
	e.IdempotencyKey = fmt.Sprintf("key-%d", r.Uint64())
	for i := 0; i < r.IntN(4); i++ {
		e.Response = append(e.Response, ViewMetrics{View: fmt.Sprintf("v%d", i), Online: r.Int64N(1 << 40), Offline: int64(r.IntN(3)) * (math.MaxInt64 / 2)})
	}
	if kind == 3 {
		for i := 0; i < r.IntN(4); i++ {
			e.ResponsePositions = append(e.ResponsePositions, Position{Partition: r.Int32N(math.MaxInt32), Offset: r.Int64()})
		}
	}
}

func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 200; iter++ {
		in := Entry{Workspace: "ads", IngestTime: r.Int64()}
		randomIdem(r, &in)
		for s := 0; s < 1+r.IntN(3); s++ {
			sec := Section{Source: "src", Columns: testColumns}
			for i := 0; i < r.IntN(20); i++ {
				sec.Rows = append(sec.Rows, randomRow(r)...)
			}
			in.Sections = append(in.Sections, sec)
		}
		buf := AppendEntry(nil, &in)
		require.Equal(t, in.Kind(), buf[1])
		var out Entry
		require.NoError(t, Decode(buf, &out))
		require.Equal(t, in.Workspace, out.Workspace)
		require.Equal(t, in.IngestTime, out.IngestTime)
		require.Equal(t, in.IdempotencyKey, out.IdempotencyKey)
		require.Equal(t, in.Positioned, out.Positioned)
		require.Equal(t, in.Position, out.Position)
		require.Equal(t, len(in.ResponsePositions), len(out.ResponsePositions))
		for i := range in.ResponsePositions {
			require.Equal(t, in.ResponsePositions[i], out.ResponsePositions[i])
		}
		require.Equal(t, len(in.Response), len(out.Response))
		for i := range in.Response {
			require.Equal(t, in.Response[i], out.Response[i])
		}
		var hdr Entry
		require.NoError(t, DecodeHeader(buf, &hdr))
		require.Equal(t, out.IngestTime, hdr.IngestTime)
		require.Equal(t, out.Workspace, hdr.Workspace)
		require.Equal(t, out.IdempotencyKey, hdr.IdempotencyKey)
		require.Equal(t, out.Response, hdr.Response)
		require.Equal(t, out.Position, hdr.Position)
		require.Equal(t, out.Positioned, hdr.Positioned)
		require.Equal(t, out.ResponsePositions, hdr.ResponsePositions)
		require.Empty(t, hdr.Sections)
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
	for _, key := range []string{"", "retry-1", "positioned", "both"} {
		in := Entry{Workspace: "ads", IdempotencyKey: key, Sections: []Section{{Source: "s", Columns: testColumns, Rows: randomRow(rand.New(rand.NewPCG(3, 4)))}}}
		switch key {
		case "positioned":
			in.IdempotencyKey, in.Positioned, in.Position = "", true, Position{Partition: 3, Offset: 1 << 40}
		case "retry-1":
			in.Response = []ViewMetrics{{View: "v", Online: 1, Offline: 1}}
		case "both":
			in.Response = []ViewMetrics{{View: "v", Online: 1, Offline: 1}}
			in.Positioned, in.Position = true, Position{Partition: 3, Offset: 1 << 40}
			in.ResponsePositions = []Position{{Partition: 0, Offset: 5}, {Partition: 3, Offset: 1<<40 - 1}}
		}
		buf := AppendEntry(nil, &in)
		for cut := 0; cut < len(buf); cut++ {
			var out Entry
			assert.ErrorIs(t, Decode(buf[:cut], &out), ErrCorrupt, "key %q: cut at %d", key, cut)
		}
		var out Entry
		assert.ErrorIs(t, Decode(append(buf, 0), &out), ErrCorrupt, "trailing byte")
		bad := append([]byte{}, buf...)
		bad[0] = 9
		assert.ErrorIs(t, Decode(bad, &out), ErrCorrupt, "bad version")
		bad[0], bad[1] = Version, 5
		assert.ErrorIs(t, Decode(bad, &out), ErrCorrupt, "unknown kind")
		assert.ErrorIs(t, DecodeHeader(bad, &out), ErrCorrupt, "unknown kind")
	}
}

// TestDecodeIdempotentDamage: the key and response of a kind 2 entry are
// checked field by field, by Decode and by DecodeHeader.
func TestDecodeIdempotentDamage(t *testing.T) {
	ws := appendStr([]byte{Version, KindIngestIdempotent, 0}, "ads")
	oneView := append(appendStr(nil, "k"), 1, 1, 'v') // key "k", nviews 1, view "v"
	cases := []struct {
		name string
		idem []byte // the bytes after the workspace
	}{
		{"empty_key", []byte{0, 0, 0}},
		{"key_past_end", []byte{10, 'k'}},
		{"view_count_past_end", slices.Concat(appendStr(nil, "k"), []byte{50, 0})},
		{"count_over_int64", slices.Concat(oneView, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0})},
		{"missing_offline", slices.Concat(oneView, []byte{1})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			buf := slices.Concat(ws, c.idem)
			var e Entry
			assert.ErrorIs(t, Decode(buf, &e), ErrCorrupt)
			assert.ErrorIs(t, DecodeHeader(buf, &e), ErrCorrupt)
		})
	}
	// The well-formed neighbour of those cases decodes.
	var e Entry
	require.NoError(t, Decode(slices.Concat(ws, oneView, []byte{1, 2, 0}), &e))
	assert.Equal(t, "k", e.IdempotencyKey)
	assert.Equal(t, []ViewMetrics{{View: "v", Online: 1, Offline: 2}}, e.Response)
}

// TestDecodePositionedDamage: a kind 3 entry's partition and offset are
// checked, by Decode and by DecodeHeader.
func TestDecodePositionedDamage(t *testing.T) {
	ws := appendStr([]byte{Version, KindIngestPositioned, 0}, "ads")
	for name, pos := range map[string][]byte{
		"missing_offset":     {3},
		"partition_over_i32": {0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0},
		"offset_over_int64":  {3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0},
		"empty":              {},
	} {
		t.Run(name, func(t *testing.T) {
			buf := slices.Concat(ws, pos)
			var e Entry
			assert.ErrorIs(t, Decode(buf, &e), ErrCorrupt)
			assert.ErrorIs(t, DecodeHeader(buf, &e), ErrCorrupt)
		})
	}
	var e Entry
	require.NoError(t, Decode(slices.Concat(ws, []byte{3, 17, 0}), &e))
	assert.Equal(t, Position{Partition: 3, Offset: 17}, e.Position)
	assert.True(t, e.Positioned)
	// Reusing the entry for a kind 1 entry clears the position.
	require.NoError(t, Decode(AppendEntry(nil, &Entry{Workspace: "b"}), &e))
	assert.False(t, e.Positioned)
	assert.Zero(t, e.Position)
}

// TestDecodeIdempotentPositionedDamage: a kind 4 entry's key, position
// and response positions are each checked, by Decode and by DecodeHeader;
// kinds 2 and 3 cannot hold response positions.
func TestDecodeIdempotentPositionedDamage(t *testing.T) {
	ws := appendStr([]byte{Version, KindIngestIdempotentPositioned, 0}, "ads")
	idem := append(appendStr(nil, "k"), 0) // key "k", nviews 0
	for name, rest := range map[string][]byte{
		"no_position":            slices.Concat(idem),
		"empty_key":              {0, 0, 3, 17, 0, 0},
		"missing_positions":      slices.Concat(idem, []byte{3, 17}),
		"positions_past_end":     slices.Concat(idem, []byte{3, 17, 9, 1, 1, 0}),
		"response_partition_big": slices.Concat(idem, []byte{3, 17, 1, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 0}),
		"response_offset_short":  slices.Concat(idem, []byte{3, 17, 1, 2}),
	} {
		t.Run(name, func(t *testing.T) {
			buf := slices.Concat(ws, rest)
			var e Entry
			assert.ErrorIs(t, Decode(buf, &e), ErrCorrupt)
			assert.ErrorIs(t, DecodeHeader(buf, &e), ErrCorrupt)
		})
	}
	var e Entry
	require.NoError(t, Decode(slices.Concat(ws, idem, []byte{3, 17, 2, 0, 4, 3, 16, 0}), &e))
	assert.Equal(t, "k", e.IdempotencyKey)
	assert.Equal(t, Position{Partition: 3, Offset: 17}, e.Position)
	assert.Equal(t, []Position{{Partition: 0, Offset: 4}, {Partition: 3, Offset: 16}}, e.ResponsePositions)
	assert.Equal(t, byte(KindIngestIdempotentPositioned), e.Kind())
	// Reusing the entry for a kind 2 entry clears the positions.
	require.NoError(t, Decode(AppendEntry(nil, &Entry{Workspace: "b", IdempotencyKey: "k"}), &e))
	assert.False(t, e.Positioned)
	assert.Empty(t, e.ResponsePositions)
	for _, in := range []Entry{
		{IdempotencyKey: "k", ResponsePositions: []Position{{}}},
		{Positioned: true, ResponsePositions: []Position{{}}},
	} {
		assert.Panics(t, func() { AppendEntry(nil, &in) }, "kind %d with response positions", in.Kind())
	}
}

// TestPositionsRoundTrip: the positions list of kind 4 entries, also
// used alone in a Kafka header, round-trips and rejects damage.
func TestPositionsRoundTrip(t *testing.T) {
	for _, ps := range [][]Position{nil, {{Partition: 0, Offset: 0}}, {{Partition: math.MaxInt32, Offset: math.MaxInt64}, {Partition: 7, Offset: 300}}} {
		buf := AppendPositions(nil, ps)
		got, err := DecodePositions(buf)
		require.NoError(t, err)
		assert.Equal(t, len(ps), len(got))
		for i := range ps {
			assert.Equal(t, ps[i], got[i])
		}
		for cut := 0; cut < len(buf); cut++ {
			_, err := DecodePositions(buf[:cut])
			assert.ErrorIs(t, err, ErrCorrupt, "cut at %d", cut)
		}
		_, err = DecodePositions(append(buf, 0))
		assert.ErrorIs(t, err, ErrCorrupt, "trailing byte")
	}
}

// TestDecodeReusesEntryAcrossKinds: decoding a kind 1 entry into an Entry
// that held a kind 2 one clears the key and response.
func TestDecodeReusesEntryAcrossKinds(t *testing.T) {
	var e Entry
	require.NoError(t, Decode(AppendEntry(nil, &Entry{Workspace: "a", IdempotencyKey: "k", Response: []ViewMetrics{{View: "v"}}}), &e))
	require.Equal(t, "k", e.IdempotencyKey)
	require.NoError(t, Decode(AppendEntry(nil, &Entry{Workspace: "b"}), &e))
	assert.Equal(t, "", e.IdempotencyKey)
	assert.Empty(t, e.Response)
}

// TestKind1Golden: an entry without a key encodes exactly as before kind 2
// existed, so old logs and new kind 1 entries are byte-identical.
func TestKind1Golden(t *testing.T) {
	e := Entry{Workspace: "ads", IngestTime: 3, Sections: []Section{{Source: "s",
		Columns: []schema.Column{{Name: "n", Type: schema.ScalarType(schema.Int64)}}, Rows: []schema.Value{schema.Int(-2)}}}}
	want := []byte{1, 1, 6, 3, 'a', 'd', 's', 1, 1, 's', 1, 1, 'n', 2, 0, 1, 1, 3}
	assert.Equal(t, want, AppendEntry(nil, &e))
}

func FuzzDecode(f *testing.F) {
	r := rand.New(rand.NewPCG(5, 6))
	in := Entry{Workspace: "ads", Sections: []Section{{Source: "s", Columns: testColumns, Rows: randomRow(r)}}}
	f.Add(AppendEntry(nil, &in))
	f.Add([]byte{1, 1, 0, 0, 0})
	in.IdempotencyKey = "retry-7"
	in.Response = []ViewMetrics{{View: "user_click_counts", Online: 2, Offline: 2}, {View: "v2", Online: 0, Offline: math.MaxInt64}}
	f.Add(AppendEntry(nil, &in))
	f.Add([]byte{1, 2, 0, 0, 1, 'k', 0, 0})
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
		require.Equal(t, e.IdempotencyKey, e2.IdempotencyKey)
		require.Equal(t, len(e.Response), len(e2.Response))
		for i := range e.Response {
			require.Equal(t, e.Response[i], e2.Response[i])
		}
		// What Decode accepts, DecodeHeader reads the same.
		var h Entry
		require.NoError(t, DecodeHeader(data, &h))
		require.Equal(t, e.IngestTime, h.IngestTime)
		require.Equal(t, e.IdempotencyKey, h.IdempotencyKey)
	})
}

// TestDecodeBoundsCountsByEntrySize: a count in a short entry must not make
// the decoder allocate for it (an 11-byte entry once asked for 16 GiB).
func TestDecodeBoundsCountsByEntrySize(t *testing.T) {
	base := AppendEntry(nil, &Entry{Workspace: "ads"})
	huge := binary.AppendUvarint(nil, maxCount-1)
	sections := append(append([]byte(nil), base[:len(base)-1]...), huge...)
	var e Entry
	err := Decode(sections, &e)
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "section count exceeds entry size")

	columns := append(append([]byte(nil), base[:len(base)-1]...), 1, 1, 's')
	columns = append(columns, huge...)
	err = Decode(columns, &e)
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "column count exceeds entry size")

	tooMany := append(append([]byte(nil), base[:len(base)-1]...), binary.AppendUvarint(nil, maxCount+1)...)
	err = Decode(tooMany, &e)
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "too large")
}

// TestDecodeShared: DecodeShared decodes what Decode does, its strings
// sharing the buffer (a change to the buffer shows through them).
func TestDecodeShared(t *testing.T) {
	e := Entry{Workspace: "ws", IngestTime: 7, Sections: []Section{{Source: "src",
		Columns: []schema.Column{{Name: "k", Type: schema.ScalarType(schema.String)}},
		Rows:    []schema.Value{schema.Str("alpha"), schema.Str("beta")}}}}
	buf := AppendEntry(nil, &e)
	var a, b Entry
	require.NoError(t, Decode(buf, &a))
	require.NoError(t, DecodeShared(buf, &b))
	require.Equal(t, a, b)
	i := bytes.Index(buf, []byte("alpha"))
	buf[i] = 'A'
	require.Equal(t, "Alpha", b.Sections[0].Rows[0].S, "shared")
	require.Equal(t, "alpha", a.Sections[0].Rows[0].S, "copied")
}

// TestEntryExample pins the example of docs/format/record.md: the request
// encodes to the page's dump, as kind 2, and to the dump less its idem
// block as kind 1; the dump decodes back to the request.
func TestEntryExample(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano()
	want := Entry{Workspace: "ads", IngestTime: t0 + 6e9, IdempotencyKey: "retry-7",
		Response: []ViewMetrics{{View: "last_click", Online: 2, Offline: 2}},
		Sections: []Section{{Source: "clicks", Columns: []schema.Column{
			{Name: "user_id", Type: schema.ScalarType(schema.String)},
			{Name: "ts", Type: schema.ScalarType(schema.Timestamp)},
			{Name: "clicked", Type: schema.ScalarType(schema.Int64)},
			{Name: "tags", Type: schema.ArrayOf(schema.String)}},
			Rows: []schema.Value{
				schema.Str("u1"), schema.TimeNanos(t0), schema.Int(1), schema.ArrayVal([]schema.Value{schema.Str("x")}),
				schema.Str("u2"), schema.TimeNanos(t0 + 5e9), {}, schema.ArrayVal([]schema.Value{}),
			}}}}
	page := docgolden.Hex(t, "record.md", "idempotent-entry")
	require.Equal(t, page, AppendEntry(nil, &want))

	var got Entry
	require.NoError(t, Decode(page, &got))
	assert.Equal(t, want.Workspace, got.Workspace)
	assert.Equal(t, want.IngestTime, got.IngestTime)
	assert.Equal(t, want.IdempotencyKey, got.IdempotencyKey)
	assert.Equal(t, want.Response, got.Response)
	require.Len(t, got.Sections, 1)
	assert.Equal(t, want.Sections[0].Source, got.Sections[0].Source)
	assert.Equal(t, want.Sections[0].Columns, got.Sections[0].Columns)
	require.Len(t, got.Sections[0].Rows, len(want.Sections[0].Rows))
	for i, v := range want.Sections[0].Rows {
		assert.True(t, v.Equal(got.Sections[0].Rows[i]), "value %d: %v", i, got.Sections[0].Rows[i])
	}
	var h Entry
	require.NoError(t, DecodeHeader(page, &h))
	assert.Equal(t, "retry-7", h.IdempotencyKey)

	// Kind 1: the second byte is 1 and the idem block is gone.
	idem := []byte{7, 'r', 'e', 't', 'r', 'y', '-', '7', 1, 10, 'l', 'a', 's', 't', '_', 'c', 'l', 'i', 'c', 'k', 2, 2}
	at := bytes.Index(page, idem)
	require.Positive(t, at)
	kind1 := append(append([]byte{1, 1}, page[2:at]...), page[at+len(idem):]...)
	want.IdempotencyKey, want.Response = "", nil
	assert.Equal(t, kind1, AppendEntry(nil, &want))
}

// TestKind4Example pins the kind 4 example of docs/format/record.md.
func TestKind4Example(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 6, 0, time.UTC).UnixNano()
	want := Entry{Workspace: "ads", IngestTime: at, IdempotencyKey: "retry-7",
		Response:   []ViewMetrics{{View: "last_click", Online: 2, Offline: 2}},
		Positioned: true, Position: Position{Partition: 5, Offset: 42},
		ResponsePositions: []Position{{Partition: 2, Offset: 40}, {Partition: 5, Offset: 41}}}
	page := docgolden.Hex(t, "record.md", "idempotent-positioned-entry")
	require.Equal(t, page, AppendEntry(nil, &want))
	for _, decode := range []func([]byte, *Entry) error{Decode, DecodeHeader} {
		var got Entry
		require.NoError(t, decode(page, &got))
		assert.Equal(t, want.Workspace, got.Workspace)
		assert.Equal(t, want.IngestTime, got.IngestTime)
		assert.Equal(t, want.IdempotencyKey, got.IdempotencyKey)
		assert.Equal(t, want.Response, got.Response)
		assert.True(t, got.Positioned)
		assert.Equal(t, want.Position, got.Position)
		assert.Equal(t, want.ResponsePositions, got.ResponsePositions)
		assert.Empty(t, got.Sections)
	}
}

// SkipValue takes exactly the bytes DecodeValue reads, for every type,
// null or not, and refuses what DecodeValue refuses: every truncation and
// a bad tag or bool byte.
func TestSkipValueAgreesWithDecode(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	for range 200 {
		for i, v := range randomRow(r) {
			typ := testColumns[i].Type
			b := AppendValue(nil, v)
			n, err := SkipValue(append(b, 0xff), typ) // a byte after the value is not read
			require.NoError(t, err)
			_, dn, _ := DecodeValue(b, typ)
			require.Equal(t, dn, n, "column %s", testColumns[i].Name)
			require.Equal(t, len(b), n)
			for cut := range len(b) {
				_, skipErr := SkipValue(b[:cut], typ)
				_, _, decErr := DecodeValue(b[:cut], typ)
				require.Equal(t, decErr != nil, skipErr != nil, "column %s cut at %d", testColumns[i].Name, cut)
			}
		}
	}
	_, err := SkipValue([]byte{7}, schema.ScalarType(schema.Int64))
	require.ErrorIs(t, err, ErrCorrupt)
	_, err = SkipValue([]byte{tagPresent, 2}, schema.ScalarType(schema.Bool))
	require.ErrorIs(t, err, ErrCorrupt)
}
