package dirlock

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// FileName is the name of the lock file inside the data directory.
// Part of the on-disk layout; do not change.
const FileName = "LOCK"

// maxHolderRead bounds how much of a foreign LOCK file is read into an error.
const maxHolderRead = 4096

// Lock is an exclusive lock on a data directory, held until Release.
type Lock struct {
	dir string

	mu sync.Mutex
	// f is the locked LOCK file; nil once released. Guarded by mu.
	f *os.File
}

// Acquire creates dir if it does not exist (mode 0o755), locks dir/LOCK
// without blocking and records the holder in it: this process's pid, the
// hostname, the holder string (what this process is, e.g. the command line)
// and the start time. If another process or another Lock in this process
// holds the directory, Acquire returns a *HeldError describing that holder.
func Acquire(dir, holder string) (*Lock, error) {
	if dir == "" {
		return nil, fmt.Errorf("dirlock: empty data directory path")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("dirlock: create data directory: %w", err)
	}
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("dirlock: open lock file: %w", err)
	}
	held, err := tryLock(f)
	if err != nil || held {
		defer f.Close()
		if err != nil {
			return nil, fmt.Errorf("dirlock: lock %s: %w", path, err)
		}
		return nil, &HeldError{Dir: dir, Holder: readHolder(f)}
	}
	if err := writeHolder(f, describe(holder, time.Now())); err != nil {
		_ = unlock(f)
		_ = f.Close()
		return nil, fmt.Errorf("dirlock: write %s: %w", path, err)
	}
	return &Lock{dir: dir, f: f}, nil
}

// Dir returns the locked directory, as passed to Acquire.
func (l *Lock) Dir() string { return l.dir }

// Release unlocks the directory and closes the lock file, which stays on
// disk. Calling Release again does nothing and returns nil.
func (l *Lock) Release() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	uerr := unlock(f)
	cerr := f.Close()
	if uerr != nil {
		return fmt.Errorf("dirlock: unlock %s: %w", f.Name(), uerr)
	}
	if cerr != nil {
		return fmt.Errorf("dirlock: close %s: %w", f.Name(), cerr)
	}
	return nil
}

// describe formats the holder line written into the LOCK file.
func describe(holder string, start time.Time) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	holder = strings.Join(strings.Fields(holder), " ") // one line, whatever was passed
	if holder == "" {
		holder = filepath.Base(os.Args[0])
	}
	return fmt.Sprintf("pid %d on host %s (%s, since %s)",
		os.Getpid(), host, holder, start.UTC().Format(time.RFC3339))
}

// writeHolder replaces the content of the locked file with line and fsyncs.
func writeHolder(f *os.File, line string) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt([]byte(line+"\n"), 0); err != nil {
		return err
	}
	return f.Sync()
}

// readHolder returns the description the current holder wrote into f.
func readHolder(f *os.File) string {
	buf := make([]byte, maxHolderRead)
	n, _ := f.ReadAt(buf, 0) // io.EOF expected: the file is shorter than buf
	s := strings.TrimSpace(string(buf[:n]))
	if s == "" {
		return unknownHolder
	}
	return s
}
