package tiles

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRefTable checks refTable against a Go map through growth, with
// keys whose hashes are equal (they must be told apart by key) and
// hashes that share their probe start.
func TestRefTable(t *testing.T) {
	var tab refTable
	want := map[string]*KeyRef{}
	hash := func(i int) uint64 {
		switch i % 3 {
		case 0:
			return 42 // every third key has the same hash
		case 1:
			return uint64(i) << 6 // distinct, consecutive starts
		}
		return uint64(i)*0x9E3779B97F4A7C15 | 63 // spread, all of stripe 63
	}
	for i := range 5000 {
		key := fmt.Sprintf("k%d", i)
		require.Nil(t, tab.get(hash(i), key), key)
		r := &KeyRef{key: key}
		tab.put(hash(i), r)
		want[key] = r
		if i%97 == 0 {
			for j := 0; j <= i; j += 13 {
				k := fmt.Sprintf("k%d", j)
				require.Same(t, want[k], tab.get(hash(j), k), k)
			}
		}
	}
	require.Equal(t, len(want), tab.n)
	seen := 0
	for _, s := range tab.slots {
		if s.ref != nil {
			require.Same(t, want[s.ref.key], s.ref)
			seen++
		}
	}
	require.Equal(t, len(want), seen)
	require.Nil(t, tab.get(42, "absent"))
}
