package tiles

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/schema"
)

var updateAgg = flag.Bool("update-agg", false, "rewrite testdata/agg_states.golden and the FuzzDecode seed corpus")

// TestEncodingRoundTrip: encode → decode gives the same results, the same
// bytes again, and the same behaviour when merged with another state;
// DecodeInto reuses a dirty state.
func TestEncodingRoundTrip(t *testing.T) {
	for ai, a := range testAggs() {
		t.Run(aggName(a), func(t *testing.T) {
			rng := newRand(uint64(ai))
			for _, n := range []int{0, 1, 5, 300} {
				s := addAll(a, genWorkload(rng, a.Input, n, true))
				b := s.AppendBinary([]byte("prefix"))
				require.Equal(t, "prefix", string(b[:6]), "AppendBinary appends")
				b = b[6:]
				d, err := a.Decode(b)
				require.NoError(t, err)
				assert.Equal(t, b, d.AppendBinary(nil), "re-encoding differs")
				assert.Equal(t, s.Empty(), d.Empty())
				requireSameResults(t, a, s, d)

				other := addAll(a, genWorkload(rng, a.Input, 40, true))
				s.Merge(other)
				d.Merge(other)
				assert.Equal(t, s.AppendBinary(nil), d.AppendBinary(nil), "a decoded state merges differently")

				dirty := addAll(a, genWorkload(rng, a.Input, 30, true))
				require.NoError(t, a.DecodeInto(dirty, b))
				assert.Equal(t, b, dirty.AppendBinary(nil), "DecodeInto kept old contents")
			}
		})
	}
}

// goldenStates are fixed states whose encodings pin the format.
func goldenStates() []struct {
	name string
	agg  Agg
	adds []aggAdd
} {
	o := func(ts int64, seq uint64, idx uint32) Order { return Order{TS: ts, Seq: seq, Idx: idx} }
	return []struct {
		name string
		agg  Agg
		adds []aggAdd
	}{
		{"count", Agg{Function: "count", Input: tString}, seqAt(vStr("a"), vStr("b"))},
		{"sum_int64", Agg{Function: "sum", Input: tInt64}, seqAt(vInt(5), vInt(-7))},
		{"sum_int64_empty", Agg{Function: "sum", Input: tInt64}, nil},
		{"sum_int64_beyond", Agg{Function: "sum", Input: tInt64}, seqAt(vInt(math.MaxInt64), vInt(2))},
		{"sum_float64", Agg{Function: "sum", Input: tFloat64}, seqAt(vF64(1e16), vF64(1))},
		{"mean_int32", Agg{Function: "mean", Input: tInt32}, seqAt(vInt32(1), vInt32(2))},
		{"mean_float32", Agg{Function: "mean", Input: tFloat32}, seqAt(vF32(1.5))},
		{"min_int64", Agg{Function: "min", Input: tInt64}, seqAt(vInt(3), vInt(-3))},
		{"max_float64", Agg{Function: "max", Input: tFloat64}, seqAt(vF64(3), vF64(-3))},
		{"var_samp_int64", Agg{Function: "var_samp", Input: tInt64}, seqAt(vInt(1), vInt(2), vInt(4))},
		{"stddev_pop_float64", Agg{Function: "stddev_pop", Input: tFloat64}, seqAt(vF64(1), vF64(2), vF64(4))},
		{"last_string", Agg{Function: "last", Input: tString}, []aggAdd{{vStr("x"), o(100, 7, 2)}}},
		{"last_array", Agg{Function: "last", Input: tArray}, []aggAdd{{arrOf(vInt(1), vInt(-1)), o(-5, 1, 0)}}},
		{"last_n_int64", Agg{Function: "last_n", N: 2, Input: tInt64}, []aggAdd{{vInt(1), o(10, 1, 0)}, {vInt(2), o(12, 2, 1)}, {vInt(3), o(11, 3, 0)}}},
		{"first_n_bool", Agg{Function: "first_n", N: 2, Input: tBool}, seqAt(vBool(true), vBool(false), vBool(true))},
		{"last_distinct_n_string", Agg{Function: "last_distinct_n", N: 2, Input: tString}, seqAt(vStr("a"), vStr("b"), vStr("a"))},
		{"first_distinct_n_float32", Agg{Function: "first_distinct_n", N: 2, Input: tFloat32}, seqAt(vF32(0.5), vF32(0.5), vF32(2))},
		{"last_distinct_n_timestamp", Agg{Function: "last_distinct_n", N: 20, Input: tTime}, seqAt(vTime(1e18), vTime(2e18))},
		{"approx_count_distinct_small", Agg{Function: "approx_count_distinct", Input: tString}, seqAt(vStr("a"), vStr("b"))},
		{"approx_count_distinct_dense", Agg{Function: "approx_count_distinct", Precision: 4, Input: tInt64}, seqAt(vInt(1), vInt(2), vInt(3))},
		{"approx_percentile", Agg{Function: "approx_percentile", Percentile: 0.5, Input: tFloat64}, seqAt(vF64(-2), vF64(0), vF64(3), vF64(3), vF64(math.Inf(1)))},
		{"moments_int64", Agg{Function: FuncMoments, Input: tInt64}, seqAt(vInt(4), vInt(-4))},
		{"moments_var_float64", Agg{Function: FuncMomentsVar, Input: tFloat64}, seqAt(vF64(4), vF64(-4))},
	}
}

// TestGoldenEncodings pins the bytes of docs/format/tiles.md: a change
// here is a format change (bump the version byte). Regenerate with
// go test ./tiles -run TestGoldenEncodings -update-agg.
func TestGoldenEncodings(t *testing.T) {
	var buf strings.Builder
	for _, g := range goldenStates() {
		s := g.agg.New()
		for _, a := range g.adds {
			s.Add(a.v, a.o)
		}
		fmt.Fprintf(&buf, "%s %s\n", g.name, hex.EncodeToString(s.AppendBinary(nil)))
	}
	path := filepath.Join("testdata", "agg_states.golden")
	if *updateAgg {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, []byte(buf.String()), 0o644))
		writeFuzzSeeds(t)
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, string(want), buf.String())
}

// fuzzAggs are the aggregators FuzzDecode picks from by its first byte.
var fuzzAggs = testAggs()

// writeFuzzSeeds writes the encodings of small random states of every
// aggregator as the FuzzDecode seed corpus.
func writeFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	require.NoError(t, os.RemoveAll(dir))
	require.NoError(t, os.MkdirAll(dir, 0o755))
	bad := regexp.MustCompile(`[^a-zA-Z0-9_=.-]+`)
	for i, a := range fuzzAggs {
		for _, n := range []int{0, 3, 40} {
			s := addAll(a, genWorkload(newRand(uint64(i*7+n)), a.Input, n, true))
			body := fmt.Sprintf("go test fuzz v1\nbyte(%q)\n[]byte(%q)\n", byte(i), s.AppendBinary(nil))
			name := fmt.Sprintf("%03d-%s-%d", i, bad.ReplaceAllString(aggName(a), "_"), n)
			require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
		}
	}
}

// FuzzDecode: no input makes Decode panic; what decodes re-encodes to a
// fixed point, and can be read, merged, added to and encoded.
func FuzzDecode(f *testing.F) {
	for i, a := range fuzzAggs {
		f.Add(byte(i), addAll(a, genWorkload(newRand(uint64(i)), a.Input, 5, true)).AppendBinary(nil))
	}
	f.Fuzz(func(t *testing.T, sel byte, data []byte) {
		a := fuzzAggs[int(sel)%len(fuzzAggs)]
		s, err := a.Decode(data)
		if err != nil {
			var se *StateError
			require.True(t, errors.As(err, &se), "%v is not a *StateError", err)
			require.LessOrEqual(t, se.Offset, len(data))
			return
		}
		b := s.AppendBinary(nil)
		d, err := a.Decode(b)
		require.NoError(t, err, "the re-encoding of a decoded state does not decode")
		require.Equal(t, b, d.AppendBinary(nil), "re-encoding is not a fixed point")
		want, got := results(a, s), results(a, d)
		for i := range want {
			require.True(t, want[i].Equal(got[i]), "%v != %v", want[i], got[i])
		}
		acc := a.New()
		acc.Merge(s)
		acc.Merge(d)
		acc.Add(genValue(newRand(1), a.Input, 3), Order{TS: 1})
		_ = results(a, acc)
		_ = acc.AppendBinary(nil)
		_ = s.MemSize()
	})
}

func TestDecodeCorrupt(t *testing.T) {
	enc := func(a Agg, adds ...aggAdd) []byte {
		s := a.New()
		for _, x := range adds {
			s.Add(x.v, x.o)
		}
		return s.AppendBinary(nil)
	}
	count := Agg{Function: "count", Input: tInt64}
	sumI32 := Agg{Function: "sum", Input: tInt32}
	minI32 := Agg{Function: "min", Input: tInt32}
	maxF32 := Agg{Function: "max", Input: tFloat32}
	lastB := Agg{Function: "last", Input: tBool}
	lastN := Agg{Function: "last_n", N: 2, Input: tInt64}
	distinct := Agg{Function: "last_distinct_n", N: 3, Input: tString}
	hll := Agg{Function: "approx_count_distinct", Input: tInt64}
	hll4 := Agg{Function: "approx_count_distinct", Precision: 4, Input: tInt64}
	pct := Agg{Function: "approx_percentile", Percentile: 0.5, Input: tFloat64}
	mom := Agg{Function: FuncMoments, Input: tInt64}

	hllDense := enc(hll4, seqAt(vInt(1), vInt(2), vInt(3))...)
	tests := []struct {
		name   string
		agg    Agg
		data   []byte
		reason string
	}{
		{"empty", count, nil, "truncated"},
		{"version only", count, []byte{1}, "truncated"},
		{"unknown version", count, []byte{2, codeCount, 0}, "unknown version 2"},
		{"another function's state", count, enc(Agg{Function: "sum", Input: tInt64}), "code 2, not 1"},
		{"trailing bytes", count, append(enc(count), 0), "1 trailing bytes"},
		{"bad uvarint", count, []byte{1, codeCount, 0x80}, "bad uvarint"},
		{"count beyond int64", count, []byte{1, codeCount, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "out of range"},
		{"truncated sum", sumI32, []byte{1, codeIntSum, 0x02}, "bad varint"},
		{"Int32 min out of range", minI32, []byte{1, codeIntMin, 0x80, 0x80, 0x80, 0x80, 0x10}, "Int32 value"},
		{"Float32 max not a float32", maxF32, append([]byte{1, codeFloatMax}, 0x9a, 0x99, 0x99, 0x99, 0x99, 0x99, 0xb9, 0x3f), "not a Float32 value"},
		{"bad bool", lastB, []byte{1, codeLast, 2, 0, 0, 7}, "bad Bool byte 7"},
		{"last_n over n", lastN, []byte{1, codeLastN, 3, 2, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 6}, "exceeds the limit 2"},
		{"last_n out of order", lastN, []byte{1, codeLastN, 2, 4, 1, 0, 2, 0, 0, 0, 4}, "entry 1 out of order"},
		{"last_distinct_n repeats a value", distinct, append(enc(distinct, seqAt(vStr("a"))...)[:2],
			2, 2, 0, 0, 1, 'a', 2, 0, 0, 1, 'a'), "2 entries hold only 1 distinct values"},
		{"hll precision", hll, append(enc(hll4)[:2], 4, 0, 0), "precision 4, want 8"},
		{"hll unknown mode", hll, []byte{1, codeHLL, 8, 9}, "unknown mode 9"},
		{"hll unsorted hashes", hll, append([]byte{1, codeHLL, 8, 0, 2}, bytes.Repeat([]byte{1}, 16)...), "not strictly increasing"},
		{"hll too many small hashes", hll, append([]byte{1, codeHLL, 8, 0, 33}, make([]byte, 33*8)...), "exceeds the limit 32"},
		{"hll dense of another precision", hll, append([]byte{1, codeHLL, 8, 1}, hllDense[4:]...), "not a version 2 dense sketch of precision 8"},
		{"hll bad register", hll4, append(bytes.Clone(hllDense[:len(hllDense)-1]), 200), "registers:"},
		{"percentile precision", pct, []byte{1, codePercentile, 101, 0}, "precision 101, want 100"},
		{"percentile zero count", pct, []byte{1, codePercentile, 100, 1, 0, 0}, "bin count 0"},
		{"percentile key outside the mapping", pct, []byte{1, codePercentile, 100, 1, 2, 1}, "outside the mapping"},
		{"percentile keys not increasing", pct, []byte{1, codePercentile, 100, 2, 0, 1, 0, 1}, "delta 0"},
		{"percentile more bins than bytes", pct, []byte{1, codePercentile, 100, 100, 0, 1}, "exceeds"},
		{"moments min above max", mom, []byte{1, codeIntMoments, 1, 0, 0, 4, 2}, "min 2 above max 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.agg.Decode(tt.data)
			require.Error(t, err)
			var se *StateError
			require.True(t, errors.As(err, &se))
			assert.ErrorIs(t, err, ErrCorruptState)
			assert.Contains(t, se.Reason, tt.reason)
			assert.Equal(t, tt.agg.Function, se.Function)

			dst := addAll(tt.agg, genWorkload(newRand(9), tt.agg.Input, 5, true))
			require.Error(t, tt.agg.DecodeInto(dst, tt.data))
			assert.True(t, dst.Empty(), "a failed DecodeInto leaves the state empty")
		})
	}
}

// TestDecodeValuesOfEveryKind decodes a last state of every type.
func TestDecodeValuesOfEveryKind(t *testing.T) {
	for _, in := range allTypes {
		a := Agg{Function: "last", Input: in}
		v := genValue(newRand(2), in, 5)
		s := a.New()
		s.Add(v, Order{TS: -3, Seq: math.MaxUint64, Idx: math.MaxUint32})
		d, err := a.Decode(s.AppendBinary(nil))
		require.NoError(t, err)
		assert.True(t, v.Equal(d.Result()), "%v: %v != %v", in, v, d.Result())
		assert.Equal(t, schema.Kind(in.Kind), d.Result().Kind)
	}
}
