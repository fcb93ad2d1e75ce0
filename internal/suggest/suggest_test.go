package suggest

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

var functions = []string{
	"count", "sum", "min", "max", "mean", "last", "last_n", "first_n",
	"last_distinct_n", "first_distinct_n", "var_samp", "stddev_samp",
	"var_pop", "stddev_pop", "approx_count_distinct", "approx_percentile",
}

func TestClosest(t *testing.T) {
	cases := []struct {
		word, want string
		ok         bool
	}{
		{"cnt", "count", true},
		{"coutn", "count", true}, // transposition
		{"COUNT", "count", true}, // case only
		{"avg", "", false},       // a synonym is not a misspelling
		{"stdev_samp", "stddev_samp", true},
		{"approx_percentil", "approx_percentile", true},
		{"lastn", "last_n", true},
		{"last_distinct", "last_distinct_n", true},
		{"xyz", "", false},
		{"", "", false},
	}
	for _, c := range cases {
		got, ok := Closest(c.word, functions)
		assert.Equal(t, c.ok, ok, c.word)
		assert.Equal(t, c.want, got, c.word)
	}
}

func TestClosestKeys(t *testing.T) {
	keys := []string{"workspace", "entities", "sources", "feature_views", "feature_services"}
	got, ok := Closest("entites", keys)
	assert.True(t, ok)
	assert.Equal(t, "entities", got)
	got, ok = Closest("featureviews", keys)
	assert.True(t, ok)
	assert.Equal(t, "feature_views", got)
	_, ok = Closest("anything", nil)
	assert.False(t, ok)
}

func TestClosestExtension(t *testing.T) {
	features := []string{"clicked_count_1h_continuous", "clicked_sum_1h_continuous", "clicked_count_12h_continuous"}
	got, ok := Closest("clicked_sum_1h", features)
	assert.True(t, ok)
	assert.Equal(t, "clicked_sum_1h_continuous", got)
	_, ok = Closest("clicked_count_1", features) // begins two candidates
	assert.False(t, ok)
	_, ok = Closest("cl", []string{"clicked"}) // too short to be a truncation
	assert.False(t, ok)
}

func TestClosestPrefersNearestThenFirst(t *testing.T) {
	got, _ := Closest("mix", []string{"max", "min"}) // both at distance 1
	assert.Equal(t, "max", got)
	got, _ = Closest("mina", []string{"max", "min"}) // min is nearer
	assert.Equal(t, "min", got)
}

func TestDistance(t *testing.T) {
	cases := []struct {
		a, b string
		d    int
	}{
		{"", "", 0},
		{"a", "", 1},
		{"", "abc", 3},
		{"kitten", "sitting", 3},
		{"ab", "ba", 1},
		{"ca", "abc", 3}, // OSA, not full Damerau: no edit of a transposed pair
		{"héllo", "hello", 1},
	}
	for _, c := range cases {
		assert.Equal(t, c.d, distance([]rune(c.a), []rune(c.b)), "%q %q", c.a, c.b)
		assert.Equal(t, c.d, distance([]rune(c.b), []rune(c.a)), "%q %q", c.b, c.a)
	}
}
