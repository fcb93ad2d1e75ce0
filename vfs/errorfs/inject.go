package errorfs

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"

	"github.com/featurelog/featurelog/vfs"
)

// ErrInjected is wrapped by every error an Injector injects. It also
// wraps syscall.EIO, the error a failing disk gives.
var ErrInjected = fmt.Errorf("vfs: injected fault: %w", syscall.EIO)

// Op names a kind of file-system operation, as an Injector counts them.
type Op string

// The operations an Injector counts. Reads count too: recovery must
// surface a failed read as an error, not as a shorter log.
const (
	OpCreate   Op = "create"
	OpOpen     Op = "open"
	OpRead     Op = "read"
	OpWrite    Op = "write"
	OpSync     Op = "sync"
	OpTruncate Op = "truncate"
	OpClose    Op = "close"
	OpStat     Op = "stat"
	OpRename   Op = "rename"
	OpRemove   Op = "remove"
	OpMkdir    Op = "mkdir"
	OpReadDir  Op = "readdir"
	OpSyncDir  Op = "syncdir"
)

// Injector wraps an FS and fails chosen operations: the n-th operation
// counted from its creation (FailAt), or every operation of a kind from
// some point on (FailFrom). It is safe for concurrent use; with
// concurrent callers, which operation is the n-th depends on scheduling.
type Injector struct {
	fs vfs.FS

	mu struct {
		sync.Mutex
		// n counts the operations so far.
		n int64
		// failAt is the 1-based number of the operation to fail, or 0.
		failAt int64
		// sticky makes every operation after failAt fail too.
		sticky bool
		// failOps, when set, fails every operation of these kinds.
		failOps map[Op]bool
		// injected lists the operations failed so far.
		injected []string
		// trace, when set, records every operation.
		trace []string
		// tracing is set by Trace.
		tracing bool
	}
}

// NewInjector returns an Injector over fs that fails nothing yet.
func NewInjector(fs vfs.FS) *Injector { return &Injector{fs: fs} }

// FailAt makes the n-th operation (1-based, counted since NewInjector)
// fail; with sticky, every later operation fails as well.
func (in *Injector) FailAt(n int64, sticky bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.mu.failAt, in.mu.sticky = n, sticky
}

// FailOps makes every later operation of the given kinds fail; no kinds
// stops it.
func (in *Injector) FailOps(ops ...Op) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.mu.failOps = map[Op]bool{}
	for _, op := range ops {
		in.mu.failOps[op] = true
	}
}

// Trace starts recording every operation, for Ops.
func (in *Injector) Trace() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.mu.tracing = true
}

// Count returns how many operations have been made.
func (in *Injector) Count() int64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.mu.n
}

// Injected lists the operations failed so far, as "n op path".
func (in *Injector) Injected() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]string(nil), in.mu.injected...)
}

// Ops lists the operations made since Trace, as "n op path".
func (in *Injector) Ops() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]string(nil), in.mu.trace...)
}

// check counts one operation and returns the error to inject, if any.
func (in *Injector) check(op Op, path string) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.mu.n++
	desc := fmt.Sprintf("%d %s %s", in.mu.n, op, path)
	if in.mu.tracing {
		in.mu.trace = append(in.mu.trace, desc)
	}
	fail := in.mu.failOps[op] ||
		(in.mu.failAt > 0 && (in.mu.n == in.mu.failAt || (in.mu.sticky && in.mu.n > in.mu.failAt)))
	if !fail {
		return nil
	}
	in.mu.injected = append(in.mu.injected, desc)
	return &os.PathError{Op: string(op), Path: path, Err: ErrInjected}
}

// NoteWrite implements WriteNoter: a write outside the FS counts as a
// write operation.
func (in *Injector) NoteWrite(path string, n int) error {
	if err := in.check(OpWrite, path); err != nil {
		return err
	}
	return vfs.NoteWrite(in.fs, path, n)
}

func (in *Injector) open(op Op, name string, open func(string) (vfs.File, error), readOnly bool) (vfs.File, error) {
	if err := in.check(op, name); err != nil {
		return nil, err
	}
	f, err := open(name)
	if err != nil {
		return nil, err
	}
	return &injectedFile{File: f, in: in, readOnly: readOnly}, nil
}

// Create implements FS.
func (in *Injector) Create(name string) (vfs.File, error) {
	return in.open(OpCreate, name, in.fs.Create, false)
}

// CreateExclusive implements FS.
func (in *Injector) CreateExclusive(name string) (vfs.File, error) {
	return in.open(OpCreate, name, in.fs.CreateExclusive, false)
}

// Open implements FS.
func (in *Injector) Open(name string) (vfs.File, error) {
	return in.open(OpOpen, name, in.fs.Open, true)
}

// OpenWrite implements FS.
func (in *Injector) OpenWrite(name string) (vfs.File, error) {
	return in.open(OpOpen, name, in.fs.OpenWrite, false)
}

// Rename implements FS.
func (in *Injector) Rename(oldpath, newpath string) error {
	if err := in.check(OpRename, oldpath); err != nil {
		return err
	}
	return in.fs.Rename(oldpath, newpath)
}

// Remove implements FS.
func (in *Injector) Remove(name string) error {
	if err := in.check(OpRemove, name); err != nil {
		return err
	}
	return in.fs.Remove(name)
}

// MkdirAll implements FS.
func (in *Injector) MkdirAll(dir string) error {
	if err := in.check(OpMkdir, dir); err != nil {
		return err
	}
	return in.fs.MkdirAll(dir)
}

// ReadDir implements FS.
func (in *Injector) ReadDir(dir string) ([]os.DirEntry, error) {
	if err := in.check(OpReadDir, dir); err != nil {
		return nil, err
	}
	return in.fs.ReadDir(dir)
}

// Stat implements FS.
func (in *Injector) Stat(name string) (os.FileInfo, error) {
	if err := in.check(OpStat, name); err != nil {
		return nil, err
	}
	return in.fs.Stat(name)
}

// SyncDir implements FS.
func (in *Injector) SyncDir(dir string) error {
	if err := in.check(OpSyncDir, dir); err != nil {
		return err
	}
	return in.fs.SyncDir(dir)
}

// injectedFile counts and may fail the operations on one open file.
type injectedFile struct {
	vfs.File
	in *Injector
	// readOnly files do not count their Close: closing a file that was
	// only read cannot lose anything, so its error is rightly ignored.
	readOnly bool
}

func (f *injectedFile) Read(p []byte) (int, error) {
	if err := f.in.check(OpRead, f.Name()); err != nil {
		return 0, err
	}
	return f.File.Read(p)
}

func (f *injectedFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.in.check(OpRead, f.Name()); err != nil {
		return 0, err
	}
	return f.File.ReadAt(p, off)
}

// Write fails before writing anything, or writes half of p and fails when
// p is long enough to tear: a failed write may leave part of its data.
func (f *injectedFile) Write(p []byte) (int, error) {
	if err := f.in.check(OpWrite, f.Name()); err != nil {
		n, _ := f.File.Write(p[:len(p)/2])
		return n, err
	}
	return f.File.Write(p)
}

func (f *injectedFile) Sync() error {
	if err := f.in.check(OpSync, f.Name()); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *injectedFile) Truncate(size int64) error {
	if err := f.in.check(OpTruncate, f.Name()); err != nil {
		return err
	}
	return f.File.Truncate(size)
}

// Close always closes the file (a failed close must not leak it) but may
// report an injected error.
func (f *injectedFile) Close() error {
	err := f.File.Close()
	if f.readOnly {
		return err
	}
	if ierr := f.in.check(OpClose, f.Name()); ierr != nil {
		return errors.Join(ierr, err)
	}
	return err
}

func (f *injectedFile) Stat() (os.FileInfo, error) {
	if err := f.in.check(OpStat, f.Name()); err != nil {
		return nil, err
	}
	return f.File.Stat()
}
