package main

import (
	"os"
	"runtime"
)

// Processors. On a small machine featurelog runs twice as many Go
// processors (GOMAXPROCS) as it has cores, up to maxOversubscribed: Go's
// scheduler has no priorities and preempts a running goroutine only
// after 10 ms, so with one P a core a read that became runnable while a
// merge, a flush or a mark worker of the collector held both Ps waited
// for one. With more Ps than cores the kernel's scheduler, which lets a
// woken thread run at once, shares the cores among them instead. On two
// cores, get-features p99 during flushes and merges went from 36 ms (16x
// the p99 without them) to 6.4 ms (4x), and the point-in-time join
// ran faster too, 3.7 s → 3.2 s in two pairs (we think because a
// goroutine blocked in a read of a segment file no longer holds one of
// two Ps; not measured) (docs/performance.md, "Reads during flushes and
// merges"). Big machines keep one P a core: there the 10 ms wait is
// rarely for the last free P, and the collector's dedicated workers, a
// quarter of the Ps, would take half of the cores. GOMAXPROCS in the
// environment overrides this, as it overrides Go's own default.

// maxOversubscribed is the most Ps the doubling gives.
const maxOversubscribed = 8

// procsFor returns the Ps to run with on a machine where Go chose cur,
// when the environment sets no GOMAXPROCS.
func procsFor(cur int) int {
	if cur*2 > maxOversubscribed {
		return cur
	}
	return cur * 2
}

// setProcs applies procsFor unless GOMAXPROCS is set in the environment.
func setProcs() {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	runtime.GOMAXPROCS(procsFor(runtime.GOMAXPROCS(0)))
}
