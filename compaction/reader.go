package compaction

import (
	"github.com/featurelog/featurelog/vfs"

	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/go-json-experiment/json/v1"

	"github.com/RoaringBitmap/roaring/v2"
)

// Reader reads one segment file. Open verifies everything but the blocks and
// keeps the index, bitmap and meta in memory; blocks are read with ReadAt
// and verified when a Get or an Iterator needs them. All methods are safe
// for concurrent use, except that Close must not race with the others (a
// Handle orders them).
type Reader struct {
	// path is the file's path, for errors.
	path string
	// fs is the file system the file was opened through; Handle removes
	// the file through it.
	fs vfs.FS
	// f is the open file; blocks are read from it with ReadAt, which is
	// safe concurrently.
	f vfs.File
	// size is the file size at Open.
	size int64
	// codec compresses the blocks, as the header and footer state.
	codec Codec
	// meta, keys and rawBytes are decoded from the file at Open.
	meta     Meta
	keys     int
	rawBytes int64
	// blocks is the decoded index, in key order: blocks[i].last <
	// blocks[i+1].first. Their keys point into tail.
	blocks []blockHandle
	// bitmap holds KeyHash of every key; it points into tail.
	bitmap *roaring.Bitmap
	// tail is the file's index, bitmap and meta, read once at Open. It is
	// never modified.
	tail []byte
	// bufs pools the blockBufs of Get, so that a point read allocates only
	// the value it returns.
	bufs sync.Pool
	// closed is set by Close; reads check it first.
	closed atomic.Bool
}

// Open opens the segment at path and verifies its header, footer, index,
// bitmap and meta. A malformed file gives a *CorruptionError; nothing it
// allocates is larger than the file, whatever its length fields say.
func Open(path string) (*Reader, error) { return OpenFS(vfs.Default, path) }

// OpenFS is Open through the file system fs.
func OpenFS(fs vfs.FS, path string) (*Reader, error) {
	f, err := fs.Open(path)
	if err != nil {
		return nil, fmt.Errorf("compaction: %w", err)
	}
	r := &Reader{path: path, fs: fs, f: f}
	r.bufs.New = func() any { return new(blockBuf) }
	if err := r.load(); err != nil {
		f.Close()
		return nil, err
	}
	return r, nil
}

// load reads and verifies everything but the blocks.
func (r *Reader) load() error {
	st, err := r.f.Stat()
	if err != nil {
		return fmt.Errorf("compaction: %w", err)
	}
	r.size = st.Size()
	if r.size < headerSize+footerSize {
		return corrupt(r.path, 0, reasonTooShort)
	}
	var ftb [footerSize]byte
	if err := r.readAt(ftb[:], r.size-footerSize); err != nil {
		return err
	}
	ft, reason := decodeFooter(ftb[:])
	if reason != "" {
		return corrupt(r.path, r.size-footerSize, reason)
	}
	var hdr [headerSize]byte
	if err := r.readAt(hdr[:], 0); err != nil {
		return err
	}
	if reason := checkHeader(hdr[:], ft.format); reason != "" {
		return corrupt(r.path, 0, reason)
	}
	r.codec = ft.format.codec
	if !ft.layoutFits(uint64(r.size)) {
		return corrupt(r.path, r.size-footerSize, reasonLayout)
	}
	// The sections lie within the file, so this allocation is bounded by it.
	r.tail = make([]byte, uint64(r.size-footerSize)-ft.indexOff)
	if err := r.readAt(r.tail, int64(ft.indexOff)); err != nil {
		return err
	}
	return r.loadTail(&ft)
}

// layoutFits reports whether the index, bitmap and meta lie back to back
// between the header and the footer of a file of the given size.
func (f *footer) layoutFits(size uint64) bool {
	end := size - footerSize
	return f.indexOff >= headerSize && f.indexOff <= end &&
		f.indexLen <= end-f.indexOff && f.bitmapOff == f.indexOff+f.indexLen &&
		f.bitmapLen <= end-f.bitmapOff && f.metaOff == f.bitmapOff+f.bitmapLen &&
		f.metaLen == end-f.metaOff
}

// loadTail verifies and decodes the index, bitmap and meta in r.tail.
func (r *Reader) loadTail(ft *footer) error {
	index := r.tail[:ft.indexLen]
	bitmap := r.tail[ft.indexLen : ft.indexLen+ft.bitmapLen]
	meta := r.tail[ft.indexLen+ft.bitmapLen:]
	switch {
	case checksum(index) != ft.indexCRC:
		return corrupt(r.path, int64(ft.indexOff), reasonIndexCRC)
	case checksum(bitmap) != ft.bitmapCRC:
		return corrupt(r.path, int64(ft.bitmapOff), reasonBitmapCRC)
	case checksum(meta) != ft.metaCRC:
		return corrupt(r.path, int64(ft.metaOff), reasonMetaCRC)
	}
	blocks, at, reason := parseIndex(index, int64(ft.indexOff), r.codec)
	if reason != "" {
		return corrupt(r.path, at, reason)
	}
	r.blocks = blocks
	// Each block's count and raw length are below 2^31 and there are fewer
	// blocks than file bytes: the sums cannot overflow.
	var keys, raw uint64
	for i := range blocks {
		keys += uint64(blocks[i].count)
		raw += uint64(blocks[i].rawLen)
	}
	// The raw bytes are the keys and values, a subset of the blocks' bytes.
	if keys != ft.keys || ft.rawBytes > raw {
		return corrupt(r.path, r.size-footerSize, reasonKeyCount)
	}
	r.keys, r.rawBytes = int(keys), int64(ft.rawBytes)
	if err := r.loadBitmap(bitmap, int64(ft.bitmapOff)); err != nil {
		return err
	}
	if err := json.Unmarshal(meta, &r.meta); err != nil {
		return corrupt(r.path, int64(ft.metaOff), reasonMeta+": "+err.Error())
	}
	return nil
}

// loadBitmap decodes and validates the bitmap section b, found at off.
// roaring checks its own lengths against b; Validate then rejects
// inconsistent containers that would make Contains misbehave.
func (r *Reader) loadBitmap(b []byte, off int64) error {
	bm := roaring.New()
	n, err := bm.FromBuffer(b)
	switch {
	case err != nil:
		return corrupt(r.path, off, reasonBitmap+": "+err.Error())
	case n != int64(len(b)):
		return corrupt(r.path, off, reasonBitmap+": trailing bytes")
	}
	if err := bm.Validate(); err != nil {
		return corrupt(r.path, off, reasonBitmap+": "+err.Error())
	}
	// Distinct keys may share a hash, so the cardinality is at most the key
	// count, and at least 1 if there is any key.
	if card := bm.GetCardinality(); card > uint64(r.keys) || (card == 0) != (r.keys == 0) {
		return corrupt(r.path, off, reasonBitmapCard)
	}
	r.bitmap = bm
	return nil
}

// parseIndex decodes and verifies the index section b, found at file offset
// off, of a segment whose blocks are compressed with codec. On failure, at
// is the file offset of the offending entry.
func parseIndex(b []byte, off int64, codec Codec) (blocks []blockHandle, at int64, reason string) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, off, reasonIndexFormat
	}
	d := indexDecoder{b: b[k:]}
	if n > uint64(len(d.b))/minIndexEntry {
		return nil, off, reasonIndexCount
	}
	blocks = make([]blockHandle, n)
	next := int64(headerSize) // where the next block must start
	for i := range blocks {
		at = off + int64(len(b)-len(d.b))
		h := &blocks[i]
		if !d.decode(h) {
			return nil, at, reasonIndexFormat
		}
		if reason := h.check(next, off, codec.maxRatio()); reason != "" {
			return nil, at, reason
		}
		if i > 0 && bytes.Compare(blocks[i-1].last, h.first) >= 0 {
			return nil, at, reasonIndexOrder
		}
		next += int64(h.compLen)
	}
	switch {
	case len(d.b) != 0:
		return nil, off + int64(len(b)-len(d.b)), reasonIndexTrail
	case next != off:
		return nil, off, reasonBlockOffset
	}
	return blocks, 0, ""
}

// check verifies a decoded index entry: the block must start at next and
// end by indexOff, and its sizes must be possible for a codec expanding at
// most maxRatio times.
func (h *blockHandle) check(next, indexOff int64, maxRatio uint64) (reason string) {
	switch {
	case h.off != next || h.compLen < 1 || int64(h.compLen) > indexOff-h.off:
		return reasonBlockOffset
	case h.rawLen < 1 || h.rawLen > maxBlockRaw || uint64(h.rawLen) > uint64(h.compLen)*maxRatio:
		return reasonBlockSizes
	case h.count < 1 || h.count > (h.rawLen-1)/2: // an entry takes at least 2 bytes
		return reasonBlockSizes
	case bytes.Compare(h.first, h.last) > 0:
		return reasonIndexOrder
	}
	return ""
}

// indexDecoder reads index entries off b.
type indexDecoder struct {
	// b is what remains of the index.
	b []byte
	// ok is cleared by the first malformed field.
	ok bool
}

// decode reads one entry into h. Numbers are clamped to what their field
// can hold; check rejects the clamped values, so none can overflow.
func (d *indexDecoder) decode(h *blockHandle) bool {
	d.ok = true
	h.first = d.bytes()
	h.last = d.bytes()
	h.off = int64(min(d.uint(), math.MaxInt64))
	h.compLen = int(min(d.uint(), math.MaxInt32))
	h.rawLen = int(min(d.uint(), math.MaxInt32))
	h.count = int(min(d.uint(), math.MaxInt32))
	if !d.ok || len(d.b) < 4 {
		return false
	}
	h.crc = binary.LittleEndian.Uint32(d.b)
	d.b = d.b[4:]
	return true
}

// uint reads a uvarint.
func (d *indexDecoder) uint() uint64 {
	v, k := binary.Uvarint(d.b)
	if k <= 0 {
		d.ok = false
		return 0
	}
	d.b = d.b[k:]
	return v
}

// bytes reads a uvarint length and that many bytes.
func (d *indexDecoder) bytes() []byte {
	n := d.uint()
	if !d.ok || n > uint64(len(d.b)) {
		d.ok = false
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// readAt fills b from the file at off. A short read means the file is
// shorter than its own footer says: corruption (or a concurrent truncation).
func (r *Reader) readAt(b []byte, off int64) error {
	_, err := r.f.ReadAt(b, off)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return corrupt(r.path, off, reasonShortRead)
	case errors.Is(err, os.ErrClosed):
		return ErrClosed
	}
	return fmt.Errorf("compaction: reading %s at offset %d: %w", r.path, off, err)
}

// Meta returns the segment's meta.
func (r *Reader) Meta() Meta { return r.meta }

// Path returns the file's path.
func (r *Reader) Path() string { return r.path }

// Keys returns the number of entries.
func (r *Reader) Keys() int { return r.keys }

// FileBytes returns the file size.
func (r *Reader) FileBytes() int64 { return r.size }

// RawBytes returns the sum of len(key)+len(value) over the entries.
func (r *Reader) RawBytes() int64 { return r.rawBytes }

// Codec returns the compression of the segment's blocks (CodecZstd for a
// version-1 file).
func (r *Reader) Codec() Codec { return r.codec }

// MayContain reports whether key may be in the segment: false means it
// certainly is not (no key with its KeyHash was written). It reads no file,
// and works after Close.
func (r *Reader) MayContain(key []byte) bool { return r.bitmap.Contains(KeyHash(key)) }

// Get returns the value of key. It checks the bitmap, finds the block in
// the index, and reads, verifies and decompresses that one block. The value
// is a fresh slice the caller owns; a present empty value is non-nil.
func (r *Reader) Get(key []byte) (value []byte, ok bool, err error) {
	if r.closed.Load() {
		return nil, false, ErrClosed
	}
	if !r.MayContain(key) {
		return nil, false, nil
	}
	i := r.findBlock(key)
	if i == len(r.blocks) || bytes.Compare(key, r.blocks[i].first) < 0 {
		return nil, false, nil
	}
	b := r.bufs.Get().(*blockBuf)
	defer r.putBuf(b)
	if err := r.readBlock(i, b); err != nil {
		return nil, false, err
	}
	j := b.seek(key, 0)
	if j == len(b.ents) || !bytes.Equal(b.key(j), key) {
		return nil, false, nil
	}
	return bytes.Clone(b.value(j)), true, nil
}

// putBuf returns b to the pool, unless a huge entry made it too big to keep.
func (r *Reader) putBuf(b *blockBuf) {
	const maxPooled = 1 << 20
	if cap(b.raw) <= maxPooled && cap(b.compressed) <= maxPooled {
		r.bufs.Put(b)
	}
}

// findBlock returns the index of the first block whose last key is >= key,
// or len(r.blocks) if there is none.
func (r *Reader) findBlock(key []byte) int {
	return sort.Search(len(r.blocks), func(i int) bool {
		return bytes.Compare(r.blocks[i].last, key) >= 0
	})
}

// Close closes the file. Reads after Close return ErrClosed; so does a
// second Close.
func (r *Reader) Close() error {
	if r.closed.Swap(true) {
		return ErrClosed
	}
	if err := r.f.Close(); err != nil {
		return fmt.Errorf("compaction: closing %s: %w", r.path, err)
	}
	return nil
}
