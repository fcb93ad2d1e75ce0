// Package vfs is the small file-system interface under featurelog's
// durable state: the write-ahead log (wal), segment files (compaction) and
// the engine's manifest. Production code uses Default, the operating
// system's file system; tests substitute the wrappers of package
// vfs/errorfs: an Injector, which fails the i-th operation, or a Recorder,
// which tracks what a power loss would keep. (pebble keeps the same seam
// in its vfs and vfs/errorfs packages.) Options.FS of package engine takes
// any FS.
//
//	fs := vfs.Default
//	f, err := fs.Create(path)
//	...
//	err = f.Sync()
//	err = fs.Rename(path, final)
//	err = fs.SyncDir(filepath.Dir(final))
//
// Only operations whose failure or durability matters go through FS:
// creating, writing, syncing, renaming and removing files, syncing
// directories, and reading what recovery reads. tidwall writes the log's
// tail segment through its own *os.File; the wal reports each of those
// writes to the FS first (NoteWrite) and fsyncs the tail through FS, so an
// Injector can fail them and a Recorder can tell durable bytes apart.
package vfs

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// File is an open file.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.Closer
	// Sync makes the file's content durable (fsync).
	Sync() error
	// Truncate changes the file's size.
	Truncate(size int64) error
	// Stat describes the file.
	Stat() (os.FileInfo, error)
	// Name is the path the file was opened with.
	Name() string
}

// FS is a file system. Paths are operating-system paths.
type FS interface {
	// Create creates or truncates name for writing (mode 0644).
	Create(name string) (File, error)
	// CreateExclusive creates name for writing, failing if it exists.
	CreateExclusive(name string) (File, error)
	// Open opens name for reading.
	Open(name string) (File, error)
	// OpenWrite opens an existing file for writing, without truncating it.
	OpenWrite(name string) (File, error)
	// Rename renames oldpath to newpath, replacing newpath if it exists.
	Rename(oldpath, newpath string) error
	// Remove removes a file or an empty directory.
	Remove(name string) error
	// MkdirAll creates dir and any missing parents (mode 0755).
	MkdirAll(dir string) error
	// ReadDir lists dir, sorted by name.
	ReadDir(dir string) ([]os.DirEntry, error)
	// Stat describes name.
	Stat(name string) (os.FileInfo, error)
	// SyncDir fsyncs a directory, making the entries created, renamed or
	// removed in it durable.
	SyncDir(dir string) error
}

// WriteNoter is implemented by file systems that want to see, and may
// fail, writes made to their files by code that cannot go through FS:
// tidwall's appends to the log's tail segment.
type WriteNoter interface {
	// NoteWrite is called before n bytes are appended to path; an error
	// means the write must not be made.
	NoteWrite(path string, n int) error
}

// NoteWrite tells fs, if it is a WriteNoter, that n bytes are about to be
// appended to path outside of it, and returns its verdict.
func NoteWrite(fs FS, path string, n int) error {
	if wn, ok := fs.(WriteNoter); ok {
		return wn.NoteWrite(path, n)
	}
	return nil
}

// Default is the operating system's file system.
var Default FS = osFS{}

type osFS struct{}

func (osFS) Create(name string) (File, error) {
	return os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
}

func (osFS) CreateExclusive(name string) (File, error) {
	return os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
}

func (osFS) Open(name string) (File, error) { return os.Open(name) }

func (osFS) OpenWrite(name string) (File, error) { return os.OpenFile(name, os.O_WRONLY, 0) }

func (osFS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }

func (osFS) Remove(name string) error { return os.Remove(name) }

func (osFS) MkdirAll(dir string) error { return os.MkdirAll(dir, 0o755) }

func (osFS) ReadDir(dir string) ([]os.DirEntry, error) { return os.ReadDir(dir) }

func (osFS) Stat(name string) (os.FileInfo, error) { return os.Stat(name) }

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync of directory %s: %w", dir, err)
	}
	return nil
}

// ReadFile reads the whole of name through fs.
func ReadFile(fs FS, name string) ([]byte, error) {
	f, err := fs.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	data := make([]byte, 0, fi.Size()+512)
	for {
		n, err := f.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if err == io.EOF {
			return data, nil
		}
		if err != nil {
			return data, err
		}
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
	}
}

// WriteFileSync creates name, writes data and fsyncs it.
func WriteFileSync(fs FS, name string, data []byte) error {
	f, err := fs.Create(name)
	if err != nil {
		return err
	}
	if _, err = f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// SyncParent fsyncs the directory holding path.
func SyncParent(fs FS, path string) error {
	return fs.SyncDir(filepath.Dir(filepath.Clean(path)))
}
