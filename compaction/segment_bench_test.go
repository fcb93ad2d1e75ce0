package compaction

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
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

// benchSegment is a segment whose blocks BenchmarkBlockCodec and entries
// BenchmarkRewrite use instead of synthetic ones, e.g. one of the engine's:
// go test ./compaction -run '^$' -bench BlockCodec -segment /path/to/0000000000000012.seg
var benchSegment = flag.String("segment", "", "segment file whose blocks BenchmarkBlockCodec and BenchmarkRewrite use (default: synthetic entries)")

// benchBlocks returns the decompressed blocks of *benchSegment, or of a
// segment of benchEntries.
func benchBlocks(b *testing.B) (blocks [][]byte, raw int64) {
	path := *benchSegment
	if path == "" {
		path = writeSegment(b, benchEntries(100_000), WriterOptions{})
	}
	r := openT(b, path)
	var buf blockBuf
	for i := range r.blocks {
		if err := r.readBlock(i, &buf); err != nil {
			b.Fatal(err)
		}
		blocks = append(blocks, bytes.Clone(buf.data))
		raw += int64(len(buf.data))
	}
	return blocks, raw
}

// benchVariants limits BenchmarkBlockCodec to some variants, e.g.
// -variants s2,zstd-default: fewer variants interleave with less cache
// pressure.
var benchVariants = flag.String("variants", "", "comma-separated codec variants of BenchmarkBlockCodec (default: all)")

// codecVariant is a block codec and level that BenchmarkBlockCodec
// compares.
type codecVariant struct {
	name  string
	codec Codec
	enc   blockEncoder
	// compBytes is the size of the blocks compressed.
	compBytes int64
}

// codecVariants are the writer's codecs and levels, and S2's better
// level (s2.EncodeBetter, same block format, not written), for comparison.
func codecVariants(b *testing.B) []codecVariant {
	vs := []codecVariant{
		{name: "s2-better", codec: CodecS2, enc: func(dst, raw []byte) []byte { return s2.EncodeBetter(dst[:0], raw) }},
	}
	for _, o := range []WriterOptions{{Codec: CodecS2}, {Codec: CodecZstd, Level: zstd.SpeedFastest}, {Codec: CodecZstd, Level: zstd.SpeedDefault}} {
		enc, err := newBlockEncoder(&o)
		if err != nil {
			b.Fatal(err)
		}
		name := o.Codec.String()
		if o.Codec == CodecZstd {
			name += "-" + strings.ToLower(o.Level.String())
		}
		vs = append(vs, codecVariant{name: name, codec: o.Codec, enc: enc})
	}
	if *benchVariants != "" {
		want := strings.Split(*benchVariants, ",")
		vs = slices.DeleteFunc(vs, func(v codecVariant) bool { return !slices.Contains(want, v.name) })
	}
	return vs
}

// BenchmarkBlockCodec compresses and decompresses the same blocks with
// each codec variant, interleaved block by block (the variants' order
// rotating), so that a machine shared with other work slows them alike:
// the reported <variant>-MB/s (uncompressed bytes) and <variant>-ns/block
// are A/B pairs measured together. <variant>-comp/raw is the size ratio.
func BenchmarkBlockCodec(b *testing.B) {
	blocks, raw := benchBlocks(b)
	vs := codecVariants(b)
	comp := make([][][]byte, len(vs))
	for v := range vs {
		for _, blk := range blocks {
			c := vs[v].enc(nil, blk)
			comp[v] = append(comp[v], c)
			vs[v].compBytes += int64(len(c))
		}
	}
	b.Run("encode", func(b *testing.B) {
		dst := make([][]byte, len(vs))
		interleave(b, vs, blocks, raw, func(v, i int) { dst[v] = vs[v].enc(dst[v], blocks[i]) })
	})
	b.Run("decode", func(b *testing.B) {
		dst := make([]byte, 0, maxLen(blocks)+decodeSlack)
		interleave(b, vs, blocks, raw, func(v, i int) {
			if _, reason, err := vs[v].codec.decompress(dst, comp[v][i], len(blocks[i])); reason != "" || err != nil {
				b.Fatal(reason, err)
			}
		})
	})
}

// interleave runs op(v, i) for every variant v of every block i, timing
// each variant apart, and reports each one's throughput and time per block.
func interleave(b *testing.B, vs []codecVariant, blocks [][]byte, raw int64, op func(v, i int)) {
	spent := make([]time.Duration, len(vs))
	rounds := 0
	for b.Loop() {
		for i := range blocks {
			for k := range vs {
				v := (i + k) % len(vs)
				start := time.Now()
				op(v, i)
				spent[v] += time.Since(start)
			}
		}
		rounds++
	}
	for v := range vs {
		b.ReportMetric(float64(raw)*float64(rounds)/spent[v].Seconds()/1e6, vs[v].name+"-MB/s")
		b.ReportMetric(float64(spent[v].Nanoseconds())/float64(rounds*len(blocks)), vs[v].name+"-ns/block")
		b.ReportMetric(float64(vs[v].compBytes)/float64(raw), vs[v].name+"-comp/raw")
	}
}

// maxLen is the length of the longest of bs.
func maxLen(bs [][]byte) int {
	n := 0
	for _, b := range bs {
		n = max(n, len(b))
	}
	return n
}

// BenchmarkRewrite writes the entries of *benchSegment (or of a segment of
// benchEntries) as a new segment with each codec: the whole writer's cost
// (compression, bitmap, write and fsync) and the file size, reported as
// file-MB and file/raw.
func BenchmarkRewrite(b *testing.B) {
	path := *benchSegment
	if path == "" {
		path = writeSegment(b, benchEntries(100_000), WriterOptions{})
	}
	entries, err := scan(openT(b, path))
	if err != nil {
		b.Fatal(err)
	}
	var raw int64
	for _, e := range entries {
		raw += int64(len(e.key) + len(e.value))
	}
	dir := b.TempDir()
	for _, c := range []struct {
		name string
		opts WriterOptions
	}{
		{"s2", WriterOptions{Codec: CodecS2}},
		{"zstd-fastest", WriterOptions{Codec: CodecZstd, Level: zstd.SpeedFastest}},
		{"zstd-default", WriterOptions{Codec: CodecZstd, Level: zstd.SpeedDefault}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(raw)
			var info Info
			for b.Loop() {
				w, err := Create(dir+"/seg", testMeta, c.opts)
				if err != nil {
					b.Fatal(err)
				}
				for _, e := range entries {
					if err := w.Add(e.key, e.value); err != nil {
						b.Fatal(err)
					}
				}
				if info, err = w.Finish(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(info.FileBytes)/1e6, "file-MB")
			b.ReportMetric(float64(info.FileBytes)/float64(raw), "file/raw")
		})
	}
}
