package kafkasink

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/featurelog/featurelog/engine"
)

// A session publishes in two goroutines: the reader (session) reads the
// stream and produces its records, batch after batch, without waiting
// for acknowledgements; the acker (pipeline.run) takes the batches in
// stream order, waits for each to be acknowledged (exactly_once: its
// transaction to commit), and moves the durable cursor to the end of the
// longest acknowledged prefix, saving it at most every CursorInterval.
// The first batch that fails ends the session: nothing after it is
// produced, and the cursor stays before it.

// closeGrace bounds how long a sink that is closed, or whose reader
// stopped, waits for the batches in flight (with exactly_once, the open
// transaction) before it gives up on them: those records are published
// again by the next session.
const closeGrace = time.Second

// batch is a run of records read from the stream, tracked until the
// broker acknowledged every one, or an empty run that moves the cursor
// over entries with no record of the view. With exactly_once a batch is a
// transaction: the acker waits for its commit; its records' acks are
// tracked by a batch of their own, outside the pipeline.
type batch struct {
	pl    *pipeline
	first time.Time // log time of the first record; zero when empty
	// n (guarded by mu) and next, the stream position after the batch,
	// are final once done is closed.
	n    int
	next engine.StreamOffset
	// errSeq is the sink's error count when the batch began, to tell the
	// client errors met meanwhile.
	errSeq uint64
	done   chan struct{} // closed once sealed and every record settled

	mu     sync.Mutex
	left   int  // records added and not yet settled
	sealed bool // no more records are added
	err    error
}

func newBatch(pl *pipeline) *batch {
	b := &batch{pl: pl, done: make(chan struct{})}
	if pl != nil {
		b.errSeq = pl.s.errSeq()
	}
	return b
}

// add counts k records about to be produced.
func (b *batch) add(k int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.left += k
	b.n += k
}

// records returns how many records the batch holds.
func (b *batch) records() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

// commit ends a transaction's batch: it holds n records and ends at
// next; err, if not nil, fails it.
func (b *batch) commit(n int, next engine.StreamOffset, err error) {
	b.mu.Lock()
	b.n, b.next = n, next
	b.mu.Unlock()
	b.seal(err)
}

// settle records that k records were acknowledged (err nil) or failed.
func (b *batch) settle(k int, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil && b.err == nil {
		b.err = err
	}
	if b.left -= k; b.left == 0 && b.sealed {
		close(b.done)
	}
}

// seal says no more records are added: done closes once those added
// are settled. err, if not nil, fails the batch.
func (b *batch) seal(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil && b.err == nil {
		b.err = err
	}
	b.sealed = true
	if b.left == 0 {
		close(b.done)
	}
}

// promise is the produce promise of every record of the batch. A failure
// stops the session's producing at once: a later record of the failed
// one's partition must not be appended before the failed one is.
func (b *batch) promise(_ *kgo.Record, err error) {
	if err != nil && b.pl != nil {
		b.pl.fail(err)
	}
	b.settle(1, err)
}

func (b *batch) result() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// pipeline is one session's batches in flight.
type pipeline struct {
	s    *sink
	alo  bool               // at least once: batches have a retry budget
	ctx  context.Context    // ended by poison, the acker's end or the sink's close: the reader stops
	stop context.CancelFunc //
	// produceCtx is the records' context: it ends only when the acker
	// does, so the records in flight when the sink is closed or a record
	// fails may still be acknowledged; it unblocks a Produce waiting for
	// room in the client's buffer.
	produceCtx  context.Context
	stopProduce context.CancelFunc
	// abandon, at least once, fails every record the client still
	// buffers, on the first failure: the client fails the buffered
	// records of the failed one's partition with it, but then takes new
	// ones under a new producer epoch, and a record the reader produced
	// before it learnt of the failure must not be appended before the
	// failed one. Nil with exactly_once, where the transaction aborts.
	abandon  func()
	added    chan struct{} // a batch was added (capacity 1)
	finished chan struct{} // closed when the reader adds no more
	ended    chan struct{} // closed when run returns
	err      error         // run's result, once ended

	halted    atomic.Bool           // ctx has ended: checked before each record
	abandoned atomic.Bool           // abandon was called
	acked     atomic.Int64          // records acknowledged in this session
	cause     atomic.Pointer[error] // the first record's error

	mu struct {
		sync.Mutex
		queue []*batch // in stream order; the head is the oldest not yet acked
	}
}

func newPipeline(s *sink, alo bool, abandon func()) *pipeline {
	pl := &pipeline{s: s, alo: alo, abandon: abandon, added: make(chan struct{}, 1), finished: make(chan struct{}), ended: make(chan struct{})}
	pl.ctx, pl.stop = context.WithCancel(s.ctx)
	context.AfterFunc(pl.ctx, func() { pl.halted.Store(true) })
	pl.produceCtx, pl.stopProduce = context.WithCancel(context.Background())
	go pl.run()
	return pl
}

// fail records the first error of a record and stops producing. It runs
// in the client's promise goroutine.
func (pl *pipeline) fail(err error) {
	if err != errStopped {
		pl.cause.CompareAndSwap(nil, &err)
	}
	pl.poison()
	if pl.abandon != nil && !pl.abandoned.Swap(true) {
		pl.abandon()
	}
}

// failure returns the error of a failed batch: the first record's error
// of the session, which may lie in a later batch (the records of
// earlier ones failed with it), else err.
func (pl *pipeline) failure(err error) error {
	if c := pl.cause.Load(); c != nil {
		return fmt.Errorf("producing to topic %s: %w", pl.s.cfg.Topic, *c)
	}
	return err
}

// poison stops producing: a record failed, or the acker gave up.
func (pl *pipeline) poison() {
	pl.halted.Store(true)
	pl.stop()
}

// stopped reports whether the reader must stop: a record failed, the
// acker ended, or the sink is closed.
func (pl *pipeline) stopped() bool { return pl.halted.Load() }

// begin adds a batch whose first record was logged at first (zero for
// an empty batch), ending at next (with exactly_once, set by commit). The
// reader then adds and produces its records, and seals it.
func (pl *pipeline) begin(first time.Time, next engine.StreamOffset) *batch {
	b := newBatch(pl)
	b.first, b.next = first, next
	pl.mu.Lock()
	pl.mu.queue = append(pl.mu.queue, b)
	if !first.IsZero() {
		pl.s.pending(first)
	}
	pl.mu.Unlock()
	select {
	case pl.added <- struct{}{}:
	default:
	}
	return b
}

// skip adds an empty batch: the stream had no record up to next.
func (pl *pipeline) skip(next engine.StreamOffset) {
	pl.begin(time.Time{}, next).seal(nil)
}

// finish says the reader adds no more batches, and returns the acker's
// result once it has settled the batches in flight (within closeGrace)
// and saved the cursor.
func (pl *pipeline) finish() error {
	close(pl.finished)
	<-pl.ended
	return pl.err
}

// head returns the oldest batch not yet acked, if any.
func (pl *pipeline) head() *batch {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if len(pl.mu.queue) == 0 {
		return nil
	}
	return pl.mu.queue[0]
}

// pop removes the acked head, updating the sink's lag to the oldest
// record still pending.
func (pl *pipeline) pop(b *batch) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.mu.queue[0] = nil
	pl.mu.queue = pl.mu.queue[1:]
	var oldest time.Time
	for _, q := range pl.mu.queue {
		if !q.first.IsZero() {
			oldest = q.first
			break
		}
	}
	pl.s.acked(b.records(), oldest)
}

// run is the acker: it acks the batches in order, saving the cursor at
// most every CursorInterval and when it ends. Once the sink is closed or
// the reader has finished, the batches in flight get closeGrace.
func (pl *pipeline) run() {
	defer close(pl.ended)
	defer pl.stop()
	defer pl.stopProduce()
	s := pl.s
	var (
		acked, saved engine.StreamOffset // the end of the acked prefix; the cursor last saved
		lastSave     time.Time
	)
	save := func() error {
		if !saved.Less(acked) {
			return nil
		}
		if err := s.m.db.SaveSinkCursor(s.cfg.ID, acked); err != nil {
			return fmt.Errorf("saving the cursor after published batches: %w", err)
		}
		saved, lastSave = acked, time.Now()
		s.saved(saved)
		return nil
	}
	var (
		budget    = newStoppedTimer()
		saveTimer = newStoppedTimer()
		saveC     <-chan time.Time // saveTimer's, when it runs: it fires at saveAt
		saveAt    time.Time
		graceC    <-chan struct{}
		closing   = s.ctx.Done()
		finished  = (<-chan struct{})(pl.finished)
	)
	var graceCancel context.CancelFunc
	defer func() {
		budget.Stop()
		saveTimer.Stop()
		if graceCancel != nil {
			graceCancel()
		}
	}()
	startGrace := func() {
		closing, finished = nil, nil
		if graceC == nil && pl.alo { // with exactly_once the reader bounds its transaction
			graceC = s.grace.Done()
			if s.ctx.Err() == nil { // the reader stopped
				var ctx context.Context
				ctx, graceCancel = context.WithTimeout(context.Background(), closeGrace)
				graceC = ctx.Done()
			}
		}
	}
	pl.err = func() error {
		for {
			b := pl.head()
			if b == nil {
				select {
				case <-pl.added:
				case <-pl.finished:
					if pl.head() == nil {
						return save()
					}
				case <-saveC:
					saveC = nil
					if err := save(); err != nil {
						pl.poison()
						return err
					}
				}
				continue
			}
			// At least once, the head gets RetryBudget to be acked from
			// when the batch before it was: the batches behind it wait
			// in the client's buffer meanwhile. With exactly_once, the
			// reader bounds each transaction.
			var deadline <-chan time.Time
			if pl.alo {
				budget.Reset(s.m.opts.RetryBudget)
				deadline = budget.C
			}
		wait:
			for {
				select {
				case <-b.done:
					break wait
				case <-deadline:
					pl.poison()
					return joinSave(s.budgetError(b.records(), b.errSeq), save())
				case <-graceC:
					pl.poison()
					if err := save(); err != nil {
						return err
					}
					if err := s.ctx.Err(); err != nil {
						return err
					}
					if pl.cause.Load() != nil {
						return pl.failure(nil)
					}
					return fmt.Errorf("%d records still unacknowledged %s after the session stopped", b.records(), closeGrace)
				case <-closing:
					startGrace()
				case <-finished:
					startGrace()
				case <-saveC:
					saveC = nil
					if err := save(); err != nil {
						pl.poison()
						return err
					}
				}
			}
			budget.Stop()
			if err := b.result(); err != nil {
				pl.poison()
				return joinSave(pl.failure(err), save())
			}
			pl.pop(b)
			pl.acked.Add(int64(b.records()))
			acked = b.next
			// Save every CursorInterval while batches are in flight, and
			// soon (idleSave) once none is: a sink that keeps up saves
			// its cursor shortly after each burst of records.
			every := s.m.opts.CursorInterval
			if pl.head() == nil {
				every = min(every, idleSave)
			}
			if wait := every - time.Since(lastSave); wait <= 0 {
				if err := save(); err != nil {
					pl.poison()
					return err
				}
			} else if at := time.Now().Add(wait); saveC == nil || at.Before(saveAt) {
				saveTimer.Reset(wait)
				saveC, saveAt = saveTimer.C, at
			}
		}
	}()
}

// idleSave is how soon after the last save a sink with nothing in flight
// saves its cursor.
const idleSave = 20 * time.Millisecond

// newStoppedTimer returns a timer that has not started.
func newStoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// joinSave returns err, noting a failure to save the cursor too.
func joinSave(err, saveErr error) error {
	if saveErr != nil {
		return fmt.Errorf("%w (and %w)", err, saveErr)
	}
	return err
}
