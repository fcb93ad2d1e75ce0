package schema

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestAppendJSON pins the SPEC §4 encodings every JSON answer and JSON
// Lines result uses.
func TestAppendJSON(t *testing.T) {
	for _, c := range []struct {
		v    Value
		want string
	}{
		{Value{}, `null`},
		{Str("a\"b\xff"), `"a\"b` + "\ufffd" + `"`},
		{Int(math.MaxInt64), `"9223372036854775807"`},
		{Int32Val(-3), `"-3"`},
		{Float(2.5), `2.5`},
		{Float32Val(0.1), `0.1`},
		{Float(math.NaN()), `"NaN"`},
		{Float(math.Inf(1)), `"Infinity"`},
		{Float(math.Inf(-1)), `"-Infinity"`},
		{BoolVal(true), `true`},
		{Time(time.Date(2025, 6, 1, 2, 3, 4, 5, time.FixedZone("x", 3600))), `"2025-06-01T01:03:04.000000005Z"`},
		{ArrayVal([]Value{Int(1), Str("x"), {}}), `["1","x",null]`},
	} {
		assert.Equal(t, c.want, string(AppendJSON(nil, c.v)), "%#v", c.v)
	}
}
