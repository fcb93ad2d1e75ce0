package bench

import (
	"runtime"
	"testing"
	"time"
)

func TestZZSingleRecordMemory(t *testing.T) {
	db, err := openAds(t.TempDir(), true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	const n = 20000
	for i := range n {
		if _, err := db.Ingest(ingestRequest("m", i, 1, time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	t.Logf("live heap growth after %d single-record ingests: %.1f MB (%.0f bytes/record)", n, float64(m1.HeapAlloc-m0.HeapAlloc)/1e6, float64(m1.HeapAlloc-m0.HeapAlloc)/n)
}
