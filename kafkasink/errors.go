package kafkasink

import "errors"

// Sentinel errors. A sink's LastError wraps them with what to do.
var (
	// ErrNoBrokers: neither the repo file nor the Manager names a broker
	// for the sink.
	ErrNoBrokers = errors.New("kafkasink: no Kafka brokers configured")
	// ErrRetryBudget: a batch was not acknowledged within
	// Options.RetryBudget.
	ErrRetryBudget = errors.New("kafkasink: batch not acknowledged within the retry budget")
	// ErrBadProgress: the progress topic holds a record of this sink that
	// does not parse.
	ErrBadProgress = errors.New("kafkasink: progress record is damaged")
)
