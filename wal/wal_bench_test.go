package wal

import (
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
	twal "github.com/tidwall/wal"
)

// benchPayloadSize is the payload size of the benchmarks: a small event.
const benchPayloadSize = 100

// benchOptions returns production options (fsync on) in a temp directory.
func benchOptions(b *testing.B) Options {
	opts := testOptions(b)
	opts.SegmentSize = DefaultSegmentSize
	opts.NoSync = false
	return opts
}

// reportLog adds group-commit metrics to a benchmark result.
func reportLog(b *testing.B, l *Log) {
	st := l.Stats()
	b.ReportMetric(float64(st.Entries)/b.Elapsed().Seconds(), "entries/s")
	if st.Batches > 0 {
		b.ReportMetric(float64(st.Entries)/float64(st.Batches), "entries/fsync")
	}
}

// BenchmarkAppendSerial: one appender, so one fsync per entry.
func BenchmarkAppendSerial(b *testing.B) {
	l := openT(b, benchOptions(b))
	payload := make([]byte, benchPayloadSize)
	b.SetBytes(benchPayloadSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Append(payload); err != nil {
			b.Fatal(err)
		}
	}
	reportLog(b, l)
}

// BenchmarkAppendParallel: 16 concurrent appenders share fsyncs.
func BenchmarkAppendParallel(b *testing.B) {
	l := openT(b, benchOptions(b))
	b.SetBytes(benchPayloadSize)
	b.ReportAllocs()
	b.SetParallelism((16 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.RunParallel(func(pb *testing.PB) {
		payload := make([]byte, benchPayloadSize)
		for pb.Next() {
			if _, err := l.Append(payload); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportLog(b, l)
}

// BenchmarkReplay replays a log of 1M 100-byte payloads (several
// segments), verifying every frame.
func BenchmarkReplay(b *testing.B) {
	const n = 1_000_000
	opts := testOptions(b) // NoSync: only the reads are measured
	opts.SegmentSize = DefaultSegmentSize
	l := openT(b, opts)
	fillParallel(b, l, n)
	b.SetBytes(n * benchPayloadSize)
	b.ReportAllocs()
	for b.Loop() {
		count := 0
		err := l.Replay(1, func(uint64, []byte) error { count++; return nil })
		if err != nil || count != n {
			b.Fatalf("replayed %d of %d: %v", count, n, err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// fillParallel appends n payloads from many goroutines, so that they are
// written in large batches.
func fillParallel(b *testing.B, l *Log, n int) {
	const workers = 64
	done := make(chan error, workers)
	for w := range workers {
		go func() {
			payload := make([]byte, benchPayloadSize)
			for i := w; i < n; i += workers {
				if _, err := l.Append(payload); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range workers {
		require.NoError(b, <-done)
	}
}

// BenchmarkTidwallWriteLoop is the baseline: raw tidwall, one Write (one
// write and one fsync) per 100-byte record, no framing or checksum.
func BenchmarkTidwallWriteLoop(b *testing.B) {
	tw, err := twal.Open(filepath.Join(b.TempDir(), "tidwall"), &twal.Options{SegmentSize: DefaultSegmentSize})
	require.NoError(b, err)
	defer tw.Close()
	payload := make([]byte, benchPayloadSize)
	b.SetBytes(benchPayloadSize)
	b.ReportAllocs()
	var index uint64
	for b.Loop() {
		index++
		if err := tw.Write(index, payload); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(index)/b.Elapsed().Seconds(), "entries/s")
}
