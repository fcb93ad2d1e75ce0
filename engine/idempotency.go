package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/featurelog/featurelog/internal/record"
)

// Idempotency keys (SPEC §2): "a repeat of a key seen in the last 24h
// returns the first response and writes nothing".
//
// A request sent with a key is logged as one record.KindIngestIdempotent
// entry holding its records, its key and the response it is answered with:
// the key is remembered exactly when the records are durable, and a crash
// cannot separate them. In memory, idempotency maps (workspace, key) to
// that response; it is rebuilt from the log entries of the last window,
// whatever the views' checkpoints cover (loadIdempotency), in the
// background from the first ingest after Open (startIdempotencyLoad).
//
// Two requests with the same key never both write: the first claims the
// key (an in-flight entry) and the others wait for its outcome. If it
// writes, they get its response; if it fails or writes nothing (an error,
// an empty request), the key is released and the next one executes.
// Dry runs neither claim nor consult keys: they write nothing anyway.

const (
	// DefaultIdempotencyWindow is how long a key is remembered after the
	// request that first used it was accepted (SPEC §2: 24h).
	DefaultIdempotencyWindow = 24 * time.Hour
	// DefaultIdempotencyMaxKeys bounds the keys remembered at once (about
	// 200 bytes each plus the key). Past it the oldest key is forgotten
	// before its window ends, and a retry of it would write again; each
	// doubling of the count of keys forgotten early is logged as a warning.
	DefaultIdempotencyMaxKeys = 1 << 20
	// MaxIdempotencyKeyLen is the longest key accepted, in bytes.
	MaxIdempotencyKeyLen = 255
	// idemClockSlack is how far out of seq order the log's ingest times
	// are assumed to be at most: a request reads the clock before it
	// validates and appends, so concurrent requests reach the log in a
	// slightly different order (milliseconds), and the node's clock may
	// step back. A step back of more than this between two entries can
	// make Open forget keys of the older entries early.
	idemClockSlack = time.Hour
)

// idemScope is what a key is unique within: keys are per workspace.
type idemScope struct {
	workspace string
	key       string
}

// idemEntry is one key's state: in flight while resp is nil, recorded once
// resp is set. Fields are guarded by idempotency.mu.
type idemEntry struct {
	resp *IngestResponse // the first response; nil while the first request runs
	at   int64           // the first request's ingest time, Unix ns; set with resp
	// done is closed when the first request has finished, recorded or
	// not; waiters keep their own reference, and it is dropped once
	// closed.
	done chan struct{}
}

// idemOrder is one recorded key in the FIFO of expiry.
type idemOrder struct {
	scope idemScope
	entry *idemEntry // to tell a key recorded again after expiry from its old record
}

// idempotency is the table of idempotency keys of one DB.
type idempotency struct {
	window  time.Duration // keys older than this are forgotten
	maxKeys int           // the most keys remembered at once
	logger  *slog.Logger

	mu struct {
		sync.Mutex
		// keys holds every in-flight and recorded key.
		keys map[idemScope]*idemEntry
		// order lists recorded keys oldest first, from head on; it may
		// hold entries already dropped from keys (expired early on
		// lookup), which popping skips.
		order []idemOrder
		head  int
		// evicted counts keys forgotten early because of maxKeys.
		evicted int64
		// waiters counts requests waiting for a claim in flight.
		waiters int
	}
}

// stats returns the keys remembered (in flight or recorded) and the keys
// forgotten early since open.
func (t *idempotency) stats() (keys int, evicted int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.mu.keys), t.mu.evicted
}

func (t *idempotency) init(window time.Duration, maxKeys int, logger *slog.Logger) {
	t.window, t.maxKeys, t.logger = window, maxKeys, logger
	t.mu.keys = map[idemScope]*idemEntry{}
}

// checkIdempotencyKey reports a key the engine does not accept: empty, too
// long, or with bytes other than printable ASCII.
func checkIdempotencyKey(key string) error {
	if key == "" {
		return badRequest("the Idempotency-Key is empty; send a non-empty key, or no header")
	}
	if len(key) > MaxIdempotencyKeyLen {
		return badRequest("the Idempotency-Key is %d bytes long; the limit is %d", len(key), MaxIdempotencyKeyLen)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x20 || c > 0x7e {
			return badRequest("the Idempotency-Key has byte 0x%02x at offset %d; only printable ASCII (0x20-0x7e) is allowed, e.g. a UUID", c, i)
		}
	}
	return nil
}

// idemTicket is a request's claim on its key, carried by its batch: commit
// records the response in it once the entry is logged, and release frees
// the key if that did not happen.
type idemTicket struct {
	scope idemScope
	entry *idemEntry
}

// begin returns the recorded response of s (a copy marked Replayed), or
// claims s for the caller, who must call release with the ticket. A claim
// in flight is waited for.
func (t *idempotency) begin(s idemScope, now time.Time) (*IngestResponse, *idemTicket) {
	for {
		t.mu.Lock()
		t.expireLocked(now)
		e := t.mu.keys[s]
		if e != nil && e.resp != nil && e.at < now.Add(-t.window).UnixNano() {
			delete(t.mu.keys, s) // expired but not yet popped: ingest times are not quite in order
			e = nil
		}
		switch {
		case e == nil:
			e = &idemEntry{done: make(chan struct{})}
			t.mu.keys[s] = e
			t.mu.Unlock()
			return nil, &idemTicket{scope: s, entry: e}
		case e.resp != nil:
			resp := replayed(e.resp)
			t.mu.Unlock()
			return resp, nil
		}
		done := e.done
		t.mu.waiters++
		t.mu.Unlock()
		<-done // the first request finished: look again
		t.mu.Lock()
		t.mu.waiters--
		t.mu.Unlock()
	}
}

// replayed returns a copy of the recorded response r for a repeat.
func replayed(r *IngestResponse) *IngestResponse {
	c := cloneResponse(r)
	c.Replayed = true
	return c
}

// cloneResponse returns a deep copy of r: callers may change what they
// get.
func cloneResponse(r *IngestResponse) *IngestResponse {
	c := *r
	c.Metrics = slices.Clone(r.Metrics)
	c.Positions = slices.Clone(r.Positions)
	return &c
}

// record remembers resp for tk's key: its entry, ingested at at, is in the
// log. Waiters are woken and answered with resp. A claim recorded already
// (recordApplied filled it) keeps its response.
func (t *idempotency) record(tk *idemTicket, resp *IngestResponse, at int64) {
	c := cloneResponse(resp)
	t.mu.Lock()
	defer t.mu.Unlock()
	if tk.entry.resp != nil {
		return
	}
	tk.entry.resp, tk.entry.at = c, at
	t.pushLocked(tk.scope, tk.entry)
	close(tk.entry.done)
	tk.entry.done = nil
}

// recordApplied remembers resp for s: a key applied from Kafka at
// ingest time at (ApplyKeyEntry). A claim of s in flight on this node
// (the request that produced the key, or one that raced it through a
// node that had lost the partition) is filled with it, answering its
// waiters; a key recorded already and not expired at now keeps its first
// response.
func (t *idempotency) recordApplied(s idemScope, resp *IngestResponse, at int64, now time.Time) {
	c := cloneResponse(resp)
	c.Replayed = false
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.mu.keys[s]
	switch {
	case e == nil || (e.resp != nil && e.at < now.Add(-t.window).UnixNano()):
		e = &idemEntry{resp: c, at: at}
		t.mu.keys[s] = e
		t.pushLocked(s, e)
	case e.resp == nil:
		e.resp, e.at = c, at
		t.pushLocked(s, e)
		close(e.done)
		e.done = nil
	}
}

// release frees tk's key unless record took it, waking the waiters, one of
// which then executes.
func (t *idempotency) release(tk *idemTicket) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tk.entry.resp != nil {
		return
	}
	if t.mu.keys[tk.scope] == tk.entry {
		delete(t.mu.keys, tk.scope)
	}
	close(tk.entry.done)
	tk.entry.done = nil
}

// load remembers a key read from the log on open.
func (t *idempotency) load(s idemScope, resp *IngestResponse, at int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := &idemEntry{resp: resp, at: at}
	t.mu.keys[s] = e
	t.pushLocked(s, e)
}

// pushLocked appends a recorded key to the expiry order, forgetting the
// oldest keys past maxKeys.
func (t *idempotency) pushLocked(s idemScope, e *idemEntry) {
	t.mu.order = append(t.mu.order, idemOrder{scope: s, entry: e})
	for len(t.mu.keys) > t.maxKeys && t.popLocked() {
		t.mu.evicted++
		if n := t.mu.evicted; n&(n-1) == 0 {
			t.logger.Warn("forgot idempotency keys before their window ended: more keys than the limit; retries of them would write again",
				"keys_forgotten", n, "limit", t.maxKeys, "window", t.window)
		}
	}
}

// expireLocked forgets the keys recorded more than window before now.
func (t *idempotency) expireLocked(now time.Time) {
	cutoff := now.Add(-t.window).UnixNano()
	for t.mu.head < len(t.mu.order) && t.mu.order[t.mu.head].entry.at < cutoff {
		t.popLocked()
	}
}

// popLocked drops the oldest entry of the order, and its key unless it
// was dropped already or recorded again. It reports whether the order
// had an entry.
func (t *idempotency) popLocked() bool {
	if t.mu.head == len(t.mu.order) {
		return false
	}
	o := t.mu.order[t.mu.head]
	t.mu.order[t.mu.head] = idemOrder{}
	t.mu.head++
	if t.mu.keys[o.scope] == o.entry {
		delete(t.mu.keys, o.scope)
	}
	if t.mu.head > 1024 && t.mu.head*2 > len(t.mu.order) { // reclaim the popped prefix
		t.mu.order = slices.Clone(t.mu.order[t.mu.head:])
		t.mu.head = 0
	}
	return true
}

// size returns the number of keys in flight or recorded.
func (t *idempotency) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.mu.keys)
}

// waiting returns the number of requests waiting for a claim in flight.
func (t *idempotency) waiting() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.mu.waiters
}

// ingestOnce runs ingest under key's claim: at most once per workspace and
// key within the window, answering repeats with the first response. ingest
// gets the ticket to put in its batch; an empty key or a dry run runs
// ingest without one.
func (db *DB) ingestOnce(workspace, key string, dryRun bool, ingest func(*idemTicket) (*IngestResponse, error)) (*IngestResponse, error) {
	db.idemStart.Do(db.startIdempotencyLoad) // any ingest starts reading the log's keys back
	if key == "" || dryRun {
		return ingest(nil)
	}
	if err := db.waitIdempotencyKeys(); err != nil {
		return nil, err
	}
	resp, tk := db.idem.begin(idemScope{workspace: workspace, key: key}, db.opts.Now())
	if resp != nil {
		db.metrics.replays.Inc()
		return resp, nil
	}
	defer db.idem.release(tk)
	return ingest(tk)
}

// responseRecord is the logged form of resp.
func responseRecord(resp *IngestResponse) []record.ViewMetrics {
	out := make([]record.ViewMetrics, len(resp.Metrics))
	for i, m := range resp.Metrics {
		out[i] = record.ViewMetrics{View: m.FeatureView, Online: m.Online, Offline: m.Offline}
	}
	return out
}

// errStopScan ends a log scan early.
var errStopScan = errors.New("engine: stop scan")

// startIdempotencyLoad rebuilds the key table from the log in the
// background (loadIdempotency), started by the first ingest call (any:
// ingestOnce): Open does not wait for it (a scan of the last 24h of a
// busy log inflates every entry: 1 s for 20M events), a DB opened only
// to read (featurelog historical, output-stream) never pays for it, and
// only a request with an Idempotency-Key waits for it, as it waited for
// Open before. The scan holds db.maint, so no flush truncates and no
// deletion rewrites the log under it (truncation never removes the
// window's entries anyway); Close stops it. A scan that fails (a corrupt
// entry) makes keyed requests fail with its error; unkeyed ingest and
// reads go on.
func (db *DB) startIdempotencyLoad() {
	// Entries after last are unkeyed (keyed requests wait for the scan)
	// or appended by requests that record their own keys.
	last := db.log.LastSeq()
	go func() {
		defer close(db.idemReady)
		if testHookIdemScan != nil {
			testHookIdemScan(db)
		}
		db.maint.Lock()
		defer db.maint.Unlock()
		if db.closed.Load() {
			db.idemErr = ErrClosed
			return
		}
		if err := db.loadIdempotency(last); err != nil {
			db.idemErr = err
			db.opts.Logger.Error("rebuilding the idempotency keys from the log failed: requests with an Idempotency-Key will fail", "err", err)
		}
	}()
}

// testHookIdemScan, set by tests, runs as the background scan starts.
var testHookIdemScan func(*DB)

// waitIdempotencyKeys is waitIdempotency with the error a keyed request
// answers.
func (db *DB) waitIdempotencyKeys() error {
	if err := db.waitIdempotency(); err != nil {
		return &Error{Code: CodeInternal, Msg: "requests with an Idempotency-Key cannot be served: the keys of the last " +
			db.opts.IdempotencyWindow.String() + " could not be read back from the log (send the request without the key, or restore the log)", Err: err}
	}
	return nil
}

// waitIdempotency starts the scan if no ingest has, and waits for it.
func (db *DB) waitIdempotency() error {
	db.idemStart.Do(db.startIdempotencyLoad)
	<-db.idemReady
	return db.idemErr
}

// loadIdempotency rebuilds the key table from the log: every keyed entry
// up to seq last ingested within the window before now. It reads only
// entries' headers, from the first seq whose ingest time may be within
// the window (idemScanStart), independently of the views' checkpoints.
// It stops early, with ErrClosed, once the DB is closing.
func (db *DB) loadIdempotency(last uint64) error {
	start := time.Now()
	cutoff := db.opts.Now().Add(-db.opts.IdempotencyWindow).UnixNano()
	from, err := db.idemScanStart(cutoff - int64(idemClockSlack))
	if err != nil {
		return err
	}
	var (
		e       record.Entry
		scanned int
		intern  = map[string]string{} // view and workspace names repeat in every entry
	)
	name := func(s string) string {
		if v, ok := intern[s]; ok {
			return v
		}
		intern[s] = s
		return s
	}
	err = db.log.Replay(from, func(seq uint64, payload []byte) error {
		if seq > last {
			return errStopScan
		}
		if db.closed.Load() {
			return ErrClosed
		}
		scanned++
		if err := record.DecodeHeader(payload, &e); err != nil {
			return fmt.Errorf("engine: log entry %d: %w", seq, err)
		}
		if e.IdempotencyKey == "" || e.IngestTime < cutoff {
			return nil
		}
		resp := &IngestResponse{Workspace: name(e.Workspace), Metrics: make([]ViewIngestMetrics, len(e.Response)),
			Positions: slices.Clone(e.ResponsePositions)} // kind 4 (cluster mode): the first response's kafkaPositions
		for i, m := range e.Response {
			resp.Metrics[i] = ViewIngestMetrics{FeatureView: name(m.View), Online: m.Online, Offline: m.Offline}
		}
		db.idem.load(idemScope{workspace: resp.Workspace, key: e.IdempotencyKey}, resp, e.IngestTime)
		return nil
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return err
	}
	db.opts.Logger.Info("rebuilt idempotency keys from the log", "keys", db.idem.size(), "from_seq", from,
		"entries_read", scanned, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// idemScanStart returns a seq from which every entry ingested at or after
// target+idemClockSlack is replayed: the first seq whose ingest time is at
// least target, or LastSeq()+1 when none is. Ingest times are in seq order
// to within idemClockSlack, so every entry before it has a time below
// target+idemClockSlack. A binary search over the log's segments, reading
// only each probed segment's first entry, finds the segment to start in;
// one scan of that segment's entry headers finds the seq.
func (db *DB) idemScanStart(target int64) (uint64, error) {
	seg, err := db.idemScanSegment(target)
	if err != nil || seg == 0 {
		return 1, err
	}
	from := db.log.LastSeq() + 1
	var e record.Entry
	err = db.log.Replay(seg, func(seq uint64, payload []byte) error {
		if err := record.DecodeHeader(payload, &e); err != nil {
			return fmt.Errorf("engine: log entry %d: %w", seq, err)
		}
		if e.IngestTime < target {
			return nil
		}
		from = seq
		return errStopScan
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return 0, err
	}
	return from, nil
}

// idemScanSegment returns the first seq of the last log segment whose
// first entry was ingested before target, or of the first segment when
// none was; 0 for an empty log.
func (db *DB) idemScanSegment(target int64) (uint64, error) {
	starts := db.log.SegmentStarts()
	if len(starts) == 0 {
		return 0, nil
	}
	// Invariant: time(starts[lo]) < target, or lo == 0; hi is len(starts)
	// or time(starts[hi]) >= target.
	lo, hi := 0, len(starts)
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		t, err := db.ingestTimeAt(starts[mid])
		if err != nil {
			return 0, err
		}
		if t < target {
			lo = mid
		} else {
			hi = mid
		}
	}
	return starts[lo], nil
}

// ingestTimeAt returns the ingest time of log entry seq.
func (db *DB) ingestTimeAt(seq uint64) (int64, error) {
	var e record.Entry
	err := db.log.Replay(seq, func(s uint64, payload []byte) error {
		if err := record.DecodeHeader(payload, &e); err != nil {
			return fmt.Errorf("engine: log entry %d: %w", s, err)
		}
		return errStopScan
	})
	if !errors.Is(err, errStopScan) {
		if err == nil {
			err = fmt.Errorf("engine: log entry %d is missing", seq)
		}
		return 0, err
	}
	return e.IngestTime, nil
}
