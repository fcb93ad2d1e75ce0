package wal

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rewriteV1 re-frames every entry of the segment at path as a version 1
// frame (no commit marks), as a writer before version 2 wrote it. Entry
// sizes and offsets stay the same.
func rewriteV1(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []byte
	for off := 0; off < len(data); {
		body, n, st := splitEntry(data[off:])
		require.Equal(t, entryOK, st)
		seq, stored, reason := parseFrame(body)
		require.Empty(t, reason)
		out = appendEntry(out, appendFrameVersion(nil, frameVersionV1, seq, body[offFlags]&flagZstd, stored))
		off += n
	}
	require.Len(t, out, len(data))
	require.NoError(t, os.WriteFile(path, out, 0o644))
}

// span is a range of a segment to zero: from entry from, plus fromDelta
// bytes, to entry to, plus toDelta bytes (entry indexes count from 0; the
// entry count is the file's end).
type span struct{ from, fromDelta, to, toDelta int }

// entries is the span of whole entries [from, to).
func entries(from, to int) span { return span{from: from, to: to} }

// tear zeroes spans of the last segment, then cuts it at entry cut (if
// >= 0), with offsets taken from the undamaged file.
func tear(cut int, spans ...span) damage {
	return func(t *testing.T, paths []string) {
		path, offs, data := lastEntry(t, paths)
		for _, s := range spans {
			clear(data[offs[s.from]+s.fromDelta : offs[s.to]+s.toDelta])
		}
		if cut >= 0 {
			data = data[:offs[cut]]
		}
		require.NoError(t, os.WriteFile(path, data, 0o644))
	}
}

// TestRepairTornWrite is the table of damage to writes of several frames
// in hand-built segments: damage behind which every valid frame can
// belong to the damaged write (version 2 frames, none behind a commit-end
// frame) is a torn write, cut like a torn tail; a frame of a later write,
// or any version 1 frame, behind the damage is corruption.
func TestRepairTornWrite(t *testing.T) {
	v1 := func(n int) write { return write{version: frameVersionV1, n: n} }
	v2 := func(n int) write { return write{version: frameVersion, n: n} }
	const laterWrite = "not a torn tail: a write ends behind the damage"
	for _, tc := range []struct {
		name   string
		writes []write
		damage damage
		out    repairOutcome
	}{
		// Writes of 3 and 5 frames: entries 0-2, then 3-7, the last write.
		{"first frame zeroed, rest intact", []write{v2(3), v2(5)}, tear(-1, entries(3, 4)),
			repairOutcome{want: 3, repair: true, corrupt: -1}},
		{"first frame zeroed, end frame lost", []write{v2(3), v2(5)}, tear(7, entries(3, 4)),
			repairOutcome{want: 3, repair: true, corrupt: -1}},
		{"first frame zeroed, end frame zeroed", []write{v2(3), v2(5)}, tear(-1, entries(3, 4), entries(7, 8)),
			repairOutcome{want: 3, repair: true, corrupt: -1}},
		{"middle frames zeroed", []write{v2(3), v2(5)}, tear(-1, entries(4, 6)),
			repairOutcome{want: 4, repair: true, corrupt: -1}},
		{"zeros from inside a frame to inside another", []write{v2(3), v2(5)}, tear(-1, span{3, 10, 5, 7}),
			repairOutcome{want: 3, repair: true, corrupt: -1}},
		{"all but the end frame zeroed", []write{v2(3), v2(5)}, tear(-1, entries(3, 7)),
			repairOutcome{want: 3, repair: true, corrupt: -1}},
		{"length prefix of the first frame zeroed", []write{v2(3), v2(5)}, tear(-1, span{3, 0, 3, 1}),
			repairOutcome{want: 3, repair: true, corrupt: -1}},
		// A frame behind a commit-end frame behind the damage belongs to a
		// later write: the damaged one was fsynced.
		{"later write behind the damage", []write{v2(3), v2(5), v2(2)}, tear(-1, entries(3, 4)),
			repairOutcome{corrupt: 3, reason: laterWrite}},
		{"later write behind damage to an earlier write", []write{v2(3), v2(3), v2(3)}, tear(-1, entries(1, 2)),
			repairOutcome{corrupt: 1, reason: laterWrite}},
		{"later single-frame writes behind the damage", []write{v2(3), v2(1), v2(1), v2(1)}, tear(-1, entries(3, 4)),
			repairOutcome{corrupt: 3, reason: laterWrite}},
		// The limit docs/format/wal.md states: damage that takes a write's
		// commit-end frame with it leaves no evidence of the later write.
		{"damage across a write's end (read as torn)", []write{v2(3), v2(3), v2(3)}, tear(-1, entries(4, 6)),
			repairOutcome{want: 4, repair: true, corrupt: -1}},
		// Version 1 frames say nothing of writes: as before version 2.
		{"version 1: valid frame behind the damage", []write{v1(3), v1(5)}, tear(-1, entries(3, 4)),
			repairOutcome{corrupt: 3, reason: "not a torn tail: a valid frame (seq 5) follows at offset"}},
		{"version 1: torn tail", []write{v1(3), v1(5)}, tear(-1, entries(6, 8)),
			repairOutcome{want: 6, repair: true, corrupt: -1}},
		// A log written before an upgrade and appended to after it.
		{"upgrade: first version 2 write torn", []write{v1(3), v2(5)}, tear(-1, entries(3, 4)),
			repairOutcome{want: 3, repair: true, corrupt: -1}},
		{"upgrade: version 1 frame behind the damage", []write{v1(3), v2(5)}, tear(-1, entries(1, 2)),
			repairOutcome{corrupt: 1, reason: "not a torn tail: a valid frame (seq 3) follows at offset"}},
		{"upgrade: later version 2 write behind the damage", []write{v1(3), v2(2), v2(2)}, tear(-1, entries(1, 3)),
			repairOutcome{corrupt: 1, reason: laterWrite}},
		{"upgrade: damage through the last version 1 frames (read as torn)", []write{v1(3), v2(3)}, tear(-1, entries(1, 3)),
			repairOutcome{want: 1, repair: true, corrupt: -1}},
		{"upgrade: version 2 write torn, version 1 frames before", []write{v1(3), v2(2), v2(4)}, tear(6, entries(5, 6)),
			repairOutcome{want: 5, repair: true, corrupt: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := testOptions(t)
			opts.NoSync = false // the repair's own fsyncs run here
			require.NoError(t, os.MkdirAll(opts.Dir, 0o755))
			path := filepath.Join(opts.Dir, segmentName(1))
			require.NoError(t, os.WriteFile(path, buildSegment(1, tc.writes...), 0o644))
			repairCase(t, opts, []string{path}, tc.damage, tc.out)
		})
	}
}

// TestRepairTornWriteOverTwoSegments: tidwall split the last write over
// two segments, fsyncing the older before creating the newer; its part
// in the older one ends without a mark. A tear in the newer part is cut
// back to the start of the segment; the older part stays, being fsynced
// (a prefix of a write never acknowledged); damage to the older part is
// corruption, as any damage to the second-to-last segment.
func TestRepairTornWriteOverTwoSegments(t *testing.T) {
	v2 := write{version: frameVersion, n: 3}
	older := buildSegment(1, v2, write{version: frameVersion, n: 2, open: true}) // seqs 1-5
	newer := buildSegment(6, write{version: frameVersion, n: 3})                 // seqs 6-8
	setup := func(t *testing.T) (Options, []string) {
		opts := testOptions(t)
		opts.NoSync = false
		require.NoError(t, os.MkdirAll(opts.Dir, 0o755))
		paths := []string{filepath.Join(opts.Dir, segmentName(1)), filepath.Join(opts.Dir, segmentName(6))}
		require.NoError(t, os.WriteFile(paths[0], older, 0o644))
		require.NoError(t, os.WriteFile(paths[1], newer, 0o644))
		return opts, paths
	}
	t.Run("intact", func(t *testing.T) {
		opts, _ := setup(t)
		l := openT(t, opts)
		requireEntries(t, l, 8)
		require.NoError(t, l.Verify())
		assert.Nil(t, l.Repair())
	})
	t.Run("newer part torn", func(t *testing.T) {
		opts, paths := setup(t)
		tear(-1, entries(0, 1))(t, paths)
		damaged, err := os.ReadFile(paths[1])
		require.NoError(t, err)
		l := openT(t, opts)
		requireEntries(t, l, 5)
		requireRepaired(t, l, paths[1], damaged, 0)
		requireAppendable(t, l, opts, 5)
	})
	t.Run("older part damaged", func(t *testing.T) {
		opts, paths := setup(t)
		offs := entryOffsets(t, paths[0])
		tear(-1, entries(3, 4))(t, paths[:1])
		_, err := Open(opts)
		requireCorruption(t, err, paths[0], offs[3], 4, reasonShortFrame)
	})
}

// TestCrashImagesOfOneWrite writes one AppendBatch of several 4 KiB
// blocks after three single appends, then opens images of what a power
// loss during its write can leave: the file cut at many offsets, and
// each of its unsynced blocks zero-filled (alone, or all but one). Every
// image opens and keeps a prefix of the entries, at least the durable
// ones. The same images of a version 1 log are refused exactly when a
// valid frame lies behind the damage, as before version 2; some are.
func TestCrashImagesOfOneWrite(t *testing.T) {
	const block = 4096
	opts := testOptions(t)
	opts.SegmentSize = 1 << 20
	l := openT(t, opts)
	appendN(t, l, 3)
	path := segmentPaths(t, opts.Dir)[0]
	fi, err := os.Stat(path)
	require.NoError(t, err)
	durable := int(fi.Size())
	var batch [][]byte
	for seq := uint64(4); seq < 4+60; seq++ {
		batch = append(batch, bytes.Repeat(payloadFor(seq), 3))
	}
	_, err = l.AppendBatch(batch)
	require.NoError(t, err)
	closeT(t, l)
	good, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Greater(t, len(good)-durable, 3*block)
	want := func(seq uint64) []byte {
		if seq < 4 {
			return payloadFor(seq)
		}
		return batch[seq-4]
	}

	// An image is a damage applied to a copy of the file.
	var images []func([]byte) []byte
	for cut := durable + 1; cut <= len(good); cut += 53 {
		images = append(images, func(b []byte) []byte { return b[:cut] })
	}
	zero := func(img []byte, b int) { clear(img[max(b, durable):min(b+block, len(img))]) }
	for b := durable / block * block; b < len(good); b += block {
		images = append(images, func(img []byte) []byte { zero(img, b); return img })
		images = append(images, func(img []byte) []byte { // every unsynced block lost but b
			for o := durable / block * block; o < len(img); o += block {
				if o != b {
					zero(img, o)
				}
			}
			return img
		})
	}

	v1 := testOptions(t)
	require.NoError(t, os.MkdirAll(v1.Dir, 0o755))
	v1Path := filepath.Join(v1.Dir, segmentName(1))
	require.NoError(t, os.WriteFile(v1Path, good, 0o644))
	rewriteV1(t, v1Path)
	goodV1, err := os.ReadFile(v1Path)
	require.NoError(t, err)

	refusedV1 := 0
	for i, image := range images {
		img := image(bytes.Clone(good))
		o := testOptions(t)
		require.NoError(t, os.MkdirAll(o.Dir, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(o.Dir, segmentName(1)), img, 0o644))
		l, err := Open(o)
		require.NoError(t, err, "image %d", i)
		got := replayAll(t, l, 1)
		require.GreaterOrEqual(t, len(got), 3, "image %d keeps the durable entries", i)
		for _, e := range got {
			require.Equal(t, want(e.seq), e.payload, "image %d, seq %d", i, e.seq)
		}
		closeT(t, l)

		// The same damage to the version 1 log.
		imgV1 := image(bytes.Clone(goodV1))
		valid, next, _ := scanValid(imgV1, 1)
		behind := validFrameBehind(imgV1, valid, next)
		require.NoError(t, os.WriteFile(v1Path, imgV1, 0o644))
		l, err = Open(v1)
		if behind {
			refusedV1++
			var ce *CorruptionError
			require.ErrorAs(t, err, &ce, "image %d, version 1", i)
			assert.Contains(t, ce.Reason, "not a torn tail: a valid frame")
			continue
		}
		require.NoError(t, err, "image %d, version 1", i)
		assert.Equal(t, next-1, l.LastSeq())
		closeT(t, l)
	}
	t.Logf("%d images; %d would be refused as version 1 logs", len(images), refusedV1)
	assert.Positive(t, refusedV1, "some images keep a block of the write behind a lost one")
}

// validFrameBehind reports whether data holds a valid frame with a seq of
// at least next after offset from: what refuses a version 1 log.
func validFrameBehind(data []byte, from int, next uint64) bool {
	for i := from; i < len(data); i++ {
		if _, seq, ok := frameAt(data, i); ok && seq >= next {
			return true
		}
	}
	return false
}

// TestFindLaterWriteSkipsStaleFrames: valid frames with a seq below the
// one expected (stale bytes) are no evidence either way.
func TestFindLaterWriteSkipsStaleFrames(t *testing.T) {
	var data []byte
	data = appendEntry(data, make([]byte, 30)) // the damaged entry, seq 5
	data = appendEntry(data, appendFrameVersion(nil, frameVersion, 2, flagCommitEnd, []byte("old")))
	data = appendEntry(data, appendFrameVersion(nil, frameVersionV1, 3, 0, []byte("old")))
	data = appendEntry(data, appendFrameVersion(nil, frameVersion, 6, 0, []byte("new")))
	_, ok := findLaterWrite(data, 0, 5)
	assert.False(t, ok)
	data = appendEntry(data, appendFrameVersion(nil, frameVersion, 7, flagCommitEnd, []byte("new")))
	data = appendEntry(data, appendFrameVersion(nil, frameVersion, 8, flagCommitEnd, []byte("later")))
	w, ok := findLaterWrite(data, 0, 5)
	require.True(t, ok)
	assert.Equal(t, uint64(8), w.seq)
	assert.Equal(t, uint64(7), w.endSeq)
	assert.Equal(t, len(data)-entrySize(len("later"))+1, w.off)
	assert.Contains(t, fmt.Sprint(w), "of a later write (seq 8)")
}
