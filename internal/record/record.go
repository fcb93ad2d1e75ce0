// Package record encodes and decodes the payload of one log entry: one
// ingest request, written atomically (SPEC §2). A request sent with an
// Idempotency-Key is logged as a KindIngestIdempotent entry that also
// carries the key and the response the request was answered with, so the
// records and the key are one atomic append. The wal package frames and
// checksums these bytes and knows nothing of them; this package knows
// nothing of frames. The layout is specified in docs/format/record.md.
//
// An entry is self-describing: each section carries the column names and
// types it was written with, so entries stay readable after the source
// schema changes.
//
//	buf := record.AppendEntry(nil, &record.Entry{Workspace: "ads", IngestTime: now,
//		Sections: []record.Section{{Source: "impressions", Columns: cols, Rows: rows}}})
//	var e record.Entry
//	err := record.Decode(buf, &e)
//
//	entry   := version:u8 kind:u8 ingest_time:varint workspace:str [idem | position | idem position positions]
//	           nsections:uvarint section*
//	idem    := key:str nviews:uvarint (view:str online:uvarint offline:uvarint)*
//	                                        kinds 2 and 4: the key and the first response
//	position:= partition:uvarint offset:uvarint
//	                                        kinds 3 and 4: the Kafka record the entry applies
//	positions:= npos:uvarint position*      kind 4 only: the first response's Kafka positions
//	section := source:str ncols:uvarint (name:str kind:u8 elem:u8)* nrows:uvarint row*
//	row     := value*                       one per column, in column order
//	value   := 0x00                         null
//	         | 0x01 scalar(kind)            present
//	scalar  := str | zigzag varint (Int64, Int32, Timestamp ns) | f64 LE | f32 LE | u8 (Bool)
//	         | uvarint n scalar(elem)*      (Array; elements are never null)
//	str     := uvarint len, bytes
package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/featurelog/featurelog/schema"
)

// Version and kinds of entries. Part of the on-disk format; do not change.
const (
	Version    = 1
	KindIngest = 1
	// KindIngestIdempotent is KindIngest plus, between the workspace and
	// the sections, the request's Idempotency-Key and its response: a
	// header DecodeHeader reads without decoding the sections.
	KindIngestIdempotent = 2
	// KindIngestPositioned is KindIngest plus, between the workspace and
	// the sections, the Kafka partition and offset of the record the
	// entry applies (cluster mode): the node's log stores the position
	// it consumed to atomically with what it applied.
	KindIngestPositioned = 3
	// KindIngestIdempotentPositioned is both: an Idempotency-Key and its
	// first response, recorded cluster-wide, applied from a Kafka
	// partition (cluster mode). After the position comes the Kafka
	// positions of the first response (its kafkaPositions), so that a
	// repeat is answered with the first response byte for byte.
	KindIngestIdempotentPositioned = 4

	tagNull    = 0
	tagPresent = 1
)

// maxCount bounds any count read from disk, so a corrupt length cannot make
// the decoder allocate without limit.
const maxCount = 1 << 28

// ErrCorrupt is wrapped by every decoding error.
var ErrCorrupt = errors.New("record: corrupt entry")

// Entry is one logged ingest request.
type Entry struct {
	Workspace  string
	IngestTime int64 // Unix ns at which the node accepted the request
	// IdempotencyKey is the request's Idempotency-Key; empty for requests
	// sent without one. A non-empty key makes the entry
	// KindIngestIdempotent.
	IdempotencyKey string
	// Response is, when IdempotencyKey is set, what the request was
	// answered with: one element per view, in response order. Repeats of
	// the key are answered with it.
	Response []ViewMetrics
	// Position, when Positioned, is the Kafka record the entry applies
	// (KindIngestPositioned, or KindIngestIdempotentPositioned with a key).
	Position   Position
	Positioned bool
	// ResponsePositions are, in a KindIngestIdempotentPositioned entry,
	// the Kafka positions the first response reported; other kinds
	// cannot hold them.
	ResponsePositions []Position
	Sections          []Section
}

// Position is a record of a Kafka partition: its partition and offset.
type Position struct {
	Partition int32
	Offset    int64
}

// ViewMetrics is one view's counts in a logged response (the engine's
// ViewIngestMetrics). Counts are never negative.
type ViewMetrics struct {
	View    string
	Online  int64
	Offline int64
}

// Kind returns the kind e is encoded as.
func (e *Entry) Kind() byte {
	switch {
	case e.Positioned && e.IdempotencyKey != "":
		return KindIngestIdempotentPositioned
	case e.Positioned:
		return KindIngestPositioned
	case e.IdempotencyKey != "":
		return KindIngestIdempotent
	}
	return KindIngest
}

// Section holds the rows of one source within an entry.
type Section struct {
	Source  string
	Columns []schema.Column
	// Rows are len(Columns) values each, row-major: row i is
	// Rows[i*len(Columns) : (i+1)*len(Columns)].
	Rows []schema.Value
}

// NumRows returns the number of rows in s.
func (s *Section) NumRows() int {
	if len(s.Columns) == 0 {
		return 0
	}
	return len(s.Rows) / len(s.Columns)
}

// Row returns row i.
func (s *Section) Row(i int) []schema.Value {
	n := len(s.Columns)
	return s.Rows[i*n : (i+1)*n : (i+1)*n]
}

// AppendEntry appends the encoding of e to dst.
func AppendEntry(dst []byte, e *Entry) []byte {
	dst = append(dst, Version, e.Kind())
	dst = binary.AppendVarint(dst, e.IngestTime)
	dst = appendStr(dst, e.Workspace)
	if len(e.ResponsePositions) > 0 && (!e.Positioned || e.IdempotencyKey == "") {
		panic("BUG: record: response positions in an entry of kind other than 4")
	}
	if e.IdempotencyKey != "" {
		dst = appendIdem(dst, e)
	}
	if e.Positioned {
		dst = appendPosition(dst, e.Position)
	}
	if e.Kind() == KindIngestIdempotentPositioned {
		dst = AppendPositions(dst, e.ResponsePositions)
	}
	dst = binary.AppendUvarint(dst, uint64(len(e.Sections)))
	for i := range e.Sections {
		dst = appendSection(dst, &e.Sections[i])
	}
	return dst
}

func appendPosition(dst []byte, p Position) []byte {
	if p.Partition < 0 || p.Offset < 0 {
		panic(fmt.Sprintf("BUG: record: a negative position %+v", p))
	}
	dst = binary.AppendUvarint(dst, uint64(p.Partition))
	return binary.AppendUvarint(dst, uint64(p.Offset))
}

// AppendPositions appends a list of Kafka positions: a uvarint count,
// then each position's partition and offset as uvarints. Kind 4 entries
// hold their response positions so; cluster mode also carries them so in
// a Kafka record header (docs/format/kafka.md). DecodePositions reads it.
func AppendPositions(dst []byte, ps []Position) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ps)))
	for _, p := range ps {
		dst = appendPosition(dst, p)
	}
	return dst
}

func appendIdem(dst []byte, e *Entry) []byte {
	dst = appendStr(dst, e.IdempotencyKey)
	dst = binary.AppendUvarint(dst, uint64(len(e.Response)))
	for _, m := range e.Response {
		if m.Online < 0 || m.Offline < 0 {
			panic(fmt.Sprintf("BUG: record: negative count in the response of view %q", m.View))
		}
		dst = appendStr(dst, m.View)
		dst = binary.AppendUvarint(dst, uint64(m.Online))
		dst = binary.AppendUvarint(dst, uint64(m.Offline))
	}
	return dst
}

func appendSection(dst []byte, s *Section) []byte {
	dst = appendStr(dst, s.Source)
	dst = binary.AppendUvarint(dst, uint64(len(s.Columns)))
	for _, c := range s.Columns {
		dst = appendStr(dst, c.Name)
		dst = append(dst, byte(c.Type.Kind), byte(c.Type.Elem))
	}
	dst = binary.AppendUvarint(dst, uint64(s.NumRows()))
	for _, v := range s.Rows {
		if v.Kind == schema.Null {
			dst = append(dst, tagNull)
			continue
		}
		dst = append(dst, tagPresent)
		dst = appendScalar(dst, v)
	}
	return dst
}

func appendScalar(dst []byte, v schema.Value) []byte {
	switch v.Kind {
	case schema.String:
		return appendStr(dst, v.S)
	case schema.Int64, schema.Int32, schema.Timestamp:
		return binary.AppendVarint(dst, v.I)
	case schema.Float64:
		return binary.LittleEndian.AppendUint64(dst, math.Float64bits(v.F))
	case schema.Float32:
		return binary.LittleEndian.AppendUint32(dst, math.Float32bits(float32(v.F)))
	case schema.Bool:
		return append(dst, byte(v.I))
	case schema.Array:
		dst = binary.AppendUvarint(dst, uint64(len(v.A)))
		for _, e := range v.A {
			dst = appendScalar(dst, e)
		}
		return dst
	}
	panic(fmt.Sprintf("BUG: record: cannot encode value of kind %v", v.Kind))
}

func appendStr(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}
