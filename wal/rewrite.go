package wal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	twal "github.com/tidwall/wal"

	"github.com/featurelog/featurelog/vfs"
)

// rewriteSuffix names the temporary file a segment is rewritten into,
// beside it: <segment name>.rewrite. Neither tidwall nor listSegments
// reads it (its name is not 20 digits); Open removes a leftover one.
// Part of the on-disk format; do not change.
const rewriteSuffix = ".rewrite"

// RewriteFunc returns the new payload of the entry seq, or keep = true to
// leave it as it is. payload is valid only during the call; the returned
// slice is not retained after the call either.
type RewriteFunc func(seq uint64, payload []byte) (newPayload []byte, keep bool, err error)

// RewriteStats counts what a Rewrite read and changed.
type RewriteStats struct {
	Segments          int // segment files read
	SegmentsRewritten int // segment files replaced
	Entries           int // entries read
	EntriesChanged    int // entries given a new payload
}

// Rewrite gives new payloads to entries with a seq of at most upTo: fn is
// called for each of them in seq order, and every segment holding an
// entry it changes is replaced by a copy with the new payloads. Entries
// keep their seqs, so the log's seqs stay dense and every segment keeps
// its name and entry count. This is how records are erased from the log.
//
// The tail segment takes appends and tidwall holds it in memory, so if it
// holds entries up to upTo, Rewrite first seals it (Seal): only closed
// segments are ever rewritten. Appends go on meanwhile.
//
// Crash safety: a segment is rewritten into <name>.rewrite, which is
// fsynced, then renamed over the segment, and the directory fsynced. The
// rename is atomic, so after a crash or power loss at any instant each
// segment holds either all its old entries or all its new ones, each a
// valid segment with the same seqs; Open removes a leftover temporary
// file. A caller that must not leave old payloads behind re-runs the
// rewrite after a crash (it is idempotent when fn is). Nothing is
// acknowledged by a rewrite, so its errors do not fail the log.
//
// A Replay running meanwhile reads each segment either before or after
// its replacement. Rewrite and TruncateFront exclude each other.
func (l *Log) Rewrite(upTo uint64, fn RewriteFunc) (RewriteStats, error) {
	var st RewriteStats
	l.maint.Lock()
	defer l.maint.Unlock()
	segs, last, err := l.snapshot()
	if err != nil {
		return st, err
	}
	upTo = min(upTo, last)
	if tail := segs[len(segs)-1]; tail.first <= upTo {
		if _, err := l.Seal(); err != nil {
			return st, err
		}
		if segs, _, err = l.snapshot(); err != nil {
			return st, err
		}
	}
	rw := segmentRewriter{opts: &l.opts, sync: l.sync, fn: fn, r: segmentReader{fs: l.opts.FS, maxPlain: l.opts.MaxBatchBytes}}
	defer rw.r.close()
	for i := 0; i+1 < len(segs) && segs[i].first <= upTo; i++ {
		end := segs[i+1].first - 1
		changed, err := rw.rewrite(segs[i], end, min(end, upTo), &st)
		if err != nil {
			return st, err
		}
		if changed {
			st.SegmentsRewritten++
		}
		st.Segments++
	}
	return st, nil
}

// segmentRewriter rewrites segments one at a time.
type segmentRewriter struct {
	opts *Options
	sync syncer
	fn   RewriteFunc
	r    segmentReader
	// tmp is the temporary file being written (nil until the first
	// changed entry of the segment), buffered by w.
	tmp vfs.File
	// started is set once tmp was created for the current segment.
	started bool
	w       *bufio.Writer
	frame   []byte
	zbuf    []byte
}

// rewrite reads seg's entries seg.first..end, calling fn on those up to
// upTo, and replaces seg if any changed. The temporary file is created at
// the first changed entry, with the bytes before it copied as they are.
func (rw *segmentRewriter) rewrite(seg segment, end, upTo uint64, st *RewriteStats) (changed bool, err error) {
	if err := rw.r.reset(seg.path); err != nil {
		return false, fmt.Errorf("wal: open segment: %w", err)
	}
	tmpPath := seg.path + rewriteSuffix
	defer func() {
		if rw.tmp != nil {
			rw.tmp.Close()
			rw.tmp = nil
		}
		if err != nil && rw.started {
			rw.opts.FS.Remove(tmpPath)
		}
	}()
	rw.started = false
	for seq := seg.first; seq <= end; seq++ {
		off := rw.r.off
		payload, err := rw.r.frame(seq)
		if err != nil {
			return false, err
		}
		st.Entries++
		np, keep := payload, true
		if seq <= upTo {
			if np, keep, err = rw.fn(seq, payload); err != nil {
				return false, err
			}
			if keep {
				np = payload
			}
		}
		if !keep {
			st.EntriesChanged++
			if rw.tmp == nil {
				if err := rw.start(tmpPath, seg.path, off); err != nil {
					return false, err
				}
			}
		}
		if rw.tmp != nil {
			if err := rw.writeEntry(seq, np, rw.r.version, rw.r.flags&flagCommitEnd); err != nil {
				return false, fmt.Errorf("wal: write %s: %w", tmpPath, err)
			}
		}
		// A rewrite is background work: let waiting goroutines (requests)
		// run between entries rather than queue behind a full time slice.
		runtime.Gosched()
	}
	if err := rw.r.atEnd(end + 1); err != nil {
		return false, err
	}
	if rw.tmp == nil {
		return false, nil
	}
	return true, rw.replace(tmpPath, seg.path)
}

// start creates the temporary file and copies the segment's first n
// bytes into it.
func (rw *segmentRewriter) start(tmpPath, segPath string, n int64) error {
	f, err := rw.opts.FS.Create(tmpPath)
	if err != nil {
		return fmt.Errorf("wal: create %s: %w", tmpPath, err)
	}
	rw.tmp, rw.started = f, true
	if rw.w == nil {
		rw.w = bufio.NewWriterSize(f, 1<<20)
	} else {
		rw.w.Reset(f)
	}
	src, err := rw.opts.FS.Open(segPath)
	if err != nil {
		return fmt.Errorf("wal: open segment: %w", err)
	}
	defer src.Close()
	if _, err := io.Copy(rw.w, io.NewSectionReader(src, 0, n)); err != nil {
		return fmt.Errorf("wal: copy %s into %s: %w", segPath, tmpPath, err)
	}
	return nil
}

// writeEntry appends the tidwall entry of payload's frame, compressed as
// the committer would. The frame keeps the entry's version and commit
// mark (flags): a rewritten segment marks the ends of the writes that
// made it, as it did before.
func (rw *segmentRewriter) writeEntry(seq uint64, payload []byte, version, flags byte) error {
	stored := payload
	if rw.opts.CompressMin > 0 && len(payload) >= rw.opts.CompressMin {
		var z bool
		if rw.zbuf, z = deflate(rw.zbuf[:0], payload, rw.opts.CompressMin); z {
			stored, flags = rw.zbuf, flags|flagZstd
		}
	}
	rw.frame = binary.AppendUvarint(rw.frame[:0], uint64(frameSize(len(stored))))
	rw.frame = appendFrameVersion(rw.frame, version, seq, flags, stored)
	if err := vfs.NoteWrite(rw.opts.FS, rw.tmp.Name(), len(rw.frame)); err != nil {
		return err
	}
	_, err := rw.w.Write(rw.frame)
	return err
}

// replace makes the temporary file durable and renames it over the
// segment.
func (rw *segmentRewriter) replace(tmpPath, segPath string) error {
	if err := rw.w.Flush(); err != nil {
		return fmt.Errorf("wal: write %s: %w", tmpPath, err)
	}
	if err := rw.sync.file(rw.tmp); err != nil {
		return fmt.Errorf("wal: fsync %s: %w", tmpPath, err)
	}
	if err := rw.tmp.Close(); err != nil {
		rw.tmp = nil
		return fmt.Errorf("wal: close %s: %w", tmpPath, err)
	}
	rw.tmp = nil
	if err := rw.opts.FS.Rename(tmpPath, segPath); err != nil {
		rw.opts.FS.Remove(tmpPath)
		return fmt.Errorf("wal: rename %s over %s: %w", tmpPath, segPath, err)
	}
	if err := rw.sync.dir(rw.opts.Dir); err != nil {
		return fmt.Errorf("wal: fsync %s after replacing %s: %w", rw.opts.Dir, filepath.Base(segPath), err)
	}
	return nil
}

// removeRewriteLeftovers removes the temporary files of rewrites a crash
// interrupted: each holds old payloads a rewrite was erasing, and the
// segment it was to replace is intact.
func removeRewriteLeftovers(opts *Options, s syncer) error {
	ents, err := opts.FS.ReadDir(opts.Dir)
	if err != nil {
		return err
	}
	removed := false
	for _, e := range ents {
		if name := e.Name(); strings.HasSuffix(name, rewriteSuffix) {
			if err := opts.FS.Remove(filepath.Join(opts.Dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("wal: remove unfinished rewrite %s: %w", name, err)
			}
			removed = true
		}
	}
	if !removed {
		return nil
	}
	return s.dir(opts.Dir)
}

// Seal closes the tail segment and starts an empty one, so that every
// entry up to the returned seq lies in a closed segment. It does nothing
// (and returns LastSeq) when the tail holds no entry. Appends wait
// meanwhile: the committer runs it between two batches.
func (l *Log) Seal() (uint64, error) {
	r := &request{done: make(chan error, 1), ctl: l.sealTail}
	if err := l.enqueue(r); err != nil {
		return 0, err
	}
	err := <-r.done
	return r.seq, err
}

// sealTail is Seal's work, in the committer goroutine: create the new
// empty segment durably, then reopen tidwall on the directory so that it
// appends there. A failure after tidwall is closed fails the log.
func (l *Log) sealTail(r *request) error {
	r.seq = l.c.last
	if l.c.last < l.c.tail.first {
		return nil
	}
	next := segment{first: l.c.last + 1, path: filepath.Join(l.opts.Dir, segmentName(l.c.last+1))}
	f, err := l.opts.FS.Create(next.path)
	if err != nil {
		return fmt.Errorf("wal: create segment %s: %w", next.path, err)
	}
	if err := l.sync.file(f); err != nil {
		f.Close()
		l.opts.FS.Remove(next.path)
		return fmt.Errorf("wal: fsync new segment %s: %w", next.path, err)
	}
	if err := l.sync.dir(l.opts.Dir); err != nil {
		f.Close()
		return l.fail("fsync directory", fmt.Errorf("%s: %w", l.opts.Dir, err))
	}
	if err := l.tw.Close(); err != nil {
		f.Close()
		return l.fail("close tidwall to seal the tail", err)
	}
	tw, err := twal.Open(l.opts.Dir, l.opts.tidwallOptions())
	if err != nil {
		f.Close()
		return l.fail("reopen tidwall after sealing the tail", err)
	}
	if last, err := tw.LastIndex(); err != nil || last != l.c.last {
		f.Close()
		tw.Close()
		return l.fail("reopen tidwall after sealing the tail", fmt.Errorf("tidwall reads the log as ending at %d, not %d (%v)", last, l.c.last, err))
	}
	l.tw = tw
	if l.opts.private.wrapBackend != nil {
		l.tw = l.opts.private.wrapBackend(tw)
	}
	if err := l.c.tailFile.Close(); err != nil {
		l.opts.Logger.Warn("wal: closing a sealed segment failed after its fsync", "segment", l.c.tail.path, "err", err)
	}
	l.c.tail, l.c.tailFile, l.c.tailBytes = next, f, 0
	l.c.created = append(l.c.created[:0], next)
	l.publish()
	return nil
}
