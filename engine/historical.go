package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/featurelog/featurelog/internal/schema"
)

// HistoricalRequest asks for point-in-time correct features of a service
// (SPEC §5): either for every row of a spine (GetFeaturesForEvents) or for
// every key and interval of a time range (GetFeaturesForRange).
type HistoricalRequest struct {
	Workspace string
	Service   string
	// TimestampKey names the spine column that holds each row's time T.
	// Empty: the spine must have exactly one column whose values are
	// timestamps (time.Time or RFC 3339 strings).
	TimestampKey string
	// FromSource recomputes the features from the raw offline log instead
	// of the tiles and segments. It needs the source's log_offline: true.
	FromSource bool
	// Range mode: the interval [Start, End) and optionally the entities
	// (join-key maps, as GetFeaturesRequest.JoinKeys) to report; nil
	// Entities means every key with data in any of the service's views.
	Start, End time.Time
	Entities   []map[string]any
	// Progress, when set, is called now and then with the number of rows
	// written so far.
	Progress func(rows int)
}

// Spine supplies the rows of a spine-mode join.
type Spine interface {
	// Columns names the spine's columns, in order.
	Columns() []string
	// Next returns the next row, one value per column, or io.EOF after the
	// last. The engine reads join keys from string, int64, float64, Number
	// and json-like values; timestamps from time.Time or RFC 3339 strings.
	// Every value is passed through to the sink untouched.
	Next() ([]any, error)
}

// HistoricalColumn is one column of a historical result.
type HistoricalColumn struct {
	Name string
	// Type is the feature's type; for spine columns (Spine true) it is the
	// zero Type, their values being passed through as given. In range
	// mode the join keys and _valid_from/_valid_to are typed too.
	Type  schema.Type
	Spine bool
}

// HistoricalSink receives a historical result.
type HistoricalSink interface {
	// Begin is called once, before any row, with the output columns: the
	// spine's (or in range mode the join keys, _valid_from and _valid_to),
	// then <view>.<feature> in the service's order.
	Begin(cols []HistoricalColumn) error
	// Row delivers one output row: the leading values (the spine row as
	// given; in range mode the join-key values as schema.Value and
	// _valid_from, _valid_to as time.Time) and the features.
	// Neither slice is retained by the engine after Row returns, nor may
	// the sink retain them.
	Row(lead []any, features []schema.Value) error
}

// SpineError reports a malformed spine row. Row counts from 1.
type SpineError struct {
	Row int
	Err error
}

func (e *SpineError) Error() string { return fmt.Sprintf("spine row %d: %v", e.Row, e.Err) }
func (e *SpineError) Unwrap() error { return e.Err }

// GetFeaturesForEvents answers a spine-mode historical join: for every
// spine row at time T, in spine order, the row followed by the vector an
// online read with as_of T returns. Memory is bounded: the spine is read
// and answered in chunks.
func (db *DB) GetFeaturesForEvents(ctx context.Context, req *HistoricalRequest, spine Spine, sink HistoricalSink) error {
	return errorf(CodeUnimplemented, "historical retrieval is not implemented yet")
}

// GetFeaturesForRange answers a range-mode historical query: for every
// key, the intervals within [Start, End) over which its feature vector
// holds, as rows of join keys, _valid_from, _valid_to and the features.
func (db *DB) GetFeaturesForRange(ctx context.Context, req *HistoricalRequest, sink HistoricalSink) error {
	return errorf(CodeUnimplemented, "historical retrieval is not implemented yet")
}

var _ = time.Time{}
