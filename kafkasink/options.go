package kafkasink

import (
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Options configure a Manager. The zero value of every field is a working
// default; EnsureDefaults fills them in.
type Options struct {
	// Brokers, when set, replaces the brokers of every sink: the
	// --kafka-brokers flag of featurelog serve. Default: each sink's
	// output_stream.kafka.brokers from the repo file.
	Brokers []string
	// Logger receives the sinks' structured logs, each with a "sink"
	// attribute. Default slog.Default().
	Logger *slog.Logger
	// BatchRecords is the most records a sink reads from the stream at
	// once and produces as one batch; it takes what the stream has
	// without waiting to fill a batch. At least once, the following
	// batches are produced while earlier ones await their
	// acknowledgements (at most about 2×BatchRecords records in flight).
	// With exactly_once it is also the most records of one transaction.
	// Default 10,000.
	BatchRecords int
	// CursorInterval is how often a sink with batches in flight saves its
	// durable cursor (an atomic file write with fsyncs) to the end of the
	// records acknowledged so far (with none in flight, 20ms after the
	// last save): the cursor may trail the acknowledged records by this
	// much (plus one save), which is what a crash publishes again.
	// Default 200ms.
	CursorInterval time.Duration
	// TxnMaxAge is, with exactly_once, how long a transaction gathers
	// records before it commits (it commits earlier when it holds
	// BatchRecords records or when the stream has nothing more to give
	// within a few milliseconds). read_committed consumers see records
	// only once their transaction commits. Default 100ms.
	TxnMaxAge time.Duration
	// RetryBudget is how long the oldest batch in flight may stay
	// unacknowledged after the batch before it was (the client retrying
	// it), and with exactly_once how long a transaction may wait for its
	// records' acknowledgements and for its commit, before the sink closes
	// its Kafka client, reports "failing" and restarts from its durable
	// cursor. It also bounds the
	// topic check and, with exactly_once, the fencing and the read of the
	// progress topic at a restart. At least 1s (the Kafka client's least
	// record timeout). Default 30s.
	RetryBudget time.Duration
	// Reconcile is how often the declared sinks are re-read from the
	// engine: a sink an apply adds or removes starts or stops within this.
	// Default 1s.
	Reconcile time.Duration
	// MaxBackoff bounds the pause between two restarts of a failing sink;
	// the pause starts at 100ms (or MaxBackoff, if smaller) and doubles.
	// Default 5s.
	MaxBackoff time.Duration
	// Now returns the current time, against which lag is measured (the
	// engine stamps each log entry with its own Options.Now). Default
	// time.Now.
	Now func() time.Time
	// ClientOpts are appended to the options of every Kafka client a sink
	// creates (after the sink's own, so they win): TLS, SASL, timeouts.
	ClientOpts []kgo.Opt
}

// EnsureDefaults fills in the defaults of unset fields.
func (o *Options) EnsureDefaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.BatchRecords == 0 {
		o.BatchRecords = 10_000
	}
	if o.CursorInterval == 0 {
		o.CursorInterval = 200 * time.Millisecond
	}
	if o.TxnMaxAge == 0 {
		o.TxnMaxAge = 100 * time.Millisecond
	}
	if o.RetryBudget == 0 {
		o.RetryBudget = 30 * time.Second
	}
	if o.Reconcile == 0 {
		o.Reconcile = time.Second
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Validate reports options that cannot work.
func (o *Options) Validate() error {
	if o.BatchRecords < 0 || o.CursorInterval < 0 || o.TxnMaxAge < 0 || o.RetryBudget < 0 || o.Reconcile < 0 || o.MaxBackoff < 0 {
		return fmt.Errorf("kafkasink: BatchRecords, CursorInterval, TxnMaxAge, RetryBudget, Reconcile and MaxBackoff must not be negative (0 means the default)")
	}
	if o.RetryBudget != 0 && o.RetryBudget < time.Second {
		return fmt.Errorf("kafkasink: RetryBudget %s is too short: use at least 1s (the Kafka client's least record timeout)", o.RetryBudget)
	}
	for _, b := range o.Brokers {
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			return fmt.Errorf("kafkasink: broker address %q is not host:port (for example 127.0.0.1:9092)", b)
		}
	}
	return nil
}
