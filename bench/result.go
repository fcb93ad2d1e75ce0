package bench

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Result is what one Run* function measured.
type Result struct {
	// Name identifies the benchmark and its main parameters.
	Name string
	// Ops is the number of operations (requests, calls, writes) completed
	// in the measured window; failed ones are counted in Errors instead.
	Ops int64
	// Records is the number of records those operations carried (equal to
	// Ops for single-record operations).
	Records int64
	// Errors counts failed operations; FirstError describes the first.
	Errors     int64
	FirstError string
	// Dropped counts open-loop requests never sent because the run hit
	// its time bound with requests still queued.
	Dropped int64
	// Elapsed is the measured window (warm-up excluded).
	Elapsed time.Duration
	// OpsPerSec and RecordsPerSec are Ops and Records over Elapsed.
	OpsPerSec, RecordsPerSec float64
	// Latency is the distribution of per-operation latency. Open-loop
	// runs measure it from each request's scheduled send time.
	Latency Latency
	// SendLag is, for open-loop runs, how late requests left the client
	// relative to their timetable (client saturation shows here first).
	SendLag Latency
	// ResponseBytes is the size of the last successful response body of
	// an HTTP benchmark; the trivial baseline is sized from it.
	ResponseBytes int
}

// Latency summarizes a latency distribution.
type Latency struct {
	P50, P90, P99, Max, Mean time.Duration
}

// String prints the distribution compactly.
func (l Latency) String() string {
	return fmt.Sprintf("p50 %s p90 %s p99 %s max %s", fmtDur(l.P50), fmtDur(l.P90), fmtDur(l.P99), fmtDur(l.Max))
}

// summarize computes a Latency from raw samples (nanoseconds); it sorts
// samples in place.
func summarize(samples []int64) Latency {
	if len(samples) == 0 {
		return Latency{}
	}
	slices.Sort(samples)
	var sum float64
	for _, s := range samples {
		sum += float64(s)
	}
	return Latency{
		P50:  time.Duration(quantile(samples, 0.50)),
		P90:  time.Duration(quantile(samples, 0.90)),
		P99:  time.Duration(quantile(samples, 0.99)),
		Max:  time.Duration(samples[len(samples)-1]),
		Mean: time.Duration(sum / float64(len(samples))),
	}
}

// quantile returns the nearest-rank q-quantile of sorted samples.
func quantile(sorted []int64, q float64) int64 {
	i := int(q*float64(len(sorted)) + 0.5)
	i = min(max(i-1, 0), len(sorted)-1)
	return sorted[i]
}

// finish fills in the rates from the counts and the window.
func (r *Result) finish() {
	if s := r.Elapsed.Seconds(); s > 0 {
		r.OpsPerSec = float64(r.Ops) / s
		r.RecordsPerSec = float64(r.Records) / s
	}
}

// noteError counts a failed operation, keeping the first message.
func (r *Result) noteError(err error) {
	if r.Errors == 0 {
		r.FirstError = err.Error()
	}
	r.Errors++
}

// merge adds o's counts into r (the samples are merged by the caller).
func (r *Result) merge(o *Result) {
	r.Ops += o.Ops
	r.Records += o.Records
	r.Dropped += o.Dropped
	if r.Errors == 0 && o.Errors > 0 {
		r.FirstError = o.FirstError
	}
	r.Errors += o.Errors
	if o.ResponseBytes > 0 {
		r.ResponseBytes = o.ResponseBytes
	}
}

// fmtDur prints a duration with three significant digits in a unit that
// suits it.
func fmtDur(d time.Duration) string {
	// Round to three significant digits first, so 999.6ms prints as 1s,
	// not 1e+03ms; long spans print as Go durations (18m10s).
	if d >= 100*time.Second {
		return d.Round(time.Second).String()
	}
	if d >= 1000 {
		unit := time.Duration(math.Pow10(int(math.Floor(math.Log10(float64(d)))) - 2))
		d = (d + unit/2) / unit * unit
	}
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < time.Millisecond:
		return fmt.Sprintf("%.3gµs", float64(d)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.3gms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.3gs", d.Seconds())
}

// fmtRate prints a rate with a k or M suffix.
func fmtRate(r float64) string {
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.2fM", r/1e6)
	case r >= 1e4:
		return fmt.Sprintf("%.1fk", r/1e3)
	case r >= 1e3:
		return fmt.Sprintf("%.2fk", r/1e3)
	}
	return fmt.Sprintf("%.0f", r)
}
