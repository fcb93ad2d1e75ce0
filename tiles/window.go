package tiles

import "math"

// Window is a feature's time window relative to its end e (SPEC §3):
// [e − Offset − Size, e − Offset), or from the view's start when Lifetime.
type Window struct {
	Size     int64 // ns; unused when Lifetime
	Offset   int64 // ns
	Lifetime bool
}

// Time constants in nanoseconds.
const (
	Second = int64(1e9)
	Minute = 60 * Second
	Hour   = 60 * Minute
	Day    = 24 * Hour
)

// continuousLevels are the tile resolutions of a continuous view, finest
// first; each divides the next, so a coarse tile holds exactly the events
// of the fine tiles inside it. A window of any length is covered by at
// most ~2·(ratio−1) tiles per level: tens of tiles, not thousands. The
// finest level bounds the raw events read at each unaligned window edge
// to 10 seconds' worth.
var continuousLevels = []int64{10 * Second, Minute, 10 * Minute, Hour, Day, 10 * Day, 100 * Day}

// levelsFor returns the tile resolutions of a view: for interval views the
// interval, then every coarser continuous level that is a multiple of the
// previous one.
func levelsFor(interval int64) []int64 {
	if interval <= 0 {
		return continuousLevels
	}
	out := []int64{interval}
	for _, r := range continuousLevels {
		if last := out[len(out)-1]; r > last && r%last == 0 {
			out = append(out, r)
		}
	}
	return out
}

// TileOf returns the finest tile [start, end) that holds event time ts in
// the Store of a view with aggregation interval interval (ns; 0 for
// continuous views): the interval's tile, or for continuous views the
// finest level's (10 seconds). These are the partial aggregates a Store
// keeps, and what featurelog run reports at aggregation_level partial.
func TileOf(ts, interval int64) (start, end int64) {
	r := levelsFor(interval)[0]
	start = floorTo(ts, r)
	return start, start + r
}

// floorTo returns the largest multiple of r at or below t (also for
// negative t: tiles are aligned to the Unix epoch), saturating at
// math.MinInt64 where that multiple is not representable.
func floorTo(t, r int64) int64 {
	q := t / r // truncates toward zero: the floor for t >= 0
	if t%r != 0 && t < 0 {
		if q < math.MinInt64/r+1 {
			return math.MinInt64
		}
		q--
	}
	return q * r
}

// ceilTo returns the smallest multiple of r at or above t, saturating at
// math.MaxInt64.
func ceilTo(t, r int64) int64 {
	q := t / r // truncates toward zero: the ceiling for t <= 0
	if t%r != 0 && t > 0 {
		if q > math.MaxInt64/r-1 {
			return math.MaxInt64
		}
		q++
	}
	return q * r
}

// bounds returns the window [s, e) a feature reads as of t: e is t for
// continuous views and t aligned down to the interval otherwise, less the
// offset; s is e − size, or the beginning of time for lifetime windows.
// Neither is clipped to feature_start_time: events before it are never
// added, and clipping would unalign an interval view's window.
func bounds(w Window, t, interval int64) (s, e int64, ok bool) {
	e = w.End(t, interval)
	if w.Lifetime {
		return math.MinInt64, e, e > math.MinInt64
	}
	s = subSat(e, w.Size)
	return s, e, s < e
}

func subSat(a, b int64) int64 {
	if b > 0 && a < math.MinInt64+b {
		return math.MinInt64
	}
	return a - b
}

// End returns the effective time of a window read as of t: its end.
func (w Window) End(t, interval int64) int64 {
	e := t
	if interval > 0 {
		e = floorTo(t, interval)
	}
	return subSat(e, w.Offset)
}
