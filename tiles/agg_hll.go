package tiles

import (
	"encoding/binary"
	"math"
	"slices"
	"unsafe"

	"github.com/axiomhq/hyperloglog"
	metro "github.com/dgryski/go-metro"

	"github.com/featurelog/featurelog/schema"
)

// approx_count_distinct: HyperLogLog (github.com/axiomhq/hyperloglog,
// dense registers, LogLog-Beta estimator) behind an exact small mode.
//
// Values are hashed by their typed encoding (hashValue), so 1 (Int64), "1"
// (String) and 1.0 (Float64) are three values. A state starts small: a
// sorted set of up to smallMax(p) distinct 64-bit hashes, whose result is
// exact (up to 64-bit hash collisions). Beyond that it turns into 2^p
// HyperLogLog registers (standard error 1.04/√(2^p): 6.5% at the default
// p = 8, 0.4% at p = 16). The mode never depends on merge order: a union
// of at most smallMax hashes has no part beyond it, so every part is
// small and the merged set is the union; a larger union ends dense with
// the registers of the union, which max-merging yields in any order. The
// library's own sparse mode is not used because when it turns dense
// depends on insertion history, and with it the estimate.

// hashSeed is the go-metro seed, the one hyperloglog.Sketch.Insert uses.
// Part of the on-disk format (stored hashes and registers depend on it);
// do not change.
const hashSeed = 1337

// smallMax is the most hashes a small state holds: no more bytes than the
// registers, and at most 256 so that inserting stays cheap.
func smallMax(p uint8) int { return min((1<<p)/8, 256) }

// hllState is approx_count_distinct.
type hllState struct {
	small []uint64            // sorted distinct hashes, while !dense
	sk    *hyperloglog.Sketch // registers when dense; kept for reuse after Reset
	buf   []byte              // scratch for the typed encoding of a value
	p     uint8               // precision, 4..16
	dense bool
}

func newHLLState(p uint8) *hllState { return &hllState{p: p} }

// Hash tags of the typed encoding. Int32 hashes as Int64 and Float32 as
// Float64 (the same number is the same value). Part of the on-disk format;
// do not change.
const (
	hashTagString = 1
	hashTagInt    = 2
	hashTagFloat  = 4
	hashTagBool   = 6
	hashTagTime   = 7
)

// hashValue returns the hash of v's typed encoding: a tag byte, then the
// string's bytes, or 8 little-endian bytes of I or of the canonical float
// bits (every NaN one value, -0 equal to +0), or one Bool byte. buf is
// scratch.
func hashValue(v schema.Value, buf *[]byte) uint64 {
	b := (*buf)[:0]
	switch v.Kind {
	case schema.String:
		b = append(append(b, hashTagString), v.S...)
	case schema.Float64, schema.Float32:
		b = binary.LittleEndian.AppendUint64(append(b, hashTagFloat), canonFloatBits(v.F))
	case schema.Bool:
		b = append(b, hashTagBool, byte(v.I))
	case schema.Timestamp:
		b = binary.LittleEndian.AppendUint64(append(b, hashTagTime), uint64(v.I))
	default:
		b = binary.LittleEndian.AppendUint64(append(b, hashTagInt), uint64(v.I))
	}
	*buf = b
	return metro.Hash64(b, hashSeed)
}

func (s *hllState) Add(v schema.Value, _ Order) { s.addHash(hashValue(v, &s.buf)) }

func (s *hllState) addHash(h uint64) {
	if s.dense {
		s.sk.InsertHash(h)
		return
	}
	i, found := slices.BinarySearch(s.small, h)
	switch {
	case found:
	case len(s.small) < smallMax(s.p):
		s.small = slices.Insert(s.small, i, h)
	default:
		s.toDense()
		s.sk.InsertHash(h)
	}
}

// toDense moves the small set into registers.
func (s *hllState) toDense() {
	if s.sk == nil {
		sk, err := hyperloglog.NewSketch(s.p, false)
		if err != nil {
			panic("BUG: tiles: " + err.Error())
		}
		s.sk = sk
	} else {
		s.sk.Reset()
	}
	for _, h := range s.small {
		s.sk.InsertHash(h)
	}
	s.small = s.small[:0]
	s.dense = true
}

func (s *hllState) Merge(other State) {
	o, ok := other.(*hllState)
	if !ok || o.p != s.p {
		mergeMismatch(s, other)
	}
	if !o.dense {
		for _, h := range o.small {
			s.addHash(h)
		}
		return
	}
	if !s.dense {
		s.toDense()
	}
	if err := s.sk.Merge(o.sk); err != nil {
		panic("BUG: tiles: " + err.Error())
	}
}

// Result is the number of distinct hashes while small, else the
// HyperLogLog estimate. Estimate does not modify a dense sketch.
func (s *hllState) Result() schema.Value {
	if !s.dense {
		return schema.Int(int64(len(s.small)))
	}
	return schema.Int(int64(min(s.sk.Estimate(), math.MaxInt64)))
}

func (s *hllState) Reset() {
	s.small = s.small[:0]
	s.dense = false
}

func (s *hllState) Empty() bool { return !s.dense && len(s.small) == 0 }

func (s *hllState) Clone() State {
	c := &hllState{p: s.p, dense: s.dense, small: slices.Clone(s.small)}
	if s.dense {
		c.sk = s.sk.Clone()
	}
	return c
}

func (s *hllState) MemSize() int {
	n := int(unsafe.Sizeof(*s)) + 8*cap(s.small) + cap(s.buf)
	if s.sk != nil {
		n += 64 + 1<<s.p
	}
	return n
}

func (s *hllState) code() byte { return codeHLL }

// HLL payload modes. Part of the on-disk format; do not change.
const (
	hllSmall = 0
	hllDense = 1
)

// AppendBinary appends p:u8 mode:u8, then for small count:uvarint and the
// sorted hashes as u64 each, for dense the library's encoding of the
// registers (hyperloglog.Sketch.AppendBinary, version 2 dense).
func (s *hllState) AppendBinary(dst []byte) []byte {
	dst = appendHeader(dst, codeHLL)
	if !s.dense {
		dst = binary.AppendUvarint(append(dst, s.p, hllSmall), uint64(len(s.small)))
		for _, h := range s.small {
			dst = binary.LittleEndian.AppendUint64(dst, h)
		}
		return dst
	}
	dst, err := s.sk.AppendBinary(append(dst, s.p, hllDense))
	if err != nil {
		panic("BUG: tiles: " + err.Error())
	}
	return dst
}

func (s *hllState) decode(r *reader) {
	if p := r.u8(); r.ok() && p != s.p {
		r.back(1)
		r.fail("precision %d, want %d", p, s.p)
	}
	switch mode := r.u8(); {
	case !r.ok():
	case mode == hllSmall:
		s.decodeSmall(r)
	case mode == hllDense:
		s.decodeDense(r)
	default:
		r.back(1)
		r.fail("unknown mode %d", mode)
	}
}

func (s *hllState) decodeSmall(r *reader) {
	n := r.count(smallMax(s.p), 8)
	for i := 0; i < n && r.ok(); i++ {
		h := r.u64()
		if i > 0 && h <= s.small[i-1] {
			r.fail("hashes not strictly increasing")
		}
		s.small = append(s.small, h)
	}
}

func (s *hllState) decodeDense(r *reader) {
	// Check the library's header first (version 2, this precision, dense)
	// so that a sparse or other sketch is never loaded into s.sk.
	b := r.b[r.off:]
	if len(b) < 4 || b[0] != 2 || b[1] != s.p || b[3] != 0 {
		r.fail("registers are not a version 2 dense sketch of precision %d", s.p)
		return
	}
	if s.sk == nil {
		s.sk = &hyperloglog.Sketch{}
	}
	if err := s.sk.UnmarshalBinary(b); err != nil { // validates every register
		r.fail("registers: %v", err)
		return
	}
	r.off = len(r.b)
	s.dense = true
}
