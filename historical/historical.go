// Package historical is the shape of a point-in-time result, below the
// engine that computes it and the writers that store it: its columns
// (Column), the interfaces a result's receiver implements (Sink, and
// ChunkSink for one that takes a chunk of rows at a time), and Chunk, a
// chunk of rows held compactly column by column. The engine
// (engine.DB.GetFeaturesForEvents, GetFeaturesForRange) produces results;
// package tabular writes them as Parquet, CSV or JSON Lines; a program
// implements Sink to take them itself.
package historical

import (
	"math"
	"sync"

	"github.com/featurelog/featurelog/schema"
)

// Column is one column of a historical result.
type Column struct {
	Name string
	// Type is the feature's type; for spine columns (Spine true) it is the
	// zero Type, their values being passed through as given. In range
	// mode the join keys and _valid_from/_valid_to are typed too.
	Type  schema.Type
	Spine bool
}

// Sink receives a historical result.
type Sink interface {
	// Begin is called once, before any row, with the output columns: the
	// spine's (or in range mode the join keys, _valid_from and _valid_to),
	// then <view>.<feature> in the service's order.
	Begin(cols []Column) error
	// Row delivers one output row: the leading values (the spine row as
	// given; in range mode the join-key values as schema.Value and
	// _valid_from, _valid_to as time.Time) and the features.
	// Neither slice is retained by the engine after Row returns, nor may
	// the sink retain them.
	Row(lead []any, features []schema.Value) error
}

// ChunkSink is a Sink that also takes a chunk of rows at once: the
// engine's GetFeaturesForEvents hands it each chunk instead of calling Row
// per row, so that it may convert and write the chunk's columns on
// several cores.
type ChunkSink interface {
	Sink
	// Chunk delivers the chunk's rows, in spine order. The engine does
	// not retain c after Chunk returns, nor may the sink.
	Chunk(c *Chunk) error
}

// Chunk is a chunk of output rows: the leading values of each (as
// Sink.Row's lead) and their features, stored by MakeChunk's columns.
type Chunk struct {
	Lead [][]any
	cols []column
}

// NewChunk returns a chunk of the given rows (for sinks' tests):
// features[r] holds row r's features.
func NewChunk(lead [][]any, features [][]schema.Value) *Chunk {
	nf := 0
	if len(features) > 0 {
		nf = len(features[0])
	}
	c := MakeChunk(len(lead), make([]schema.Type, nf))
	c.Lead = lead
	for r, row := range features {
		for i, v := range row {
			c.Set(r, i, v)
		}
	}
	return c
}

// Len is the number of rows.
func (c *Chunk) Len() int { return len(c.Lead) }

// Features is the number of features of each row.
func (c *Chunk) Features() int { return len(c.cols) }

// Feature returns feature i of row r. It is safe for concurrent use.
func (c *Chunk) Feature(r, i int) schema.Value { return c.cols[i].get(r) }

// Set stores v as feature i of row r. Distinct features may be set
// concurrently (the engine's views fill their columns at once), not the
// same one.
func (c *Chunk) Set(r, i int, v schema.Value) { c.cols[i].set(r, v) }

// WriteRows hands c's rows to sink one Row at a time: what a sink that
// gains nothing from whole chunks does with one.
func (c *Chunk) WriteRows(sink Sink) error {
	vals := make([]schema.Value, c.Features())
	for r, lead := range c.Lead {
		c.row(r, vals)
		if err := sink.Row(lead, vals); err != nil {
			return err
		}
	}
	return nil
}

// A Chunk holds its answers column by column, compactly: a kind and
// 8 bytes per value for numbers, booleans and times (the common case: 9
// bytes instead of a 64-byte schema.Value), other values whole. Rows are
// written in sorted order and read in spine order, so the smaller the
// columns, the fewer cache misses; they also hold a 1M-row chunk of 8
// features in 72 MB instead of 512 MB. Distinct features are distinct
// columns, so the views' workers may fill them concurrently.
type column struct {
	kinds []schema.Kind
	bits  []uint64 // Value.I, or Value.F's bits, by kind
	// other holds the values not stored in bits: allocated at once for a
	// column of strings or arrays, else on first use under mu (two
	// workers fill a column's rows concurrently).
	other []schema.Value
	eager bool // other was allocated with the column
	mu    sync.Mutex
}

// MakeChunk returns a chunk of rows rows whose features, of the given
// types, are all null: the engine fills it with Set and then sets Lead.
func MakeChunk(rows int, types []schema.Type) *Chunk {
	r := &Chunk{cols: make([]column, len(types))}
	for i, t := range types {
		c := &r.cols[i]
		c.kinds, c.bits = make([]schema.Kind, rows), make([]uint64, rows)
		if t.Kind == schema.String || t.Kind == schema.Array {
			c.other, c.eager = make([]schema.Value, rows), true
		}
	}
	return r
}

// set stores v as row r's value.
func (c *column) set(r int, v schema.Value) {
	c.kinds[r] = v.Kind
	if v.S == "" && v.A == nil { // a value of one field: its kind says which
		switch v.Kind {
		case schema.Null:
			if v.I == 0 && v.F == 0 {
				return
			}
		case schema.Float64, schema.Float32:
			if v.I == 0 {
				c.bits[r] = math.Float64bits(v.F)
				return
			}
		case schema.Int64, schema.Int32, schema.Bool, schema.Timestamp:
			if v.F == 0 && !math.Signbit(v.F) {
				c.bits[r] = uint64(v.I)
				return
			}
		}
	}
	c.kinds[r] = kindOther
	if c.eager {
		c.other[r] = v
		return
	}
	c.mu.Lock()
	if c.other == nil {
		c.other = make([]schema.Value, len(c.kinds))
	}
	c.other[r] = v
	c.mu.Unlock()
}

// kindOther marks a value kept whole in column.other.
const kindOther = schema.Kind(255)

// get returns row r's value.
func (c *column) get(r int) schema.Value {
	switch k := c.kinds[r]; k {
	case schema.Null:
		return schema.Value{}
	case schema.Float64, schema.Float32:
		return schema.Value{Kind: k, F: math.Float64frombits(c.bits[r])}
	case kindOther:
		return c.other[r]
	default:
		return schema.Value{Kind: k, I: int64(c.bits[r])}
	}
}

// row writes row r's features into vals.
func (c *Chunk) row(r int, vals []schema.Value) {
	for i := range c.cols {
		vals[i] = c.cols[i].get(r)
	}
}
