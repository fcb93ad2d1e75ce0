package engine

import (
	"math"
	"sync/atomic"
	"time"
)

// The ingest rate of a view (GET .../feature-views/{name}/ingest-rate):
// how many records live ingest applied to it online in each minute of
// the recent past. It is kept in memory only, counted since the node
// opened: replaying the log at open, backfills and materializations do
// not count, since they apply records ingested earlier.
//
// A view's rateRing is one fixed array of per-minute slots, minute m in
// slot m mod MaxIngestRateMinutes. Each slot is one atomic word:
//
//	 63                32 31                 0
//	+--------------------+--------------------+
//	|  minute + 1 (Unix) |  records (saturate)|
//	+--------------------+--------------------+
//
// so that a slot still holding an older minute reads as zero for the one
// asked, and stamping a new minute and counting are one compare-and-swap:
// no lock, no allocation, O(1) per ingest request and view (run adds a
// request's count once). A zero word is an empty slot. Minutes before
// 1970 are not counted. The ring is shared by the versions of a view
// (buildView), so the rate goes on across an apply that re-versions it.

// MaxIngestRateMinutes is how many minutes of ingest rate a view keeps,
// and the largest number of minutes IngestRate returns: one day.
const MaxIngestRateMinutes = 1440

// DefaultIngestRateMinutes is how many minutes IngestRate returns when
// asked for 0.
const DefaultIngestRateMinutes = 60

// rateRing counts records per minute (see above). Pointer-free. A nil
// ring (a backfill's build view) counts nothing.
type rateRing struct {
	slots [MaxIngestRateMinutes]atomic.Uint64
}

// rateCountMax is the largest count a slot holds; it saturates there.
const rateCountMax = math.MaxUint32

// unixMinute returns t's minute since the Unix epoch, floored.
func unixMinute(t time.Time) int64 {
	s := t.Unix()
	if s < 0 {
		return (s - 59) / 60
	}
	return s / 60
}

// add counts n records applied at now.
func (r *rateRing) add(now time.Time, n int64) {
	m := unixMinute(now)
	if r == nil || n <= 0 || m < 0 || m >= math.MaxUint32 {
		return
	}
	stamp := uint64(m + 1)
	slot := &r.slots[m%MaxIngestRateMinutes]
	for {
		old := slot.Load()
		var cur uint64
		switch {
		case old>>32 == stamp:
			cur = old & rateCountMax
		case old>>32 > stamp: // a later minute: the clock went back a day or more
			return
		}
		next := stamp<<32 | uint64(min(int64(cur)+n, rateCountMax))
		if slot.CompareAndSwap(old, next) {
			return
		}
	}
}

// count returns the records counted in minute m.
func (r *rateRing) count(m int64) int64 {
	if r == nil || m < 0 || m >= math.MaxUint32 {
		return 0
	}
	w := r.slots[m%MaxIngestRateMinutes].Load()
	if w>>32 != uint64(m+1) {
		return 0
	}
	return int64(w & rateCountMax)
}

// RatePoint is the records of one minute.
type RatePoint struct {
	Start   time.Time // the minute's start, UTC
	Records int64
}

// IngestRate returns, oldest first, the records live ingest applied
// online to a view in each of the last minutes minutes (0:
// DefaultIngestRateMinutes; at most MaxIngestRateMinutes), ending with
// the current, partial minute, zero minutes included. Counts start when
// the node opens and are kept in memory only.
func (db *DB) IngestRate(workspace, name string, minutes int) ([]RatePoint, error) {
	return db.IngestRateUntil(workspace, name, minutes, db.opts.Now())
}

// IngestRateUntil is IngestRate over the minutes ending with the one
// holding end: cluster mode asks every partition for the same minutes,
// those of the node that gathers them.
func (db *DB) IngestRateUntil(workspace, name string, minutes int, end time.Time) ([]RatePoint, error) {
	if minutes == 0 {
		minutes = DefaultIngestRateMinutes
	}
	if minutes < 1 || minutes > MaxIngestRateMinutes {
		return nil, errorf(CodeInvalidArgument, "minutes=%d is out of range: give 1 to %d", minutes, MaxIngestRateMinutes)
	}
	v, err := db.lookupView(workspace, name)
	if err != nil {
		return nil, err
	}
	last := unixMinute(end)
	out := make([]RatePoint, minutes)
	for i := range out {
		m := last - int64(minutes-1-i)
		out[i] = RatePoint{Start: time.Unix(m*60, 0).UTC(), Records: v.stats.rate.count(m)}
	}
	return out, nil
}
