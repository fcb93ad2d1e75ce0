package wal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/featurelog/featurelog/vfs"
)

// damagedDir is the subdirectory of Dir that receives a copy of every
// segment before Open cuts a torn tail off it. tidwall ignores directories.
const damagedDir = "damaged"

// recovered is what recoverSegments learnt about the log.
type recovered struct {
	// last is the seq of the last valid entry (first-1 of the tail segment
	// if it is empty; 0 for a new log).
	last uint64
	// tailBytes is the size of the tail segment after any repair.
	tailBytes int64
	// report is the repair made, or nil.
	report *RepairReport
}

// recoverSegments verifies the last two segments before tidwall reads the
// directory. A crash can only damage the end of the last one: tidwall
// fsyncs a segment before it starts the next, and the committer fsyncs the
// directory before acknowledging entries in a new segment. So a torn tail
// is cut off there; anything else is a *CorruptionError.
func recoverSegments(opts *Options, segs []segment, s syncer) (recovered, error) {
	if len(segs) == 0 {
		return recovered{}, nil
	}
	tail := segs[len(segs)-1]
	if len(segs) > 1 {
		if err := verifySegment(opts, segs[len(segs)-2], tail.first-1); err != nil {
			return recovered{}, err
		}
	}
	return recoverTail(opts, tail, s)
}

// verifySegment checks that seg holds exactly the valid entries
// seg.first..end.
func verifySegment(opts *Options, seg segment, end uint64) error {
	r := segmentReader{fs: opts.FS, maxPlain: opts.MaxBatchBytes}
	defer r.close()
	nop := func(uint64, []byte) error { return nil }
	return r.replay(seg, end+1, end, true, nop)
}

// recoverTail scans the tail segment and repairs a torn tail: damage
// behind which findLaterWrite finds no frame of a later write.
func recoverTail(opts *Options, tail segment, s syncer) (recovered, error) {
	data, err := vfs.ReadFile(opts.FS, tail.path)
	if err != nil {
		return recovered{}, fmt.Errorf("wal: read tail segment: %w", err)
	}
	valid, next, reason := scanValid(data, tail.first)
	rec := recovered{last: next - 1, tailBytes: int64(valid)}
	if valid == len(data) {
		return rec, nil
	}
	if ev, ok := findLaterWrite(data, valid, next); ok {
		return recovered{}, &CorruptionError{File: tail.path, Offset: int64(valid), Seq: next,
			Reason: reason + "; " + ev.String()}
	}
	rec.report, err = repairTail(opts, tail, data, valid, s)
	return rec, err
}

// scanValid returns the end of the longest prefix of data made of valid
// entries with seqs first, first+1, ..., the seq expected next and, if data
// goes on, why the entry after the prefix is invalid.
func scanValid(data []byte, first uint64) (valid int, next uint64, reason string) {
	next = first
	for valid < len(data) {
		body, n, st := splitEntry(data[valid:])
		switch st {
		case entryShort:
			return valid, next, reasonTruncated
		case entryBad:
			return valid, next, reasonBadVarint
		}
		if _, reason := decodeFrame(body, next); reason != "" {
			return valid, next, reason
		}
		valid += n
		next++
	}
	return valid, next, ""
}

// laterWrite is a valid frame found behind damage that proves the damage
// is no torn write.
type laterWrite struct {
	// seq and off are the frame's seq and offset.
	seq uint64
	off int
	// end is set when the frame follows a commit-end frame found behind
	// the damage, of seq endSeq at offset endOff; unset, the frame is a
	// version 1 frame, whose writer marked no ends.
	end    bool
	endSeq uint64
	endOff int
}

func (w laterWrite) String() string {
	if !w.end {
		return fmt.Sprintf("not a torn tail: a valid frame (seq %d) follows at offset %d", w.seq, w.off)
	}
	return fmt.Sprintf("not a torn tail: a write ends behind the damage (seq %d at offset %d) and a valid frame "+
		"of a later write (seq %d) follows at offset %d, so the damaged write was fsynced", w.endSeq, w.endOff, w.seq, w.off)
}

// findLaterWrite searches data after offset from, where a bad entry
// expected to hold seq next begins, for valid frames with a seq of at
// least next (by magic, at every offset), and returns the first that
// proves the damage is not a torn write. A crash can tear only the last
// write: the committer begins a write only after the previous one's
// fsync returned. So damage may be cut when every frame behind it can
// belong to the write the damage is in: version 2 frames (whose writer
// marks the last frame of each write with flagCommitEnd) of which none
// follows a commit-end frame. A version 1 frame says nothing about where
// writes end, so any one found is proof enough, as before version 2.
func findLaterWrite(data []byte, from int, next uint64) (w laterWrite, ok bool) {
	for i := from; i < len(data); {
		j := bytes.Index(data[i:], []byte(frameMagic))
		if j < 0 {
			break
		}
		i += j
		frame, seq, valid := frameAt(data, i)
		if !valid || seq < next {
			i++
			continue
		}
		if !marked(frame) || w.end {
			w.seq, w.off = seq, i
			return w, true
		}
		if commitEnd(frame) {
			w.end, w.endSeq, w.endOff = true, seq, i
		}
		i += len(frame)
	}
	return laterWrite{}, false
}

// frameAt parses a frame starting at data[off] (where its magic is),
// trusting its own length field rather than a tidwall length prefix, and
// returns its bytes if it is valid.
func frameAt(data []byte, off int) (frame []byte, seq uint64, ok bool) {
	if len(data)-off < headerSize {
		return nil, 0, false
	}
	n := uint64(binary.LittleEndian.Uint32(data[off+offLength:]))
	if n > uint64(len(data)-off-headerSize) {
		return nil, 0, false
	}
	frame = data[off : off+headerSize+int(n)]
	seq, _, reason := parseFrame(frame)
	return frame, seq, reason == ""
}

// repairTail copies the damaged segment aside, then cuts it back to its
// valid prefix. tidwall must never see the cut bytes: it would refuse a
// torn entry and read zero bytes as valid empty entries.
func repairTail(opts *Options, seg segment, data []byte, valid int, s syncer) (*RepairReport, error) {
	copyPath, err := saveDamaged(opts.FS, opts.Dir, seg, data, s)
	if err != nil {
		return nil, fmt.Errorf("wal: copy damaged segment %s aside: %w", seg.path, err)
	}
	if err := truncateFile(opts.FS, seg.path, int64(valid), s); err != nil {
		return nil, fmt.Errorf("wal: cut torn tail of %s at offset %d: %w", seg.path, valid, err)
	}
	if err := s.dir(opts.Dir); err != nil {
		return nil, fmt.Errorf("wal: sync %s: %w", opts.Dir, err)
	}
	rep := &RepairReport{Segment: seg.path, Offset: int64(valid),
		DroppedBytes: int64(len(data) - valid), CopyPath: copyPath}
	opts.Logger.Warn("wal: cut torn tail off last segment",
		"segment", rep.Segment, "offset", rep.Offset, "dropped_bytes", rep.DroppedBytes, "copy", rep.CopyPath)
	return rep, nil
}

// saveDamaged durably writes data to Dir/damaged/<segment>.<unixnano>
// (temp file, fsync, rename, fsync) and returns that path.
func saveDamaged(fs vfs.FS, dir string, seg segment, data []byte, s syncer) (string, error) {
	ddir := filepath.Join(dir, damagedDir)
	if err := fs.MkdirAll(ddir); err != nil {
		return "", err
	}
	path := filepath.Join(ddir, filepath.Base(seg.path)+"."+strconv.FormatInt(time.Now().UnixNano(), 10))
	if err := writeFileSync(fs, path+".tmp", data, s); err != nil {
		return "", err
	}
	if err := fs.Rename(path+".tmp", path); err != nil {
		return "", err
	}
	if err := s.dir(ddir); err != nil {
		return "", err
	}
	return path, s.dir(dir) // for damaged/ itself, if just created
}

// writeFileSync writes and fsyncs a new file.
func writeFileSync(fs vfs.FS, path string, data []byte, s syncer) error {
	f, err := fs.Create(path)
	if err != nil {
		return err
	}
	if _, err = f.Write(data); err == nil {
		err = s.file(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// truncateFile cuts path to size and fsyncs it.
func truncateFile(fs vfs.FS, path string, size int64, s syncer) error {
	f, err := fs.OpenWrite(path)
	if err != nil {
		return err
	}
	if err = f.Truncate(size); err == nil {
		err = s.file(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
