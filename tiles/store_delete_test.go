package tiles

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/schema"
)

// TestDeleteForgetsHotEntries: after Delete, a key read again (with new
// events, or none) answers as a store that never saw the deleted events,
// even through a hot tier that forgets nothing: the deleted state's
// entries are never found again. The same holds for a Store of a
// KeyGroup, whose deleted state stays in the key's entry.
func TestDeleteForgetsHotEntries(t *testing.T) {
	for _, grouped := range []bool{false, true} {
		for _, interval := range []int64{0, 10 * Minute} {
			checkDeleteForgets(t, interval, grouped)
		}
	}
}

func checkDeleteForgets(t *testing.T, interval int64, grouped bool) {
	spec := hotSpec(interval)
	cache := foreverCache{}
	hot := HotTier{Cache: cache, ID: 1, MinSpan: 10 * Minute}
	s, err := NewStore(spec, hot)
	if grouped {
		s, err = NewKeyGroup(1).NewStore(spec, hot)
	}
	require.NoError(t, err)
	fresh, err := NewStore(spec, HotTier{})
	require.NoError(t, err)
	now := int64(1_700_000_000) * 1e9
	got := make([]schema.Value, len(spec.Features))
	want := make([]schema.Value, len(spec.Features))
	for i := range 200 { // enough events for tiles, read so ranges are cached
		s.Add("k", Order{TS: now - int64(i)*Minute, Seq: uint64(i)}, []schema.Value{schema.Float(float64(i))})
		s.Read("k", now+1, got)
	}
	require.NotEmpty(t, cache)
	require.True(t, s.Delete("k"))
	require.False(t, s.Delete("k"), "already gone")
	s.Read("k", now+1, got)
	fresh.Read("k", now+1, want)
	for fi := range want {
		sameResult(t, want[fi], got[fi], "deleted key, feature %d", fi)
	}
	for i := range 50 {
		o := Order{TS: now - int64(i)*Minute, Seq: uint64(1000 + i)}
		v := []schema.Value{schema.Float(math.Sqrt(float64(i)))}
		s.Add("k", o, v)
		fresh.Add("k", o, v)
	}
	for _, at := range []int64{now + 1, now - 10*Minute, now - Day} {
		s.Read("k", at, got)
		fresh.Read("k", at, want)
		for fi := range want {
			sameResult(t, want[fi], got[fi], "interval %d, at %d, feature %d", interval, at, fi)
		}
	}
}
