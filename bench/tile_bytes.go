package bench

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/featurelog/featurelog/internal/schema"
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
	// States is the heap the tile's states take: one tiles.Agg.New()
	// per function.
	States float64
	// Tile adds the []tiles.State a tiles.Store tile holds them in
	// (tiles/store.go, level.tile): what a tile costs but for the
	// level's start-time and tile index entries.
	Tile float64
	// MemSize is the states' own estimate (tiles.State.MemSize), summed.
	MemSize int
}

// RunTileBytes measures the heap that the partial-aggregate states of
// one tile take: it creates Tiles tiles' states, keeping them
// reachable, and divides the growth of the live heap (runtime.MemStats
// HeapAlloc after a GC) by Tiles. The states are the tiles package's own,
// as the Store makes them; nothing is added to them (an empty state has
// the size of a full one: they are fixed-size for these functions).
func RunTileBytes(cfg TileBytesConfig) (TileBytesResult, error) {
	var out TileBytesResult
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return out, err
	}
	aggs := make([]tiles.Agg, len(cfg.Functions))
	for i, f := range cfg.Functions {
		aggs[i] = tiles.Agg{Function: f, Input: schema.ScalarType(cfg.Input)}
		out.MemSize += aggs[i].New().MemSize()
	}
	// States only, into an index allocated before the first reading.
	flat := make([]tiles.State, cfg.Tiles*len(aggs))
	out.States = heapGrowth(cfg.Tiles, func() {
		for i := range flat {
			flat[i] = aggs[i%len(aggs)].New()
		}
	})
	runtime.KeepAlive(flat)
	flat = nil
	// As the Store holds them: a []State per tile.
	index := make([][]tiles.State, cfg.Tiles)
	out.Tile = heapGrowth(cfg.Tiles, func() {
		for i := range index {
			states := make([]tiles.State, len(aggs))
			for ai, a := range aggs {
				states[ai] = a.New()
			}
			index[i] = states
		}
	})
	runtime.KeepAlive(index)
	return out, nil
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
