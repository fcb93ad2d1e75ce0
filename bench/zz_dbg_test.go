package bench

import (
	"testing"
	"time"
)

func TestZZIngest(t *testing.T) {
	for _, ns := range []bool{true, false} {
		res, err := RunAggIngest(AggIngestConfig{TempDir: t.TempDir(), NoSync: ns, Loop: Loop{Duration: 4 * time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("nosync=%v plain %.0f rec/s p50 %v p99 %v; views %.0f rec/s p50 %v p99 %v ratio %.2f", ns, res.Plain.RecordsPerSec, res.Plain.Latency.P50, res.Plain.Latency.P99,
			res.Views.RecordsPerSec, res.Views.Latency.P50, res.Views.Latency.P99, res.Views.RecordsPerSec/res.Plain.RecordsPerSec)
	}
}
