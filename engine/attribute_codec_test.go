package engine

import (
	"bytes"
	"math"
	"math/rand"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/internal/docgolden"
	"github.com/featurelog/featurelog/schema"
)

func randomHistory(r *rand.Rand, n int, scale int64) []version {
	h := make([]version, n)
	for i := range h {
		h[i] = version{ts: (r.Int63n(1<<50) - 1<<49) / scale * scale, seq: uint64(r.Int63n(1 << 40)), idx: uint32(r.Intn(1000)),
			vals: []schema.Value{{Kind: schema.String, S: "s"}, {}, {Kind: schema.Int64, I: r.Int63()}}}
		if r.Intn(3) == 0 {
			h[i].vals[1] = schema.Value{Kind: schema.Float64, F: r.NormFloat64()}
		}
	}
	return mergeVersions([][]version{h})
}

var attrTypes = []schema.Type{{Kind: schema.String}, {Kind: schema.Float64}, {Kind: schema.Int64}}

// Histories survive encoding exactly, whatever their times' precision.
func TestAttrCodecRoundTrip(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for _, scale := range []int64{1, 1000, 1e6, 1e9} {
		for _, n := range []int{1, 2, 17, 500} {
			h := randomHistory(r, n, scale)
			b := appendVersions(nil, h, attrTypes)
			got, err := decodeVersions(b, attrTypes)
			require.NoError(t, err)
			require.Equal(t, len(h), len(got))
			for i := range h {
				require.Equal(t, h[i].ts, got[i].ts)
				require.Equal(t, h[i].seq, got[i].seq)
				require.Equal(t, h[i].idx, got[i].idx)
				for f := range attrTypes {
					require.True(t, h[i].vals[f].Equal(got[i].vals[f]))
				}
			}
			require.Equal(t, b, appendVersions(nil, got, attrTypes))
		}
	}
	extreme := []version{{ts: math.MinInt64 + 1, vals: make([]schema.Value, 3)}, {ts: math.MaxInt64, seq: 1, vals: make([]schema.Value, 3)}}
	got, err := decodeVersions(appendVersions(nil, extreme, attrTypes), attrTypes)
	require.NoError(t, err)
	require.Equal(t, extreme[1].ts, got[1].ts)
}

// A history decoded lazily yields every version's values as the full
// decoder does, read in any order, and reuses its memory across keys.
func TestAttrCodecLazy(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	var l lazyVersions
	dst := make([]schema.Value, len(attrTypes))
	for _, n := range []int{1, 2, 17, 500, 3} {
		h := randomHistory(r, n, 1000)
		b := appendVersions(nil, h, attrTypes)
		require.NoError(t, decodeVersionsLazy(b, attrTypes, &l))
		require.Len(t, l.h, n)
		order := append(r.Perm(n), 0, n-1, n-1) // random, then back to the start, then repeated
		for i := range n {
			order = append(order, i) // then ascending, as reads in time order come
		}
		for _, i := range order {
			require.Equal(t, h[i].ts, l.h[i].ts)
			require.Equal(t, h[i].seq, l.h[i].seq)
			require.Equal(t, h[i].idx, l.h[i].idx)
			require.NoError(t, l.valuesAt(i, attrTypes, dst))
			for f := range attrTypes {
				require.True(t, h[i].vals[f].Equal(dst[f]), "version %d of %d, feature %d: %v, want %v", i, n, f, dst[f], h[i].vals[f])
			}
		}
	}
	// What the full decoder refuses, the lazy one refuses.
	b := appendVersions(nil, randomHistory(r, 5, 1), attrTypes)
	for cut := range len(b) {
		_, full := decodeVersions(b[:cut], attrTypes)
		lazy := decodeVersionsLazy(b[:cut], attrTypes, &l)
		require.Equal(t, full != nil, lazy != nil, "cut at %d: full %v, lazy %v", cut, full, lazy)
	}
}

// Truncations and bit flips give errors, never panics or silent garbage
// that breaks the history's order.
func TestAttrCodecBadInput(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	b := appendVersions(nil, randomHistory(r, 20, 1000), attrTypes)
	for n := 0; n < len(b); n++ {
		_, err := decodeVersions(b[:n], attrTypes)
		require.Error(t, err, "truncated at %d", n)
	}
	for i := 0; i < len(b)*8; i++ {
		c := append([]byte(nil), b...)
		c[i/8] ^= 1 << (i % 8)
		h, err := decodeVersions(c, attrTypes)
		if err == nil {
			for j := 1; j < len(h); j++ {
				require.False(t, versionLess(&h[j], &h[j-1]))
			}
		}
	}
}

func FuzzDecodeVersions(f *testing.F) {
	r := rand.New(rand.NewSource(3))
	f.Add(appendVersions(nil, randomHistory(r, 5, 1e6), attrTypes))
	f.Add(appendVersions(nil, randomHistory(r, 1, 1), attrTypes))
	// A history decoded before, whose memory decodeVersionsInto reuses.
	prevH, prevV, err := decodeVersionsInto(appendVersions(nil, randomHistory(r, 7, 1e6), attrTypes), attrTypes, nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeVersions(b, attrTypes)
		hi, _, ierr := decodeVersionsInto(b, attrTypes, slices.Clone(prevH), slices.Clone(prevV))
		if (err == nil) != (ierr == nil) {
			t.Fatalf("decodeVersions: %v; decodeVersionsInto: %v", err, ierr)
		}
		var l lazyVersions
		if lerr := decodeVersionsLazy(b, attrTypes, &l); (err == nil) != (lerr == nil) {
			t.Fatalf("decodeVersions: %v; decodeVersionsLazy: %v", err, lerr)
		}
		if err != nil {
			return
		}
		got := make([]schema.Value, len(attrTypes))
		for i := range h {
			if lerr := l.valuesAt(i, attrTypes, got); lerr != nil {
				t.Fatalf("valuesAt(%d): %v", i, lerr)
			}
			for f := range got {
				if !got[f].Equal(h[i].vals[f]) {
					t.Fatalf("valuesAt(%d)[%d] = %v, want %v", i, f, got[f], h[i].vals[f])
				}
			}
		}
		if !bytes.Equal(appendVersions(nil, h, attrTypes), appendVersions(nil, hi, attrTypes)) {
			t.Fatalf("decodeVersionsInto decodes unlike decodeVersions")
		}
		for j := 1; j < len(h); j++ {
			if versionLess(&h[j], &h[j-1]) {
				t.Fatalf("decoded history out of order")
			}
		}
		if _, err := decodeVersions(appendVersions(nil, h, attrTypes), attrTypes); err != nil {
			t.Fatalf("re-encoding a decoded history: %v", err)
		}
	})
}

// TestAttrStateExample pins docs/format/attributes.md: the example's
// versions encode to the page's dump, byte for byte, and the dump decodes
// back to them; the same for the entity key example. A failure here is a
// format change: bump attrStateV1 (and keep reading version 1) rather
// than edit the page.
func TestAttrStateExample(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano()
	types := []schema.Type{{Kind: schema.Int64}, {Kind: schema.String}}
	want := []version{
		{ts: t0, seq: 7, idx: 0, vals: []schema.Value{schema.Int(1), {Kind: schema.String, S: "fr"}}},
		{ts: t0 + 5e9, seq: 9, idx: 2, vals: []schema.Value{{}, {Kind: schema.String, S: "fr"}}},
		{ts: t0 + 5e9, seq: 12, idx: 0, vals: []schema.Value{schema.Int(0), {Kind: schema.String, S: "de"}}},
	}
	page := docgolden.Hex(t, "attributes.md", "three-versions")
	require.Equal(t, page, appendVersions(nil, want, types))
	got, err := decodeVersions(page, types)
	require.NoError(t, err)
	require.Len(t, got, len(want))
	for i := range want {
		assert.Equal(t, want[i].ts, got[i].ts, "version %d", i)
		assert.Equal(t, want[i].seq, got[i].seq, "version %d", i)
		assert.Equal(t, want[i].idx, got[i].idx, "version %d", i)
		for f := range types {
			assert.True(t, want[i].vals[f].Equal(got[i].vals[f]), "version %d feature %d: %v", i, f, got[i].vals[f])
		}
	}
	assert.Equal(t, "attributes 1|Int64|String", attrLayout(types), "the layout string the page names")

	key := docgolden.Hex(t, "attributes.md", "entity-key")
	row := []schema.Value{{Kind: schema.String, S: "u1"}, schema.Int(42)}
	k, _ := entityKey(row, []int{0, 1}, nil)
	assert.Equal(t, string(key), k)
	k, _ = entityKey(row, []int{0}, nil)
	assert.Equal(t, "u1", k, "one String join key: the string itself")
}
