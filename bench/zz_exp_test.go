package bench

import (
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/featurelog/featurelog/engine"
)

func TestZZExp(t *testing.T) {
	t0 := time.Now()
	h, err := BuildAggHistory(AggHistoryConfig{TempDir: "/tmp/aggexp"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Remove()
	t.Logf("build %v events=%d", time.Since(t0), h.Events)
	t0 = time.Now()
	db, err := h.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	t.Logf("open %v", time.Since(t0))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("heap %d MB", ms.HeapAlloc>>20)
	lat := []time.Duration{}
	for i := 0; i < 20000; i++ {
		req := &engine.GetFeaturesRequest{Workspace: aggWorkspace, Service: aggService, JoinKeys: map[string]any{"user_id": h.Keys[0]}, AsOf: h.End.Add(-time.Duration(i%600) * 100 * time.Millisecond)}
		t1 := time.Now()
		v, err := db.GetFeatures(req)
		lat = append(lat, time.Since(t1))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			for _, f := range v.Features {
				t.Logf("%s %v", f.Name, f.Value)
			}
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("p50 %v p99 %v", lat[len(lat)/2], lat[len(lat)*99/100])
}
