package bench

import (
	"testing"
	"time"
)

func TestZZBuild(t *testing.T) {
	t0 := time.Now()
	h, err := BuildAggHistory(AggHistoryConfig{TempDir: "/tmp/aggexp", Events: 6_048_000})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Remove()
	t.Logf("build %v events=%d", time.Since(t0), h.Events)
}
