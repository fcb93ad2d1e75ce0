package compaction

import (
	"github.com/featurelog/featurelog/vfs"

	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/go-json-experiment/json/v1"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/klauspost/compress/zstd"

	"github.com/featurelog/featurelog/internal/atomicfile"
)

// DefaultBlockSize is the default of WriterOptions.BlockSize.
const DefaultBlockSize = 16 << 10

// WriterOptions configures a Writer. The zero value is valid.
type WriterOptions struct {
	// BlockSize is the uncompressed size (of encoded entries) at which a
	// block is cut. A Get decompresses one block, so smaller blocks make
	// point reads cheaper and compression worse. An entry larger than
	// BlockSize gets a block of its own. Default 16 KiB; at most
	// MaxEntrySize.
	BlockSize int
	// Codec compresses the blocks. Default CodecS2: on the engine's
	// segments it decodes 1.5-1.9x as fast as zstd and encodes 10-16x
	// faster, for files 11-13% bigger (docs/performance.md, "Segment block
	// codec").
	Codec Codec
	// Level is the zstd level of the blocks, for CodecZstd only (it must
	// be unset for S2). Default zstd.SpeedDefault.
	Level zstd.EncoderLevel
	// FS is the file system the segment is written through. Default
	// vfs.Default.
	FS vfs.FS
}

// EnsureDefaults fills in the default of every unset field.
func (o *WriterOptions) EnsureDefaults() {
	if o.BlockSize == 0 {
		o.BlockSize = DefaultBlockSize
	}
	if o.Codec == 0 {
		o.Codec = CodecS2
	}
	if o.Codec == CodecZstd && o.Level == 0 {
		o.Level = zstd.SpeedDefault
	}
	if o.FS == nil {
		o.FS = vfs.Default
	}
}

// Validate reports the first invalid field. Call it after EnsureDefaults.
func (o *WriterOptions) Validate() error {
	switch {
	case o.BlockSize <= 0 || o.BlockSize > MaxEntrySize:
		return fmt.Errorf("compaction: WriterOptions.BlockSize must be in [1, %d], got %d", MaxEntrySize, o.BlockSize)
	case !o.Codec.valid():
		return fmt.Errorf("compaction: WriterOptions.Codec must be CodecS2 (%d) or CodecZstd (%d), got %d",
			CodecS2, CodecZstd, o.Codec)
	case o.Codec != CodecZstd && o.Level != 0:
		return fmt.Errorf("compaction: WriterOptions.Level is a zstd level, and Codec is %s: set Codec to CodecZstd, or leave Level unset", o.Codec)
	case o.Codec == CodecZstd && (o.Level < zstd.SpeedFastest || o.Level > zstd.SpeedBestCompression):
		return fmt.Errorf("compaction: WriterOptions.Level must be a zstd level from %d (SpeedFastest) to %d (SpeedBestCompression), got %d",
			zstd.SpeedFastest, zstd.SpeedBestCompression, o.Level)
	}
	return nil
}

// Info describes a finished segment.
type Info struct {
	// Path is where the segment now is.
	Path string
	// Keys is the number of entries.
	Keys int
	// RawBytes is the sum of len(key)+len(value) over the entries.
	RawBytes int64
	// FileBytes is the size of the file.
	FileBytes int64
}

// Writer writes one segment. Entries are added in strictly increasing key
// order and go to path+".tmp"; Finish makes the file appear at path, whole
// and durable, or not at all. A Writer is not safe for concurrent use.
type Writer struct {
	// path is the final path; tmpPath the file being written.
	path, tmpPath string
	// f is the temporary file and bw buffers writes to it.
	f  vfs.File
	bw *bufio.Writer
	// enc compresses blocks with opts.Codec.
	enc blockEncoder
	// opts are the options, defaults filled in.
	opts WriterOptions
	// meta is written to the file by Finish.
	meta Meta
	// off is the number of bytes written so far: the offset of the next
	// block.
	off int64

	// block holds the block being built: blockRoom bytes of room for the
	// leading count (unknown until the block is cut), then the encoded
	// entries. The count is written right-aligned in the room, so the block
	// is compressed in place, without a copy.
	block []byte
	// blockCount is the number of entries in block.
	blockCount int
	// blockFirst is a copy of the first key of the block being built.
	blockFirst []byte
	// last is a copy of the last key added; valid when keys > 0.
	last []byte
	// compressed is the scratch buffer of cutBlock.
	compressed []byte

	// index holds the index entries of the blocks cut so far, without the
	// leading block count; blocks is that count.
	index  []byte
	blocks int
	// hashes holds KeyHash of every key added (4 bytes per key). Finish
	// sorts them and builds the bitmap by appending: adding them one by one,
	// in random order, would insert containers in the middle of roaring's
	// sorted container array, quadratic in the number of keys.
	hashes []uint32
	// keys and rawBytes are the running totals reported by Info.
	keys     int
	rawBytes int64

	// err is the first I/O error: once set, Add and Finish return it.
	err error
	// done is set by Finish and Abort.
	done bool
}

// Create starts writing a segment that will appear at path. It writes to
// path+".tmp" in the same directory (truncating any leftover of a crashed
// writer); Finish fsyncs it, renames it to path and fsyncs the directory.
// Call Abort (a no-op after Finish) to give up.
func Create(path string, meta Meta, opts WriterOptions) (*Writer, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	enc, err := newBlockEncoder(&opts)
	if err != nil {
		return nil, err
	}
	tmp := path + ".tmp"
	f, err := opts.FS.Create(tmp)
	if err != nil {
		return nil, fmt.Errorf("compaction: %w", err)
	}
	w := &Writer{
		path: path, tmpPath: tmp, f: f, bw: bufio.NewWriterSize(f, 256<<10),
		enc: enc, opts: opts, meta: meta, block: make([]byte, blockRoom),
	}
	w.write(appendHeader(nil, currentFormat(opts.Codec))) // buffered: cannot fail yet
	return w, nil
}

// blockRoom is the room left at the start of Writer.block for the entry
// count: the longest uvarint.
const blockRoom = binary.MaxVarintLen64

// Add appends an entry. key must be strictly greater (bytewise) than the
// previous key; if it is not, Add returns an error wrapping ErrKeyOrder and
// the writer stays usable. Add copies key and value.
func (w *Writer) Add(key, value []byte) error {
	switch {
	case w.done:
		return ErrWriterClosed
	case w.err != nil:
		return w.err
	case w.keys > 0 && bytes.Compare(key, w.last) <= 0:
		return fmt.Errorf("%w: %s after %s", ErrKeyOrder, quoteKey(key), quoteKey(w.last))
	case len(key)+len(value) > MaxEntrySize:
		return fmt.Errorf("%w: key %s: %d bytes", ErrEntryTooLarge, quoteKey(key), len(key)+len(value))
	}
	if w.blockCount > 0 && len(w.block)-blockRoom+entrySize(key, value) > w.opts.BlockSize {
		w.cutBlock()
	}
	if w.blockCount == 0 {
		w.blockFirst = append(w.blockFirst[:0], key...)
	}
	w.block = binary.AppendUvarint(w.block, uint64(len(key)))
	w.block = append(w.block, key...)
	w.block = binary.AppendUvarint(w.block, uint64(len(value)))
	w.block = append(w.block, value...)
	w.blockCount++
	w.last = append(w.last[:0], key...)
	w.hashes = append(w.hashes, KeyHash(key))
	w.keys++
	w.rawBytes += int64(len(key) + len(value))
	if len(w.block)-blockRoom >= w.opts.BlockSize {
		w.cutBlock()
	}
	return w.err
}

// entrySize is the encoded size of an entry in a block.
func entrySize(key, value []byte) int {
	return uvarintLen(uint64(len(key))) + len(key) + uvarintLen(uint64(len(value))) + len(value)
}

// uvarintLen is the size of the uvarint encoding of v.
func uvarintLen(v uint64) int {
	var tmp [binary.MaxVarintLen64]byte
	return binary.PutUvarint(tmp[:], v)
}

// quoteKey formats a key for an error message, shortened: keys can be long
// and binary.
func quoteKey(k []byte) string {
	const limit = 64
	if len(k) > limit {
		return fmt.Sprintf("%q... (%d bytes)", k[:limit], len(k))
	}
	return fmt.Sprintf("%q", k)
}

// cutBlock compresses and writes the block being built, and records it in
// the index.
func (w *Writer) cutBlock() {
	var count [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(count[:], uint64(w.blockCount))
	raw := w.block[blockRoom-n:]
	copy(raw, count[:n])
	w.compressed = w.enc(w.compressed, raw)
	h := blockHandle{
		first: w.blockFirst, last: w.last, off: w.off,
		compLen: len(w.compressed), rawLen: len(raw), count: w.blockCount,
		crc: checksum(w.compressed),
	}
	w.index = appendIndexEntry(w.index, &h)
	w.blocks++
	w.write(w.compressed)
	w.block, w.blockCount = w.block[:blockRoom], 0
}

// write appends b to the file, recording the first error.
func (w *Writer) write(b []byte) {
	if w.err != nil {
		return
	}
	n, err := w.bw.Write(b)
	w.off += int64(n)
	if err != nil {
		w.err = fmt.Errorf("compaction: writing %s: %w", w.tmpPath, err)
	}
}

// Finish writes the index, bitmap, meta and footer, fsyncs the file, renames
// it to its final path and fsyncs the directory. On error the temporary file
// is removed; if only the directory fsync failed, the error wraps
// ErrNotDurable and the file is at its final path but may not
// survive a crash: do not reference it, remove it.
func (w *Writer) Finish() (Info, error) {
	switch {
	case w.done:
		return Info{}, ErrWriterClosed
	case w.err != nil:
		return Info{}, errors.Join(w.err, w.Abort())
	}
	if err := w.writeTail(); err != nil {
		return Info{}, errors.Join(err, w.Abort())
	}
	if err := w.sync(); err != nil {
		return Info{}, errors.Join(err, w.Abort())
	}
	w.done = true
	if err := w.opts.FS.Rename(w.tmpPath, w.path); err != nil {
		return Info{}, errors.Join(fmt.Errorf("compaction: %w", err), w.opts.FS.Remove(w.tmpPath))
	}
	if err := w.opts.FS.SyncDir(filepath.Dir(w.path)); err != nil {
		return Info{}, fmt.Errorf("compaction: segment %s: %w: %w", w.path, atomicfile.ErrNotDurable, err)
	}
	return Info{Path: w.path, Keys: w.keys, RawBytes: w.rawBytes, FileBytes: w.off}, nil
}

// writeTail writes the last block and everything after the blocks.
func (w *Writer) writeTail() error {
	if w.blockCount > 0 {
		w.cutBlock()
	}
	index := binary.AppendUvarint(make([]byte, 0, len(w.index)+binary.MaxVarintLen64), uint64(w.blocks))
	index = append(index, w.index...)
	slices.Sort(w.hashes)
	bm := roaring.BitmapOf(w.hashes...)
	bm.RunOptimize()
	bitmap, err := bm.ToBytes()
	if err != nil {
		return fmt.Errorf("compaction: encoding bitmap: %w", err)
	}
	meta, err := json.Marshal(w.meta)
	if err != nil {
		return fmt.Errorf("compaction: encoding meta: %w", err)
	}
	f := footer{keys: uint64(w.keys), rawBytes: uint64(w.rawBytes), format: currentFormat(w.opts.Codec)}
	f.indexOff, f.indexLen, f.indexCRC = w.section(index)
	f.bitmapOff, f.bitmapLen, f.bitmapCRC = w.section(bitmap)
	f.metaOff, f.metaLen, f.metaCRC = w.section(meta)
	w.write(appendFooter(nil, &f))
	return w.err
}

// section writes b and returns its offset, length and CRC for the footer.
func (w *Writer) section(b []byte) (off, n uint64, crc uint32) {
	off = uint64(w.off)
	w.write(b)
	return off, uint64(len(b)), checksum(b)
}

// sync flushes, fsyncs and closes the temporary file. A failed fsync is not
// retried (fsyncgate): the file is abandoned.
func (w *Writer) sync() error {
	err := w.bw.Flush()
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	if err != nil {
		return fmt.Errorf("compaction: writing %s: %w", w.tmpPath, err)
	}
	return nil
}

// Abort abandons the segment and removes the temporary file. It is a no-op
// after Finish or a previous Abort, so it can be deferred.
func (w *Writer) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	var err error
	if w.f != nil {
		err = w.f.Close()
		w.f = nil
	}
	if rerr := w.opts.FS.Remove(w.tmpPath); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	if err != nil {
		return fmt.Errorf("compaction: aborting %s: %w", w.tmpPath, err)
	}
	return nil
}

// ErrNotDurable is wrapped by Writer.Finish when the segment was written
// and renamed but the directory fsync failed: the file may not survive a
// crash, so it must not be referenced.
var ErrNotDurable = atomicfile.ErrNotDurable
