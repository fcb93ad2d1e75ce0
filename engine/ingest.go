package engine

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/featurelog/featurelog/internal/record"
	"github.com/featurelog/featurelog/schema"
	"github.com/featurelog/featurelog/tiles"
	"github.com/featurelog/featurelog/wal"
)

// IngestResponse reports, per subscribed view, how many records a request
// applied (SPEC §2).
type IngestResponse struct {
	Workspace string
	Metrics   []ViewIngestMetrics // every view subscribed to a source of the request, in file order
	// Replayed is set when the request repeated an Idempotency-Key: the
	// response is the first request's, and nothing was written.
	Replayed bool
	// Positions are, in cluster mode, the Kafka positions of the
	// request's records (the first request's, for a repeat of an
	// Idempotency-Key): what its "kafkaPositions" report. Nil otherwise.
	Positions []Position
}

// ViewIngestMetrics counts one view's records of one request.
type ViewIngestMetrics struct {
	FeatureView string
	Online      int64 // records applied to the online view (online: true)
	Offline     int64 // records kept in the offline event log for the view
}

// Authorizer reports whether the caller may write to a workspace; it
// returns an *Error with CodePermissionDenied when not. Nil allows all.
type Authorizer func(workspace string) error

// batch is a decoded ingest request: typed rows per source, in source
// schema order, plus the record errors decoding found.
type batch struct {
	ws       *workspace
	dryRun   bool
	idem     *idemTicket // the request's claim on its Idempotency-Key; nil without one
	sections []batchSection
	errs     []RecordError
	// at, when set, is the ingest time to validate and log with instead
	// of the clock's (an entry applied from Kafka keeps its producer's);
	// pos, when set, is the Kafka position the entry is logged with.
	at  time.Time
	pos *record.Position
	// key, when set, is an Idempotency-Key applied from Kafka with its
	// first response (ApplyKeyEntry): logged with the entry, even one
	// without records, and recorded in the key table.
	key *appliedKey
}

// appliedKey is an Idempotency-Key applied from Kafka and the first
// response, which repeats are answered with.
type appliedKey struct {
	scope idemScope
	resp  *IngestResponse
}

type batchSection struct {
	src  *sourceRT
	rows []schema.Value // row-major, len(src.def.Schema) values per row
	n    int            // number of rows
	bad  []bool         // rows that already failed decoding
}

func (s *batchSection) row(i int) []schema.Value {
	w := len(s.src.def.Schema)
	return s.rows[i*w : (i+1)*w : (i+1)*w]
}

// rows counts the records of every section.
func (b *batch) rows() int {
	n := 0
	for i := range b.sections {
		n += b.sections[i].n
	}
	return n
}

func (b *batch) recordError(view, source string, idx int, format string, args ...any) {
	b.errs = append(b.errs, RecordError{FeatureView: view, Source: source, Index: idx, Msg: fmt.Sprintf(format, args...)})
}

// ingestPlan holds, for each section and each subscribed view, what every
// row contributes: computed once during validation and applied after the
// append, so the log and the views see the same thing.
type ingestPlan struct {
	projs [][][]projected // [section][view][row]
}

var entryBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// commit validates b against every subscribed view, and unless it is a dry
// run appends it to the log as one entry and applies it. Nothing is written
// when any record is invalid.
func (db *DB) commit(b *batch) (*IngestResponse, error) {
	c, err := db.check(b)
	if err != nil {
		return nil, err
	}
	if !c.writes() {
		return c.resp, nil // nothing to write: an empty request costs no fsync (a Kafka position is logged even without records)
	}
	if err := db.Healthy(); err != nil {
		return nil, err
	}
	seq, err := db.append(b, c.resp, c.now)
	if err != nil {
		return nil, err
	}
	db.finish(c, seq)
	return c.resp, nil
}

// checked is a batch that validated, with what applying it needs.
type checked struct {
	b    *batch
	plan *ingestPlan
	resp *IngestResponse
	now  time.Time
}

// check validates b as of its ingest time (b.at, else the clock) and
// computes its response; it writes nothing.
func (db *DB) check(b *batch) (*checked, error) {
	now := b.at
	if now.IsZero() {
		now = db.opts.Now()
	}
	plan := db.validate(b, now)
	if len(b.errs) > 0 {
		return nil, &RecordErrors{Workspace: b.ws.name, Errors: b.errs}
	}
	resp := metrics(b, plan, now)
	if b.key != nil {
		resp = b.key.resp // what the request was answered with, not what this entry's records count
	}
	return &checked{b: b, plan: plan, resp: resp, now: now}, nil
}

// writes reports whether c is logged: not a dry run, and it has records,
// a key or a Kafka position.
func (c *checked) writes() bool {
	b := c.b
	return !b.dryRun && (b.rows() > 0 || b.key != nil || b.pos != nil)
}

// finish makes c, logged as entry seq, visible.
func (db *DB) finish(c *checked, seq uint64) {
	b := c.b
	apply(b, c.plan, seq, c.now)
	db.applied.applied(seq)
	if b.idem != nil {
		db.idem.record(b.idem, c.resp, c.now.UnixNano()) // after apply: a repeat reads its own writes too
	}
	if b.key != nil {
		db.idem.recordApplied(b.key.scope, c.resp, c.now.UnixNano(), db.opts.Now())
	}
}

// append logs b as one entry, with its Idempotency-Key and resp when it
// has a key.
func (db *DB) append(b *batch, resp *IngestResponse, now time.Time) (uint64, error) {
	bufp := entryBufPool.Get().(*[]byte)
	*bufp = appendBatchEntry((*bufp)[:0], b, resp, now)
	seq, err := db.log.Append(*bufp)
	if cap(*bufp) <= 1<<20 {
		entryBufPool.Put(bufp)
	}
	if err != nil {
		return 0, appendError(err)
	}
	return seq, nil
}

// appendBatchEntry appends the log entry of b (docs/format/record.md) to
// dst.
func appendBatchEntry(dst []byte, b *batch, resp *IngestResponse, now time.Time) []byte {
	e := record.Entry{Workspace: b.ws.name, IngestTime: now.UnixNano(), Sections: make([]record.Section, len(b.sections))}
	if b.idem != nil {
		e.IdempotencyKey, e.Response = b.idem.scope.key, responseRecord(resp)
	}
	if b.pos != nil {
		e.Position, e.Positioned = *b.pos, true
	}
	if b.key != nil {
		e.IdempotencyKey, e.Response, e.ResponsePositions = b.key.scope.key, responseRecord(b.key.resp), b.key.resp.Positions
	}
	for i, s := range b.sections {
		e.Sections[i] = record.Section{Source: s.src.def.Name, Columns: s.src.def.Schema, Rows: s.rows}
	}
	return record.AppendEntry(dst, &e)
}

// appendError is the error of a log append that failed with err.
func appendError(err error) error {
	if errors.Is(err, wal.ErrTooLarge) {
		// The records do not fit one log entry: the client's to fix by
		// splitting the request; the log is unaffected.
		return &Error{Code: CodeTooLarge, Msg: "the request's records exceed the largest log entry; split them over several requests", Err: err}
	}
	if errors.Is(err, wal.ErrClosed) {
		return &Error{Code: CodeUnavailable, Msg: "the node is shutting down; nothing was written", Err: err}
	}
	if errors.Is(err, wal.ErrFailed) {
		return &Error{Code: CodeUnavailable, Msg: logFailedMsg(err), Err: err}
	}
	return &Error{Code: CodeInternal, Msg: "appending to the log failed; nothing was acknowledged", Err: err}
}

// logFailedMsg is the message of an append refused by a failed log. The
// request may or may not be in the log: the failing write can leave it
// whole (TestDiskFull found such requests served after a restart), so a
// client must not be told that nothing was written, or its retry would
// double it. A full disk is named as such, with what to do.
func logFailedMsg(err error) string {
	return diskFullSays(err, "the log failed and cannot guarantee durability: this request may or may not have been stored "+
		"(retry it with the same Idempotency-Key to be safe); no write is acknowledged until the node restarts")
}

// diskFullSays prefixes msg, the report of a log failure caused by err,
// with what to do when the cause is a full disk or a file-size limit.
func diskFullSays(err error, msg string) string {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EFBIG) {
		return "the disk is full or a file-size limit was reached: " + msg + "; free space, then restart the node"
	}
	return msg
}

// validate projects every row onto every subscribed view, recording the
// errors of the rows that are invalid for any view.
func (db *DB) validate(b *batch, now time.Time) *ingestPlan {
	plan := &ingestPlan{projs: make([][][]projected, len(b.sections))}
	maxTs := now.Add(db.opts.MaxClockSkew).UnixNano()
	for si := range b.sections {
		s := &b.sections[si]
		views := s.src.views
		plan.projs[si] = make([][]projected, len(views))
		errs := make([][]string, len(views))
		same := sameProjections(views)
		pass := func(vi int) {
			if same[vi] == vi {
				plan.projs[si][vi], errs[vi] = db.validateView(s, views[vi], maxTs)
			}
		}
		if s.n >= minParallelApply && len(views) > 1 {
			var wg sync.WaitGroup // views are independent: large requests check them in parallel
			for vi := range views {
				wg.Add(1)
				go func() {
					defer wg.Done()
					pass(vi)
				}()
			}
			wg.Wait()
		} else {
			for vi := range views {
				pass(vi)
			}
		}
		for vi, first := range same {
			plan.projs[si][vi], errs[vi] = plan.projs[si][first], errs[first]
		}
		recordRowErrors(b, s, plan.projs[si], errs, now)
	}
	return plan
}

// sameProjections returns, per view, the first of views (itself if none
// before it) whose projection of any record is the same as its own:
// validation projects each record once for them, and they share the
// projected values, read only, in their memtables. A source's aggregate
// views commonly read the same columns with the same keys (count, sum
// and mean of an amount in several views), and copying each record's
// values once per view cost a 64-byte schema.Value per view, kept in
// every memtable.
func sameProjections(views []*viewRT) []int {
	out := make([]int, len(views))
	for i, v := range views {
		out[i] = i
		for j := range i {
			if out[j] == j && views[j].projectsAs(v) {
				out[i] = j
				break
			}
		}
	}
	return out
}

// projectsAs reports whether v projects every record as u does: the same
// key, time and served columns, the same feature_start_time, and no
// transform.
func (v *viewRT) projectsAs(u *viewRT) bool {
	return v.def.Transform == nil && u.def.Transform == nil && v.tsIdx == u.tsIdx && v.startNs == u.startNs &&
		slices.Equal(v.keyIdx, u.keyIdx) && slices.Equal(v.servedIdx, u.servedIdx) && v.src == u.src
}

// validateView projects every row of s onto v. errs, nil when every row
// passes, holds each failing row's error message.
func (db *DB) validateView(s *batchSection, v *viewRT, maxTs int64) (projs []projected, errs []string) {
	pj := projector{chunk: s.n * len(v.servedIdx)}
	projs = make([]projected, s.n)
	fail := func(r int, msg string) {
		if errs == nil {
			errs = make([]string, s.n)
		}
		errs[r] = msg
	}
	for r := 0; r < s.n; r++ {
		if s.bad != nil && s.bad[r] {
			continue
		}
		p, err := v.project(s.row(r), &pj)
		switch {
		case err != nil:
			fail(r, err.Error())
		case p.ts > maxTs:
			fail(r, fmt.Sprintf("timestamp %s is more than %v in the future (the allowed clock skew); check the producer's clock",
				time.Unix(0, p.ts).UTC().Format(time.RFC3339Nano), db.opts.MaxClockSkew))
		default:
			projs[r] = p
		}
	}
	return projs, errs
}

// recordRowErrors reports, per row, the first view (in file order) that
// rejected it, or that the row is outside the TTL of every view.
func recordRowErrors(b *batch, s *batchSection, projs [][]projected, errs [][]string, now time.Time) {
	src, views := s.src.def.Name, s.src.views
rows:
	for r := 0; r < s.n; r++ {
		if s.bad != nil && s.bad[r] {
			continue
		}
		for vi, v := range views {
			if errs[vi] != nil && errs[vi][r] != "" {
				b.recordError(v.def.Name, src, r, "%s", errs[vi][r])
				continue rows
			}
		}
		expiredEverywhere := len(views) > 0
		for vi, v := range views {
			expiredEverywhere = expiredEverywhere && !v.onlineAt(projs[vi][r].ts, now)
		}
		if expiredEverywhere {
			v := views[0]
			b.recordError(v.def.Name, src, r, "timestamp %s is outside of the serving TTL of every feature view subscribed to source %q (oldest accepted: %s)",
				s.row(r)[v.tsIdx].Time().Format(time.RFC3339Nano), src, oldestAccepted(s.src, now).Format(time.RFC3339))
		}
	}
}

func oldestAccepted(src *sourceRT, now time.Time) time.Time {
	var ttl time.Duration
	for _, v := range src.views {
		ttl = max(ttl, v.ttl)
	}
	return now.Add(-ttl).UTC()
}

// counts reports whether a projected row counts in a view's metrics: it
// was not skipped, and it is within the view's serving TTL.
func counts(v *viewRT, p *projected, now time.Time) bool {
	return !p.skip && v.onlineAt(p.ts, now)
}

// metrics lists the views in file order (IngestResponse.Metrics), not in
// the order the request lists its sources.
func metrics(b *batch, plan *ingestPlan, now time.Time) *IngestResponse {
	resp := &IngestResponse{Workspace: b.ws.name}
	for _, v := range b.ws.order {
		for si := range b.sections {
			s := &b.sections[si]
			vi := slices.Index(s.src.views, v)
			if vi < 0 {
				continue
			}
			var n int64
			for r := range plan.projs[si][vi] {
				if counts(v, &plan.projs[si][vi][r], now) {
					n++
				}
			}
			m := ViewIngestMetrics{FeatureView: v.def.Name}
			if v.def.Online {
				m.Online = n
			}
			if v.def.Offline && s.src.def.LogOffline {
				m.Offline = n
			}
			resp.Metrics = append(resp.Metrics, m)
		}
	}
	return resp
}

// apply makes the appended entry visible. Records outside a view's TTL are
// applied too (they are in the log, and as_of reads of the past see them),
// but were not counted.
func apply(b *batch, plan *ingestPlan, seq uint64, now time.Time) {
	var tasks []applyTask
	var groups []*groupRun
	idx := 0
	for si := range b.sections {
		s := &b.sections[si]
		first := len(tasks)
		for vi, v := range s.src.views {
			tasks = append(tasks, applyTask{v: v, projs: plan.projs[si][vi], base: idx, logOffline: s.src.def.LogOffline})
		}
		for _, p := range s.src.priors { // versions serving while their successor is built (backfill.go)
			tasks = append(tasks, applyTask{v: p, projs: projectPrior(s, p), base: idx, logOffline: s.src.def.LogOffline, prior: true})
		}
		groups = append(groups, groupTasks(tasks[first:])...)
		idx += s.n
	}
	parts := 1
	if idx >= minParallelApply {
		parts = runtime.GOMAXPROCS(0)
	}
	var units []func()
	for i := range tasks {
		if t := &tasks[i]; !t.grouped {
			units = append(units, func() { t.run(seq, now) })
		}
	}
	for _, g := range groups {
		units = append(units, g.units(parts, seq, now)...)
	}
	if idx < minParallelApply || len(units) < 2 {
		for _, u := range units {
			u()
		}
	} else {
		var wg sync.WaitGroup // views, and a group's key stripes, are independent: large requests apply them in parallel
		for _, u := range units {
			wg.Add(1)
			go func() {
				defer wg.Done()
				u()
			}()
		}
		wg.Wait()
	}
	for _, g := range groups {
		g.finish(now)
	}
}

// projectPrior projects a section's rows onto a prior version. A row it
// rejects is skipped: the rows were validated by the version that
// replaces it.
func projectPrior(s *batchSection, v *viewRT) []projected {
	pj := projector{chunk: s.n * len(v.servedIdx)}
	projs := make([]projected, s.n)
	for r := 0; r < s.n; r++ {
		if s.bad != nil && s.bad[r] {
			projs[r].skip = true
			continue
		}
		p, err := v.project(s.row(r), &pj)
		if err != nil {
			p.skip = true
		}
		projs[r] = p
	}
	return projs
}

// minParallelApply is the request size (records) from which the views of
// a request are applied in parallel.
const minParallelApply = 256

// applyTask applies one section's projections to one view.
type applyTask struct {
	v          *viewRT
	projs      []projected
	base       int // index in the entry of the section's first record
	logOffline bool
	// prior marks a version serving while its successor is built: the
	// successor, which receives the same records, counts the ingest rate
	// they share (ingest_rate.go).
	prior bool
	// grouped marks a task that a groupRun applies, with the other
	// views of its memtable's KeyGroup (refs.go).
	grouped bool
}

func (t *applyTask) run(seq uint64, now time.Time) {
	c := newApplyCount()
	from := t.v.onlineFrom(now)
	for r := range t.projs {
		t.applyRow(&c, r, nil, seq, from)
	}
	t.finish(c, now)
}

// applyCount is what a task counts of the records it applies, published
// once per task (finish): the view's counters are shared by every
// goroutine that ingests, and adding to them per record made their cache
// line bounce between cores.
type applyCount struct {
	online  int64 // records within the view's TTL
	newest  int64 // newest event time applied, math.MinInt64 if none
	records int64 // records applied
	bytes   int64 // their recordBytes
}

func newApplyCount() applyCount { return applyCount{newest: math.MinInt64} }

// add adds what o counted.
func (c *applyCount) add(o applyCount) {
	c.online += o.online
	c.newest = max(c.newest, o.newest)
	c.records += o.records
	c.bytes += o.bytes
}

// applyRow applies record r, whose key in the view's KeyGroup is ref
// (nil: looked up by applying), and counts it in c, as online when its
// event time is at least onlineFrom (viewRT.onlineFrom).
func (t *applyTask) applyRow(c *applyCount, r int, ref *tiles.KeyRef, seq uint64, onlineFrom int64) {
	p := &t.projs[r]
	if p.skip {
		return
	}
	t.v.applyRef(p, ref, seq, t.base+r)
	if p.ts >= onlineFrom {
		c.online++
	}
	c.newest = max(c.newest, p.ts)
	c.records++
	c.bytes += recordBytes(p)
}

// finish publishes what the task counted: its view's counters.
func (t *applyTask) finish(c applyCount, now time.Time) {
	online := c.online
	if c.newest != math.MinInt64 {
		t.v.stats.observe(c.newest)
		t.v.stats.noteIngest(now, c.newest)
	}
	t.v.data.records.Add(c.records)
	t.v.data.bytes.Add(c.bytes)
	if t.v.def.Online {
		t.v.stats.online.Add(online)
		if !t.prior {
			t.v.stats.rate.add(now, online)
		}
	}
	if t.v.def.Offline && t.logOffline {
		t.v.stats.offline.Add(online)
	}
}
