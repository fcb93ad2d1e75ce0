// Package tiles holds featurelog's partial aggregates and the tile store
// that serves windowed aggregate features (SPEC §3).
//
// An Agg is one aggregation function over one input column; its State is
// a mergeable partial aggregate with a compact versioned encoding
// (docs/format/tiles.md). A Store keeps, per entity key, a State per
// aggregator for every tile of nested epoch-aligned levels (10s, 1m, 10m,
// 1h, 1d, 10d, 100d for continuous views; an interval view's interval and
// the coarser of those that are multiples of it), plus the raw events that the
// unaligned edges of continuous windows need, so any window is answered
// exactly from tens of tiles:
//
//	st, _ := tiles.NewStore(tiles.Spec{
//		Aggs:     []tiles.Agg{{Function: "count", Input: schema.ScalarType(schema.Int64)}},
//		AggInput: []int{0},
//		Features: []tiles.Feature{{Agg: 0, Window: tiles.Window{Size: tiles.Hour}}},
//		Start:    math.MinInt64,
//	}, tiles.HotTier{})
//	st.Add("user-1", tiles.Order{TS: ts, Seq: seq}, []schema.Value{schema.Int(1)})
//	out := make([]schema.Value, 1)
//	st.Read("user-1", now, out) // count over [now−1h, now)
//
// A HotTier (a fastcache) caches merged tile ranges; it is never the only
// copy of anything, and a per-key generation keeps stale entries from
// being found (see hot.go).
//
// A KeyState is one key's state detached from its Store, for an LSM whose
// memtables (Stores) and segments each hold the key's events of a range
// of log sequence. AppendKeyState encodes a key of a Store
// (docs/format/tiles.md, "Key state"), DecodeKeyState reads it back,
// MergeKeyStates combines the states of several sources (compaction), and
// ReadWith reads a key across sources:
//
//	b, _ := memtable.AppendKeyState(nil, "user-1") // flush
//	seg, err := st.DecodeKeyState(b)               // segment read
//	st.ReadWith("user-1", now, out, true, []*tiles.KeyState{seg})
package tiles
