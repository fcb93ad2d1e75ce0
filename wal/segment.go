package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"

	"github.com/featurelog/featurelog/vfs"
)

// segmentNameLen is the length of a segment file name: tidwall names each
// segment after the index (our seq) of its first entry, as 20 zero-padded
// decimal digits, so names sort in seq order. Part of the on-disk format;
// do not change.
const segmentNameLen = 20

// segment is one segment file of the log.
type segment struct {
	// first is the seq of the segment's first entry (taken from its name);
	// an empty tail segment holds no entries yet.
	first uint64
	// path is the file's path.
	path string
}

// segmentName is the file name of the segment whose first entry is seq.
func segmentName(seq uint64) string { return fmt.Sprintf("%020d", seq) }

// parseSegmentName returns the first seq of a segment file name; ok is false
// for any other name (tidwall's .START/.END files, our damaged/ directory).
func parseSegmentName(name string) (first uint64, ok bool) {
	if len(name) != segmentNameLen {
		return 0, false
	}
	first, err := strconv.ParseUint(name, 10, 64)
	return first, err == nil && first > 0
}

// listSegments returns the segments in dir, in seq order.
func listSegments(fs vfs.FS, dir string) ([]segment, error) {
	ents, err := fs.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []segment
	for _, e := range ents { // ReadDir sorts by name, hence by seq
		if first, ok := parseSegmentName(e.Name()); ok && e.Type().IsRegular() {
			segs = append(segs, segment{first: first, path: filepath.Join(dir, e.Name())})
		}
	}
	return segs, nil
}

// syncer performs the fsyncs of the log, or none of them under NoSync.
type syncer struct {
	noSync bool
	fs     vfs.FS
	// syncDir fsyncs a directory; a hook in tests.
	syncDir func(dir string) error
}

// newSyncer returns the syncer opts ask for.
func newSyncer(opts *Options) syncer {
	s := syncer{noSync: opts.NoSync, fs: opts.FS, syncDir: opts.FS.SyncDir}
	if opts.private.syncDir != nil {
		s.syncDir = opts.private.syncDir
	}
	return s
}

// dir fsyncs a directory so that file creations, renames and removals in
// it survive a crash.
func (s syncer) dir(path string) error {
	if s.noSync {
		return nil
	}
	return s.syncDir(path)
}

// file fsyncs an open file.
func (s syncer) file(f vfs.File) error {
	if s.noSync {
		return nil
	}
	return f.Sync()
}

// readBufSize is the initial read buffer of a segmentReader; it grows to
// hold the largest entry met.
const readBufSize = 1 << 20

// segmentReader streams the entries of one segment file through a reusable
// buffer, reading at most the size the file had when it was opened (the
// tail segment may grow while it is read).
type segmentReader struct {
	// fs opens the segment files.
	fs vfs.FS
	// maxPlain bounds a decompressed payload: the log's MaxBatchBytes
	// (0: DefaultMaxBatchBytes).
	maxPlain int
	f        vfs.File
	path     string
	// size bounds the bytes read from f.
	size int64
	// buf[r:w] holds the file bytes from offset off on, not yet consumed.
	buf  []byte
	r, w int
	off  int64
	// plain holds the last payload decompressed (frames with flagZstd).
	plain []byte
	// version and flags are the header fields of the last frame that
	// frame returned: a rewrite keeps them.
	version, flags byte
}

// reset points the reader at path, keeping its buffer.
func (s *segmentReader) reset(path string) error {
	s.close()
	f, err := s.fs.Open(path)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	*s = segmentReader{fs: s.fs, maxPlain: s.maxPlain, f: f, path: path, size: fi.Size(), buf: s.buf}
	return nil
}

// maxPayload is the largest payload a frame may decompress to.
func (s *segmentReader) maxPayload() int {
	if s.maxPlain <= 0 {
		return DefaultMaxBatchBytes
	}
	return s.maxPlain
}

func (s *segmentReader) close() {
	if s.f != nil {
		s.f.Close() // read-only: nothing to lose
		s.f = nil
	}
}

// next returns the next entry's bytes and offset. It returns io.EOF at a
// clean end of file, a non-empty reason for a malformed or truncated entry,
// and err for an I/O error. body is valid until the next call.
func (s *segmentReader) next() (body []byte, off int64, reason string, err error) {
	for {
		body, n, st := splitEntry(s.buf[s.r:s.w])
		switch st {
		case entryOK:
			off = s.off
			s.r += n
			s.off += int64(n)
			return body, off, "", nil
		case entryBad:
			return nil, s.off, reasonBadVarint, nil
		}
		need, reason := s.need()
		switch {
		case reason != "":
			return nil, s.off, reason, nil
		case need == 0:
			return nil, s.off, "", io.EOF
		}
		if err := s.fill(need); err != nil {
			return nil, s.off, "", err
		}
	}
}

// need returns how many buffered bytes the entry at s.off needs to be
// split, 0 at a clean end of file, or a reason if the file is too short.
func (s *segmentReader) need() (int, string) {
	avail := s.size - s.off
	buffered := s.w - s.r
	if avail == 0 {
		return 0, ""
	}
	if int64(buffered) == avail {
		return 0, reasonTruncated
	}
	size, k := binary.Uvarint(s.buf[s.r:s.w])
	if k == 0 { // the length prefix itself is not fully buffered yet
		return min(buffered+16, int(avail)), ""
	}
	if size > uint64(avail)-uint64(k) {
		return 0, reasonTruncated
	}
	return k + int(size), ""
}

// fill makes buf[r:w] hold at least need bytes (need never exceeds what is
// left of the file), compacting or growing buf as required.
func (s *segmentReader) fill(need int) error {
	if cap(s.buf)-s.r < need {
		n := copy(s.buf[:cap(s.buf)], s.buf[s.r:s.w])
		s.r, s.w = 0, n
		if cap(s.buf) < need {
			nb := make([]byte, max(need, 2*cap(s.buf), readBufSize))
			copy(nb, s.buf[:n])
			s.buf = nb
		}
	}
	s.buf = s.buf[:cap(s.buf)]
	lim := min(int64(len(s.buf)), int64(s.w)+s.size-s.off-int64(s.w-s.r))
	n, err := s.f.ReadAt(s.buf[s.w:lim], s.off+int64(s.w-s.r))
	s.w += n
	if s.w-s.r >= need {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = fmt.Errorf("wal: %s shrank while being read", s.path)
	}
	return err
}
