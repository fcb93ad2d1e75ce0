package kafkasink

import (
	"slices"
	"sync"
	"time"

	"github.com/featurelog/featurelog/engine"
)

// Manager runs one sink per Kafka sink the applied repos declare, and
// starts and stops them as applies add and remove sinks.
//
// Lock order: Manager.mu before sink.mu; no I/O under either.
type Manager struct {
	db    *engine.DB
	opts  Options
	stop  chan struct{} // closed by Close
	done  chan struct{} // closed when the reconcile loop has returned
	once  sync.Once
	descs descs
	mu    struct {
		sync.Mutex
		// sinks maps a sink ID to its running sink; guarded by mu, and
		// changed only by the reconcile loop (and Close after it ends).
		sinks map[string]*sink
	}
}

// Start starts a sink for every Kafka sink db's applied repos declare and
// a loop that follows later applies. Close it before db.
func Start(db *engine.DB, opts Options) (*Manager, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	m := &Manager{db: db, opts: opts, stop: make(chan struct{}), done: make(chan struct{}), descs: newDescs()}
	m.mu.sinks = map[string]*sink{}
	m.reconcile()
	go m.loop()
	return m, nil
}

func (m *Manager) loop() {
	defer close(m.done)
	t := time.NewTicker(m.opts.Reconcile)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.reconcile()
		}
	}
}

// reconcile starts the declared sinks that are not running, restarts
// those whose brokers or exactly_once changed, and stops the ones no
// longer declared.
func (m *Manager) reconcile() {
	want := map[string]engine.SinkConfig{}
	for _, c := range m.db.Sinks() {
		if len(m.opts.Brokers) > 0 {
			c.Brokers = slices.Clone(m.opts.Brokers)
		}
		want[c.ID] = c
	}
	m.mu.Lock()
	var stale []*sink
	for id, s := range m.mu.sinks {
		c, ok := want[id]
		if ok && s.sameConfig(c) {
			s.setMaxLag(c.MaxLag)
			delete(want, id)
			continue
		}
		stale = append(stale, s)
		delete(m.mu.sinks, id)
	}
	m.mu.Unlock()
	stopAll(stale)
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, c := range want {
		m.mu.sinks[id] = startSink(m, c)
	}
}

// stopAll stops sinks concurrently and waits for them.
func stopAll(ss []*sink) {
	var wg sync.WaitGroup
	for _, s := range ss {
		wg.Go(s.close)
	}
	wg.Wait()
}

// Status returns a snapshot of every sink, sorted by ID.
func (m *Manager) Status() []SinkStatus {
	m.mu.Lock()
	ss := make([]*sink, 0, len(m.mu.sinks))
	for _, s := range m.mu.sinks {
		ss = append(ss, s)
	}
	m.mu.Unlock()
	now := m.opts.Now()
	out := make([]SinkStatus, len(ss))
	for i, s := range ss {
		out[i] = s.status(now)
	}
	slices.SortFunc(out, func(a, b SinkStatus) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	return out
}

// NotReady describes, one sentence each, every sink that is failing or
// lagging past its max_lag: the sink, its state, lag and last error. It
// is empty when every sink is well (httpapi's /readyz).
func (m *Manager) NotReady() []string {
	var out []string
	for _, s := range m.Status() {
		if !s.Ready() {
			out = append(out, s.problem())
		}
	}
	return out
}

// Close stops every sink, within about a second even while a sink has a
// backlog or its broker is slow: each stops reading and producing at once;
// the records in flight (with exactly_once, the open transaction) get one
// second to be acknowledged (committed), then the cursor is saved for
// what was acknowledged; a transaction that cannot commit by then is
// aborted, or left to the next session's fencing. Records not
// acknowledged are published again by the next Start. Close is
// idempotent.
func (m *Manager) Close() error {
	m.once.Do(func() {
		close(m.stop)
		<-m.done
		m.mu.Lock()
		ss := make([]*sink, 0, len(m.mu.sinks))
		for id, s := range m.mu.sinks {
			ss = append(ss, s)
			delete(m.mu.sinks, id)
		}
		m.mu.Unlock()
		stopAll(ss)
	})
	return nil
}
