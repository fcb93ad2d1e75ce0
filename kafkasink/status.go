package kafkasink

import (
	"fmt"
	"strings"
	"time"
)

// The states of a sink (SinkStatus.State).
const (
	// StateStarting: the sink has neither published a batch nor found
	// itself caught up since it started.
	StateStarting = "starting"
	// StateRunning: the last batch was acknowledged, or there is nothing
	// to publish.
	StateRunning = "running"
	// StateLagging: running, but the oldest record not yet acknowledged
	// was logged more than max_lag ago.
	StateLagging = "lagging"
	// StateFailing: the last attempt failed (LastError); the sink backs
	// off and restarts from its durable cursor.
	StateFailing = "failing"
)

// SinkStatus is a snapshot of one sink.
type SinkStatus struct {
	ID          string // workspace/view/kafka:topic
	Workspace   string
	View        string
	Topic       string
	Brokers     []string // the brokers in use (after Options.Brokers)
	ExactlyOnce bool
	// State is StateStarting, StateRunning, StateLagging or StateFailing.
	State string
	// Cursor is the durable cursor: the wire offset of the next record to
	// publish.
	Cursor string
	// Lag is how long ago the oldest record not yet acknowledged was
	// logged; 0 when the sink is caught up.
	Lag    time.Duration
	MaxLag time.Duration
	// Published counts the records the broker acknowledged (a record sent
	// again after a failure counts again).
	Published int64
	// Errors counts failed attempts: batches and restarts.
	Errors int64
	// LastError is the latest error, kept after the sink recovers;
	// LastErrorAt is when it happened (zero if none).
	LastError   string
	LastErrorAt time.Time
}

// Ready reports whether the sink is neither failing nor lagging past its
// max_lag: what /readyz asks.
func (s SinkStatus) Ready() bool {
	return s.State != StateFailing && s.State != StateLagging
}

// problem describes a sink that is not ready, for /readyz: the sink, its
// state, lag and last error.
func (s SinkStatus) problem() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sink %s (feature view %s/%s to topic %s) is %s: lag %s, max_lag %s",
		s.ID, s.Workspace, s.View, s.Topic, s.State, s.Lag.Round(time.Millisecond), s.MaxLag)
	if s.LastError != "" {
		fmt.Fprintf(&b, "; last error (%s): %s", s.LastErrorAt.UTC().Format(time.RFC3339), s.LastError)
	}
	return b.String()
}
