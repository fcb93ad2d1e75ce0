package kafkasink

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/featurelog/featurelog/engine"
)

// producer is one session's Kafka client: idempotent, or transactional
// with exactly_once.
type producer struct {
	s        *sink
	cl       *kgo.Client
	txn      bool
	sizeHint int // bytes per record of the last batch
}

// connect opens a client and makes sure the sink's topics exist.
func (s *sink) connect() (*producer, error) {
	extra := []kgo.Opt{
		kgo.RequiredAcks(kgo.AllISRAcks()),
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

// read produces the stream, at least once: each Next's records are a
// batch, produced without waiting for the acknowledgements of the earlier
// ones (the client blocks once it buffers MaxBufferedRecords). It returns
// once the pipeline stops (a record failed, the sink is closed) or the
// stream fails.
func (p *producer) read(st *engine.OutputStream, pl *pipeline) error {
	var recs []engine.OutputRecord
	var err error
	for !pl.stopped() {
		recs, err = st.Next(pl.ctx, recs, p.s.m.opts.BatchRecords, idleWait)
		if pl.stopped() {
			return nil
		}
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			pl.skip(st.Position())
			continue
		}
		krecs := p.records(recs)
		b := pl.begin(recs[0].IngestTime, st.Position())
		b.add(len(krecs))
		p.produce(pl, b, krecs)
		b.seal(nil)
	}
	return nil
}

// produce produces recs as part of b, stopping at once if the pipeline
// stops: the records not produced fail the batch.
func (p *producer) produce(pl *pipeline, b *batch, recs []kgo.Record) {
	for i := range recs {
		if pl.stopped() {
			b.settle(len(recs)-i, errStopped)
			return
		}
		p.cl.Produce(pl.produceCtx, &recs[i], b.promise)
	}
}

// errStopped fails the records a stopped session did not produce; the
// reader returns it when the pipeline holds the reason it stopped.
var errStopped = errors.New("kafkasink: the session stopped")

// readTxns produces the stream, exactly once: a transaction gathers the
// records of successive Nexts, produced as they come, until it holds
// BatchRecords records, is TxnMaxAge old, or the stream has nothing more
// within txnIdle; it then commits with the progress record of the
// position after them. The pipeline's acker saves the cursor after the
// commit.
func (p *producer) readTxns(st *engine.OutputStream, pl *pipeline) error {
	s, o := p.s, p.s.m.opts
	var (
		recs []engine.OutputRecord
		err  error
		txn  *batch // in the pipeline until committed; nil when none is open
		acks *batch // the acknowledgements of its records
		n    int
		ends time.Time
	)
	// end commits the open transaction, or aborts it if err is not nil;
	// a failure goes to the pipeline's acker, which ends the session
	// with it: end then returns errStopped.
	end := func(err error) error {
		if txn == nil {
			return err
		}
		if err == nil {
			err = p.commit(acks, n, st.Position())
		} else {
			acks.seal(nil)
			p.abort()
		}
		txn.commit(n, st.Position(), err)
		txn, acks, n = nil, nil, 0
		if err != nil {
			return errStopped
		}
		return nil
	}
	for {
		if pl.stopped() {
			if s.ctx.Err() != nil {
				return end(nil) // closed: commit what the open transaction holds, within closeGrace
			}
			return end(errStopped)
		}
		want, wait := o.BatchRecords, idleWait
		if txn != nil {
			left := time.Until(ends)
			if n >= o.BatchRecords || left <= 0 {
				if err := end(nil); err != nil {
					return err
				}
				continue
			}
			want, wait = o.BatchRecords-n, min(left, txnIdle)
		}
		recs, err = st.Next(pl.ctx, recs, want, wait)
		if pl.stopped() {
			continue
		}
		if err != nil {
			return end(err)
		}
		if len(recs) == 0 {
			if txn != nil {
				if err := end(nil); err != nil {
					return err
				}
			} else {
				pl.skip(st.Position())
			}
			continue
		}
		if txn == nil {
			if err := p.cl.BeginTransaction(); err != nil {
				return err
			}
			txn, acks, ends = pl.begin(recs[0].IngestTime, engine.StreamOffset{}), newBatch(pl), time.Now().Add(o.TxnMaxAge)
		}
		krecs := p.records(recs)
		acks.add(len(krecs))
		n += len(krecs)
		p.produce(pl, acks, krecs)
	}
}

// commit writes the progress record next into the open transaction,
// waits for every record of it to be acknowledged and commits it. The
// acknowledgements get RetryBudget, the commit too; once the sink is
// closed, both get what is left of closeGrace.
func (p *producer) commit(acks *batch, n int, next engine.StreamOffset) error {
	s := p.s
	acks.add(1)
	p.cl.Produce(s.grace, progressRecord(s.cfg.ID, s.cfg.Topic, next), acks.promise)
	acks.seal(nil)
	if err := p.await(acks, n+1); err != nil {
		p.abort()
		return err
	}
	ctx, cancel := context.WithTimeout(s.grace, s.m.opts.RetryBudget) // not ended by close at once: a commit cut short has an unknown outcome
	defer cancel()
	if err := p.cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		p.abort()
		return fmt.Errorf("committing the transaction of a batch (it is retried from the committed progress): %w", err)
	}
	return nil
}

// await waits for the n records of b to be settled, for at most
// RetryBudget, or, once the sink is closed, what is left of closeGrace.
func (p *producer) await(b *batch, n int) error {
	s := p.s
	t := time.NewTimer(s.m.opts.RetryBudget)
	defer t.Stop()
	select {
	case <-b.done:
	case <-t.C:
		return s.budgetError(n, b.errSeq)
	case <-s.grace.Done():
		return s.ctx.Err()
	}
	if err := b.result(); err != nil {
		return b.pl.failure(fmt.Errorf("producing to topic %s: %w", s.cfg.Topic, err))
	}
	return nil
}

// abort ends the open transaction, best effort: if it fails, the next
// session's fencing aborts it. Once the sink is closed it gets what is
// left of closeGrace.
func (p *producer) abort() {
	ctx, cancel := context.WithTimeout(p.s.grace, min(p.s.m.opts.RetryBudget, 5*time.Second))
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
func (p *producer) records(batch []engine.OutputRecord) []kgo.Record {
	// One allocation for the batch's bytes, sliced once it stops
	// growing, and one for its records; the client holds them until
	// acknowledged.
	data := make([]byte, 0, p.sizeHint*len(batch)+len(batch)*64)
	ends := make([][2]int, len(batch))
	for i := range batch {
		data = batch[i].AppendKeyJSON(data)
		ends[i][0] = len(data)
		data = batch[i].AppendJSON(data)
		ends[i][1] = len(data)
	}
	p.sizeHint = len(data) / len(batch)
	recs := make([]kgo.Record, len(batch))
	from := 0
	for i, e := range ends {
		recs[i] = kgo.Record{Topic: p.s.cfg.Topic, Key: data[from:e[0]:e[0]], Value: data[e[0]:e[1]:e[1]]}
		from = e[1]
	}
	return recs
}

// budgetError says records ran out of their retry budget, with the last
// error the client met meanwhile (a refused connection, say), if any.
func (s *sink) budgetError(n int, errsBefore uint64) error {
	err := fmt.Errorf("%w: %d records to topic %s still unacknowledged after %s", ErrRetryBudget, n, s.cfg.Topic, s.m.opts.RetryBudget)
	s.mu.Lock()
	last, seq := s.mu.lastErr, s.mu.errSeq
	s.mu.Unlock()
	if seq != errsBefore {
		err = fmt.Errorf("%w; last client error: %s", err, last)
	}
	return err
}
