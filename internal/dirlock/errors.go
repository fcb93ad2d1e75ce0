package dirlock

import (
	"errors"
	"fmt"
)

// ErrLocked is matched (with errors.Is) by every *HeldError: the data
// directory is locked by another process or another open Lock.
var ErrLocked = errors.New("dirlock: data directory is in use")

// ErrUnsupported is returned by Acquire on platforms without flock(2).
var ErrUnsupported = errors.New("dirlock: directory locking is not supported on this platform")

// HeldError reports that Dir is locked by someone else. Find it with
// errors.As; it also matches ErrLocked with errors.Is.
type HeldError struct {
	// Dir is the data directory, as passed to Acquire.
	Dir string
	// Holder is what the holder wrote into the LOCK file, e.g.
	// "pid 1234 on host h (featurelog serve --addr 127.0.0.1:8080, since
	// 2026-11-21T05:00:00Z)". It is unknownHolder if the file was empty.
	Holder string
}

// unknownHolder stands in for the holder description when the LOCK file is
// empty or unreadable (the holder has locked it but not yet written to it).
const unknownHolder = "another process (it has not written its details to the LOCK file yet)"

func (e *HeldError) Error() string {
	return fmt.Sprintf("data directory %q is in use by %s; stop that process or use another --data directory",
		e.Dir, e.Holder)
}

// Is makes errors.Is(err, ErrLocked) true for a *HeldError.
func (e *HeldError) Is(target error) bool { return target == ErrLocked }
