//go:build unix

package errorfs

import (
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"

	"github.com/featurelog/featurelog/vfs"
)

// Recorder wraps an FS and keeps what a power loss at any instant could
// leave of some directories, so that tests can build those images: a
// directory entry survives once its directory was fsynced, a file's bytes
// once the file was fsynced, and bytes written since may survive in part,
// torn or zero-filled. Files replaced or removed while their old entry is
// still the durable one are kept (hard-linked) aside, since a power loss
// would bring them back.
//
// It models the ext4/XFS contract applications may rely on, nothing
// weaker: fsync of a file makes its data and size durable, fsync of a
// directory makes its entries durable. Directories themselves are taken
// to be durable once they exist.
type Recorder struct {
	fs   vfs.FS
	root string
	// graveyard holds hard links to replaced or removed files, by inode.
	graveyard string

	// BeforeSync, if set, is called before every file and directory fsync
	// made through the Recorder, with the path: the instant at which
	// written but not yet durable bytes exist. It may call Image.
	BeforeSync func(path string)

	mu struct {
		sync.Mutex
		// names is the durable entries of each tracked directory: the
		// entries it had at its last fsync (or when tracking began).
		names map[string]map[string]uint64
		// durable is the durable size of each inode.
		durable map[uint64]int64
		// kept maps an inode to its link in graveyard.
		kept map[uint64]string
	}
}

// NewRecorder returns a Recorder over fs for the data directory root,
// tracking the directories dirs (paths relative to root). What the
// directories hold now is taken to be durable. graveyard must be an empty
// directory on the same file system as root.
func NewRecorder(fs vfs.FS, root, graveyard string, dirs ...string) (*Recorder, error) {
	r := &Recorder{fs: fs, root: root, graveyard: graveyard}
	r.mu.names = map[string]map[string]uint64{}
	r.mu.durable = map[uint64]int64{}
	r.mu.kept = map[uint64]string{}
	for _, d := range dirs {
		dir := filepath.Join(root, d)
		names, sizes, err := scanDir(dir)
		if err != nil {
			return nil, err
		}
		r.mu.names[dir] = names
		for ino, size := range sizes {
			r.mu.durable[ino] = size
		}
	}
	return r, nil
}

// scanDir returns the regular files of dir by name, with their inodes and
// sizes. A missing directory is empty.
func scanDir(dir string) (map[string]uint64, map[uint64]int64, error) {
	names, sizes := map[string]uint64{}, map[uint64]int64{}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, iofs.ErrNotExist) {
		return names, sizes, nil
	}
	if err != nil {
		return nil, nil, err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, nil, err
		}
		ino := inode(fi)
		names[e.Name()] = ino
		sizes[ino] = fi.Size()
	}
	return names, sizes, nil
}

func inode(fi os.FileInfo) uint64 { return uint64(fi.Sys().(*syscall.Stat_t).Ino) }

// keep hard-links path into the graveyard if a durable entry names its
// inode, so that an image can bring it back; with copy, it copies the
// file instead, because the caller is about to truncate the inode.
func (r *Recorder) keep(path string, copy bool) error {
	fi, err := os.Stat(path)
	if err != nil {
		return nil // nothing there to keep
	}
	ino := inode(fi)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.mu.kept[ino]; ok || !r.namedLocked(ino) {
		return nil
	}
	link := filepath.Join(r.graveyard, strconv.FormatUint(ino, 10))
	keep := os.Link
	if copy {
		keep = copyFile
	}
	if err := keep(path, link); err != nil {
		return fmt.Errorf("vfs: recorder keeping %s: %w", path, err)
	}
	r.mu.kept[ino] = link
	return nil
}

func (r *Recorder) namedLocked(ino uint64) bool {
	for _, names := range r.mu.names {
		for _, i := range names {
			if i == ino {
				return true
			}
		}
	}
	return false
}

// synced records that f's current size is durable.
func (r *Recorder) synced(f vfs.File) {
	fi, err := os.Stat(f.Name())
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mu.durable[inode(fi)] = fi.Size()
}

func (r *Recorder) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &recordedFile{File: f, r: r}, nil
}

// Create implements FS.
func (r *Recorder) Create(name string) (vfs.File, error) {
	if err := r.keep(name, true); err != nil {
		return nil, err
	}
	return r.wrap(r.fs.Create(name))
}

// CreateExclusive implements FS.
func (r *Recorder) CreateExclusive(name string) (vfs.File, error) {
	return r.wrap(r.fs.CreateExclusive(name))
}

// Open implements FS.
func (r *Recorder) Open(name string) (vfs.File, error) { return r.fs.Open(name) }

// OpenWrite implements FS.
func (r *Recorder) OpenWrite(name string) (vfs.File, error) { return r.wrap(r.fs.OpenWrite(name)) }

// Rename implements FS.
func (r *Recorder) Rename(oldpath, newpath string) error {
	if err := r.keep(newpath, false); err != nil {
		return err
	}
	return r.fs.Rename(oldpath, newpath)
}

// Remove implements FS.
func (r *Recorder) Remove(name string) error {
	if err := r.keep(name, false); err != nil {
		return err
	}
	return r.fs.Remove(name)
}

// MkdirAll implements FS.
func (r *Recorder) MkdirAll(dir string) error { return r.fs.MkdirAll(dir) }

// ReadDir implements FS.
func (r *Recorder) ReadDir(dir string) ([]os.DirEntry, error) { return r.fs.ReadDir(dir) }

// Stat implements FS.
func (r *Recorder) Stat(name string) (os.FileInfo, error) { return r.fs.Stat(name) }

// NoteWrite implements WriteNoter.
func (r *Recorder) NoteWrite(path string, n int) error { return vfs.NoteWrite(r.fs, path, n) }

// SyncDir implements FS: the directory's current entries become durable.
func (r *Recorder) SyncDir(dir string) error {
	if r.BeforeSync != nil {
		r.BeforeSync(dir)
	}
	if err := r.fs.SyncDir(dir); err != nil {
		return err
	}
	dir = filepath.Clean(dir)
	r.mu.Lock()
	_, tracked := r.mu.names[dir]
	r.mu.Unlock()
	if !tracked {
		return nil
	}
	names, _, err := scanDir(dir)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mu.names[dir] = names
	return nil
}

type recordedFile struct {
	vfs.File
	r *Recorder
}

func (f *recordedFile) Sync() error {
	if f.r.BeforeSync != nil {
		f.r.BeforeSync(f.Name())
	}
	if err := f.File.Sync(); err != nil {
		return err
	}
	f.r.synced(f.File)
	return nil
}

// FileState is one file of an image: its durable entry, and how much of
// it is durable.
type FileState struct {
	// Path is the file's path in the recorded directory.
	Path string
	// Durable is how many bytes were fsynced; Size how many exist now.
	Durable, Size int64
}

// Image writes to dst a data directory a power loss now could leave:
// everything under root but the tracked directories is copied as it is;
// each tracked directory gets its durable entries. A file's content is
// content(state, data), where data is everything the file holds now; nil
// content means the durable prefix, data[:Durable].
func (r *Recorder) Image(dst string, content func(st FileState, data []byte) []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := copyUntracked(r.root, dst, r.mu.names); err != nil {
		return err
	}
	for dir, names := range r.mu.names {
		rel, err := filepath.Rel(r.root, dir)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dst, rel), 0o755); err != nil {
			return err
		}
		for name, ino := range names {
			if err := r.imageFile(filepath.Join(dir, name), filepath.Join(dst, rel, name), ino, content); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *Recorder) imageFile(path, dst string, ino uint64, content func(FileState, []byte) []byte) error {
	src := path
	if fi, err := os.Stat(path); err != nil || inode(fi) != ino {
		link, ok := r.mu.kept[ino]
		if !ok {
			return fmt.Errorf("vfs: recorder lost track of %s (inode %d)", path, ino)
		}
		src = link
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	st := FileState{Path: path, Durable: min(r.mu.durable[ino], int64(len(data))), Size: int64(len(data))}
	out := data[:st.Durable]
	if content != nil {
		if c := content(st, data); c != nil {
			out = c
		}
	}
	return os.WriteFile(dst, out, 0o644)
}

// Files lists the durable entries of the tracked directories now.
func (r *Recorder) Files() []FileState {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []FileState
	for dir, names := range r.mu.names {
		for name, ino := range names {
			path := filepath.Join(dir, name)
			size := r.mu.durable[ino]
			if fi, err := os.Stat(path); err == nil && inode(fi) == ino {
				size = fi.Size()
			}
			out = append(out, FileState{Path: path, Durable: min(r.mu.durable[ino], size), Size: size})
		}
	}
	return out
}

// copyUntracked copies root to dst, leaving out the tracked directories.
func copyUntracked(root, dst string, tracked map[string]map[string]uint64) error {
	return filepath.WalkDir(root, func(path string, d iofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if _, ok := tracked[path]; ok {
			return filepath.SkipDir
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return copyFile(path, target)
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}
