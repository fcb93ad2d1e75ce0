package repo

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestParseDuration(t *testing.T) {
	good := map[string]time.Duration{
		"90s": 90 * time.Second, "10m": 10 * time.Minute, "1h": time.Hour,
		"36h": 36 * time.Hour, "7d": 7 * 24 * time.Hour, "1h30m": 90 * time.Minute,
		"1d12h": 36 * time.Hour, "2d3h4m5s": 2*Day + 3*time.Hour + 4*time.Minute + 5*time.Second,
	}
	for s, want := range good {
		got, err := ParseDuration(s)
		assert.NoError(t, err, s)
		assert.Equal(t, want, got, s)
	}
	for _, s := range []string{"", "0s", "0d", "-1h", "1.5h", "1 h", "h", "1", "1w", "1ms", "1m1h", "1h1h", "1H", " 1h", "99999999999999d", "106752d", "106751d24h"} {
		_, err := ParseDuration(s)
		assert.Error(t, err, s)
	}
}

func TestFormatDuration(t *testing.T) {
	cases := map[time.Duration]string{
		24 * time.Hour: "1d", 36 * time.Hour: "36h", 90 * time.Minute: "90m", 90 * time.Second: "90s",
		7 * Day: "7d", 48 * time.Hour: "2d", time.Hour: "1h", 0: "0s", 1500 * time.Millisecond: "1.5s",
	}
	for d, want := range cases {
		assert.Equal(t, want, FormatDuration(d))
	}
	for _, s := range []string{"90s", "10m", "36h", "7d", "1d"} { // round trip
		d, err := ParseDuration(s)
		assert.NoError(t, err)
		assert.Equal(t, s, FormatDuration(d))
	}
}

func TestValidName(t *testing.T) {
	for _, s := range []string{"a", "_x", "user_id", "A1", strings.Repeat("x", MaxNameLen)} {
		assert.True(t, ValidName(s), s)
	}
	for _, s := range []string{"", "1a", "a-b", "a b", "a.b", "é", strings.Repeat("x", MaxNameLen+1)} {
		assert.False(t, ValidName(s), s)
	}
	assert.True(t, ValidWorkspaceName("ingestapi-live"))
	assert.False(t, ValidWorkspaceName("_ws"))
	assert.False(t, ValidWorkspaceName("-ws"))
	assert.Equal(t, "user_id", fixName("user-id"))
	assert.Equal(t, "_1st", fixName("1st"))
	assert.Equal(t, "", fixName(""))
}

// TestDefaultFeatureNames checks the SPEC §1 examples of default names.
func TestDefaultFeatureNames(t *testing.T) {
	cases := []struct {
		f        Feature
		interval time.Duration
		want     string
	}{
		{Feature{Input: "clicked", Function: "count", Window: Window{Size: time.Hour}}, 0, "clicked_count_1h_continuous"},
		{Feature{Input: "amt", Function: "mean", Window: Window{Size: 3 * Day}}, 10 * time.Minute, "amt_mean_3d_10m"},
		{Feature{Input: "clicked", Function: "sum", Window: Window{Lifetime: true}}, 10 * time.Minute, "clicked_sum_lifetime_10m"},
		{Feature{Input: "clicked", Function: "sum", Window: Window{Size: time.Hour, Offset: time.Hour}}, 0, "clicked_sum_1h_offset_1h_continuous"},
		{Feature{Input: "clicked", Function: "last_n", N: 10, Window: Window{Size: time.Hour}}, 0, "clicked_last_10_1h_continuous"},
		{Feature{Input: "clicked", Function: "first_n", N: 10, Window: Window{Size: time.Hour}}, 0, "clicked_first_10_1h_continuous"},
		{Feature{Input: "clicked", Function: "last_distinct_n", N: 10, Window: Window{Size: time.Hour, Offset: time.Hour}}, 0, "clicked_last_distinct_10_1h_offset_1h_continuous"},
		{Feature{Input: "clicked", Function: "first_distinct_n", N: 10, Window: Window{Size: time.Hour}}, 0, "clicked_first_distinct_10_1h_continuous"},
		{Feature{Input: "x", Function: "approx_percentile", Percentile: 0.95, Window: Window{Size: Day}}, 0, "x_approx_percentile_p95_1d_continuous"},
		{Feature{Input: "x", Function: "approx_percentile", Percentile: 0.999, Window: Window{Size: Day}}, 0, "x_approx_percentile_p99_9_1d_continuous"},
		{Feature{Input: "x", Function: "approx_count_distinct", Precision: 8, Window: Window{Size: 36 * time.Hour}}, time.Hour, "x_approx_count_distinct_36h_1h"},
		{Feature{Input: "x", Function: "max", Window: Window{Size: 90 * time.Minute}}, 90 * time.Second, "x_max_90m_90s"},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, defaultFeatureName(&c.f, intervalLabel(c.interval)))
	}
}

func TestPercentileLabel(t *testing.T) {
	cases := map[float64]string{0.95: "95", 0.999: "99_9", 0.5: "50", 0: "0", 1: "100", 0.001: "0_1", 0.9999: "99_99", 0.07: "7"}
	for q, want := range cases {
		assert.Equal(t, want, percentileLabel(q), "%v", q)
	}
}
