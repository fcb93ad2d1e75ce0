package tiles

import (
	"fmt"
	"testing"

	"github.com/featurelog/featurelog/schema"
)

// keyStateCases are the key sizes the key state benchmarks cover: a small
// key and a large tiled one (one event per 10 seconds), for a continuous
// and an interval view of hotSpec.
var keyStateCases = []struct {
	interval int64
	n        int
}{{0, 20}, {0, 10000}, {10 * Minute, 20}, {10 * Minute, 10000}}

func keyStateCaseName(interval int64, n int) string {
	return fmt.Sprintf("interval=%s/events=%d", intervalName(interval), n)
}

// BenchmarkAppendKeyState encodes a key from a store.
func BenchmarkAppendKeyState(b *testing.B) {
	for _, c := range keyStateCases {
		b.Run(keyStateCaseName(c.interval, c.n), func(b *testing.B) {
			s, _ := benchStore(b, c.interval, c.n)
			buf, _ := s.AppendKeyState(nil, "k")
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				buf, _ = s.AppendKeyState(buf[:0], "k")
			}
		})
	}
}

// BenchmarkDecodeKeyState decodes a key's state, as a segment read on a
// cache miss does; continuous views rebuild their tiles.
func BenchmarkDecodeKeyState(b *testing.B) {
	for _, c := range keyStateCases {
		b.Run(keyStateCaseName(c.interval, c.n), func(b *testing.B) {
			s, _ := benchStore(b, c.interval, c.n)
			buf, _ := s.AppendKeyState(nil, "k")
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.DecodeKeyState(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMergeKeyStates merges a key's state from two sources that
// split its events by log sequence (older and newer halves), as
// compaction does.
func BenchmarkMergeKeyStates(b *testing.B) {
	for _, c := range keyStateCases {
		b.Run(keyStateCaseName(c.interval, c.n), func(b *testing.B) {
			s, _ := benchStore(b, c.interval, c.n)
			parts := halves(b, s)
			b.ReportAllocs()
			for b.Loop() {
				s.MergeKeyStates(parts)
			}
		})
	}
}

// halves returns the states of the older and newer half of the events of
// s's key "k" (storeBenchEvents).
func halves(b *testing.B, s *Store) []*KeyState {
	evs, _ := storeBenchEvents(s.Own("k").Events())
	var parts []*KeyState
	for h := range 2 {
		p := mustStore(b, s.spec, HotTier{})
		for _, e := range evs[h*len(evs)/2 : (h+1)*len(evs)/2] {
			p.Add("k", e.o, e.vals)
		}
		parts = append(parts, p.Own("k"))
	}
	return parts
}

// BenchmarkReadWith reads every feature of a key whose events are split
// between the store and a decoded state of another source.
func BenchmarkReadWith(b *testing.B) {
	for _, c := range keyStateCases {
		b.Run(keyStateCaseName(c.interval, c.n), func(b *testing.B) {
			s, end := benchStore(b, c.interval, c.n)
			parts := halves(b, s)
			out := make([]schema.Value, len(s.spec.Features))
			b.ReportAllocs()
			i := int64(0)
			for b.Loop() {
				s.ReadWith("k", end-(i%100)*7*Second, out, false, parts)
				i++
			}
		})
	}
}

// BenchmarkDecodeAndRead decodes a key's state and reads every feature
// from it: the cost of a cold key, including building a continuous
// view's tiles.
func BenchmarkDecodeAndRead(b *testing.B) {
	for _, c := range keyStateCases {
		b.Run(keyStateCaseName(c.interval, c.n), func(b *testing.B) {
			s, end := benchStore(b, c.interval, c.n)
			buf, _ := s.AppendKeyState(nil, "k")
			out := make([]schema.Value, len(s.spec.Features))
			b.ReportAllocs()
			for b.Loop() {
				ks, err := s.DecodeKeyState(buf)
				if err != nil {
					b.Fatal(err)
				}
				s.ReadWith("k", end, out, false, []*KeyState{ks})
			}
		})
	}
}

// BenchmarkOwn snapshots a key, as reads of frozen memtables do, before
// and after Freeze.
func BenchmarkOwn(b *testing.B) {
	for _, c := range keyStateCases {
		for _, frozen := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/frozen=%v", keyStateCaseName(c.interval, c.n), frozen), func(b *testing.B) {
				s, _ := benchStore(b, c.interval, c.n)
				if frozen {
					s.Freeze()
				}
				b.ReportAllocs()
				for b.Loop() {
					s.Own("k")
				}
			})
		}
	}
}
