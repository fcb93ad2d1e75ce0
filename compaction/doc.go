// Package compaction reads and writes segments: immutable files of
// (key, value) entries in strictly increasing bytewise key order, cut into
// compressed blocks (S2 by default, or zstd), with an index of the blocks, a roaring bitmap of
// the keys' hashes and a self-description (Meta). The engine keeps, per
// feature view, one entry per entity key whose value is that key's encoded
// state; this package knows nothing of the values. It is to the engine what
// wal is to the log: framing, checksums and files, no schema.
//
// # Basics
//
// Write a segment by adding its entries in key order, then Finish. The file
// appears at its path whole and durable (temp file, fsync, rename, directory
// fsync), or not at all:
//
//	w, err := compaction.Create(filepath.Join(dir, "000042.seg"), compaction.Meta{
//		Kind: "attributes", Workspace: "ws", View: "users", Version: 3,
//		MinSeq: 1, MaxSeq: 9000,
//	}, compaction.WriterOptions{})
//	if err != nil {
//		return err
//	}
//	defer w.Abort() // removes the temp file unless Finish succeeded
//	for _, e := range sortedEntries {
//		if err := w.Add(e.Key, e.Value); err != nil {
//			return err // compaction.ErrKeyOrder: keys must strictly increase
//		}
//	}
//	info, err := w.Finish()
//
// Read it with point lookups, an Iterator, or a MergeIterator over several
// segments; wrap the Reader in a Handle so that a segment replaced by a
// compaction is deleted only after its last reader is done:
//
//	r, err := compaction.Open(info.Path) // a *CorruptionError if malformed
//	h := compaction.NewHandle(r)         // the owner's reference
//
//	if h.Acquire() { // a reader
//		v, ok, err := h.Reader().Get(key)
//		h.Release()
//	}
//
//	m := compaction.NewMergeIterator([]*compaction.Iterator{
//		older.NewIterator(), newer.NewIterator(),
//	})
//	for m.Next() {
//		vals := m.Values() // vals[i] is nil where input i lacks m.Key()
//		_ = w2.Add(m.Key(), combine(vals))
//	}
//	if err := m.Err(); err != nil { ... }
//
//	h.Obsolete() // after the merged segment replaced it
//	h.Release()  // the file goes with the last reference
//
// # Layout
//
//	+--------+---------+-----+-----------+-------+--------+------+--------+
//	| header | block 0 | ... | block n-1 | index | bitmap | meta | footer |
//	+--------+---------+-----+-----------+-------+--------+------+--------+
//
// The 8-byte header is the magic "FLSG", a version byte, a codec byte and
// two zero bytes. A block is one S2 block or one zstd frame (the codec
// byte says which) of an entry count and the entries
// (uvarint key length, key, uvarint value length, value); a block is cut
// once its entries reach WriterOptions.BlockSize, and an entry bigger than
// that gets a block of its own. The index gives each block's first and last
// key, offset, compressed and raw sizes, entry count and the CRC-32C of its
// compressed bytes. The bitmap holds KeyHash of every key; Meta is JSON. The
// fixed 88-byte footer locates the index, bitmap and meta, holds their
// CRC-32Cs, the key count and raw size, the version and codec again, its
// own CRC-32C and the magic. docs/format/segment.md has the byte-level
// tables. Writers write version 2; readers read it and version 1 (zstd
// blocks, no codec byte).
//
// Open reads the footer and the sections after the blocks and verifies all
// of them; a block is read with ReadAt, checked against its CRC, decompressed
// and parsed only when a Get or an Iterator needs it. Every byte of the file
// is covered by a check, so damage is reported as a *CorruptionError, never
// returned as data.
//
// # Caveats
//
//   - Segments are immutable: there is no update or delete. A newer value
//     of a key goes in a newer segment, and merging decides which wins.
//   - Get decompresses a whole block (16 KiB by default) per call; for scans
//     use an Iterator, which decompresses each block once.
//   - S2 (the default codec) decodes 1.5-1.9x as fast as zstd and encodes
//     10-16x cheaper on the engine's data, for files 11-13% bigger; it has
//     no entropy coding, so bytes of low entropy that do not repeat (random
//     small numbers) compress far worse than with zstd. WriterOptions.Codec
//     picks zstd instead.
//   - Keys and values returned by an Iterator or MergeIterator are valid
//     only until it moves; Get returns a copy.
//   - A Reader's methods are safe for concurrent use, but Close must not
//     race with them: use a Handle. An Iterator is for one goroutine.
//   - KeyHash is part of the file format: the bitmaps of existing files
//     depend on it.
//   - Open keeps the index, bitmap and meta in memory: roughly the size of
//     two keys per block plus a few bytes per key.
//   - A segment is derived data. A corrupt one cannot be repaired; rebuild
//     it from the event log or restore it from a backup.
//   - len(key)+len(value) is limited to MaxEntrySize (1 GiB). A Writer
//     holds one block and 4 bytes per key (the hashes for the bitmap, built
//     by Finish); a huge entry is held about twice while it is compressed.
package compaction
