package engine

import (
	"errors"
	"log/slog"
	"time"
)

// Options configure a DB. The zero value of every field but Dir is a
// working default; EnsureDefaults fills them in.
type Options struct {
	// Dir is the data directory. Required. It is created if absent and locked
	// while the DB is open.
	Dir string
	// Holder describes this process in the directory lock, for the error a
	// second process gets. Default "featurelog (embedded)".
	Holder string
	// Now returns the current time. Default time.Now. Tests set it.
	Now func() time.Time
	// MaxClockSkew is how far in the future an event time may lie before
	// ingest rejects the record. Default 5m.
	MaxClockSkew time.Duration
	// SegmentSize is the log's target segment size in bytes. Default 64 MiB.
	SegmentSize int
	// HotTierBytes is the size of the fastcache that holds merged tile
	// ranges of aggregate views (fastcache rounds it up to at least
	// 32 MiB). Default 64 MiB; -1 disables the hot tier.
	HotTierBytes int
	// NoSync skips fsyncs. For tests and benchmarks only: a crash may lose
	// acknowledged records.
	NoSync bool
	// Logger receives structured logs. Default slog.Default().
	Logger *slog.Logger
}

// EnsureDefaults fills in the defaults of unset fields.
func (o *Options) EnsureDefaults() {
	if o.Holder == "" {
		o.Holder = "featurelog (embedded)"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxClockSkew == 0 {
		o.MaxClockSkew = 5 * time.Minute
	}
	if o.HotTierBytes == 0 {
		o.HotTierBytes = 64 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Validate reports options that cannot work.
func (o *Options) Validate() error {
	if o.Dir == "" {
		return errors.New("engine: Options.Dir is required")
	}
	if o.MaxClockSkew < 0 {
		return errors.New("engine: Options.MaxClockSkew must not be negative")
	}
	return nil
}
