package wal

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReplayConcurrentWithAppend runs Replays while appenders fill and
// cycle small segments. Each Replay must see exactly the dense prefix that
// was durable when it started, with every payload intact. Run with -race.
func TestReplayConcurrentWithAppend(t *testing.T) {
	opts := testOptions(t)
	opts.SegmentSize = 8 << 10
	l := openT(t, opts)
	const writers, perWriter = 4, 400
	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				seq, err := l.Append(writerPayload(w, i))
				if !assert.NoError(t, err) || !assert.NotZero(t, seq) {
					return
				}
			}
		})
	}
	var replays atomic.Int64
	for range 2 {
		wg.Go(func() {
			for !stop.Load() {
				checkReplay(t, l)
				replays.Add(1)
			}
		})
	}
	for l.LastSeq() < writers*perWriter && !t.Failed() {
		checkReplay(t, l)
	}
	stop.Store(true)
	wg.Wait()
	require.Equal(t, uint64(writers*perWriter), l.LastSeq())
	require.Greater(t, len(segmentPaths(t, opts.Dir)), 10)
	t.Logf("%d concurrent replays", replays.Load())
}

// writerPayload is writer w's i-th payload: it names itself, so that a
// replay can check it was not torn or mixed up.
func writerPayload(w, i int) []byte {
	return fmt.Appendf(nil, "w%d i%d %s", w, i, bytes.Repeat([]byte{'x'}, (w*31+i)%150))
}

// checkReplay replays from a random seq and checks density, bounds and
// payload integrity.
func checkReplay(t *testing.T, l *Log) {
	before := l.LastSeq()
	from := uint64(1)
	if before > 0 {
		from = 1 + rand.Uint64N(before)
	}
	next := from
	err := l.Replay(from, func(seq uint64, p []byte) error {
		if seq != next {
			return fmt.Errorf("got seq %d, want %d", seq, next)
		}
		next++
		var w, i int
		if _, err := fmt.Sscanf(string(p), "w%d i%d ", &w, &i); err != nil {
			return fmt.Errorf("seq %d: bad payload %q", seq, p)
		}
		if !bytes.Equal(p, writerPayload(w, i)) {
			return fmt.Errorf("seq %d: torn payload %q", seq, p)
		}
		return nil
	})
	assert.NoError(t, err)
	assert.GreaterOrEqual(t, next-1, before, "replay reaches LastSeq as of its call")
}

// TestRandomWorkload is a differential test: seeded random appends
// (serial and concurrent, payloads 0..1000 bytes, small segments), reopens
// and replays from random seqs, against an in-memory model.
func TestRandomWorkload(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 42))
			opts := testOptions(t)
			opts.SegmentSize = 2048 + rng.IntN(8192)
			opts.MaxBatchBytes = 1000 + rng.IntN(10000)
			var model [][]byte // model[i] is seq i+1
			l := openT(t, opts)
			for step := 0; step < 60; step++ {
				switch op := rng.IntN(10); {
				case op < 5:
					model = appendSerial(t, l, rng, model)
				case op < 8:
					model = appendParallel(t, l, rng, model)
				case op < 9:
					closeT(t, l)
					l = openT(t, opts)
					require.Nil(t, l.Repair())
				default:
					checkModel(t, l, model, rng)
				}
			}
			checkModel(t, l, model, rng)
		})
	}
}

func randomPayload(rng *rand.Rand) []byte {
	p := make([]byte, rng.IntN(1001))
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	return p
}

func appendSerial(t *testing.T, l *Log, rng *rand.Rand, model [][]byte) [][]byte {
	for range 1 + rng.IntN(20) {
		p := randomPayload(rng)
		seq, err := l.Append(p)
		require.NoError(t, err)
		model = append(model, p)
		require.Equal(t, uint64(len(model)), seq)
	}
	return model
}

func appendParallel(t *testing.T, l *Log, rng *rand.Rand, model [][]byte) [][]byte {
	ps := make([][]byte, 1+rng.IntN(40))
	seqs := make([]uint64, len(ps))
	for i := range ps {
		ps[i] = randomPayload(rng)
	}
	var wg sync.WaitGroup
	for i := range ps {
		wg.Go(func() {
			var err error
			seqs[i], err = l.Append(ps[i])
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	base := uint64(len(model))
	model = append(model, make([][]byte, len(ps))...)
	for i, seq := range seqs {
		require.True(t, seq > base && seq <= uint64(len(model)), "seq %d out of batch range", seq)
		require.Nil(t, model[seq-1], "seq %d given twice", seq)
		model[seq-1] = ps[i]
	}
	return model
}

func checkModel(t *testing.T, l *Log, model [][]byte, rng *rand.Rand) {
	require.Equal(t, uint64(len(model)), l.LastSeq())
	from := uint64(1 + rng.IntN(len(model)+2))
	got := replayAll(t, l, from)
	if from > uint64(len(model)) {
		require.Empty(t, got)
		return
	}
	require.Len(t, got, len(model)-int(from)+1)
	for i, e := range got {
		require.Equal(t, from+uint64(i), e.seq)
		require.True(t, bytes.Equal(model[e.seq-1], e.payload), "payload of seq %d", e.seq)
	}
}
