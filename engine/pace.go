package engine

import (
	"runtime"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Background work (flushes, merges, deletions' segment rewrites) gives
// way to online reads. Go has no goroutine priorities, and on a machine
// of two processors a merge holding one of them left the reads one: at
// half of their closed-loop rate they queued, and their p99 during merges
// was 15-20x the p99 without (docs/performance.md, "Reads during flushes
// and merges"). So between keys, background work waits while online
// reads are in flight, taking both processors from them only in the gaps
// between reads, but never waits longer than readShare times what it
// worked since it last waited: it keeps at least a quarter of a
// processor under any read load, so flushes and merges always finish.

// readShare bounds the time background work waits for reads, as a
// multiple of the time it worked since it last waited.
const readShare = 3

// maxReadWait bounds one wait, whatever the work before it took.
const maxReadWait = 5 * time.Millisecond

// readPoll is how long background work sleeps between looks at the
// reads in flight.
const readPoll = 20 * time.Microsecond

// ReadGate counts the online reads in flight that background work gives
// way to. A DB has its own unless Options.Reads names one that several
// DBs share: DBs that share processors (a cluster node's partitions)
// should share one, so that a read of one makes the others' merges wait
// too. The zero value is ready to use.
type ReadGate struct{ n atomic.Int64 }

// enter and leave bracket one online read.
func (g *ReadGate) enter() { g.n.Add(1) }
func (g *ReadGate) leave() { g.n.Add(-1) }

// pacer paces one piece of background work against the reads of a gate.
type pacer struct {
	gate  *ReadGate
	now   func() time.Time
	sleep func(time.Duration)
	mark  time.Time // when the work last resumed
	// waited is the time spent waiting for reads; each wait is also
	// added to total (featurelog_background_read_wait_seconds_total).
	waited time.Duration
	total  prometheus.Counter
}

// pacer returns a pacer for one piece of the DB's background work.
func (db *DB) pacer() *pacer {
	return &pacer{gate: db.reads, now: time.Now, sleep: time.Sleep, mark: time.Now(), total: db.metrics.readWait}
}

// yield is called by background work between keys: it lets other
// goroutines run, then waits while online reads are in flight, up to
// readShare times the time worked since the last yield (at most
// maxReadWait).
func (p *pacer) yield() {
	runtime.Gosched()
	now := p.now()
	if p.gate.n.Load() > 0 {
		deadline := now.Add(min(readShare*now.Sub(p.mark), maxReadWait))
		start := now
		for p.gate.n.Load() > 0 && now.Before(deadline) {
			p.sleep(readPoll)
			now = p.now()
		}
		p.waited += now.Sub(start)
		if p.total != nil {
			p.total.Add(now.Sub(start).Seconds())
		}
	}
	p.mark = now
}
