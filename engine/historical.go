package engine

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/featurelog/featurelog/historical"
	"github.com/featurelog/featurelog/internal/batchsrc"
	"github.com/featurelog/featurelog/schema"
	"github.com/featurelog/featurelog/tiles"
)

// HistoricalRequest asks for point-in-time correct features of a service
// (SPEC §5): either for every row of a spine (GetFeaturesForEvents) or for
// every key and interval of a time range (GetFeaturesForRange).
type HistoricalRequest struct {
	Workspace string
	Service   string
	// TimestampKey names the spine column that holds each row's time T.
	// Empty: the spine must have exactly one column whose values are
	// timestamps (time.Time or RFC 3339 strings).
	TimestampKey string
	// FromSource recomputes the features from the raw offline log instead
	// of the tiles and segments. It needs the source's log_offline: true.
	FromSource bool
	// Range mode: the interval [Start, End) and optionally the entities
	// (join-key maps, as GetFeaturesRequest.JoinKeys) to report; nil
	// Entities means every key with data in any of the service's views.
	Start, End time.Time
	Entities   []map[string]any
	// Progress, when set, is called now and then with the number of rows
	// written so far.
	Progress func(rows int)
	// ChunkRows is how many spine rows are read, answered and written at a
	// time (spine mode); memory grows with it. Default: 1<<20, fewer for
	// services with more than 8 features (8M feature values per chunk).
	ChunkRows int
}

// Spine supplies the rows of a spine-mode join.
type Spine interface {
	// Columns names the spine's columns, in order.
	Columns() []string
	// Next returns the next row, one value per column, or io.EOF after the
	// last. The engine reads join keys from string, int64, float64, Number
	// and json-like values; timestamps from time.Time or RFC 3339 strings.
	// Every value is passed through to the sink untouched.
	Next() ([]any, error)
}

// The shape of a historical result lives in package historical, below
// the engine and the writers (package tabular); these names are the
// engine's for it.
type (
	// HistoricalColumn is one column of a historical result.
	HistoricalColumn = historical.Column
	// HistoricalSink receives a historical result.
	HistoricalSink = historical.Sink
	// HistoricalChunkSink is a HistoricalSink that also takes a chunk of
	// rows at once.
	HistoricalChunkSink = historical.ChunkSink
	// HistoricalChunk is a chunk of output rows.
	HistoricalChunk = historical.Chunk
)

// NewHistoricalChunk returns a chunk of the given rows, for sinks' tests:
// features[r] holds row r's features.
func NewHistoricalChunk(lead [][]any, features [][]schema.Value) *HistoricalChunk {
	return historical.NewChunk(lead, features)
}

// SpineError reports a malformed spine row. Row counts from 1.
type SpineError struct {
	Row int
	Err error
}

func (e *SpineError) Error() string { return fmt.Sprintf("spine row %d: %v", e.Row, e.Err) }
func (e *SpineError) Unwrap() error { return e.Err }

// spineChunk is how many spine rows are read, answered and written at a
// time: the join's memory is bounded by it, not by the spine. Each chunk
// reads the segments once in key order, so a chunk should be large: with
// few rows per block of a segment, every chunk would decompress the whole
// segment again. A million rows take a few hundred MB.
const spineChunk = 1 << 20

// chunkValues bounds the feature values of a chunk (about 512 MiB).
const chunkValues = 1 << 23

// GetFeaturesForEvents answers a spine-mode historical join: for every
// spine row at time T, in spine order, the row followed by the vector an
// online read with as_of T returns. Memory is bounded: the spine is read,
// validated and answered in chunks, and a chunk's rows are written only
// after the whole chunk has been validated.
func (db *DB) GetFeaturesForEvents(ctx context.Context, req *HistoricalRequest, spine Spine, sink HistoricalSink) error {
	svc, cat, err := db.historicalService(req)
	if err != nil {
		return err
	}
	j, err := db.newJoin(svc, cat, req)
	if err != nil {
		return err
	}
	defer j.close()
	cols := spine.Columns()
	sp := spineParser{svc: svc, cols: cols, tsCol: -1}
	if err := sp.bindKeys(); err != nil {
		return err
	}
	written := 0
	chunkRows := req.ChunkRows
	if chunkRows <= 0 {
		// A chunk holds its rows and their feature values (64 bytes each):
		// bound the values, so a service with many features gets fewer rows.
		chunkRows = min(spineChunk, max(1024, chunkValues/max(1, len(svc.features))))
	}
	for chunk := 0; ; chunk++ {
		rows, err := readChunk(spine, written, chunkRows)
		if err != nil {
			return err
		}
		if len(rows) == 0 && chunk > 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if chunk == 0 {
			if err := sp.bindTime(req.TimestampKey, rows); err != nil {
				return err
			}
			if err := sink.Begin(j.columns(cols, true)); err != nil {
				return err
			}
		}
		c, err := sp.parse(rows, written)
		if err != nil {
			return err
		}
		out, err := j.answer(c)
		if err != nil {
			return err
		}
		out.Lead = rows
		if cs, ok := sink.(HistoricalChunkSink); ok {
			err = cs.Chunk(out)
		} else {
			err = out.WriteRows(sink)
		}
		if err != nil {
			return err
		}
		written += len(rows)
		if req.Progress != nil {
			req.Progress(written)
		}
		if len(rows) < chunkRows {
			return nil
		}
	}
}

// readChunk reads up to spineChunk rows; before counts the rows already
// read, for error messages.
func readChunk(spine Spine, before, n int) ([][]any, error) {
	var rows [][]any
	for len(rows) < n {
		row, err := spine.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var se *SpineError
			if errors.As(err, &se) {
				return nil, &Error{Code: CodeInvalidArgument, Msg: se.Error(), Err: se}
			}
			return nil, &Error{Code: CodeInvalidArgument, Msg: fmt.Sprintf("spine row %d: %v", before+len(rows)+1, err), Err: &SpineError{Row: before + len(rows) + 1, Err: err}}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// historicalService finds the service of a historical request in the
// current catalog, which the query then keeps using (see join.cat).
// Unlike online reads, services without online serving qualify.
func (db *DB) historicalService(req *HistoricalRequest) (*serviceRT, *catalog, error) {
	if db.closed.Load() {
		return nil, nil, ErrClosed
	}
	cat := db.cat.Load()
	ws, err := cat.workspace(req.Workspace)
	if err != nil {
		return nil, nil, err
	}
	svc := ws.services[req.Service]
	if svc == nil {
		return nil, nil, errorf(CodeNotFound, "feature service %q not found in workspace %q", req.Service, req.Workspace)
	}
	if svc.unavailable != nil {
		return nil, nil, svc.unavailable
	}
	if req.FromSource {
		for _, f := range svc.features {
			if src := f.view.src.def; !src.LogOffline && src.Batch == nil {
				return nil, nil, errorf(CodeInvalidArgument, "from_source recomputes from the offline log and the batch files, but source %q has log_offline: false and no batch files", src.Name)
			}
		}
	}
	return svc, cat, nil
}

// spineParser turns spine rows into join inputs.
type spineParser struct {
	svc     *serviceRT
	cols    []string
	tsCol   int
	keyCols []int // per svc.joinKeys, the spine column
}

func (sp *spineParser) bindKeys() error {
	for _, k := range sp.svc.joinKeys {
		i := indexOf(sp.cols, k)
		if i < 0 {
			return errorf(CodeInvalidArgument, "the spine has no column %q, a join key of feature service %q (spine columns: %s)",
				k, sp.svc.def.Name, strings.Join(sp.cols, ", "))
		}
		sp.keyCols = append(sp.keyCols, i)
	}
	return nil
}

func indexOf(xs []string, x string) int {
	for i, y := range xs {
		if y == x {
			return i
		}
	}
	return -1
}

// bindTime picks the timestamp column: the named one, or the only column
// whose values in the first chunk are all timestamps.
func (sp *spineParser) bindTime(name string, rows [][]any) error {
	if name != "" {
		if sp.tsCol = indexOf(sp.cols, name); sp.tsCol < 0 {
			return errorf(CodeInvalidArgument, "timestamp_key %q is not a spine column (spine columns: %s)", name, strings.Join(sp.cols, ", "))
		}
		return nil
	}
	var found []string
	for c := range sp.cols {
		if isTimeColumn(rows, c) {
			found = append(found, sp.cols[c])
			sp.tsCol = c
		}
	}
	switch {
	case len(rows) == 0:
		sp.tsCol = -1
		return nil
	case len(found) == 0:
		return errorf(CodeInvalidArgument, "no spine column holds RFC 3339 timestamps in every row; name the time column with timestamp_key")
	case len(found) > 1:
		return errorf(CodeInvalidArgument, "several spine columns hold timestamps (%s); name the time column with timestamp_key", strings.Join(found, ", "))
	}
	return nil
}

func isTimeColumn(rows [][]any, c int) bool {
	for _, r := range rows {
		if _, err := spineTime(r[c]); err != nil {
			return false
		}
	}
	return true
}

func spineTime(x any) (int64, error) {
	var t time.Time
	switch v := x.(type) {
	case time.Time:
		t = v
	case string:
		var err error
		if t, err = schema.ParseTimestamp(v); err != nil {
			return 0, err
		}
	case nil:
		return 0, errors.New("is null; every spine row needs a time")
	default:
		return 0, fmt.Errorf("%v is not a timestamp", x)
	}
	if err := schema.CheckTimestamp(t); err != nil {
		return 0, err
	}
	return t.UnixNano(), nil
}

// chunkInput is a parsed chunk: per row its time and per view its key.
type chunkInput struct {
	ts   []int64
	keys [][]string // [view][row]
	// same[vi] is the first view whose keys equal view vi's on every row
	// (vi itself when none does): such views share a sort and its key
	// arena.
	same []int
}

func (sp *spineParser) parse(rows [][]any, before int) (*chunkInput, error) {
	c := &chunkInput{ts: make([]int64, len(rows))}
	views := sp.svc.views()
	c.keys, c.same = make([][]string, len(views)), make([]int, len(views))
	differ := make([][]bool, len(views)) // differ[vi][u]: views vi and u < vi have different keys on some row
	for vi := range views {
		c.keys[vi] = make([]string, len(rows))
		differ[vi] = make([]bool, vi)
	}
	jk := map[string]any{}
	var scratch []byte
	for i, row := range rows {
		bad := func(err error) error {
			se := &SpineError{Row: before + i + 1, Err: err}
			return &Error{Code: CodeInvalidArgument, Msg: se.Error(), Err: se}
		}
		if len(row) != len(sp.cols) {
			return nil, bad(fmt.Errorf("has %d values for %d columns", len(row), len(sp.cols)))
		}
		t, err := spineTime(row[sp.tsCol])
		if err != nil {
			return nil, bad(fmt.Errorf("column %q: %w", sp.cols[sp.tsCol], err))
		}
		c.ts[i] = t
		for k, col := range sp.keyCols {
			jk[sp.svc.joinKeys[k]] = row[col]
		}
		for vi, v := range views {
			key, sc, err := v.keyFromMap(jk, scratch)
			scratch = sc
			if err != nil {
				return nil, bad(err)
			}
			c.keys[vi][i] = key
			for u := range vi {
				differ[vi][u] = differ[vi][u] || c.keys[u][i] != key
			}
		}
	}
	for vi := range views {
		c.same[vi] = vi
		if u := slices.Index(differ[vi], false); u >= 0 {
			c.same[vi] = c.same[u]
		}
	}
	return c, nil
}

// views returns the distinct views of the service's features, in order.
func (s *serviceRT) views() []*viewRT {
	var out []*viewRT
	for _, f := range s.features {
		if !slices.Contains(out, f.view) {
			out = append(out, f.view)
		}
	}
	return out
}

// join answers historical rows of one service from a snapshot of its
// views' sources, taken when the query starts.
type join struct {
	db  *DB
	svc *serviceRT
	// cat is the catalog svc was resolved in. from_source replays the log
	// with it: the replayer matches a logged section to a view by its
	// source's runtime, which an Apply during the query replaces.
	cat   *catalog
	views []*viewJoin
}

type viewJoin struct {
	v    *viewRT
	d    *viewData // v.data, or a temporary rebuild from the log (from_source)
	src  sources
	outs [][2]int // (feature index in the view, position in the service's vector)
	held bool     // src's segments are acquired
	// fromSource: every chunk rebuilds the view from the log, for the
	// chunk's keys only, into a temporary memtable.
	fromSource bool
	// onlineErased, when set, names the keys whose serving state an
	// online-only deletion emptied: a chunk with one of them is answered
	// from the offline log, as from_source would (SPEC §6).
	onlineErased func(key string) bool
	stored       sources // the snapshot, while a chunk reads a rebuild
}

func (db *DB) newJoin(svc *serviceRT, cat *catalog, req *HistoricalRequest) (*join, error) {
	j := &join{db: db, svc: svc, cat: cat}
	for _, v := range svc.views() {
		vj := &viewJoin{v: v, d: v.data, fromSource: req.FromSource}
		for pos, f := range svc.features {
			if f.view == v {
				vj.outs = append(vj.outs, [2]int{f.idx, pos})
			}
		}
		if !req.FromSource {
			vj.src, vj.held = v.data.snapshot(true), true
			vj.stored = vj.src
			vj.onlineErased = db.erasures.onlineErased(v.data.meta.Workspace, v)
		}
		j.views = append(j.views, vj)
	}
	return j, nil
}

func (j *join) close() {
	for _, vj := range j.views {
		if vj.held {
			vj.stored.release()
			vj.held = false
		}
	}
}

// columns lists the output columns: the lead columns, then the features.
func (j *join) columns(lead []string, spine bool) []HistoricalColumn {
	var out []HistoricalColumn
	for _, c := range lead {
		out = append(out, HistoricalColumn{Name: c, Spine: spine})
	}
	for _, f := range j.svc.features {
		out = append(out, HistoricalColumn{Name: f.name, Type: f.view.def.Features[f.idx].Type})
	}
	return out
}

// answer computes the features of every row of c.
func (j *join) answer(c *chunkInput) (*historical.Chunk, error) {
	nf := len(j.svc.features)
	types := make([]schema.Type, nf)
	for i, f := range j.svc.features {
		types[i] = f.view.def.Features[f.idx].Type
	}
	out := historical.MakeChunk(len(c.ts), types)
	orders := map[int]keyOrder{} // views with the same keys share the sort
	for vi, vj := range j.views {
		if err := vj.prepare(j, c.keys[vi]); err != nil {
			return nil, err
		}
		s := c.same[vi]
		if _, ok := orders[s]; !ok {
			orders[s] = sortRows(c.keys[vi], c.ts)
		}
		if err := vj.fill(orders[s], out, nf); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// prepare points vj at what a chunk of keys reads: the stored state, or
// a rebuild of the keys from the log for from_source and for a chunk
// holding a key whose serving state an online-only deletion emptied.
func (vj *viewJoin) prepare(j *join, keys []string) error {
	if vj.fromSource || vj.anyErased(keys) {
		d, err := j.db.rebuildFromLog(vj.v, keys, j.cat)
		if err != nil {
			return err
		}
		vj.d, vj.src = d, sources{attrs: d.attrs, tiles: d.tiles}
	} else if vj.held {
		vj.d, vj.src = vj.v.data, vj.stored
	}
	return nil
}

// anyErased reports whether one of keys had an online-only deletion.
func (vj *viewJoin) anyErased(keys []string) bool {
	if vj.onlineErased == nil {
		return false
	}
	for _, k := range keys {
		if vj.onlineErased(k) {
			return true
		}
	}
	return false
}

func joinKeyList(v *viewRT) string {
	var b strings.Builder
	for _, jk := range v.def.JoinKeys {
		b.WriteString(jk.Name)
		b.WriteByte(0)
	}
	return b.String()
}

// sortRows returns the rows sorted by (key, time), each key's first row
// marked, sorting the two halves on two cores and merging them. Rows are sorted as compact
// records whose first field is 8 bytes of the key after the keys' common
// prefix ("user-" in "user-123"), zero-padded and read big-endian: two
// keys whose 8 bytes differ compare as those bytes do, so most
// comparisons are of integers in one contiguous slice rather than of
// strings scattered over the heap (this sort cost a 1M-row join 1.1 s of
// CPU); only ties compare the whole keys.
func sortRows(keys []string, ts []int64) keyOrder {
	lcp := commonPrefixLen(keys)
	rows := make([]sortRow, len(keys))
	for i, k := range keys {
		rows[i] = sortRow{pre: prefix8(k[lcp:]), ts: ts[i], row: int32(i)}
	}
	less := func(x, y sortRow) int {
		if x.pre != y.pre {
			return cmp.Compare(x.pre, y.pre)
		}
		if c := strings.Compare(keys[x.row][lcp:], keys[y.row][lcp:]); c != 0 {
			return c
		}
		return cmp.Compare(x.ts, y.ts)
	}
	a, b := rows, rows[:0] // sorted runs, merged into order
	if len(rows) < 1<<14 || runtime.GOMAXPROCS(0) < 2 {
		slices.SortFunc(rows, less)
	} else {
		a, b = rows[:len(rows)/2], rows[len(rows)/2:]
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); slices.SortFunc(a, less) }()
		slices.SortFunc(b, less)
		wg.Wait()
	}
	o := keyOrder{rows: make([]int32, 0, len(rows)), first: make([]bool, 0, len(rows)), ts: make([]int64, 0, len(rows))}
	// Each key's bytes are copied once, in sorted order, into one arena:
	// the fills then read them in sequence instead of touching strings
	// scattered over the heap once per view (a cache miss a key: 0.5 s of
	// a 1M-row join's CPU).
	size := 0
	for _, k := range keys {
		size += len(k) // the headers only: no key's bytes are touched
	}
	arena := make([]byte, 0, size)
	ends := make([]int, 0, len(rows)/4)
	var prev sortRow
	last := 0 // the arena's last key starts here
	add := func(r sortRow) {
		k := keys[r.row]
		first := len(o.rows) == 0 || r.pre != prev.pre || k != string(arena[last:])
		if first {
			last = len(arena)
			arena = append(arena, k...)
			ends = append(ends, len(arena))
		}
		o.first = append(o.first, first)
		o.rows = append(o.rows, r.row)
		o.ts = append(o.ts, r.ts)
		prev = r
	}
	for len(a) > 0 && len(b) > 0 {
		if less(b[0], a[0]) < 0 {
			add(b[0])
			b = b[1:]
		} else {
			add(a[0])
			a = a[1:]
		}
	}
	for _, r := range a {
		add(r)
	}
	for _, r := range b {
		add(r)
	}
	all, start := string(arena), 0
	o.keys = make([]string, len(o.rows))
	for i, k := 0, -1; i < len(o.rows); i++ {
		if o.first[i] {
			k++
			o.keys[i], start = all[start:ends[k]], ends[k]
		} else {
			o.keys[i] = o.keys[i-1]
		}
	}
	return o
}

// keyOrder is a chunk's rows in (key, time) order; first marks the first
// row of each key, so that the views' fills find keys' ends without
// comparing keys again (5% of a 1M-row join's CPU when they did), and ts
// holds the rows' times in this order, so that the fills read them in
// sequence rather than scattered over the chunk (a cache miss a row).
type keyOrder struct {
	rows  []int32
	first []bool
	ts    []int64
	keys  []string // each row's key, copied in this order into one arena
}

// slice is o's rows [i, j).
func (o keyOrder) slice(i, j int) keyOrder {
	return keyOrder{rows: o.rows[i:j], first: o.first[i:j], ts: o.ts[i:j], keys: o.keys[i:j]}
}

// sortRow is a row as sortRows orders it.
type sortRow struct {
	pre uint64 // prefix8 of the key after the common prefix
	ts  int64
	row int32
}

// prefix8 returns the first 8 bytes of s, zero-padded, big-endian: for
// strings whose prefixes differ, the order of the prefixes is the
// bytewise order of the strings.
func prefix8(s string) uint64 {
	var b [8]byte
	copy(b[:], s)
	return binary.BigEndian.Uint64(b[:])
}

// commonPrefixLen returns the length of the longest prefix every key
// shares.
func commonPrefixLen(keys []string) int {
	if len(keys) == 0 {
		return 0
	}
	p := keys[0]
	for _, k := range keys[1:] {
		n := min(len(p), len(k))
		i := 0
		for i < n && p[i] == k[i] {
			i++
		}
		if p = p[:i]; p == "" {
			return 0
		}
	}
	return len(p)
}

// fill answers one view for every row. order holds the rows sorted by
// (key, time), so each key's state is gathered once and the segments are
// read in key order; it is split between the cores at key boundaries.
func (vj *viewJoin) fill(order keyOrder, out *historical.Chunk, nf int) error {
	n := len(order.rows)
	workers := min(runtime.GOMAXPROCS(0), max(1, n/1024))
	cuts := make([]int, workers+1)
	cuts[workers] = n
	for w := 1; w < workers; w++ {
		c := max(w*n/workers, cuts[w-1])
		for c < n && !order.first[c] {
			c++
		}
		cuts[w] = c
	}
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[w] = vj.fillRange(order.slice(cuts[w], cuts[w+1]), out, nf)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// fillRange answers the rows of order (sorted by key, then time).
func (vj *viewJoin) fillRange(order keyOrder, out *historical.Chunk, nf int) error {
	kc := newKeyCursor(vj)
	vals := make([]schema.Value, len(vj.v.def.Features))
	for lo := 0; lo < len(order.rows); {
		hi := lo + 1
		for hi < len(order.rows) && !order.first[hi] {
			hi++
		}
		if err := kc.seek(order.keys[lo]); err != nil {
			return err
		}
		for i, r := range order.rows[lo:hi] {
			if err := kc.read(order.ts[lo+i], vals); err != nil {
				return err
			}
			for _, o := range vj.outs {
				out.Set(int(r), o[1], vals[o[0]])
			}
		}
		lo = hi
	}
	return nil
}

// keyCursor gathers one key's state from every source of a view, reading
// the segments with iterators: keys mostly come in sorted order, where
// SeekGE reuses the block it holds (it also seeks backwards).
type keyCursor struct {
	vj    *viewJoin
	its   []*segCursor
	key   string
	kb    []byte            // key's bytes
	own   *tiles.KeyState   // the active memtable's state, for change instants
	extra []*tiles.KeyState // aggregate views: frozen and segment states
	hists [][]version       // attribute views: frozen histories
	lazy  []*lazyVersions   // attribute views: segment histories
}

type segCursor struct {
	sg *segRef
	// ks and hist hold the key's state decoded from this segment, their
	// memory reused from key to key (the join holds one key at a time).
	ks   tiles.KeyState
	hist lazyVersions
	it   interface {
		SeekGE([]byte) bool
		Key() []byte
		Value() []byte
		Err() error
	}
}

func newKeyCursor(vj *viewJoin) *keyCursor {
	kc := &keyCursor{vj: vj}
	for _, sg := range vj.src.segs {
		kc.its = append(kc.its, &segCursor{sg: sg, it: sg.h.Reader().NewIterator()})
	}
	return kc
}

func (kc *keyCursor) seek(key string) error {
	kc.key, kc.extra, kc.hists, kc.lazy, kc.own = key, kc.extra[:0], kc.hists[:0], kc.lazy[:0], nil
	d := kc.vj.d
	for _, m := range kc.vj.src.frozen {
		if m.tiles != nil {
			if ks := m.tiles.Own(key); ks != nil {
				kc.extra = append(kc.extra, ks)
			}
		} else if h, ok := m.attrs.history(key); ok {
			kc.hists = append(kc.hists, h)
		}
	}
	// No bitmap probe (Reader.MayContain) first: keys come in sorted
	// order, so SeekGE mostly stays in the block it holds and costs less
	// than the probe, which misses the cache on a big segment's bitmap
	// (15% of a 1M-row join's CPU). The key's bytes are copied once, into
	// memory the cursor reuses, not once per segment.
	kc.kb = append(kc.kb[:0], key...)
	for _, c := range kc.its {
		if !c.it.SeekGE(kc.kb) {
			if err := c.it.Err(); err != nil {
				return &Error{Code: CodeInternal, Msg: "segment " + c.sg.file, Err: err}
			}
			continue
		}
		if string(c.it.Key()) != key {
			continue
		}
		if kc.vj.src.tiles != nil {
			if err := kc.vj.src.tiles.DecodeKeyStateInto(c.it.Value(), &c.ks); err != nil {
				return &Error{Code: CodeInternal, Msg: fmt.Sprintf("segment %s, key %q", c.sg.file, key), Err: err}
			}
			kc.extra = append(kc.extra, &c.ks)
		} else {
			if err := decodeVersionsLazy(c.it.Value(), d.types, &c.hist); err != nil {
				return &Error{Code: CodeInternal, Msg: fmt.Sprintf("segment %s, key %q", c.sg.file, key), Err: err}
			}
			kc.lazy = append(kc.lazy, &c.hist)
		}
	}
	return nil
}

// read writes the view's features for the current key as of t into vals,
// exactly as an online read as of t computes them.
func (kc *keyCursor) read(t int64, vals []schema.Value) error {
	v, src := kc.vj.v, &kc.vj.src
	if src.tiles != nil {
		src.tiles.ReadWith(kc.key, t, vals, true, kc.extra)
		return nil
	}
	best, found := src.attrs.latestBefore(kc.key, t)
	for _, h := range kc.hists {
		if ver, ok := latestIn(h, t); ok && (!found || versionLess(&best, &ver)) {
			best, found = ver, true
		}
	}
	var from *lazyVersions // the segment history best is from, whose values are not decoded yet
	at := 0
	for _, l := range kc.lazy {
		i := sort.Search(len(l.h), func(i int) bool { return l.h[i].ts >= t }) - 1
		if i >= 0 && (!found || versionLess(&best, &l.h[i])) {
			best, found, from, at = l.h[i], true, l, i
		}
	}
	if !found || !v.onlineAt(best.ts, time.Unix(0, t)) {
		clear(vals)
		return nil
	}
	if from != nil {
		if err := from.valuesAt(at, kc.vj.d.types, vals); err != nil {
			return &Error{Code: CodeInternal, Msg: fmt.Sprintf("a segment of view %q, key %q", v.def.Name, kc.key), Err: err}
		}
		return nil
	}
	copy(vals, best.vals)
	return nil
}

// rebuildFromLog recomputes view v of catalog cat from the offline log
// and its source's batch files (the rows the view version holds:
// batchRanges) into a temporary memtable, keeping only the given keys:
// the from_source path, which shares everything with ingest and backfills
// but the storage of its result.
func (db *DB) rebuildFromLog(v *viewRT, keys []string, cat *catalog) (*viewData, error) {
	if first := db.log.FirstSeq(); first > 1 {
		return nil, errorf(CodeInvalidArgument, "from_source needs the whole offline log, but it begins at entry %d: "+
			"the pushed records before it were removed once every view had checkpointed them (log_offline: false)", first)
	}
	tmp, err := newViewRT(v.def, v.src, &hotTier{})
	if err != nil {
		return nil, err
	}
	want := make(map[string]bool, len(keys))
	for _, k := range keys {
		want[k] = true
	}
	r := &replayer{cat: cat, views: []*viewRT{tmp}, keep: want}
	ws := cat.workspaces[v.data.meta.Workspace]
	er := db.erasures.eraserFor(v.data.meta.Workspace, v, false)
	if er != nil { // a deletion job still running erases the log last
		r.erasers = map[*viewRT]*rowEraser{tmp: er}
	}
	var ranges [][2]int64
	if v.src.def.Batch != nil && ws != nil {
		ranges = db.batchRanges(ws.name, v.def.Name, v.version, nil)
	}
	h := &rowHashes{}
	if len(ranges) > 0 {
		r.hashes = map[*sourceRT]*rowHashes{v.src: h}
	}
	if _, err := db.replayWith(r); err != nil || len(ranges) == 0 {
		return tmp.data, err
	}
	slices.Sort(h.sums)
	bs, err := batchsrc.Open(v.src.def, filepath.Dir(ws.meta.File))
	if err != nil {
		return nil, errorf(CodeUnavailable, "from_source reads the batch files of source %q: %v", v.src.def.Name, err)
	}
	include := includeBatch(ranges)
	pj := projector{chunk: replayChunk}
	idx := 0
	err = bs.Scan(context.Background(), func(row *batchsrc.Row) error {
		if h.contains(hashRow(row.Values)) {
			return nil
		}
		p, err := projectBatchRow(tmp, row, &pj)
		if err != nil {
			return err
		}
		if !p.skip && want[p.key] && include(p.ts) && !er.erased(row.Values, 0) {
			tmp.applyProjected(&p, 0, idx)
			idx++
		}
		return nil
	})
	if err != nil {
		return nil, errorf(CodeUnavailable, "from_source reads the batch files of source %q: %v", v.src.def.Name, err)
	}
	return tmp.data, nil
}

// changeInstants appends the instants in (start, end) at which one of the
// view's features can change value for the current key: for an event at
// e and a window of size W and offset O, e+O+1 (it enters: reads as of T
// see events before T) and e+O+W+1 (it leaves), rounded up to the
// aggregation interval for interval views (their windows move only when
// a tile closes); for an attribute record, e+1 and, with a TTL, e+ttl+1.
func (kc *keyCursor) changeInstants(dst []int64, start, end int64) []int64 {
	add := func(t int64) {
		if t > start && t < end {
			dst = append(dst, t)
		}
	}
	v, src := kc.vj.v, &kc.vj.src
	if src.tiles == nil {
		var hs [][]version
		if h, ok := src.attrs.history(kc.key); ok {
			hs = append(hs, append([]version(nil), h...))
		}
		for _, l := range kc.lazy {
			hs = append(hs, l.h)
		}
		for _, h := range append(hs, kc.hists...) {
			for _, ver := range h {
				add(satAdd(ver.ts, 1))
				if v.ttl > 0 {
					add(satAdd(satAdd(ver.ts, int64(v.ttl)), 1))
				}
			}
		}
		return dst
	}
	if kc.own == nil {
		kc.own = src.tiles.Own(kc.key)
	}
	var times []int64
	if kc.own != nil {
		times = kc.own.ChangeTimes(times)
	}
	for _, ks := range kc.extra {
		times = ks.ChangeTimes(times)
	}
	interval := int64(v.def.AggregationInterval)
	for _, f := range v.def.Features {
		o, w := int64(f.Window.Offset), int64(f.Window.Size)
		for _, e := range times {
			in := satAdd(satAdd(e, o), 1)
			add(roundUp(in, interval))
			if !f.Window.Lifetime {
				add(roundUp(satAdd(in, w), interval))
			}
		}
	}
	return dst
}

// satAdd adds, saturating at the int64 range.
func satAdd(a, b int64) int64 {
	s := a + b
	if b > 0 && s < a {
		return math.MaxInt64
	}
	if b < 0 && s > a {
		return math.MinInt64
	}
	return s
}

// roundUp rounds t up to a multiple of interval (no change when 0).
func roundUp(t, interval int64) int64 {
	if interval <= 0 {
		return t
	}
	r := t % interval
	if r < 0 {
		r += interval
	}
	if r == 0 {
		return t
	}
	return satAdd(t, interval-r)
}
