package bench

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Loop bounds a measured loop in time and in count. Every benchmark stops
// at whichever bound it reaches first.
type Loop struct {
	// Duration is the measured window. Default 5s.
	Duration time.Duration
	// Warmup runs the workload unmeasured before the window, to open
	// connections and warm caches. Default Duration/10, at most 1s.
	Warmup time.Duration
	// MaxOps bounds the measured operations (and so the memory held by
	// latency samples, 8 bytes each). Default 10,000,000.
	MaxOps int64
}

// EnsureDefaults fills in unset fields.
func (l *Loop) EnsureDefaults() {
	if l.Duration == 0 {
		l.Duration = 5 * time.Second
	}
	if l.Warmup == 0 {
		l.Warmup = min(l.Duration/10, time.Second)
	}
	if l.MaxOps == 0 {
		l.MaxOps = 10_000_000
	}
}

// Validate reports bounds that cannot work.
func (l *Loop) Validate() error {
	switch {
	case l.Duration <= 0:
		return errors.New("bench: Loop.Duration must be positive")
	case l.Warmup < 0:
		return errors.New("bench: Loop.Warmup must not be negative")
	case l.MaxOps <= 0:
		return errors.New("bench: Loop.MaxOps must be positive")
	}
	return nil
}

// op performs one operation and returns how many records it carried.
type op func() (records int, err error)

// closedLoop runs workers goroutines, each calling its own op back to
// back: a new operation starts when the previous one returns. Operations
// that start inside the measured window are counted and timed. Should no
// operation have started in the window (one stalled through all of it),
// the loop goes on until one has, for at most 10 more windows.
func closedLoop(name string, workers int, loop Loop, newOp func(worker int) op) Result {
	var (
		wg      sync.WaitGroup
		started atomic.Int64 // measured operations started, bounds MaxOps
		results = make([]Result, workers)
		samples = make([][]int64, workers)
		lastEnd atomic.Int64 // latest completion, ns since measureAt
	)
	start := time.Now()
	measureAt := start.Add(loop.Warmup)
	stopAt := measureAt.Add(loop.Duration)
	hardStop := stopAt.Add(10 * loop.Duration)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			do, res := newOp(w), &results[w]
			for {
				t0 := time.Now()
				if !t0.Before(stopAt) && (started.Load() > 0 || !t0.Before(hardStop)) {
					return
				}
				measured := !t0.Before(measureAt)
				if measured && started.Add(1) > loop.MaxOps {
					return
				}
				n, err := do()
				t1 := time.Now()
				if !measured {
					continue
				}
				storeMax(&lastEnd, int64(t1.Sub(measureAt)))
				if err != nil {
					res.noteError(err)
					continue
				}
				res.Ops++
				res.Records += int64(n)
				samples[w] = append(samples[w], int64(t1.Sub(t0)))
			}
		}()
	}
	wg.Wait()
	total := Result{Name: name, Elapsed: time.Duration(lastEnd.Load())}
	for i := range results {
		total.merge(&results[i])
	}
	total.Latency = summarize(concat(samples))
	total.finish()
	return total
}

// storeMax raises a to v if v is larger.
func storeMax(a *atomic.Int64, v int64) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}

func concat(parts [][]int64) []int64 {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make([]int64, 0, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// openLoop sends requests on a fixed timetable, rate per second, for
// Warmup+Duration, whatever the responses do: request i is due at
// start + i/rate. A dispatcher releases each request at its due time to
// a pool of workers; latency runs from the due time, not from the actual
// send, so a stalled server is charged for the requests it delayed (no
// coordinated omission). Requests still queued when the run reaches its
// time bound (Warmup + 2×Duration + 5s) are dropped and counted.
func openLoop(name string, rate float64, workers int, loop Loop, newOp func(worker int) op) (Result, error) {
	if rate <= 0 {
		return Result{}, fmt.Errorf("bench: %s: rate must be positive, got %g", name, rate)
	}
	interval := time.Duration(float64(time.Second) / rate)
	n := min(int64((loop.Warmup+loop.Duration)/interval), loop.MaxOps)
	warm := int64(loop.Warmup / interval)
	due := make(chan int64, min(n, 1<<20))
	start := time.Now().Add(10 * time.Millisecond)
	deadline := start.Add(loop.Warmup + 2*loop.Duration + 5*time.Second)
	var (
		wg      sync.WaitGroup
		results = make([]Result, workers)
		samples = make([][]int64, workers)
		lags    = make([][]int64, workers)
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			do, res := newOp(w), &results[w]
			for i := range due {
				at := start.Add(time.Duration(i) * interval)
				t0 := time.Now()
				if t0.After(deadline) {
					res.Dropped++
					continue
				}
				nrec, err := do()
				t1 := time.Now()
				if i < warm {
					continue
				}
				if err != nil {
					res.noteError(err)
					continue
				}
				res.Ops++
				res.Records += int64(nrec)
				samples[w] = append(samples[w], int64(t1.Sub(at)))
				lags[w] = append(lags[w], int64(max(t0.Sub(at), 0)))
			}
		}()
	}
	dispatch(due, n, start, interval, deadline)
	close(due)
	wg.Wait()
	total := Result{Name: name, Elapsed: time.Duration(n-warm) * interval}
	for i := range results {
		total.merge(&results[i])
	}
	total.Latency = summarize(concat(samples))
	total.SendLag = summarize(concat(lags))
	total.finish()
	return total, nil
}

// dispatch releases request indexes 0..n-1 at their due times. It sleeps
// with sleepUntil (nanosleep on Linux: the Go timer wheel rounds sub-ms
// waits up to 1 ms when the process is idle, which would add up to 1 ms
// of client-made latency to every request).
func dispatch(due chan<- int64, n int64, start time.Time, interval time.Duration, deadline time.Time) {
	lockThread()
	defer unlockThread()
	for i := int64(0); i < n; i++ {
		at := start.Add(time.Duration(i) * interval)
		if at.After(deadline) {
			return
		}
		sleepUntil(at)
		due <- i
	}
}
