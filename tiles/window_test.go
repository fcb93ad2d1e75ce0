package tiles

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestFloorCeilAreEpochAligned(t *testing.T) {
	for _, tc := range []struct{ t, r, floor, ceil int64 }{
		{0, 10, 0, 0}, {1, 10, 0, 10}, {10, 10, 10, 10}, {19, 10, 10, 20},
		{-1, 10, -10, 0}, {-10, 10, -10, -10}, {-11, 10, -20, -10},
		{math.MaxInt64, Minute, math.MaxInt64 - math.MaxInt64%Minute, math.MaxInt64},
	} {
		assert.Equal(t, tc.floor, floorTo(tc.t, tc.r), "floor(%d, %d)", tc.t, tc.r)
		assert.Equal(t, tc.ceil, ceilTo(tc.t, tc.r), "ceil(%d, %d)", tc.t, tc.r)
	}
	r := rand.New(rand.NewPCG(1, 1))
	for i := 0; i < 10000; i++ {
		x, res := r.Int64N(1<<50)-1<<49, r.Int64N(1000)+1
		f, c := floorTo(x, res), ceilTo(x, res)
		assert.True(t, f <= x && x-f < res && f%res == 0, "floor(%d, %d) = %d", x, res, f)
		assert.True(t, c >= x && c-x < res && c%res == 0, "ceil(%d, %d) = %d", x, res, c)
	}
}

func TestLevelsNest(t *testing.T) {
	for _, iv := range []int64{0, Minute, 10 * Minute, 7 * Minute, Hour, 90 * Minute, Day, 2 * Day} {
		ls := levelsFor(iv)
		if iv > 0 {
			assert.Equal(t, iv, ls[0], "interval views tile at their interval")
		}
		for i := 1; i < len(ls); i++ {
			assert.Zero(t, ls[i]%ls[i-1], "level %d (%d) must be a multiple of level %d (%d) for interval %d", i, ls[i], i-1, ls[i-1], iv)
		}
	}
}

func TestBounds(t *testing.T) {
	const T = 100*Hour + 17*Minute + 3
	for _, tc := range []struct {
		name     string
		w        Window
		interval int64
		s, e     int64
		ok       bool
	}{
		{"continuous 1h", Window{Size: Hour}, 0, T - Hour, T, true},
		{"continuous 1h offset 30m", Window{Size: Hour, Offset: 30 * Minute}, 0, T - 90*Minute, T - 30*Minute, true},
		{"interval 10m aligns the end down", Window{Size: Hour}, 10 * Minute, 100*Hour + 10*Minute - Hour, 100*Hour + 10*Minute, true},
		{"interval 10m with offset stays aligned", Window{Size: Hour, Offset: 10 * Minute}, 10 * Minute, 100*Hour - Hour, 100 * Hour, true},
		{"lifetime", Window{Lifetime: true}, 0, math.MinInt64, T, true},
		{"lifetime ending at the beginning of time is empty", Window{Lifetime: true}, 0, 0, 0, false},
	} {
		at := int64(T)
		if !tc.ok {
			at = math.MinInt64
		}
		s, e, ok := bounds(tc.w, at, tc.interval)
		assert.Equal(t, tc.ok, ok, tc.name)
		if tc.ok {
			assert.Equal(t, tc.s, s, tc.name+": start")
			assert.Equal(t, tc.e, e, tc.name+": end")
			assert.Equal(t, tc.e, tc.w.End(T, tc.interval), tc.name+": End")
		}
	}
}

func TestAlignmentSaturates(t *testing.T) {
	assert.Equal(t, int64(math.MinInt64), floorTo(math.MinInt64, 100*Day))
	c := ceilTo(math.MinInt64, 100*Day)
	assert.True(t, c >= math.MinInt64 && c%(100*Day) == 0)
	assert.Equal(t, int64(math.MaxInt64), ceilTo(math.MaxInt64-1, Minute))
}
