package tabular

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/featurelog/featurelog/tabread"
	"github.com/featurelog/featurelog/vfs"
)

// File is a result file written atomically: rows go to path + ".tmp",
// which Commit renames to path once complete, so that a failed or
// interrupted run leaves no partial file under the final name.
type File struct {
	Writer
	path, tmp string
	f         *os.File
	bw        *bufio.Writer
	done      bool
}

// CreateFile starts writing a result to path, in the format its
// extension names.
func CreateFile(path string) (*File, error) {
	if _, err := tabread.FormatOf(path); err != nil {
		return nil, err
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return nil, fmt.Errorf("creating the output file: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	w, err := CreateWriter(path, bw)
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, err
	}
	return &File{Writer: w, path: path, tmp: tmp, f: f, bw: bw}, nil
}

// Commit finishes the file, fsyncs it, renames it into place and fsyncs
// the directory.
func (o *File) Commit() error {
	if o.done {
		return errors.New("BUG: tabular: Commit after Commit or Abort")
	}
	err := o.Writer.Close()
	if err == nil {
		err = o.bw.Flush()
	}
	if err == nil {
		err = o.f.Sync()
	}
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	o.done = true
	if err == nil {
		err = os.Rename(o.tmp, o.path)
	}
	if err != nil {
		os.Remove(o.tmp)
		return fmt.Errorf("writing %s: %w", o.path, err)
	}
	return vfs.Default.SyncDir(filepath.Dir(o.path))
}

// Abort discards the file; after Commit it does nothing.
func (o *File) Abort() {
	if o.done {
		return
	}
	o.done = true
	o.f.Close()
	os.Remove(o.tmp)
}
