package compaction

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchEntries returns n entries shaped like the engine's: entity keys of
// ~20 bytes and encoded states of ~100 bytes.
func benchEntries(n int) []kv {
	rng := rand.New(rand.NewPCG(41, 42))
	entries := make([]kv, n)
	for i := range entries {
		v := make([]byte, 80+rng.IntN(40))
		for j := range v {
			v[j] = byte(rng.IntN(16)) // compressible, as encoded numbers are
		}
		entries[i] = kv{[]byte(fmt.Sprintf("user:%012d", i*7)), v}
	}
	return entries
}

// BenchmarkGet measures point reads of present keys (bitmap, index search,
// one block read, checked and decompressed, then searched) and of absent
// ones (almost all stopped by the bitmap), at two block sizes: a hit costs
// about one block's decompression.
func BenchmarkGet(b *testing.B) {
	const n = 100_000
	entries := benchEntries(n)
	misses := make([][]byte, 1024)
	for i := range misses {
		misses[i] = []byte(fmt.Sprintf("user:%012dx", i*7))
	}
	for _, blockSize := range []int{4 << 10, DefaultBlockSize} {
		r := openT(b, writeSegment(b, entries, WriterOptions{BlockSize: blockSize}))
		b.Run(fmt.Sprintf("block=%dKiB/hit", blockSize>>10), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			b.ReportAllocs()
			for b.Loop() {
				if _, ok, err := r.Get(entries[rng.IntN(n)].key); !ok || err != nil {
					b.Fatal(ok, err)
				}
			}
		})
		b.Run(fmt.Sprintf("block=%dKiB/miss", blockSize>>10), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, ok, err := r.Get(misses[i%len(misses)]); ok || err != nil {
					b.Fatal(ok, err)
				}
				i++
			}
		})
		b.Run(fmt.Sprintf("block=%dKiB/hit-parallel", blockSize>>10), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				rng := rand.New(rand.NewPCG(rand.Uint64(), 3))
				for pb.Next() {
					if _, ok, err := r.Get(entries[rng.IntN(n)].key); !ok || err != nil {
						b.Error(ok, err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkIterate measures a full scan; bytes/s are uncompressed key and
// value bytes.
func BenchmarkIterate(b *testing.B) {
	const n = 100_000
	r := openT(b, writeSegment(b, benchEntries(n), WriterOptions{}))
	b.SetBytes(r.RawBytes())
	b.ReportAllocs()
	for b.Loop() {
		it := r.NewIterator()
		keys := 0
		for it.Next() {
			keys++
		}
		if it.Err() != nil || keys != n {
			b.Fatal(keys, it.Err())
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/key")
}

// BenchmarkWrite measures writing a segment (compression, bitmap, fsync).
func BenchmarkWrite(b *testing.B) {
	const n = 100_000
	entries := benchEntries(n)
	var raw int64
	for _, e := range entries {
		raw += int64(len(e.key) + len(e.value))
	}
	b.SetBytes(raw)
	dir := b.TempDir()
	b.ReportAllocs()
	for b.Loop() {
		w, err := Create(dir+"/seg", testMeta, WriterOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range entries {
			if err := w.Add(e.key, e.value); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := w.Finish(); err != nil {
			b.Fatal(err)
		}
	}
}
