package compaction

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// codecs are the block codecs a writer can write; tests of the writer and
// the reader run over each.
var codecs = []Codec{CodecS2, CodecZstd}

// fuzzSeeds returns valid segments of various shapes in each codec, and
// the golden files of every version.
func fuzzSeeds(f *testing.F) [][]byte {
	var seeds [][]byte
	for _, codec := range codecs {
		rng := rand.New(rand.NewPCG(31, 32))
		for _, c := range []struct {
			entries []kv
			block   int
		}{
			{nil, 0},
			{[]kv{{[]byte("k"), []byte("v")}}, 0},
			{[]kv{{[]byte{}, []byte{}}, {[]byte("a"), nil}}, 1},
			{randomEntries(rng, 20, 50), 64},
			{randomEntries(rng, 100, 0), 256},
		} {
			data, err := os.ReadFile(writeSegment(f, c.entries, WriterOptions{BlockSize: c.block, Codec: codec}))
			if err != nil {
				f.Fatal(err)
			}
			seeds = append(seeds, data)
		}
	}
	for _, g := range goldens {
		data, err := os.ReadFile(g.path)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, data)
	}
	return seeds
}

// fuzzFile writes data to a file in dir and returns its path.
func fuzzFile(t *testing.T, dir string, data []byte) string {
	f, err := os.CreateTemp(dir, "seg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(f.Name()) })
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// exercise opens the segment at path and reads everything it can: a full
// scan, Gets of the keys seen and of some made up from probe, seeks. Errors
// must be CorruptionErrors; what is read must be consistent (keys strictly
// increasing, Get agreeing with the scan for every key the bitmap holds,
// Keys matching a clean scan).
func exercise(t *testing.T, path string, probe []byte) {
	r, err := Open(path)
	if err != nil {
		requireCorruption(t, "Open", err)
		return
	}
	defer r.Close()
	it := r.NewIterator()
	var seen []kv
	n := 0
	for it.Next() {
		if n > 0 && bytes.Compare(seen[len(seen)-1].key, it.Key()) >= 0 {
			t.Fatalf("keys out of order: %q then %q", seen[len(seen)-1].key, it.Key())
		}
		if it.Value() == nil {
			t.Fatalf("nil value for key %q", it.Key())
		}
		seen = append(seen, kv{bytes.Clone(it.Key()), bytes.Clone(it.Value())})
		n++
	}
	if err := it.Err(); err != nil {
		requireCorruption(t, "Next", err)
	} else if n != r.Keys() {
		t.Fatalf("scan found %d keys, Keys() says %d", n, r.Keys())
	}
	for i := 0; i < len(seen); i += 1 + len(seen)/8 {
		v, ok, err := r.Get(seen[i].key)
		if err != nil {
			requireCorruption(t, "Get", err)
			continue
		}
		if !r.MayContain(seen[i].key) {
			// The key bitmap's content is guarded by its checksum alone,
			// which reseal recomputes: a bitmap mutated to lack a key's
			// hash still parses, and no reader can tell it from the truth
			// without a full scan. Get must then miss cleanly.
			if ok {
				t.Fatalf("Get(%q) found a key the bitmap lacks", seen[i].key)
			}
			continue
		}
		if !ok || !bytes.Equal(v, seen[i].value) {
			t.Fatalf("Get(%q) = %q, %v; the scan found %q", seen[i].key, v, ok, seen[i].value)
		}
		if it.SeekGE(seen[i].key) && !bytes.Equal(it.Key(), seen[i].key) {
			t.Fatalf("SeekGE(%q) landed on %q", seen[i].key, it.Key())
		}
	}
	for i := 0; i+4 <= len(probe) && i < 64; i += 4 {
		if _, _, err := r.Get(probe[i : i+4]); err != nil {
			requireCorruption(t, "Get", err)
		}
		it := r.NewIterator()
		if it.SeekGE(probe[i:i+4]) && bytes.Compare(it.Key(), probe[i:i+4]) < 0 {
			t.Fatalf("SeekGE(%q) landed before it, on %q", probe[i:i+4], it.Key())
		}
		if err := it.Err(); err != nil {
			requireCorruption(t, "SeekGE", err)
		}
	}
}

// requireCorruption fails unless err is a *CorruptionError.
func requireCorruption(t *testing.T, op string, err error) {
	var ce *CorruptionError
	if !errors.As(err, &ce) {
		t.Fatalf("%s: error %v (%T) is not a *CorruptionError", op, err, err)
	}
}

// FuzzOpen opens arbitrary bytes as a segment. Mutations of the seeds are
// almost always caught by a checksum; FuzzResealedSegment goes past them.
func FuzzOpen(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		exercise(t, fuzzFile(t, dir, data), data)
	})
}

// FuzzResealedSegment recomputes every checksum of the fuzzed bytes before
// opening them, so that mutations reach the structural checks behind the
// CRCs: index entries, bitmap, meta and block contents.
func FuzzResealedSegment(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		exercise(t, fuzzFile(t, dir, reseal(data)), data)
	})
}

// reseal returns data with valid block, index, bitmap, meta and footer
// checksums, if its footer locates the sections within the file (the
// index is re-encoded, so overlong varints come out minimal). The footer's
// version, codec and reserved bytes are kept as they are, valid or not.
func reseal(data []byte) []byte {
	if len(data) < headerSize+footerSize {
		return data
	}
	fb := data[len(data)-footerSize:]
	u64 := func(off int) uint64 { return binary.LittleEndian.Uint64(fb[off:]) }
	ft := footer{
		indexOff: u64(ftIndexOff), indexLen: u64(ftIndexLen),
		bitmapOff: u64(ftBitmapOff), bitmapLen: u64(ftBitmapLen),
		metaOff: u64(ftMetaOff), metaLen: u64(ftMetaLen),
		keys: u64(ftKeys), rawBytes: u64(ftRawBytes),
	}
	if !ft.layoutFits(uint64(len(data))) {
		return data
	}
	// An invalid format fails Open whatever the index; parse it as S2's,
	// whose ratio bound accepts more.
	fm, reason := parseFormat(fb[ftVersion], fb[ftCodec])
	if reason != "" {
		fm.codec = CodecS2
	}
	index := data[ft.indexOff : ft.indexOff+ft.indexLen]
	if hs, _, reason := parseIndex(index, int64(ft.indexOff), fm.codec); reason == "" {
		index = binary.AppendUvarint(nil, uint64(len(hs)))
		for i := range hs {
			hs[i].crc = checksum(data[hs[i].off : hs[i].off+int64(hs[i].compLen)])
			index = appendIndexEntry(index, &hs[i])
		}
	}
	out := slices.Clone(data[:ft.indexOff])
	for _, s := range []struct {
		b        []byte
		off, len *uint64
		crc      *uint32
	}{
		{index, &ft.indexOff, &ft.indexLen, &ft.indexCRC},
		{data[ft.bitmapOff : ft.bitmapOff+ft.bitmapLen], &ft.bitmapOff, &ft.bitmapLen, &ft.bitmapCRC},
		{data[ft.metaOff : ft.metaOff+ft.metaLen], &ft.metaOff, &ft.metaLen, &ft.metaCRC},
	} {
		*s.off, *s.len, *s.crc = uint64(len(out)), uint64(len(s.b)), checksum(s.b)
		out = append(out, s.b...)
	}
	out = appendFooter(out, &ft)
	nf := out[len(out)-footerSize:]
	copy(nf[ftVersion:ftCRC], fb[ftVersion:ftCRC])
	binary.LittleEndian.PutUint32(nf[ftCRC:], checksum(nf[:ftCRC]))
	return out
}

// FuzzBlockDecompress decompresses arbitrary bytes as a block of each
// codec whose index entry promises rawLen bytes: it must fail cleanly or
// produce exactly rawLen bytes, in the buffer it was given.
func FuzzBlockDecompress(f *testing.F) {
	rng := rand.New(rand.NewPCG(35, 36))
	for _, codec := range codecs {
		enc, err := newBlockEncoder(&WriterOptions{Codec: codec, Level: levelFor(codec)})
		if err != nil {
			f.Fatal(err)
		}
		for _, n := range []int{1, 10, 50} {
			raw := rawBlock(randomEntries(rng, n, 0))
			f.Add(uint8(codec), enc(nil, raw), uint32(len(raw)))
		}
	}
	f.Fuzz(func(t *testing.T, c uint8, src []byte, rawLen uint32) {
		codec := Codec(c)
		if !codec.valid() || rawLen == 0 || uint64(rawLen) > uint64(len(src))*codec.maxRatio() || rawLen > 1<<20 {
			return // the index check refuses these (and fuzzing stays small)
		}
		dst := make([]byte, 0, int(rawLen)+decodeSlack)
		data, reason, err := codec.decompress(dst, src, int(rawLen))
		switch {
		case err != nil:
			t.Fatal(err)
		case reason != "":
			return
		case len(data) != int(rawLen):
			t.Fatalf("%s: %d bytes decoded, %d promised", codec, len(data), rawLen)
		case &data[0] != &dst[:1][0]:
			t.Fatalf("%s: decoded outside the buffer given", codec)
		}
	})
}

// FuzzBlockParse parses arbitrary bytes as a decompressed block, the
// decoder behind the block CRC and zstd.
func FuzzBlockParse(f *testing.F) {
	rng := rand.New(rand.NewPCG(33, 34))
	for _, n := range []int{1, 2, 10, 50} {
		f.Add(rawBlock(randomEntries(rng, n, 0)))
	}
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, data []byte) {
		count, k := binary.Uvarint(data)
		if k <= 0 || count > uint64(len(data)) {
			return
		}
		h := blockHandle{count: int(count), rawLen: len(data)}
		ents, reason := parseBlock(data, &h, nil)
		if reason != reasonBlockBounds {
			return // only a structurally valid block gets this far
		}
		b := blockBuf{data: data, ents: ents}
		h.first, h.last = b.key(0), b.key(len(ents)-1)
		ents, reason = parseBlock(data, &h, ents)
		if reason != "" {
			t.Fatalf("second parse: %s", reason)
		}
		if len(ents) != h.count {
			t.Fatalf("%d entries, count %d", len(ents), h.count)
		}
		var entries []kv
		for i := range ents {
			if i > 0 && bytes.Compare(b.key(i-1), b.key(i)) >= 0 {
				t.Fatalf("keys out of order at %d", i)
			}
			if j := b.seek(b.key(i), 0); j != i {
				t.Fatalf("seek of key %d found %d", i, j)
			}
			entries = append(entries, kv{b.key(i), b.value(i)})
		}
		// Minimal varints re-encode to the same bytes; others are longer.
		if re := rawBlock(entries); len(re) > len(data) {
			t.Fatalf("re-encoding is longer (%d) than the block (%d)", len(re), len(data))
		}
	})
}

// FuzzWriteRead writes entries derived from the fuzz bytes and reads them
// back, in S2 or zstd: the reader must return exactly what the writer was
// given.
func FuzzWriteRead(f *testing.F) {
	f.Add([]byte("a=1;b=;c=333"), uint16(16), false)
	f.Add([]byte(""), uint16(0), true)
	f.Add(bytes.Repeat([]byte("key=value;"), 50), uint16(1), false)
	f.Add(bytes.Repeat([]byte("key=value;"), 50), uint16(100), true)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte, blockSize uint16, zstd bool) {
		var entries []kv
		for _, field := range bytes.Split(data, []byte(";")) {
			k, v, _ := bytes.Cut(field, []byte("="))
			entries = append(entries, kv{k, v})
		}
		slices.SortStableFunc(entries, func(a, b kv) int { return bytes.Compare(a.key, b.key) })
		entries = slices.CompactFunc(entries, func(a, b kv) bool { return bytes.Equal(a.key, b.key) })
		for i := range entries {
			entries[i].value = append([]byte{}, entries[i].value...) // non-nil, as read back
		}
		path := filepath.Join(dir, "seg")
		w, err := Create(path, testMeta, WriterOptions{BlockSize: int(blockSize), Codec: map[bool]Codec{false: CodecS2, true: CodecZstd}[zstd]})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Abort()
		for _, e := range entries {
			if err := w.Add(e.key, e.value); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := w.Finish(); err != nil {
			t.Fatal(err)
		}
		r, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		got, err := scan(r)
		if err != nil {
			t.Fatal(err)
		}
		requireSameEntries(t, entries, got)
		for _, e := range entries {
			v, ok, err := r.Get(e.key)
			if err != nil || !ok || !bytes.Equal(v, e.value) {
				t.Fatalf("Get(%q) = %q, %v, %v; want %q", e.key, v, ok, err, e.value)
			}
		}
	})
}
