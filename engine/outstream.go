package engine

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/featurelog/featurelog/internal/record"
	"github.com/featurelog/featurelog/schema"
	"github.com/featurelog/featurelog/tiles"
	"github.com/featurelog/featurelog/wal"
)

// Output streams (SPEC §7). The log is the outbox: a view's stream is
// derived, record by record, from the log entries in log order, each
// record named by its position in the log, so a consumer resumes at any
// retained offset and a replay yields the very records the live stream
// did. Nothing else is stored: backfills, materializations and deletions
// write no log entry and so publish nothing.
//
// A stream reads only entries every earlier one of which is applied (the
// applied mark, applied.go), so an aggregate view's values are computed
// from a state holding every record logged before this one, and a
// get-features call made on receipt sees the record.

// StreamOffset names one record of the log: its entry's sequence number
// and its index within the entry (over all of the entry's sections). Its
// String form, the wire offset, is 24 lower-case hex digits, so offsets
// compare as byte strings in log order.
type StreamOffset struct {
	Seq uint64
	Idx uint32
}

// offsetLen is the length of a wire offset: part of the wire format; do
// not change.
const offsetLen = 24

// String returns the wire form of o.
func (o StreamOffset) String() string {
	return string(o.AppendText(make([]byte, 0, offsetLen)))
}

// AppendText appends the wire form of o to dst.
func (o StreamOffset) AppendText(dst []byte) []byte {
	var b [offsetLen]byte
	hex.Encode(b[:16], be64(o.Seq))
	hex.Encode(b[16:], be32(o.Idx))
	return append(dst, b[:]...)
}

// next returns the position right after o.
func (o StreamOffset) next() StreamOffset {
	if o.Idx == ^uint32(0) {
		return StreamOffset{Seq: o.Seq + 1}
	}
	return StreamOffset{Seq: o.Seq, Idx: o.Idx + 1}
}

// Less reports whether o comes before p in the log.
func (o StreamOffset) Less(p StreamOffset) bool {
	return o.Seq < p.Seq || (o.Seq == p.Seq && o.Idx < p.Idx)
}

func be64(x uint64) []byte {
	return []byte{byte(x >> 56), byte(x >> 48), byte(x >> 40), byte(x >> 32), byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)}
}

func be32(x uint32) []byte { return []byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)} }

// ParseStreamOffset parses a wire offset. The error, an *Error with
// CodeInvalidArgument, says what a valid one looks like.
func ParseStreamOffset(s string) (StreamOffset, error) {
	bad := func(why string) (StreamOffset, error) {
		return StreamOffset{}, errorf(CodeInvalidArgument,
			"offset %q is not valid: %s; use the offset of a record the stream sent (24 hex digits), earliest or latest", clip(s, 40), why)
	}
	if len(s) != offsetLen {
		return bad(fmt.Sprintf("it has %d characters, not %d", len(s), offsetLen))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return bad(fmt.Sprintf("character %d is not a lower-case hex digit", i+1))
		}
	}
	seq, _ := strconv.ParseUint(s[:16], 16, 64)
	idx, _ := strconv.ParseUint(s[16:], 16, 32)
	if seq == 0 {
		return bad("log positions start at entry 1")
	}
	return StreamOffset{Seq: seq, Idx: uint32(idx)}, nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// StartKind says where a stream begins.
type StartKind uint8

// The start kinds.
const (
	// StartEarliest begins at the first retained record.
	StartEarliest StartKind = iota
	// StartLatest begins with the records appended after the stream is
	// opened.
	StartLatest
	// StartAt begins at Offset, inclusive (the from parameter).
	StartAt
	// StartAfter begins right after Offset (Last-Event-ID, a cursor).
	StartAfter
)

// StreamStart is where a stream begins.
type StreamStart struct {
	Kind   StartKind
	Offset StreamOffset // for StartAt and StartAfter
}

// OutputRecord is one record of a view's output stream (SPEC §7).
type OutputRecord struct {
	Offset           StreamOffset
	FeatureView      string    // feature_view_name
	FeatureViewID    string    // feature_view_id: workspace/view@version of the version that computed it
	FeatureTimestamp time.Time // the record's event time
	// IngestTime is when the record's entry was logged (not part of the
	// wire record): sinks measure their lag with it.
	IngestTime time.Time
	EntityKeys []NamedValue // the view's join keys, in declared order
	// FeatureValues is nil unless the view's stream has include_features:
	// an attribute view's values of this record, or an aggregate view's
	// whole vector as of FeatureTimestamp+1ns over the log up to and
	// including this record. Keyed by feature name without the view
	// prefix; a null value has Null set.
	FeatureValues []NamedValue
}

// NamedValue is one entity key or feature value of an output record.
// Text gives it as the string SPEC §7 sends: integers in decimal, floats
// in the shortest form that reads back exactly (non-finite: "NaN",
// "Infinity", "-Infinity"), booleans true or false, timestamps in RFC 3339
// with nanoseconds (UTC), arrays as JSON; a null value is sent as JSON
// null.
type NamedValue struct {
	Name  string
	Value schema.Value
}

// IsNull reports whether the value is null.
func (v NamedValue) IsNull() bool { return v.Value.IsNull() }

// Text returns the value's wire string ("" when null).
func (v NamedValue) Text() string { return string(appendText(nil, v.Value)) }

// AppendJSON appends r as the one-line JSON object of SPEC §7, in the
// field order of Tecton's output schema, offset last.
func (r *OutputRecord) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"version":"1","producer":"featurelog","job_type":"stream","feature_view_name":`...)
	dst = appendJSONString(dst, r.FeatureView)
	dst = append(dst, `,"feature_view_id":`...)
	dst = appendJSONString(dst, r.FeatureViewID)
	dst = append(dst, `,"feature_timestamp":"`...)
	dst = r.FeatureTimestamp.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","entity_keys":`...)
	dst = appendNamedValues(dst, r.EntityKeys)
	if r.FeatureValues != nil {
		dst = append(dst, `,"feature_values":`...)
		dst = appendNamedValues(dst, r.FeatureValues)
	}
	dst = append(dst, `,"offset":"`...)
	dst = r.Offset.AppendText(dst)
	return append(dst, `"}`...)
}

// AppendKeyJSON appends the JSON object of r's entity keys: a Kafka
// message's key, so a key's records go to one partition, in order.
func (r *OutputRecord) AppendKeyJSON(dst []byte) []byte {
	return appendNamedValues(dst, r.EntityKeys)
}

func appendNamedValues(dst []byte, vs []NamedValue) []byte {
	dst = append(dst, '{')
	for i, v := range vs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, v.Name)
		dst = append(dst, ':')
		dst = appendTextJSON(dst, v.Value)
	}
	return append(dst, '}')
}

// appendTextJSON appends v's wire string as a JSON string, or null.
func appendTextJSON(dst []byte, v schema.Value) []byte {
	switch v.Kind {
	case schema.Null:
		return append(dst, "null"...)
	case schema.String:
		return appendJSONString(dst, v.S)
	case schema.Array:
		var buf [256]byte
		return appendJSONString(dst, string(appendText(buf[:0], v)))
	}
	dst = append(dst, '"') // numbers, booleans and timestamps need no escaping
	dst = appendText(dst, v)
	return append(dst, '"')
}

// appendJSONString appends s as a JSON string; invalid UTF-8 is replaced.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			out, _ := jsontext.AppendQuote(dst, s)
			return out
		}
	}
	dst = append(dst, '"') // plain ASCII, the common case: no escaping
	dst = append(dst, s...)
	return append(dst, '"')
}

// appendText appends v's wire string.
func appendText(dst []byte, v schema.Value) []byte {
	switch v.Kind {
	case schema.String:
		return append(dst, v.S...)
	case schema.Int64, schema.Int32:
		return strconv.AppendInt(dst, v.I, 10)
	case schema.Float64, schema.Float32:
		return appendFloatText(dst, v.F, v.Kind)
	case schema.Bool:
		return strconv.AppendBool(dst, v.I != 0)
	case schema.Timestamp:
		return v.Time().AppendFormat(dst, time.RFC3339Nano)
	case schema.Array:
		return appendArrayText(dst, v)
	}
	return dst
}

// appendFloatText appends a float in the shortest form that reads back
// exactly; non-finite ones as "NaN", "Infinity", "-Infinity" (SPEC §4).
func appendFloatText(dst []byte, f float64, k schema.Kind) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	case math.IsInf(f, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(f, -1):
		return append(dst, "-Infinity"...)
	}
	bits := 64
	if k == schema.Float32 {
		bits = 32
	}
	return strconv.AppendFloat(dst, f, 'g', -1, bits)
}

// appendArrayText appends an array as plain JSON: numbers as JSON numbers,
// strings, timestamps and non-finite floats as JSON strings.
func appendArrayText(dst []byte, v schema.Value) []byte {
	dst = append(dst, '[')
	for i, e := range v.A {
		if i > 0 {
			dst = append(dst, ',')
		}
		switch {
		case e.Kind == schema.String, e.Kind == schema.Timestamp,
			(e.Kind == schema.Float64 || e.Kind == schema.Float32) && (math.IsNaN(e.F) || math.IsInf(e.F, 0)):
			dst = appendTextJSON(dst, e)
		default:
			dst = appendText(dst, e)
		}
	}
	return append(dst, ']')
}

// OutputStream reads one view's output stream. It is not safe for
// concurrent use. Close it when done.
type OutputStream struct {
	db       *DB
	ws, name string
	start    StreamStart
	pos      StreamOffset // the next record to deliver is the first at or after pos
	rd       *wal.Reader  // positioned at the entry after cur's
	cur      *record.Entry
	curSeq   uint64 // cur's seq; 0 when cur is spent
	pj       projector
	rb       rowBuilder
	vals     []schema.Value
	slab     []NamedValue // see named
}

// OpenOutputStream opens the output stream of a view from start. The view
// must exist and declare output_stream. A StartAt or StartAfter offset
// before the first retained record is refused with CodeGone.
func (db *DB) OpenOutputStream(workspace, view string, start StreamStart) (*OutputStream, error) {
	if db.closed.Load() {
		return nil, ErrClosed
	}
	if _, _, err := db.streamView(workspace, view); err != nil {
		return nil, err
	}
	s := &OutputStream{db: db, ws: workspace, name: view, start: start, pj: projector{chunk: 256}}
	switch start.Kind {
	case StartEarliest:
		s.pos = StreamOffset{Seq: max(db.log.FirstSeq(), 1)}
	case StartLatest:
		s.pos = StreamOffset{Seq: db.log.LastSeq() + 1}
	case StartAt:
		s.pos = start.Offset
	case StartAfter:
		s.pos = start.Offset.next()
	}
	if start.Kind == StartAt || start.Kind == StartAfter {
		if first := db.log.FirstSeq(); s.pos.Seq < first && db.log.LastSeq() >= first {
			return nil, s.gone(first)
		}
	}
	s.rd = db.log.NewReader(s.pos.Seq)
	return s, nil
}

func (s *OutputStream) gone(first uint64) error {
	return errorf(CodeGone, "offset %s of feature view %q is no longer retained: the log was truncated and now begins at offset %s; "+
		"resume from earliest (records in between are lost to this consumer) or keep a Kafka sink, whose cursor holds the log",
		s.pos, s.name, StreamOffset{Seq: first})
}

// Close releases the stream's open log file.
func (s *OutputStream) Close() {
	if s.rd != nil {
		s.rd.Close()
	}
}

// Position returns the offset the next record delivered will have or
// follow: right after the last record delivered.
func (s *OutputStream) Position() StreamOffset { return s.pos }

// streamView returns the serving version of a view that has an output
// stream, and its workspace, from one catalog: the view's source must be
// compared with the sources of that catalog, not a later one.
func (db *DB) streamView(workspace, view string) (*workspace, *viewRT, error) {
	ws, err := db.cat.Load().workspace(workspace)
	if err != nil {
		return nil, nil, err
	}
	v := ws.views[view]
	if v == nil {
		return nil, nil, errorf(CodeNotFound, "feature view %q not found in workspace %q", view, workspace)
	}
	if v.def.OutputStream == nil {
		return nil, nil, errorf(CodeNotFound, "feature view %q in workspace %q has no output stream: declare output_stream: in its definition", view, workspace)
	}
	if s := v.serving(); s != nil {
		return ws, s, nil
	}
	return nil, nil, errorf(CodeUnavailable, "feature view %q in workspace %q is being built by a backfill and has no earlier version to stream from; retry when the job is done", view, workspace)
}

// Next returns the next records, at most max (at least 1), waiting up to
// wait for the first (forever when wait is 0); it returns an empty slice
// when wait elapses first, and ctx's error when ctx ends first. dst is
// reused.
func (s *OutputStream) Next(ctx context.Context, dst []OutputRecord, max int, wait time.Duration) ([]OutputRecord, error) {
	dst = dst[:0]
	var deadline <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		deadline = t.C
	}
	for {
		ws, v, err := s.db.streamView(s.ws, s.name)
		if err != nil {
			return dst, err
		}
		mark, moved := s.db.applied.get()
		holdUntil, err := s.fill(ws, v, &dst, max, mark)
		if err != nil || len(dst) > 0 {
			return dst, err
		}
		var hold <-chan time.Time
		if holdUntil > 0 {
			t := time.NewTimer(time.Duration(holdUntil - s.db.opts.Now().UnixNano()))
			defer t.Stop()
			hold = t.C
		}
		select {
		case <-ctx.Done():
			return dst, ctx.Err()
		case <-deadline:
			return dst, nil
		case <-moved:
		case <-hold:
		case <-s.db.maintStop:
			return dst, ErrClosed
		}
	}
}

// fill appends the records of entries up to mark to dst, up to max. It
// stops early at a record whose publication time (publishAt) is still in
// the future, returning that time.
func (s *OutputStream) fill(ws *workspace, v *viewRT, dst *[]OutputRecord, maxN int, mark uint64) (holdUntil int64, err error) {
	er := s.db.erasures.eraserFor(s.ws, v, true)
	for len(*dst) < maxN {
		if s.curSeq == 0 {
			if s.pos.Seq > mark {
				return 0, nil
			}
			if err := s.read(mark); err != nil {
				if err == io.EOF {
					return 0, nil
				}
				return 0, err
			}
		}
		until, err := s.records(ws, v, er, dst, maxN)
		if err != nil || until > 0 {
			return until, err
		}
	}
	return 0, nil
}

// read decodes the entry at s.pos.Seq into s.cur.
func (s *OutputStream) read(mark uint64) error {
	if s.rd.NextSeq() != s.pos.Seq {
		s.rd.Close()
		s.rd = s.db.log.NewReader(s.pos.Seq)
	}
	seq, payload, err := s.rd.Next(mark)
	switch {
	case errors.Is(err, wal.ErrTruncated):
		if s.start.Kind == StartEarliest || s.start.Kind == StartLatest {
			s.pos = StreamOffset{Seq: s.db.log.FirstSeq()} // nothing was promised before the log's start
			s.rd.Close()
			s.rd = s.db.log.NewReader(s.pos.Seq)
			return nil
		}
		return s.gone(s.db.log.FirstSeq())
	case err != nil:
		return err
	}
	if s.cur == nil {
		s.cur = &record.Entry{}
	}
	if err := record.Decode(payload, s.cur); err != nil {
		return fmt.Errorf("engine: log entry %d: %w", seq, err)
	}
	s.curSeq = seq
	return nil
}

// records appends the view's records of s.cur from s.pos on to dst, up
// to maxN. When s.cur is spent it moves s.pos to the next entry.
func (s *OutputStream) records(ws *workspace, v *viewRT, er *rowEraser, dst *[]OutputRecord, maxN int) (holdUntil int64, err error) {
	e := s.cur
	idx := 0
	for si := range e.Sections {
		sec := &e.Sections[si]
		n := sec.NumRows()
		if e.Workspace != ws.name || sec.Source != v.src.def.Name || idx+n <= int(s.pos.Idx) {
			idx += n
			continue
		}
		s.rb.reset(v.src, sec.Columns)
		for row := max(int(s.pos.Idx)-idx, 0); row < n; row++ {
			if len(*dst) >= maxN {
				return 0, nil
			}
			at := StreamOffset{Seq: s.curSeq, Idx: uint32(idx + row)}
			until, err := s.record(v, er, s.rb.row(sec.Row(row)), e, at, dst)
			if err != nil || until > 0 {
				return until, err
			}
			s.pos = at.next()
		}
		idx += n
	}
	s.pos, s.curSeq = StreamOffset{Seq: s.curSeq + 1}, 0
	return 0, nil
}

// record appends the output record of one logged row, if the view
// published one for it.
func (s *OutputStream) record(v *viewRT, er *rowEraser, row []schema.Value, e *record.Entry, at StreamOffset, dst *[]OutputRecord) (holdUntil int64, err error) {
	p, err := v.project(row, &s.pj)
	if err != nil || p.skip || er.erased(row, at.Seq) || !v.onlineAt(p.ts, time.Unix(0, e.IngestTime)) {
		return 0, nil // not applied to the view, or not online when logged: the view published nothing
	}
	if at := publishAt(v, p.ts); at > s.db.opts.Now().UnixNano() {
		return at, nil
	}
	out := OutputRecord{Offset: at, FeatureView: v.def.Name, FeatureViewID: v.data.id,
		FeatureTimestamp: time.Unix(0, p.ts).UTC(), IngestTime: time.Unix(0, e.IngestTime).UTC()}
	nf := 0
	if v.def.OutputStream.IncludeFeatures {
		nf = len(v.def.Features)
	}
	nv := s.named(len(v.keyIdx) + nf)
	out.EntityKeys = nv[:len(v.keyIdx):len(v.keyIdx)]
	for i, k := range v.keyIdx {
		out.EntityKeys[i] = NamedValue{Name: v.def.JoinKeys[i].Name, Value: row[k]}
	}
	if nf > 0 {
		out.FeatureValues = nv[len(v.keyIdx):]
		if err := s.values(v, &p, at, out.FeatureValues); err != nil {
			return 0, err
		}
	}
	*dst = append(*dst, out)
	return 0, nil
}

// values fills out with the feature values of a record: an attribute
// view's own values, or an aggregate view's vector as of the record's
// time + 1ns over the log up to and including it.
func (s *OutputStream) values(v *viewRT, p *projected, at StreamOffset, out []NamedValue) error {
	fs := v.def.Features
	vals := p.vals
	if v.data.spec != nil {
		if cap(s.vals) < len(fs) {
			s.vals = make([]schema.Value, len(fs))
		}
		vals = s.vals[:len(fs)]
		if err := v.data.readLogged(v.data.hot.states, p.key, p.ts+1, tiles.Order{Seq: at.Seq, Idx: at.Idx}, vals); err != nil {
			return err
		}
	}
	for i, f := range fs {
		out[i] = NamedValue{Name: f.Name, Value: vals[i]}
	}
	return nil
}

// named returns n NamedValues cut from a slab, so a batch of records costs
// one allocation for them. The slab is never reused: records handed out
// stay valid.
func (s *OutputStream) named(n int) []NamedValue {
	if len(s.slab) < n {
		s.slab = make([]NamedValue, max(n, 1024))
	}
	out := s.slab[:n:n]
	s.slab = s.slab[n:]
	return out
}

// publishAt is when a record with event time ts may be published: once a
// get-features call reads it, with an effective time at least ts (SPEC
// §7). That is ts+1ns, later by the largest window offset of an aggregate
// view (its effective time is the read time less the offset); a record
// dated in the future (up to MaxClockSkew) waits for its time.
func publishAt(v *viewRT, ts int64) int64 {
	at := ts + 1
	for _, f := range v.def.Features {
		at = max(at, ts+1+int64(f.Window.Offset))
	}
	return at
}
