// Package dirlock makes sure at most one process has a data directory open.
//
// Acquire takes an exclusive, non-blocking flock(2) on DIR/LOCK and writes a
// one-line description of the holder into that file, so a second process
// can say who is in the way:
//
//	l, err := dirlock.Acquire(dataDir, "featurelog serve --addr 127.0.0.1:8080")
//	var held *dirlock.HeldError
//	if errors.As(err, &held) {
//		// data directory "/x/featurelog-data" is in use by pid 1234 on host h
//		// (featurelog serve --addr 127.0.0.1:8080, since 2026-11-21T05:00:00Z);
//		// stop that process or use another --data directory
//		return err
//	}
//	if err != nil {
//		return err
//	}
//	defer l.Release()
//
// # The LOCK file
//
// The file holds a single line (the format is for people; nothing parses it;
// docs/format/README.md, "LOCK"):
//
//	pid <pid> on host <hostname> (<holder>, since <RFC 3339 start time>)\n
//
// The file is left in place on Release and on exit: its presence means
// nothing, only the flock does. A stale file left by a crashed process is
// simply overwritten by the next holder.
//
// # Caveats
//
//   - The lock belongs to the open file description, not to the process: a
//     second Acquire of the same directory in the same process fails too, so
//     an embedding program cannot open one directory twice by mistake.
//   - The kernel drops the lock when the holder exits, however it exits
//     (including SIGKILL), so there is never a stale lock to clean up.
//   - The file is opened close-on-exec, so child processes do not inherit
//     the lock.
//   - flock is advisory and, on some network file systems, local to one
//     host; keep data directories on local disks.
//   - Between another process taking the lock and writing its description,
//     the file may read empty; the error then says the holder is unknown.
package dirlock
