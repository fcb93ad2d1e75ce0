package engine

import (
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"testing"
	"time"
)

func BenchmarkScratchIngest(b *testing.B) {
	data, _ := os.ReadFile("../examples/ads/features.yaml")
	db, err := Open(Options{Dir: b.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Apply("f.yaml", data); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	const per = 1000
	reqs := make([]*IngestRequest, 64)
	for i := range reqs {
		recs := make([]map[string]any, per)
		for j := range recs {
			recs[j] = map[string]any{"user_id": fmt.Sprintf("u%d", (i*per+j)%50000), "timestamp": now.Add(-time.Duration(j) * time.Millisecond), "clicked": int64(j % 2)}
		}
		reqs[i] = &IngestRequest{Workspace: "ads", Records: map[string][]map[string]any{"impressions_event_source": recs}}
	}
	b.ResetTimer()
	var wg sync.WaitGroup
	n := b.N
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; i < n; i += 4 {
				if _, err := db.Ingest(reqs[i%len(reqs)]); err != nil {
					panic(err)
				}
			}
		}(g)
	}
	wg.Wait()
	b.ReportMetric(float64(b.N*per)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkScratchGet(b *testing.B) {
	data, _ := os.ReadFile("../examples/ads/features.yaml")
	db, err := Open(Options{Dir: b.TempDir(), Logger: slog.New(slog.DiscardHandler), NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.Apply("f.yaml", data)
	now := time.Now()
	for i := 0; i < 100; i++ {
		recs := make([]map[string]any, 1000)
		for j := range recs {
			recs[j] = map[string]any{"user_id": fmt.Sprintf("u%d", (i*1000+j)%50000), "timestamp": now.Add(-time.Duration(j) * time.Second), "clicked": int64(j % 2)}
		}
		db.Ingest(&IngestRequest{Workspace: "ads", Records: map[string][]map[string]any{"impressions_event_source": recs}})
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		_, err := db.GetFeatures(&GetFeaturesRequest{Workspace: "ads", Service: "ad_ctr_feature_service", JoinKeys: map[string]any{"user_id": fmt.Sprintf("u%d", i%50000)}})
		lat = append(lat, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}
