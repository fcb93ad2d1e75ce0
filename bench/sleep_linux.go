package bench

import (
	"runtime"
	"syscall"
	"time"
)

// lockThread pins the dispatcher to its own OS thread, so its nanosleeps
// block only that thread.
func lockThread() { runtime.LockOSThread() }

func unlockThread() { runtime.UnlockOSThread() }

// sleepUntil sleeps until t with nanosleep(2), which wakes within the
// kernel's timer slack (50 µs by default) rather than the Go netpoller's
// 1 ms granularity.
func sleepUntil(t time.Time) {
	for {
		d := time.Until(t)
		if d <= 0 {
			return
		}
		ts := syscall.NsecToTimespec(int64(d))
		if err := syscall.Nanosleep(&ts, nil); err != nil && err != syscall.EINTR {
			time.Sleep(d)
		}
	}
}
