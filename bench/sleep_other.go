//go:build !linux

package bench

import "time"

func lockThread() {}

func unlockThread() {}

// sleepUntil sleeps until t.
func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }
