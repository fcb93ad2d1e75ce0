package engine

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/featurelog/featurelog/schema"
)

// Entity keys. A view's entity key is the byte string of its join-key
// values: for one String join key the string itself (the common case, no
// copy); otherwise each value as kind byte + fixed or length-prefixed
// bytes, so distinct tuples never collide. Entity keys are the keys of
// segments and are digested in ERASURES: part of the on-disk format
// (docs/format/attributes.md, "Entity keys"); do not change.

// appendKey appends the key of the join-key values vals.
func appendKey(dst []byte, vals []schema.Value) []byte {
	for _, v := range vals {
		dst = append(dst, byte(v.Kind))
		switch v.Kind {
		case schema.String:
			dst = binary.AppendUvarint(dst, uint64(len(v.S)))
			dst = append(dst, v.S...)
		case schema.Float64, schema.Float32:
			dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(v.F))
		default:
			dst = binary.BigEndian.AppendUint64(dst, uint64(v.I))
		}
	}
	return dst
}

// entityKey returns the key of row's join keys at keyIdx.
func entityKey(row []schema.Value, keyIdx []int, scratch []byte) (string, []byte) {
	if len(keyIdx) == 1 && row[keyIdx[0]].Kind == schema.String {
		return row[keyIdx[0]].S, scratch
	}
	scratch = scratch[:0]
	var one [1]schema.Value
	for _, i := range keyIdx {
		one[0] = row[i]
		scratch = appendKey(scratch, one[:])
	}
	return string(scratch), scratch
}

// Number is a JSON number literal, as the HTTP layer passes join-key values
// it has not interpreted yet (schema.Number).
type Number = schema.Number

// joinKeyValue converts a join-key value given by a caller to the key
// column's type. Int keys accept integers, integral JSON numbers and
// decimal strings (int64 travels as a string in Tecton's JSON).
func joinKeyValue(x any, t schema.Type) (schema.Value, error) {
	if x == nil {
		return schema.Value{}, fmt.Errorf("is null; join keys must have a value")
	}
	if t.Kind.Integral() {
		switch n := x.(type) {
		case Number:
			x = string(n)
		}
		if s, ok := x.(string); ok {
			i, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
			if err != nil {
				return schema.Value{}, fmt.Errorf("%q is not an integer; the key is %v", s, t)
			}
			return schema.IntOfKind(i, t.Kind)
		}
	}
	if n, ok := x.(Number); ok {
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil {
			return schema.Value{}, fmt.Errorf("%s is not a number", string(n))
		}
		x = f
	}
	return schema.FromAny(x, t)
}
