package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fixture is the files of a closed log holding payloadFor(1..n), which each
// test case copies into a fresh directory and damages.
type fixture struct {
	n     uint64
	names []string // segment file names, in order
	files map[string][]byte
	segSz int
}

func newFixture(t *testing.T, segmentSize int, n int) fixture {
	opts := testOptions(t)
	opts.SegmentSize = segmentSize
	l := openT(t, opts)
	appendN(t, l, n)
	closeT(t, l)
	f := fixture{n: uint64(n), files: map[string][]byte{}, segSz: segmentSize}
	for _, p := range segmentPaths(t, opts.Dir) {
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		f.names = append(f.names, filepath.Base(p))
		f.files[filepath.Base(p)] = data
	}
	return f
}

// materialize writes the fixture into a fresh directory and returns options
// for it and the paths of its segments.
func (f fixture) materialize(t *testing.T) (Options, []string) {
	opts := testOptions(t)
	opts.SegmentSize = f.segSz
	require.NoError(t, os.MkdirAll(opts.Dir, 0o755))
	var paths []string
	for _, name := range f.names {
		p := filepath.Join(opts.Dir, name)
		require.NoError(t, os.WriteFile(p, f.files[name], 0o644))
		paths = append(paths, p)
	}
	return opts, paths
}

// requireRepaired checks l's repair report against the damaged file.
func requireRepaired(t *testing.T, l *Log, path string, damaged []byte, valid int) {
	t.Helper()
	rep := l.Repair()
	require.NotNil(t, rep)
	assert.Equal(t, path, rep.Segment)
	assert.Equal(t, int64(valid), rep.Offset)
	assert.Equal(t, int64(len(damaged)-valid), rep.DroppedBytes)
	saved, err := os.ReadFile(rep.CopyPath)
	require.NoError(t, err, "the damaged segment is copied aside")
	assert.Equal(t, damaged, saved)
	assert.Equal(t, filepath.Join(filepath.Dir(path), damagedDir), filepath.Dir(rep.CopyPath))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, int64(valid), fi.Size(), "segment cut back to its valid prefix")
}

// requireAppendable appends one more entry after recovery and checks that
// it survives a reopen together with everything before it.
func requireAppendable(t *testing.T, l *Log, opts Options, want uint64) {
	t.Helper()
	appendN(t, l, 1)
	closeT(t, l)
	l = openT(t, opts)
	assert.Nil(t, l.Repair())
	requireEntries(t, l, want+1)
}

// TestRepairEveryCutPoint truncates the last segment at every length from
// the end of its second-to-last frame to the end of its last frame, as a
// crash in the middle of writing the last frame would.
func TestRepairEveryCutPoint(t *testing.T) {
	// n is chosen for the size of the last payload, payloadFor(n).
	for _, tc := range []struct {
		name    string
		segSize int
		n       int
	}{
		{"single segment", 1 << 20, 11},                      // 7 B payload
		{"single segment, 2-byte length prefix", 1 << 20, 3}, // 111 B
		{"tail after full segments", 1024, 38},               // 6 B
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // bound by fsync latency, not CPU
			f := newFixture(t, tc.segSize, tc.n)
			require.Equal(t, tc.segSize == 1024, len(f.names) > 2)
			tail := f.files[f.names[len(f.names)-1]]
			_, paths := f.materialize(t)
			offs := entryOffsets(t, paths[len(paths)-1])
			prevEnd, end := offs[len(offs)-2], offs[len(offs)-1]
			require.Equal(t, len(tail), end)
			for cut := prevEnd; cut <= end; cut++ {
				opts, paths := f.materialize(t)
				path := paths[len(paths)-1]
				require.NoError(t, os.Truncate(path, int64(cut)))
				l, err := Open(opts)
				require.NoError(t, err, "cut at %d", cut)
				want := f.n
				if cut < end {
					want--
				}
				requireEntries(t, l, want)
				if cut == prevEnd || cut == end {
					assert.Nil(t, l.Repair(), "cut at %d drops nothing", cut)
				} else {
					requireRepaired(t, l, path, tail[:cut], prevEnd)
				}
				// Reopening costs fsyncs (tidwall syncs on Close): check
				// the cuts inside the length prefix and header, and a sample.
				if cut-prevEnd < headerSize+3 || end-cut < 3 || cut%16 == 0 {
					requireAppendable(t, l, opts, want)
				} else {
					closeT(t, l)
				}
			}
		})
	}
}

// damage is a way to damage the files of a fixture.
type damage func(t *testing.T, paths []string)

// lastEntry returns the path of the last segment, its entry offsets and its
// content.
func lastEntry(t *testing.T, paths []string) (string, []int, []byte) {
	path := paths[len(paths)-1]
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return path, entryOffsets(t, path), data
}

// overwrite replaces path's bytes from off on with repl.
func overwrite(t *testing.T, path string, off int, repl []byte) {
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	data = append(data[:off], repl...)
	require.NoError(t, os.WriteFile(path, data, 0o644))
}

// flipInEntry flips a bit of entry i of the last segment (negative i counts
// from the end), delta bytes into its frame; delta -1 is the last byte of
// the uvarint length prefix.
func flipInEntry(i, delta int) damage {
	return func(t *testing.T, paths []string) {
		path, offs, data := lastEntry(t, paths)
		if i < 0 {
			i += len(offs) - 1
		}
		_, k := binary.Uvarint(data[offs[i]:])
		flipBit(t, path, offs[i]+k+delta)
	}
}

// zeroFrom zeroes the last segment from entry i (plus delta bytes) to its
// end, plus extra more zero bytes.
func zeroFrom(i, delta, extra int) damage {
	return func(t *testing.T, paths []string) {
		path, offs, _ := lastEntry(t, paths)
		if i < 0 {
			i += len(offs) - 1
		}
		start := offs[i] + delta
		overwrite(t, path, start, make([]byte, offs[len(offs)-1]-start+extra))
	}
}

// TestRepairDamagedTail is the table of damage to the last segment of a
// log of five single-entry writes, in version 2 frames and in version 1
// ones: torn or zero-filled tails are cut off; damage followed by a frame
// of a later write (version 2), or by any valid frame (version 1), is
// corruption and leaves the files alone.
func TestRepairDamagedTail(t *testing.T) {
	const n = 5
	f := newFixture(t, 1<<20, n)
	for _, tc := range []struct {
		name    string
		version byte // only for this frame version; 0 for both
		damage  damage
		want    uint64 // entries after Open
		repair  bool   // Open must cut bytes off
		corrupt int    // if >= 0, Open fails at entry corrupt; -1 for none
		reason  string // substring of CorruptionError.Reason
	}{
		{name: "4 KiB of zeros after last frame", damage: func(t *testing.T, p []string) {
			f, err := os.OpenFile(p[len(p)-1], os.O_APPEND|os.O_WRONLY, 0)
			require.NoError(t, err)
			_, err = f.Write(make([]byte, 4096))
			require.NoError(t, err)
			require.NoError(t, f.Close())
		}, want: n, repair: true, corrupt: -1},
		{name: "zeros replace last frame", damage: zeroFrom(-1, 0, 0), want: n - 1, repair: true, corrupt: -1},
		{name: "zeros replace last frame and more", damage: zeroFrom(-1, 0, 4096), want: n - 1, repair: true, corrupt: -1},
		{name: "second half of last frame zeroed", damage: zeroFrom(-1, 60, 0), want: n - 1, repair: true, corrupt: -1},
		{name: "flipped bit in last payload", damage: flipInEntry(-1, headerSize+10), want: n - 1, repair: true, corrupt: -1},
		{name: "flipped bit in last crc", damage: flipInEntry(-1, offCRC), want: n - 1, repair: true, corrupt: -1},
		{name: "flipped bit in last seq", damage: flipInEntry(-1, offSeq), want: n - 1, repair: true, corrupt: -1},
		{name: "flipped bit in last magic", damage: flipInEntry(-1, 0), want: n - 1, repair: true, corrupt: -1},
		{name: "flipped bit in last length", damage: flipInEntry(-1, offLength), want: n - 1, repair: true, corrupt: -1},
		{name: "whole segment zeroed", damage: zeroFrom(0, 0, 0), want: 0, repair: true, corrupt: -1},
		{name: "whole segment garbage", damage: func(t *testing.T, p []string) {
			overwrite(t, p[0], 0, bytes.Repeat([]byte{0xAB}, 700))
		}, want: 0, repair: true, corrupt: -1},
		{name: "empty segment", damage: func(t *testing.T, p []string) {
			require.NoError(t, os.Truncate(p[0], 0))
		}, want: 0, corrupt: -1},
		// The last entry's frame survives behind its damaged length
		// prefix: in version 2 it is the last write's own frame, cut like
		// any damage to it; version 1 frames tell nothing of writes.
		{name: "flipped bit in last length prefix", version: frameVersion, damage: flipInEntry(-1, -1), want: n - 1, repair: true, corrupt: -1},
		{name: "flipped bit in last length prefix", version: frameVersionV1, damage: flipInEntry(-1, -1), corrupt: n - 1, reason: "not a torn tail"},
		// A frame of a later write behind the damage proves the damaged
		// write was fsynced: these are bit rot, reported rather than cut.
		{name: "flipped bit in middle payload", damage: flipInEntry(2, headerSize+1), corrupt: 2, reason: reasonBadChecksum},
		{name: "flipped bit in middle seq", damage: flipInEntry(2, offSeq+1), corrupt: 2, reason: reasonBadChecksum},
		{name: "flipped bit in middle length prefix", damage: flipInEntry(2, -1), corrupt: 2, reason: "not a torn tail"},
		{name: "middle frame zeroed", damage: func(t *testing.T, p []string) {
			offs := entryOffsets(t, p[0])
			data, err := os.ReadFile(p[0])
			require.NoError(t, err)
			clear(data[offs[1]:offs[2]])
			require.NoError(t, os.WriteFile(p[0], data, 0o644))
		}, corrupt: 1, reason: "not a torn tail"},
	} {
		for _, v := range []byte{frameVersion, frameVersionV1} {
			if tc.version != 0 && tc.version != v {
				continue
			}
			t.Run(fmt.Sprintf("%s/v%d", tc.name, v), func(t *testing.T) {
				t.Parallel()
				opts, paths := f.materialize(t)
				opts.NoSync = false // the repair's own fsyncs run here
				if v == frameVersionV1 {
					rewriteV1(t, paths[0])
				}
				repairCase(t, opts, paths, tc.damage, repairOutcome{tc.want, tc.repair, tc.corrupt, tc.reason})
			})
		}
	}
}

// repairOutcome is what Open must make of a damaged log.
type repairOutcome struct {
	want    uint64 // entries after Open
	repair  bool   // Open must cut bytes off
	corrupt int    // if >= 0, Open fails at entry corrupt; -1 for none
	reason  string // substring of CorruptionError.Reason
}

// repairCase damages the one-segment log in paths, opens it and checks
// the outcome: corruption with the files left alone, or the entries kept,
// cut back to their valid prefix if repaired, and appendable.
func repairCase(t *testing.T, opts Options, paths []string, d damage, out repairOutcome) {
	t.Helper()
	offs := entryOffsets(t, paths[0])
	d(t, paths)
	damaged, err := os.ReadFile(paths[0])
	require.NoError(t, err)
	l, err := Open(opts)
	if out.corrupt >= 0 {
		requireCorruption(t, err, paths[0], offs[out.corrupt], uint64(out.corrupt+1), out.reason)
		after, rerr := os.ReadFile(paths[0])
		require.NoError(t, rerr)
		assert.Equal(t, damaged, after, "a corrupt log is left untouched")
		assert.NoDirExists(t, filepath.Join(opts.Dir, damagedDir))
		return
	}
	require.NoError(t, err)
	requireEntries(t, l, out.want)
	if out.repair {
		requireRepaired(t, l, paths[0], damaged, offs[out.want])
	} else {
		assert.Nil(t, l.Repair())
	}
	requireAppendable(t, l, opts, out.want)
}

// requireCorruption checks that err is a *CorruptionError at file/offset.
func requireCorruption(t *testing.T, err error, file string, off int, seq uint64, reason string) {
	t.Helper()
	var ce *CorruptionError
	require.True(t, errors.As(err, &ce), "want *CorruptionError, got %v", err)
	assert.Equal(t, file, ce.File)
	assert.Equal(t, int64(off), ce.Offset)
	assert.Equal(t, seq, ce.Seq)
	assert.Contains(t, ce.Reason, reason)
	assert.Contains(t, err.Error(), file)
}

// TestRepairMultiSegment damages logs of several segments: a crash can
// only tear the last one; damage to an earlier one is corruption, found by
// Open for the second-to-last segment and by Replay for older ones.
func TestRepairMultiSegment(t *testing.T) {
	f := newFixture(t, 1024, 40)
	require.GreaterOrEqual(t, len(f.names), 4)
	last := len(f.names) - 1
	tailFirst, _ := parseSegmentName(f.names[last])
	penFirst, _ := parseSegmentName(f.names[last-1])

	t.Run("tail segment garbage", func(t *testing.T) {
		opts, paths := f.materialize(t)
		overwrite(t, paths[last], 0, bytes.Repeat([]byte{0xAB}, 300))
		l := openT(t, opts)
		requireEntries(t, l, tailFirst-1)
		require.NotNil(t, l.Repair())
		assert.Equal(t, int64(300), l.Repair().DroppedBytes)
		requireAppendable(t, l, opts, tailFirst-1)
	})
	t.Run("empty tail segment created before a crash", func(t *testing.T) {
		opts, _ := f.materialize(t)
		require.NoError(t, os.WriteFile(filepath.Join(opts.Dir, segmentName(f.n+1)), nil, 0o644))
		l := openT(t, opts)
		requireEntries(t, l, f.n)
		assert.Nil(t, l.Repair())
		requireAppendable(t, l, opts, f.n)
	})
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string, offs []int)
		entry  func(offs []int) int // index of the entry reported
		reason string
	}{
		{"flipped bit", func(t *testing.T, p string, offs []int) { flipBit(t, p, offs[1]+2) },
			func([]int) int { return 1 }, reasonBadMagic},
		{"torn last frame", func(t *testing.T, p string, offs []int) {
			require.NoError(t, os.Truncate(p, int64(offs[len(offs)-1]-3)))
		}, func(offs []int) int { return len(offs) - 2 }, reasonTruncated},
		{"missing last frame", func(t *testing.T, p string, offs []int) {
			require.NoError(t, os.Truncate(p, int64(offs[len(offs)-2])))
		}, func(offs []int) int { return len(offs) - 2 }, reasonMissing},
		{"trailing zeros", func(t *testing.T, p string, offs []int) {
			overwrite(t, p, offs[len(offs)-1], make([]byte, 10))
		}, func(offs []int) int { return len(offs) - 1 }, reasonTrailing},
	} {
		t.Run("second-to-last segment "+tc.name, func(t *testing.T) {
			opts, paths := f.materialize(t)
			offs := entryOffsets(t, paths[last-1])
			tc.damage(t, paths[last-1], offs)
			_, err := Open(opts)
			i := tc.entry(offs)
			requireCorruption(t, err, paths[last-1], offs[i], penFirst+uint64(i), tc.reason)
		})
	}
	t.Run("oldest segment flipped bit", func(t *testing.T) {
		opts, paths := f.materialize(t)
		offs := entryOffsets(t, paths[0])
		flipBit(t, paths[0], offs[2]+1+headerSize)
		l := openT(t, opts)
		err := l.Replay(1, func(uint64, []byte) error { return nil })
		requireCorruption(t, err, paths[0], offs[2], 3, reasonBadChecksum)
		requireCorruption(t, l.Verify(), paths[0], offs[2], 3, reasonBadChecksum)
		// Entries after the damaged segment still replay.
		got := replayAll(t, l, tailFirst)
		assert.Len(t, got, int(f.n-tailFirst+1))
	})
	t.Run("oldest segment missing entry", func(t *testing.T) {
		opts, paths := f.materialize(t)
		offs := entryOffsets(t, paths[0])
		require.NoError(t, os.Truncate(paths[0], int64(offs[len(offs)-2])))
		l := openT(t, opts)
		err := l.Replay(1, func(uint64, []byte) error { return nil })
		requireCorruption(t, err, paths[0], offs[len(offs)-2], uint64(len(offs)-1), reasonMissing)
	})
}

// TestCorruptionErrorMessage checks that the message names file, offset
// and what to do.
func TestCorruptionErrorMessage(t *testing.T) {
	err := error(&CorruptionError{File: "/d/00000000000000000001", Offset: 123, Seq: 7, Reason: reasonBadChecksum})
	msg := err.Error()
	for _, want := range []string{"wal: ", "/d/00000000000000000001", "offset 123", "seq 7", reasonBadChecksum, "restore"} {
		assert.Contains(t, msg, want)
	}
	var ce *CorruptionError
	require.ErrorAs(t, fmt.Errorf("replay: %w", err), &ce)
	assert.Equal(t, int64(123), ce.Offset)
}
