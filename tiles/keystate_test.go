package tiles

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/schema"
)

// ksWidth is the number of values an event of ksSpec carries: input 7 is
// read by no aggregator, so key states do not store it.
const ksWidth = 8

// ksSpec is a view over seven inputs of different types, with fused and
// separate states, sketches and n-functions, and every window shape the
// interval allows.
func ksSpec(interval int64) Spec {
	aggs := []Agg{
		{Function: "count", Input: tFloat64}, {Function: "sum", Input: tFloat64}, {Function: "min", Input: tFloat64},
		{Function: "max", Input: tFloat64}, {Function: "mean", Input: tFloat64}, {Function: "var_samp", Input: tFloat64},
		{Function: "last_n", N: 3, Input: tFloat64}, {Function: "approx_count_distinct", Input: tFloat64},
		{Function: "approx_percentile", Percentile: 0.9, Input: tFloat64},
		{Function: "sum", Input: tInt64}, {Function: "last", Input: tInt64}, {Function: "approx_percentile", Percentile: 0.5, Input: tInt64},
		{Function: "count", Input: tString}, {Function: "last_distinct_n", N: 2, Input: tString},
		{Function: "approx_count_distinct", Precision: 12, Input: tString},
		{Function: "last", Input: tArray},
		{Function: "sum", Input: tFloat32},
		{Function: "first_n", N: 2, Input: tBool},
		{Function: "count", Input: tTime}, {Function: "last", Input: tTime},
	}
	inputs := []int{0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 4, 5, 6, 6}
	spec := Spec{Aggs: aggs, AggInput: inputs, Interval: interval, Start: math.MinInt64}
	windows := []Window{{Size: 37 * Second}, {Size: 10 * Minute}, {Size: Hour}, {Size: Day},
		{Size: 3 * Day, Offset: Hour}, {Lifetime: true}}
	for ai := range aggs {
		for _, w := range windows {
			if interval == 0 || (w.Size%interval == 0 && w.Offset%interval == 0) {
				spec.Features = append(spec.Features, Feature{Agg: ai, Window: w})
			}
		}
	}
	return spec
}

var ksTypes = []schema.Type{tFloat64, tInt64, tString, tArray, tFloat32, tBool, tTime, tInt64}

// ksEvent is one event of a key state workload.
type ksEvent struct {
	key  string
	o    Order
	vals []schema.Value
}

// ksWorkload returns events of keys with 1, 31, 32, 33, 500 and a random
// number of events, in arrival order (increasing Seq): mostly in time
// order, with late events, duplicates (same time and values, a later
// Seq), several events per log entry, nulls, and times that are whole
// seconds for some keys.
func ksWorkload(rng *rand.Rand) []ksEvent {
	sizes := []int{1, 31, 32, 33, 500, 1 + rng.IntN(100)}
	type keyGen struct {
		name     string
		left     int
		nullRate int // one in nullRate values is null; 0: none
		seconds  bool
	}
	var gens []*keyGen
	for i, n := range sizes {
		gens = append(gens, &keyGen{name: fmt.Sprintf("key-%d-%d", i, n), left: n, nullRate: []int{0, 7, 2}[i%3], seconds: i%2 == 0})
	}
	now := int64(1_700_000_000) * 1e9
	var out []ksEvent
	seq := uint64(1)
	for len(gens) > 0 {
		gi := rng.IntN(len(gens))
		g := gens[gi]
		now += rng.Int64N(2 * Minute)
		e := ksEvent{key: g.name, o: Order{TS: now - rng.Int64N(Minute), Seq: seq}}
		switch r := rng.IntN(20); {
		case r == 0:
			e.o.TS = now - rng.Int64N(3*Day) // late
		case r == 1 && len(out) > 0: // a duplicate of an earlier event of the key
			for _, p := range slices.Backward(out) {
				if p.key == g.name {
					e.o.TS, e.vals = p.o.TS, p.vals
					break
				}
			}
		}
		if g.seconds {
			e.o.TS = e.o.TS / Second * Second
		}
		if e.vals == nil {
			e.vals = make([]schema.Value, ksWidth)
			for c, t := range ksTypes {
				if g.nullRate == 0 || rng.IntN(g.nullRate) != 0 {
					e.vals[c] = genValue(rng, t, 50)
				}
			}
		}
		out = append(out, e)
		if rng.IntN(3) != 0 { // else the next event shares the log entry
			seq++
		}
		if g.left--; g.left == 0 {
			gens = slices.Delete(gens, gi, gi+1)
		}
	}
	return fixIdx(out)
}

// fixIdx renumbers events within each log entry 0, 1, 2, ...
func fixIdx(evs []ksEvent) []ksEvent {
	for i := range evs {
		evs[i].o.Idx = 0
		if i > 0 && evs[i-1].o.Seq == evs[i].o.Seq {
			evs[i].o.Idx = evs[i-1].o.Idx + 1
		}
	}
	return evs
}

// split assigns each event to one of n sources: at random, or by ranges
// of log sequence as the engine's memtables and segments are.
func split(rng *rand.Rand, evs []ksEvent, n int) []int {
	src := make([]int, len(evs))
	if rng.IntN(2) == 0 {
		for i := range src {
			src[i] = rng.IntN(n)
		}
		return src
	}
	cuts := make([]uint64, n-1)
	for i := range cuts {
		cuts[i] = evs[rng.IntN(len(evs))].o.Seq
	}
	slices.Sort(cuts)
	for i, e := range evs {
		src[i], _ = slices.BinarySearch(cuts, e.o.Seq+1)
		src[i] = min(src[i], n-1)
	}
	return src
}

func mustStore(t testing.TB, spec Spec, hot HotTier) *Store {
	t.Helper()
	s, err := NewStore(spec, hot)
	require.NoError(t, err)
	return s
}

// TestKeyStateDifferential splits random workloads across 1–4 sources
// and checks that reading the key from all of them — the first store
// with the others' decoded states, decoded states only, their merge, the
// merge of live snapshots — reads like one store that got every event.
func TestKeyStateDifferential(t *testing.T) {
	seeds := uint64(4)
	if testing.Short() {
		seeds = 1
	}
	for _, interval := range []int64{0, 10 * Minute, Hour} {
		for seed := range seeds {
			t.Run(fmt.Sprintf("%s/seed=%d", intervalName(interval), seed), func(t *testing.T) {
				checkSplit(t, newRand(seed*31+uint64(interval)), ksSpec(interval))
			})
		}
	}
}

func checkSplit(t *testing.T, rng *rand.Rand, spec Spec) {
	evs := ksWorkload(rng)
	nsrc := 1 + int(rng.IntN(4))
	single := mustStore(t, spec, HotTier{})
	srcs := make([]*Store, nsrc)
	for i := range srcs { // the sources have hot tiers, which must not see the others' states
		srcs[i] = mustStore(t, spec, HotTier{Cache: foreverCache{}, ID: uint64(i + 1), MinSpan: 10 * Minute})
	}
	perKey := map[string][]ksEvent{}
	for i, si := range split(rng, evs, nsrc) {
		e := evs[i]
		single.Add(e.key, e.o, e.vals)
		srcs[si].Add(e.key, e.o, e.vals)
		perKey[e.key] = append(perKey[e.key], e)
	}
	require.Equal(t, slices.Sorted(maps.Keys(perKey)), single.Keys())
	reuse := make([]KeyState, nsrc) // DecodeKeyStateInto's targets, reused from key to key
	for key, kevs := range perKey {
		checkKey(t, rng, spec, single, srcs, key, kevs, reuse)
	}
}

// checkKey compares the ways of reading key from srcs against single.
func checkKey(t *testing.T, rng *rand.Rand, spec Spec, single *Store, srcs []*Store, key string, kevs []ksEvent, reuse []KeyState) {
	s0 := srcs[0]
	dec := make([]*KeyState, len(srcs))
	own := make([]*KeyState, len(srcs))
	encs := make([][]byte, len(srcs))
	for i, s := range srcs {
		b, ok := s.AppendKeyState(nil, key)
		if !ok {
			require.Nil(t, s.Own(key))
			continue
		}
		d, err := s0.DecodeKeyState(b)
		require.NoError(t, err)
		require.Equal(t, b, s0.AppendEncoded(nil, d), "encode → decode → encode differs")
		dec[i], own[i], encs[i] = d, s.Own(key), b
		require.Equal(t, b, s.AppendEncoded(nil, own[i]), "Own encodes differently from the store")
	}
	merged := s0.MergeKeyStates(dec)
	for _, d := range dec {
		if d != nil && d.tl != nil {
			require.Nil(t, d.ks.levels, "MergeKeyStates built a part's lazy tiles")
		}
	}
	for i, d := range dec {
		if d != nil {
			require.Equal(t, encs[i], s0.AppendEncoded(nil, d), "MergeKeyStates modified its input")
		}
	}
	mb := s0.AppendEncoded([]byte("prefix"), merged)[6:]
	md, err := s0.DecodeKeyState(mb)
	require.NoError(t, err)
	require.Equal(t, mb, s0.AppendEncoded(nil, md), "the merge's encode → decode → encode differs")
	checkMergeShape(t, single, key, kevs, merged)
	ownMerged := s0.MergeKeyStates(own)
	var into []*KeyState // decoded into states that held other keys before
	for i, b := range encs {
		if b != nil {
			require.NoError(t, s0.DecodeKeyStateInto(b, &reuse[i]))
			require.Equal(t, b, s0.AppendEncoded(nil, &reuse[i]), "DecodeKeyStateInto → encode differs")
			into = append(into, &reuse[i])
		}
	}

	reads := map[string]func(tm int64, out []schema.Value){
		"own+extra":   func(tm int64, out []schema.Value) { s0.ReadWith(key, tm, out, true, dec[1:]) },
		"extra only":  func(tm int64, out []schema.Value) { s0.ReadWith(key, tm, out, false, dec) },
		"merged":      func(tm int64, out []schema.Value) { s0.ReadWith(key, tm, out, false, []*KeyState{merged}) },
		"merged Own":  func(tm int64, out []schema.Value) { s0.ReadWith(key, tm, out, false, []*KeyState{ownMerged}) },
		"merge again": func(tm int64, out []schema.Value) { s0.ReadWith(key, tm, out, false, []*KeyState{md}) },
		"into reused": func(tm int64, out []schema.Value) { s0.ReadWith(key, tm, out, false, into) },
	}
	want := make([]schema.Value, len(spec.Features))
	got := make([]schema.Value, len(spec.Features))
	for _, tm := range readTimes(rng, kevs) {
		single.Read(key, tm, want)
		for name, read := range reads {
			read(tm, got)
			for fi, f := range spec.Features {
				a := spec.Aggs[f.Agg]
				msg := fmt.Sprintf("%s: key %s (%d events) at %d, feature %d %s %+v", name, key, len(kevs), tm, fi, aggName(a), f.Window)
				if inexactMerge(a) {
					closeResult(t, want[fi], got[fi], msg)
				} else {
					require.True(t, want[fi].Kind == got[fi].Kind && want[fi].Equal(got[fi]), "%s: want %#v, got %#v", msg, want[fi], got[fi])
				}
			}
		}
	}
}

// checkMergeShape checks the merged state against the single store's:
// events, change times, and (continuous views and small keys, whose
// encodings hold only raw events) the same bytes.
func checkMergeShape(t *testing.T, single *Store, key string, kevs []ksEvent, merged *KeyState) {
	require.Equal(t, len(kevs), merged.Events())
	whole := single.Own(key)
	require.Equal(t, len(kevs), whole.Events())
	require.Equal(t, whole.ChangeTimes(nil), merged.ChangeTimes(nil))
	var times []int64
	for _, e := range kevs {
		tm := e.o.TS
		if !single.raw && len(kevs) >= smallKey {
			tm = floorTo(tm, single.levels[0])
		}
		times = append(times, tm)
	}
	slices.Sort(times)
	require.Equal(t, slices.Compact(times), merged.ChangeTimes(nil))
	require.Equal(t, len(kevs) >= smallKey, merged.tiled(), "tiled iff smallKey events")
	if single.raw && merged.tl != nil {
		require.Nil(t, merged.ks.levels, "decoding, merging and encoding built the tiles of a continuous view")
	}
	if single.raw || len(kevs) < smallKey {
		b, ok := single.AppendKeyState(nil, key)
		require.True(t, ok)
		require.Equal(t, b, single.AppendEncoded(nil, merged), "the merge encodes unlike the single store")
	}
	require.Positive(t, merged.MemSize())
}

// readTimes returns instants to read at: around and at event times, tile
// boundaries, before the first event and days after the last.
func readTimes(rng *rand.Rand, kevs []ksEvent) []int64 {
	lo, hi := kevs[0].o.TS, kevs[0].o.TS
	for _, e := range kevs {
		lo, hi = min(lo, e.o.TS), max(hi, e.o.TS)
	}
	out := []int64{lo - Hour, lo, lo + 1, hi, hi + 1, hi + 4*Day, math.MaxInt64, math.MinInt64}
	for range 12 {
		e := kevs[rng.IntN(len(kevs))].o.TS
		out = append(out, e, e+1, floorTo(e, 10*Minute), lo+rng.Int64N(hi-lo+2*Day))
	}
	return out
}

// closeResult compares float results to rounding: the merge order of
// float sums, means and variances differs between sources.
func closeResult(t *testing.T, want, got schema.Value, msg string) {
	t.Helper()
	require.Equal(t, want.Kind, got.Kind, "%s: want %#v, got %#v", msg, want, got)
	if want.Equal(got) {
		return
	}
	require.LessOrEqual(t, math.Abs(want.F-got.F), relRegroup*math.Max(1, math.Abs(want.F)), "%s: want %v, got %v", msg, want.F, got.F)
}

// TestOwnIsASnapshot: later Adds change neither an Own snapshot's
// encoding nor its reads.
func TestOwnIsASnapshot(t *testing.T) {
	for _, interval := range []int64{0, 10 * Minute} {
		spec := ksSpec(interval)
		s := mustStore(t, spec, HotTier{})
		rng := newRand(5)
		evs := ksWorkload(rng)
		for _, e := range evs[:len(evs)/2] {
			s.Add(e.key, e.o, e.vals)
		}
		snaps := map[string][]byte{}
		owns := map[string]*KeyState{}
		for _, k := range s.Keys() {
			owns[k] = s.Own(k)
			snaps[k] = s.AppendEncoded(nil, owns[k])
		}
		for _, e := range evs[len(evs)/2:] {
			e.o.TS -= 2 * Day // late: lands inside existing tiles and before existing raw events
			s.Add(e.key, e.o, e.vals)
		}
		for k, b := range snaps {
			assert.Equal(t, b, s.AppendEncoded(nil, owns[k]), "key %s", k)
		}
		assert.Nil(t, s.Own("no such key"))
		_, ok := s.AppendKeyState(nil, "no such key")
		assert.False(t, ok)
	}
}

// TestMergeKeyStatesEdges: no parts, nil parts, one part.
func TestMergeKeyStatesEdges(t *testing.T) {
	s := mustStore(t, ksSpec(0), HotTier{})
	require.Nil(t, s.MergeKeyStates(nil))
	require.Nil(t, s.MergeKeyStates([]*KeyState{nil, nil}))
	s.Add("k", Order{TS: 5}, make([]schema.Value, ksWidth))
	own := s.Own("k")
	require.Same(t, own, s.MergeKeyStates([]*KeyState{nil, own}))
	out := make([]schema.Value, len(s.spec.Features))
	s.ReadWith("k", 10, out, false, []*KeyState{nil})
	want := make([]schema.Value, len(s.spec.Features))
	mustStore(t, ksSpec(0), HotTier{}).Read("k", 10, want)
	require.Equal(t, want, out, "own=false reads as a store without the key")
	require.Equal(t, continuousLevels, s.Levels())
}

// TestSpecRejectsMixedInputTypes: an input has one type, as key states
// store each input once.
func TestSpecRejectsMixedInputTypes(t *testing.T) {
	spec := Spec{Aggs: []Agg{{Function: "count", Input: tInt64}, {Function: "count", Input: tString}}, AggInput: []int{0, 0}, Start: math.MinInt64}
	require.Error(t, spec.Validate())
	spec.AggInput = []int{0, -1}
	require.Error(t, spec.Validate())
	spec.AggInput = []int{0, 1}
	require.NoError(t, spec.Validate())
}

// realEncodings returns the encodings of every key of a workload, per
// spec variant, for the corruption tests and the fuzz seeds.
func realEncodings(t testing.TB) (stores []*Store, encs [][][]byte) {
	for vi, interval := range []int64{0, 10 * Minute} {
		s := mustStore(t, ksSpec(interval), HotTier{})
		for _, e := range ksWorkload(newRand(uint64(vi) + 100)) {
			s.Add(e.key, e.o, e.vals)
		}
		var bs [][]byte
		for _, k := range s.Keys() {
			b, _ := s.AppendKeyState(nil, k)
			bs = append(bs, b)
		}
		stores, encs = append(stores, s), append(encs, bs)
	}
	return stores, encs
}

// requireCorrupt asserts that b does not decode, with a *KeyStateError.
func requireCorrupt(t *testing.T, s *Store, b []byte, msg string, args ...any) *KeyStateError {
	t.Helper()
	ks, err := s.DecodeKeyState(b)
	require.Error(t, err, append([]any{msg}, args...)...)
	require.Nil(t, ks)
	var ke *KeyStateError
	require.True(t, errors.As(err, &ke), "%v is not a *KeyStateError", err)
	require.ErrorIs(t, err, ErrCorruptKeyState)
	require.LessOrEqual(t, ke.Offset, len(b))
	return ke
}

// TestDecodeKeyStateTruncated: every strict prefix of a real encoding is
// an error. Encodings over 4 KiB (keys of hundreds of events), which
// would take quadratic time, are cut at every length in their first and
// last 1 KiB and at 500 random lengths between.
func TestDecodeKeyStateTruncated(t *testing.T) {
	stores, encs := realEncodings(t)
	rng := newRand(3)
	for vi, s := range stores {
		for _, b := range encs[vi] {
			for n := range len(b) {
				if len(b) > 4<<10 && n >= 1<<10 && n < len(b)-1<<10 && rng.IntN(len(b)-2<<10) >= 500 {
					continue
				}
				requireCorrupt(t, s, b[:n], "prefix %d of %d bytes decodes", n, len(b))
			}
		}
	}
}

// TestDecodeKeyStateBitFlips: flipped bits are an error or a state that
// reads, encodes and merges; never a panic.
func TestDecodeKeyStateBitFlips(t *testing.T) {
	stores, encs := realEncodings(t)
	rng := newRand(9)
	for vi, s := range stores {
		for _, b := range encs[vi] {
			for range 200 {
				c := slices.Clone(b)
				for range 1 + rng.IntN(3) {
					i := rng.IntN(len(c) * 8)
					c[i/8] ^= 1 << (i % 8)
				}
				exercise(t, s, c)
			}
		}
	}
}

// exercise decodes b and, when it decodes, uses the state every way.
func exercise(t *testing.T, s *Store, b []byte) {
	ks, err := s.DecodeKeyState(b)
	// DecodeKeyStateInto a state that held another key agrees: the same
	// error, or a state that encodes the same.
	var into KeyState
	if keys := s.Keys(); len(keys) > 0 {
		prev, ok := s.AppendKeyState(nil, keys[len(keys)/2])
		require.True(t, ok)
		require.NoError(t, s.DecodeKeyStateInto(prev, &into))
	}
	ierr := s.DecodeKeyStateInto(b, &into)
	if err != nil {
		var ke *KeyStateError
		require.True(t, errors.As(err, &ke), "%v is not a *KeyStateError", err)
		require.LessOrEqual(t, ke.Offset, len(b))
		require.Equal(t, err, ierr, "DecodeKeyStateInto fails unlike DecodeKeyState")
		require.Zero(t, into.Events(), "a failed DecodeKeyStateInto left a state")
		return
	}
	require.NoError(t, ierr)
	require.Equal(t, s.AppendEncoded(nil, ks), s.AppendEncoded(nil, &into), "DecodeKeyStateInto decodes unlike DecodeKeyState")
	e := s.AppendEncoded(nil, ks)
	d, err := s.DecodeKeyState(e)
	require.NoError(t, err, "the re-encoding of a decoded state does not decode")
	require.Equal(t, e, s.AppendEncoded(nil, d), "re-encoding is not a fixed point")
	out := make([]schema.Value, len(s.spec.Features))
	times := ks.ChangeTimes(nil)
	for _, tm := range []int64{0, math.MaxInt64, times[0], times[len(times)-1] + 1} {
		s.ReadWith("x", tm, out, false, []*KeyState{ks, d})
	}
	m := s.MergeKeyStates([]*KeyState{ks, d})
	require.Equal(t, 2*ks.Events(), m.Events())
	_ = s.AppendEncoded(nil, m)
	_ = ks.MemSize()
}

// ksBytes builds encodings by hand for the corruption table.
type ksBytes []byte

func (b ksBytes) u8(x ...byte) ksBytes    { return append(b, x...) }
func (b ksBytes) uv(x uint64) ksBytes     { return binary.AppendUvarint(b, x) }
func (b ksBytes) v(x int64) ksBytes       { return binary.AppendVarint(b, x) }
func (b ksBytes) cat(o ksBytes) ksBytes   { return append(b, o...) }
func head(form byte) ksBytes              { return ksBytes{keyStateVersion, form} }
func rawHead(n uint64, unit byte) ksBytes { return head(formSmall).uv(n).u8(unit) }

// tileLevels encodes an interval view's levels for a count over events
// at time ts: one tile per level, each holding count c.
func tileLevels(levels []int64, ts int64, c uint64) ksBytes {
	b := ksBytes{}.uv(uint64(len(levels)))
	for _, r := range levels {
		b = b.uv(1).v(floorDiv(ts, r)).uv(1).uv(c)
	}
	return b
}

// TestDecodeKeyStateCorrupt decodes hand-made bad encodings against a
// count over one Int64 input.
func TestDecodeKeyStateCorrupt(t *testing.T) {
	spec := func(interval int64) Spec {
		return Spec{Aggs: []Agg{{Function: "count", Input: tInt64}}, AggInput: []int{0}, Interval: interval, Start: math.MinInt64,
			Features: []Feature{{Agg: 0, Window: Window{Lifetime: true}}}}
	}
	cont := mustStore(t, spec(0), HotTier{})
	ival := mustStore(t, spec(10*Minute), HotTier{})
	lv := ival.levels
	// one event at ts 100, seq 5, value 7; two events at ts 100 and 130
	one := rawHead(1, 0).v(100).v(5).uv(0).u8(colDense).v(7)
	two := func(dts uint64, seq2 int64, mode byte, col ...byte) ksBytes {
		return rawHead(2, 1).v(100).uv(dts).v(5).v(seq2).uv(0).uv(0).u8(mode).u8(col...)
	}
	valid := []struct {
		name string
		s    *Store
		b    ksBytes
	}{
		{"one_event", cont, one},
		{"two_events", cont, two(3, 1, colDense, 2, 4)},
		{"a_null", cont, two(3, 1, colNulls, 0b10, 4)},
		{"tiles", ival, head(formTiles).uv(3).cat(tileLevels(lv, 0, 3))},
		{"continuous_tiled", cont, head(formRawTiled).cat(one[2:])},
	}
	for _, c := range valid {
		ks, err := c.s.DecodeKeyState(c.b)
		require.NoError(t, err, c.name)
		require.Equal(t, []byte(c.b), c.s.AppendEncoded(nil, ks), c.name)
	}
	for _, c := range []struct {
		name string
		s    *Store
		b    ksBytes
		at   int // the offset the error reports
	}{
		{"empty", cont, nil, 0},
		{"bad_version", cont, ksBytes{2, 0}, 0},
		{"unknown_form", cont, head(9), 1},
		{"tiles_in_continuous_view", cont, head(formTiles).cat(ksBytes{}.uv(3)).cat(tileLevels(lv, 0, 3)), 1},
		{"raw_tiled_in_interval_view", ival, head(formRawTiled).cat(one[2:]), 1},
		{"no_events", cont, head(formSmall).uv(0), 2},
		{"count_beyond_bytes", cont, head(formSmall).uv(1000).u8(0, 0, 0), 4},
		{"bad_time_unit", cont, rawHead(1, 19).v(100).v(5).uv(0).u8(colDense).v(7), 3},
		{"time_overflow", cont, rawHead(2, 0).v(math.MaxInt64).uv(1).v(5).v(1).uv(0).uv(0).u8(colDense, 2, 4), 14},
		{"out_of_order", cont, two(0, -1, colDense, 2, 4), 10},
		{"idx_overflow", cont, rawHead(1, 0).v(100).v(5).uv(1 << 32).u8(colDense).v(7), 12},
		{"unknown_column_mode", cont, two(3, 1, 7, 2, 4), 11},
		{"bitmap_all_present", cont, two(3, 1, colNulls, 0b11, 2, 4), 12},
		{"bitmap_padding", cont, two(3, 1, colNulls, 0b110, 4), 12},
		{"trailing_bytes", cont, one.u8(0), 10},
		{"wrong_level_count", ival, head(formTiles).uv(3).uv(2), 3},
		{"no_tiles", ival, head(formTiles).uv(3).uv(uint64(len(lv))).uv(0), 4},
		{"starts_not_increasing", ival, head(formTiles).uv(3).uv(uint64(len(lv))).uv(2).v(0).uv(0).u8(1, 1, 1, 1), 6},
		{"coarse_level_mismatch", ival, head(formTiles).uv(3).uv(uint64(len(lv))).uv(1).v(0).uv(1).uv(3).uv(1).v(1).uv(1).uv(3), 9},
		{"state_beyond_bytes", ival, head(formTiles).uv(3).uv(uint64(len(lv))).uv(1).v(0).uv(9).uv(3), 6},
		{"state_trailing_bytes", ival, head(formTiles).uv(3).uv(uint64(len(lv))).uv(1).v(0).uv(2).uv(3).u8(0), 8},
		{"fewer_events_than_tiles", ival, head(formTiles).uv(1).uv(uint64(len(lv))).
			uv(2).v(0).uv(1).uv(1).uv(1).uv(1).uv(1).cat(tileLevels(lv[1:], 0, 1)[1:]), 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			ke := requireCorrupt(t, c.s, c.b, "decodes")
			assert.Equal(t, c.at, ke.Offset, "%v", ke)
		})
	}
}

// FuzzDecodeKeyState holds DecodeKeyState to errors, never panics, and
// to states that read, merge and re-encode to a fixed point.
func FuzzDecodeKeyState(f *testing.F) {
	stores, encs := realEncodings(f)
	for vi := range stores {
		for _, b := range encs[vi] {
			if len(b) <= 8<<10 { // small, tiled and both views' forms; larger inputs only slow mutation down
				f.Add(byte(vi), b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, sel byte, b []byte) {
		exercise(t, stores[int(sel)%len(stores)], b)
	})
}

// TestKeyStateBytesPerEvent measures the encoding of a continuous view's
// key holding events one per 10 seconds, with hotSpec's seven aggregators
// over one Float64 input, and bounds it: the raw events dominate.
func TestKeyStateBytesPerEvent(t *testing.T) {
	for _, c := range []struct {
		interval int64
		n        int
		max      float64 // bytes per event
	}{{0, 20, 12}, {0, 10000, 11.5}, {10 * Minute, 20, 13}, {10 * Minute, 10000, 12}} {
		s := mustStore(t, hotSpec(c.interval), HotTier{})
		t0 := int64(1_700_000_000) * 1e9
		rng := newRand(1)
		for i := range c.n {
			v := schema.Float(math.Round(rng.NormFloat64()*1000) / 8)
			s.Add("k", Order{TS: t0 + int64(i)*10*Second, Seq: uint64(i + 1)}, []schema.Value{v})
		}
		b, ok := s.AppendKeyState(nil, "k")
		require.True(t, ok)
		per := float64(len(b)) / float64(c.n)
		ks, err := s.DecodeKeyState(b)
		require.NoError(t, err)
		t.Logf("%s view, %d events: %d bytes, %.2f bytes/event; decoded MemSize %d bytes", intervalName(c.interval), c.n, len(b), per, ks.MemSize())
		require.LessOrEqual(t, per, c.max)
	}
}

// TestKeyStateConcurrentReads: goroutines reading one lazily tiled state
// at once (the first read builds its tiles) agree with a store that got
// the same events. Run with -race.
func TestKeyStateConcurrentReads(t *testing.T) {
	spec := ksSpec(0)
	single := mustStore(t, spec, HotTier{})
	evs := ksWorkload(newRand(11))
	for _, e := range evs {
		single.Add(e.key, e.o, e.vals)
	}
	for _, key := range single.Keys() {
		b, _ := single.AppendKeyState(nil, key)
		ks, err := single.DecodeKeyState(b)
		require.NoError(t, err)
		times := ks.ChangeTimes(nil)
		at := times[len(times)/2] + 1
		want := make([]schema.Value, len(spec.Features))
		single.Read(key, at, want)
		done := make(chan []schema.Value)
		for g := range 6 {
			go func() {
				out := make([]schema.Value, len(spec.Features))
				switch g % 3 {
				case 1:
					_ = ks.MemSize()
				case 2:
					_ = single.AppendEncoded(nil, ks)
				}
				single.ReadWith(key, at, out, false, []*KeyState{ks})
				done <- out
			}()
		}
		for range 6 {
			got := <-done
			for fi, f := range spec.Features {
				if a := spec.Aggs[f.Agg]; inexactMerge(a) {
					closeResult(t, want[fi], got[fi], aggName(a))
				} else {
					require.True(t, want[fi].Equal(got[fi]), "%s: want %#v, got %#v", aggName(a), want[fi], got[fi])
				}
			}
		}
	}
}

// TestFreeze: after Freeze, Own shares instead of copying and Add is a
// bug.
func TestFreeze(t *testing.T) {
	s := mustStore(t, ksSpec(0), HotTier{})
	for i := range 100 {
		s.Add("k", Order{TS: int64(i) * Second, Seq: uint64(i)}, make([]schema.Value, ksWidth))
	}
	copied := s.Own("k")
	s.Freeze()
	shared := s.Own("k")
	require.Equal(t, s.AppendEncoded(nil, copied), s.AppendEncoded(nil, shared))
	require.Same(t, &s.shard("k").keys["k"].raw[0], &shared.ks.raw[0], "a frozen store's Own copies")
	require.NotSame(t, &s.shard("k").keys["k"].raw[0], &copied.ks.raw[0], "Own shares a live store's events")
	require.PanicsWithValue(t, "BUG: tiles: Add to a frozen Store", func() { s.Add("k", Order{}, make([]schema.Value, ksWidth)) })
}

// TestKeyStateExamples pins the examples of docs/format/tiles.md.
func TestKeyStateExamples(t *testing.T) {
	spec := func(interval int64) Spec {
		return Spec{Aggs: []Agg{{Function: "count", Input: tInt64}}, AggInput: []int{0}, Interval: interval, Start: math.MinInt64,
			Features: []Feature{{Agg: 0, Window: Window{Lifetime: true}}}}
	}
	cont := mustStore(t, spec(0), HotTier{})
	cont.Add("k", Order{TS: 100, Seq: 5}, []schema.Value{schema.Int(7)})
	b, _ := cont.AppendKeyState(nil, "k")
	assert.Equal(t, "01000100c8010a00000e", hex.EncodeToString(b))
	ival := mustStore(t, spec(10*Minute), HotTier{})
	for i := range 40 {
		ival.Add("k", Order{TS: int64(i) * Second, Seq: uint64(i)}, []schema.Value{schema.Int(7)})
	}
	b, _ = ival.AppendKeyState(nil, "k")
	assert.Equal(t, "01022805"+strings.Repeat("01000128", 5), hex.EncodeToString(b))
}

// TestAppendPayload: the length replaces the state's two header bytes,
// for lengths of one, two and three varint bytes.
func TestAppendPayload(t *testing.T) {
	for _, n := range []int{0, 5, 200, 5000} { // distinct values: small mode, then dense at p = 10 and 16
		for _, p := range []int{10, 16} {
			st := Agg{Function: "approx_count_distinct", Precision: p, Input: tInt64}.New()
			for i := range n {
				st.Add(schema.Int(int64(i)), Order{})
			}
			full := st.AppendBinary(nil)
			want := append(binary.AppendUvarint([]byte("x"), uint64(len(full)-2)), full[2:]...)
			require.Equal(t, want, appendPayload([]byte("x"), st), "n=%d p=%d (payload %d bytes)", n, p, len(full)-2)
			r := reader{b: want[1:]}
			d := Agg{Function: "approx_count_distinct", Precision: p, Input: tInt64}.newState()
			r.payload(d, "approx_count_distinct")
			require.True(t, r.ok(), r.err)
			require.Equal(t, full, d.AppendBinary(nil))
		}
	}
}
