package kafkasink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/featurelog/featurelog/engine"
)

// minBackoff is the first pause after a failure.
const minBackoff = 100 * time.Millisecond

// sink publishes one view's output stream to one topic.
type sink struct {
	m      *Manager
	cfg    engine.SinkConfig // brokers after Options.Brokers; fixed for the sink's life
	log    *slog.Logger
	ctx    context.Context // canceled by close
	cancel context.CancelFunc
	// grace ends closeGrace after ctx: what is in flight when the sink is
	// closed (acks, a commit, an abort) gets until then.
	grace context.Context
	done  chan struct{} // closed when run returns

	published atomic.Int64 // records acknowledged
	errs      atomic.Int64 // failed attempts

	mu struct {
		sync.Mutex
		maxLag    time.Duration
		state     string // StateStarting, StateRunning or StateFailing; lagging is derived
		lastErr   string
		lastErrAt time.Time
		errSeq    uint64              // counts the errors noted, to tell a fresh one
		cursor    engine.StreamOffset // the durable cursor, as last saved or read
		// oldest is the log time of the oldest record not yet
		// acknowledged; zero when the sink is caught up. It is kept
		// across a failure, so lag grows while the sink is down.
		oldest time.Time
	}
}

func startSink(m *Manager, c engine.SinkConfig) *sink {
	s := &sink{m: m, cfg: c, log: m.opts.Logger.With("sink", c.ID), done: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	var endGrace context.CancelFunc
	s.grace, endGrace = context.WithCancel(context.Background())
	context.AfterFunc(s.ctx, func() { time.AfterFunc(closeGrace, endGrace) })
	s.mu.maxLag, s.mu.state = c.MaxLag, StateStarting
	if off, err := m.db.SinkCursor(c.ID); err == nil {
		s.mu.cursor = off
	}
	go s.run()
	return s
}

// sameConfig reports whether c needs no restart of s: only max_lag may
// change under a running sink.
func (s *sink) sameConfig(c engine.SinkConfig) bool {
	return s.cfg.Topic == c.Topic && s.cfg.ExactlyOnce == c.ExactlyOnce && slices.Equal(s.cfg.Brokers, c.Brokers)
}

func (s *sink) close() {
	s.cancel()
	<-s.done
}

// run publishes until the sink is closed: each session opens a Kafka
// client and the stream at the durable cursor; a failed session is
// recorded, and the next starts after a backoff that doubles up to
// MaxBackoff and resets once a session publishes.
func (s *sink) run() {
	defer close(s.done)
	s.log.Info("sink starting", "topic", s.cfg.Topic, "brokers", s.cfg.Brokers, "exactly_once", s.cfg.ExactlyOnce)
	backoff := min(minBackoff, s.m.opts.MaxBackoff)
	for {
		progressed, err := s.session()
		if s.ctx.Err() != nil {
			s.log.Info("sink stopped")
			return
		}
		s.fail(err)
		if progressed {
			backoff = min(minBackoff, s.m.opts.MaxBackoff)
		}
		t := time.NewTimer(backoff)
		select {
		case <-s.ctx.Done():
			t.Stop()
			s.log.Info("sink stopped")
			return
		case <-t.C:
		}
		backoff = min(2*backoff, s.m.opts.MaxBackoff)
	}
}

// fail records a failed attempt.
func (s *sink) fail(err error) {
	s.errs.Add(1)
	s.log.Warn("sink failing; restarting from its durable cursor", "err", err)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.state = StateFailing
	s.noteLocked(err)
}

// note records err as the last error without changing the state: a
// transient error the client retries.
func (s *sink) note(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noteLocked(err)
}

func (s *sink) noteLocked(err error) {
	s.mu.lastErr, s.mu.lastErrAt = err.Error(), s.m.opts.Now()
	s.mu.errSeq++
}

func (s *sink) errSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.errSeq
}

// pending records the log time of the first record of a batch about to
// be published, if nothing older is pending.
func (s *sink) pending(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.oldest.IsZero() {
		s.mu.oldest = t
	}
}

// acked records a batch of n records acknowledged (or, n 0, a stretch
// of the stream with nothing to publish); oldest is the log time of the
// oldest record still pending, zero if none.
func (s *sink) acked(n int, oldest time.Time) {
	s.published.Add(int64(n))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.state, s.mu.oldest = StateRunning, oldest
}

// saved records the durable cursor saved.
func (s *sink) saved(cursor engine.StreamOffset) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.cursor.Less(cursor) {
		s.mu.cursor = cursor
	}
}

// caughtUp records that the stream has nothing more to publish.
func (s *sink) caughtUp(cursor engine.StreamOffset) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.state, s.mu.oldest = StateRunning, time.Time{}
	if s.mu.cursor.Less(cursor) {
		s.mu.cursor = cursor
	}
}

func (s *sink) setMaxLag(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.maxLag = d
}

func (s *sink) status(now time.Time) SinkStatus {
	st := SinkStatus{ID: s.cfg.ID, Workspace: s.cfg.Workspace, View: s.cfg.View, Topic: s.cfg.Topic,
		Brokers: slices.Clone(s.cfg.Brokers), ExactlyOnce: s.cfg.ExactlyOnce,
		Published: s.published.Load(), Errors: s.errs.Load()}
	s.mu.Lock()
	defer s.mu.Unlock()
	st.State, st.MaxLag, st.LastError, st.LastErrorAt = s.mu.state, s.mu.maxLag, s.mu.lastErr, s.mu.lastErrAt
	st.Cursor = s.mu.cursor.String()
	if !s.mu.oldest.IsZero() {
		st.Lag = max(now.Sub(s.mu.oldest), 0)
	}
	if st.State != StateFailing && st.MaxLag > 0 && st.Lag > st.MaxLag {
		st.State = StateLagging
	}
	return st
}

// noBrokersError says where to configure brokers.
func (s *sink) noBrokersError() error {
	return fmt.Errorf("%w for sink %s: set output_stream.kafka.brokers of feature view %q in the repo file, or start the node with featurelog serve --kafka-brokers host:port[,host:port]",
		ErrNoBrokers, s.cfg.ID, s.cfg.View)
}

// session publishes from the durable cursor until an error or close. It
// reports whether it published anything.
func (s *sink) session() (progressed bool, err error) {
	db := s.m.db
	if len(s.cfg.Brokers) == 0 {
		s.peek()
		return false, s.noBrokersError()
	}
	p, err := s.connect()
	if err != nil {
		return false, err
	}
	defer p.close()
	start, err := p.start()
	if err != nil {
		return false, err
	}
	st, err := db.OpenOutputStream(s.cfg.Workspace, s.cfg.View, engine.StreamStart{Kind: engine.StartAt, Offset: start})
	if err != nil {
		return false, err
	}
	defer st.Close()
	var abandon func()
	if !p.txn {
		abandon = p.cl.UnsafeAbortBufferedRecords
	}
	pl := newPipeline(s, !p.txn, abandon)
	var rerr error
	if p.txn {
		rerr = p.readTxns(st, pl)
	} else {
		rerr = p.read(st, pl)
	}
	aerr := pl.finish()
	progressed = pl.acked.Load() > 0
	switch {
	case rerr == nil || errors.Is(rerr, errStopped):
		return progressed, aerr
	case aerr == nil:
		return progressed, rerr
	}
	return progressed, fmt.Errorf("%w (and %w)", rerr, aerr)
}

// idleWait is how long Next waits for records before the sink counts
// itself caught up. Next returns as soon as it has any record: a batch
// is whatever the stream holds, up to BatchRecords.
const idleWait = 500 * time.Millisecond

// txnIdle is how long, with exactly_once, an open transaction waits for
// more records before it commits.
const txnIdle = 2 * time.Millisecond

// peek reads the first record waiting at the cursor, so a sink that
// cannot publish at all still reports its lag.
func (s *sink) peek() {
	off, err := s.m.db.SinkCursor(s.cfg.ID)
	if err != nil {
		return
	}
	st, err := s.m.db.OpenOutputStream(s.cfg.Workspace, s.cfg.View, engine.StreamStart{Kind: engine.StartAt, Offset: off})
	if err != nil {
		return
	}
	defer st.Close()
	recs, err := st.Next(s.ctx, nil, 1, time.Millisecond)
	if err == nil && len(recs) > 0 {
		s.pending(recs[0].IngestTime)
	}
}
