package engine

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSortRows: the rows come out in (key, time) order for keys that
// share long prefixes, differ past 8 bytes, are prefixes of each other,
// hold zero bytes or are empty, on one core and on two.
func TestSortRows(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 5))
	alphabet := []string{"", "\x00", "a", "b", "user-", "user-1", "user-12345678", "user-123456789", "\xff"}
	for _, n := range []int{0, 1, 50, 1 << 15} {
		keys := make([]string, n)
		ts := make([]int64, n)
		for i := range keys {
			var k strings.Builder
			for range r.IntN(4) {
				k.WriteString(alphabet[r.IntN(len(alphabet))])
			}
			if r.IntN(3) == 0 {
				k.WriteString("common-prefix-")
				k.WriteString(fmt.Sprint(r.IntN(500)))
			}
			keys[i], ts[i] = k.String(), r.Int64N(5)-2
		}
		if n > 0 && r.IntN(2) == 0 { // every key with one long prefix
			for i := range keys {
				keys[i] = "tenant-0000-" + keys[i]
			}
		}
		o := sortRows(keys, ts)
		require.Len(t, o.rows, n)
		require.Len(t, o.first, n)
		require.Len(t, o.ts, n)
		seen := make([]bool, n)
		for i, row := range o.rows {
			require.Equal(t, ts[row], o.ts[i], "row %d: time", i)
			require.False(t, seen[row], "row %d twice", row)
			seen[row] = true
			if i == 0 {
				require.True(t, o.first[i], "the first row does not start a key")
				continue
			}
			p := o.rows[i-1]
			require.Equal(t, keys[p] != keys[row], o.first[i], "row %d (%q after %q): first", i, keys[row], keys[p])
			c := strings.Compare(keys[p], keys[row])
			require.True(t, c < 0 || (c == 0 && ts[p] <= ts[row]), "rows %d (%q, %d) and %d (%q, %d) out of order", p, keys[p], ts[p], row, keys[row], ts[row])
		}
	}
}
