package kafkasink

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/featurelog/featurelog/engine"
)

// producer is one session's Kafka client: idempotent, or transactional
// with exactly_once.
type producer struct {
	s    *sink
	cl   *kgo.Client
	txn  bool
	recs []*kgo.Record // the batch's records, reused
}

// connect opens a client and makes sure the sink's topics exist.
func (s *sink) connect() (*producer, error) {
	extra := []kgo.Opt{
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(s.m.opts.RetryBudget),
		kgo.MaxBufferedRecords(max(10_000, 2*s.m.opts.BatchRecords+1)),
	}
	if s.cfg.ExactlyOnce {
		extra = append(extra, kgo.TransactionalID(transactionalID(s.cfg.ID)),
			kgo.TransactionTimeout(max(2*s.m.opts.RetryBudget, 10*time.Second)))
	}
	cl, err := kgo.NewClient(s.clientOpts(extra...)...)
	if err != nil {
		return nil, fmt.Errorf("kafkasink: sink %s: %w", s.cfg.ID, err)
	}
	p := &producer{s: s, cl: cl, txn: s.cfg.ExactlyOnce}
	ctx, cancel := s.budget()
	defer cancel()
	if err := p.ensureTopics(ctx, kadm.NewClient(cl)); err != nil {
		cl.Close()
		return nil, err
	}
	return p, nil
}

// clientOpts are the options every client of the sink starts from.
func (s *sink) clientOpts(extra ...kgo.Opt) []kgo.Opt {
	o := []kgo.Opt{
		kgo.SeedBrokers(s.cfg.Brokers...),
		kgo.ClientID("featurelog"),
		kgo.WithLogger(kgoLogger{s.log}),
		kgo.WithHooks(connectHook{s}),
		kgo.RetryTimeout(s.m.opts.RetryBudget),
	}
	o = append(o, extra...)
	return append(o, s.m.opts.ClientOpts...)
}

// budget is a context for one step that may keep retrying for
// RetryBudget, ended early by close.
func (s *sink) budget() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, s.m.opts.RetryBudget)
}

func (p *producer) close() { p.cl.Close() }

// start returns where the session begins: the durable cursor, or, with
// exactly_once, the later of it and the progress committed to Kafka
// (which the cursor then takes). Before reading the progress it fences
// the sink's transactional ID: InitProducerID bumps its epoch, aborting a
// transaction an earlier producer (a killed process, a session that
// failed) left open, so the progress read is final.
func (p *producer) start() (engine.StreamOffset, error) {
	s, db := p.s, p.s.m.db
	local, err := db.SinkCursor(s.cfg.ID)
	if err != nil || !p.txn {
		return local, err
	}
	ctx, cancel := s.budget()
	defer cancel()
	if _, _, err := p.cl.ProducerID(ctx); err != nil {
		return local, fmt.Errorf("fencing earlier producers of transactional ID %s: %w", transactionalID(s.cfg.ID), err)
	}
	next, found, err := readProgress(ctx, s.clientOpts(), progressTopic(s.cfg.Topic), s.cfg.ID)
	if err != nil {
		return local, err
	}
	if !found || !local.Less(next) {
		return local, nil
	}
	s.log.Info(msgResumeProgress, "progress", next.String(), "cursor", local.String())
	if err := db.SaveSinkCursor(s.cfg.ID, next); err != nil {
		return local, err
	}
	s.caughtUp(next)
	return next, nil
}

const msgResumeProgress = "resuming after the progress committed to Kafka, past the local cursor"

// publish produces a batch and returns once the broker acknowledged
// every record: in one transaction with the progress record next, with
// exactly_once.
func (p *producer) publish(batch []engine.OutputRecord, next engine.StreamOffset) error {
	recs := p.records(batch)
	if !p.txn {
		return p.produce(recs)
	}
	if err := p.cl.BeginTransaction(); err != nil {
		return err
	}
	recs = append(recs, progressRecord(p.s.cfg.ID, p.s.cfg.Topic, next))
	if err := p.produce(recs); err != nil {
		p.abort()
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.s.m.opts.RetryBudget) // not ended by close: a commit cut short has an unknown outcome
	defer cancel()
	if err := p.cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		p.abort()
		return fmt.Errorf("committing the transaction of a batch (it is retried from the committed progress): %w", err)
	}
	return nil
}

// abort ends the open transaction, best effort: if it fails, the next
// session's fencing aborts it.
func (p *producer) abort() {
	ctx, cancel := context.WithTimeout(context.Background(), min(p.s.m.opts.RetryBudget, 5*time.Second))
	defer cancel()
	err := p.cl.AbortBufferedRecords(ctx)
	if err == nil {
		err = p.cl.EndTransaction(ctx, kgo.TryAbort)
	}
	if err != nil {
		p.s.log.Warn("aborting a transaction failed; the next session's fencing aborts it", "err", err)
	}
}

// records builds the Kafka records of a batch: key the entity keys,
// value the output record, both as JSON.
func (p *producer) records(batch []engine.OutputRecord) []*kgo.Record {
	// One allocation for the batch's bytes, sliced once it stops
	// growing; the client holds them until acknowledged.
	var data []byte
	ends := make([][2]int, len(batch))
	for i := range batch {
		data = batch[i].AppendKeyJSON(data)
		ends[i][0] = len(data)
		data = batch[i].AppendJSON(data)
		ends[i][1] = len(data)
	}
	p.recs = p.recs[:0]
	from := 0
	for _, e := range ends {
		p.recs = append(p.recs, &kgo.Record{Topic: p.s.cfg.Topic, Key: data[from:e[0]:e[0]], Value: data[e[0]:e[1]:e[1]]})
		from = e[1]
	}
	return p.recs
}

// produce produces recs and waits for every acknowledgement, for at most
// RetryBudget. When the sink is closed meanwhile, the batch gets a grace
// of min(RetryBudget, 5s) to finish, so a clean stop leaves nothing to
// publish twice.
func (p *producer) produce(recs []*kgo.Record) error {
	budget := p.s.m.opts.RetryBudget
	errsBefore := p.s.errSeq()
	var (
		mu    sync.Mutex
		first error
		left  = len(recs)
		done  = make(chan struct{})
	)
	promise := func(_ *kgo.Record, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil && first == nil {
			first = err
		}
		if left--; left == 0 {
			close(done)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	for _, r := range recs {
		p.cl.Produce(ctx, r, promise)
	}
	select {
	case <-done:
	case <-ctx.Done():
		return p.budgetError(len(recs), errsBefore)
	case <-p.s.ctx.Done():
		t := time.NewTimer(min(budget, 5*time.Second))
		defer t.Stop()
		select {
		case <-done:
		case <-ctx.Done():
			return p.budgetError(len(recs), errsBefore)
		case <-t.C:
			return p.s.ctx.Err()
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if first != nil {
		return fmt.Errorf("producing to topic %s: %w", p.s.cfg.Topic, first)
	}
	return nil
}

// budgetError says a batch ran out of its retry budget, with the last
// error the client met meanwhile (a refused connection, say), if any.
func (p *producer) budgetError(n int, errsBefore uint64) error {
	err := fmt.Errorf("%w: %d records to topic %s still unacknowledged after %s", ErrRetryBudget, n, p.s.cfg.Topic, p.s.m.opts.RetryBudget)
	p.s.mu.Lock()
	last, seq := p.s.mu.lastErr, p.s.mu.errSeq
	p.s.mu.Unlock()
	if seq != errsBefore {
		err = fmt.Errorf("%w; last client error: %s", err, last)
	}
	return err
}
