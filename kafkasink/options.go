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
	// BatchRecords is the most records a sink produces before it waits for
	// their acknowledgements and saves its cursor (one fsync per batch).
	// Default 1000.
	BatchRecords int
	// RetryBudget is how long one batch may keep failing (the client
	// retrying it) before the sink closes its Kafka client, reports
	// "failing" and restarts from its durable cursor. It also bounds the
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
		o.BatchRecords = 1000
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
	if o.BatchRecords < 0 || o.RetryBudget < 0 || o.Reconcile < 0 || o.MaxBackoff < 0 {
		return fmt.Errorf("kafkasink: BatchRecords, RetryBudget, Reconcile and MaxBackoff must not be negative (0 means the default)")
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
