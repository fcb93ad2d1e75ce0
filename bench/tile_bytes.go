package bench

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/featurelog/featurelog/schema"
	"github.com/featurelog/featurelog/tiles"
)

// TileBytesConfig configures RunTileBytes.
type TileBytesConfig struct {
	// Tiles is the number of tiles created. Default 1,000,000.
	Tiles int
	// Input is the aggregated column's type. Default Float64 (the amount
	// of the aggregate workload).
	Input schema.Kind
	// Functions are the aggregators of each tile. Default count, sum,
	// min, max.
	Functions []string
}

// EnsureDefaults fills in unset fields.
func (c *TileBytesConfig) EnsureDefaults() {
	if c.Tiles == 0 {
		c.Tiles = 1_000_000
	}
	if c.Input == 0 {
		c.Input = schema.Float64
	}
	if c.Functions == nil {
		c.Functions = []string{"count", "sum", "min", "max"}
	}
}

// Validate reports a configuration that cannot run.
func (c *TileBytesConfig) Validate() error {
	if c.Tiles <= 0 || len(c.Functions) == 0 {
		return errors.New("bench: Tiles and Functions must be positive")
	}
	for _, f := range c.Functions {
		if err := (tiles.Agg{Function: f, Input: schema.ScalarType(c.Input)}).Validate(); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	return nil
}

// TileBytesResult is what RunTileBytes measured, in bytes per tile.
type TileBytesResult struct {
	// States is the heap of the states a tiles.Store tile keeps for the
	// functions: those of tiles.Fuse's plan (which folds count, sum,
	// min, max and mean of one column into one moments state).
	States float64
	// Separate is the heap of one tiles.Agg.New() state per function,
	// unfused.
	Separate float64
	// Tile adds to States the []tiles.State a Store tile holds them in
	// (tiles/store.go, level.tile): what a tile costs but for its entries
	// in the level's start-time and tile indexes.
	Tile float64
	// MemSize is the planned states' own estimate (State.MemSize), summed.
	MemSize int
	// Planned names the planned states' functions.
	Planned []string
}

// RunTileBytes measures the heap that the partial-aggregate states of
// one tile take: it creates Tiles tiles' states, keeping them
// reachable, and divides the growth of the live heap (runtime.MemStats
// HeapAlloc after a GC) by Tiles. The states are the tiles package's
// own, planned as a Store plans them; nothing is added to them (these
// functions' states have a fixed size, empty or not).
func RunTileBytes(cfg TileBytesConfig) (TileBytesResult, error) {
	var out TileBytesResult
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return out, err
	}
	aggs := make([]tiles.Agg, len(cfg.Functions))
	for i, f := range cfg.Functions {
		aggs[i] = tiles.Agg{Function: f, Input: schema.ScalarType(cfg.Input)}
	}
	planned := tiles.Fuse(aggs, make([]int, len(aggs))).States // all on one column
	for _, a := range planned {
		out.MemSize += a.New().MemSize()
		out.Planned = append(out.Planned, a.Function)
	}
	out.States = stateBytes(cfg.Tiles, planned)
	out.Separate = stateBytes(cfg.Tiles, aggs)
	// As a Store tile holds them: a []State per tile.
	index := make([][]tiles.State, cfg.Tiles)
	out.Tile = heapGrowth(cfg.Tiles, func() {
		for i := range index {
			states := make([]tiles.State, len(planned))
			for ai, a := range planned {
				states[ai] = a.New()
			}
			index[i] = states
		}
	})
	runtime.KeepAlive(index)
	return out, nil
}

// stateBytes returns the heap per tile of one state of each of aggs,
// stored into an index allocated before the first reading.
func stateBytes(n int, aggs []tiles.Agg) float64 {
	flat := make([]tiles.State, n*len(aggs))
	b := heapGrowth(n, func() {
		for i := range flat {
			flat[i] = aggs[i%len(aggs)].New()
		}
	})
	runtime.KeepAlive(flat)
	return b
}

// heapGrowth returns the live heap that fill adds, per each of n items.
// fill must keep what it allocates reachable until heapGrowth returns.
func heapGrowth(n int, fill func()) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fill()
	runtime.GC()
	runtime.ReadMemStats(&after)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
}
