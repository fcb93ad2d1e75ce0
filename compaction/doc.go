// Package compaction will merge closed tiles into immutable, compressed,
// key-sorted segment files with entity-index bitmaps, and maintain the
// checkpoint that bounds log replay on open.
//
// It is empty in this version: the log is the only durable state, and Open
// replays all of it.
package compaction
