package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/featurelog/featurelog/client"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
)

// exampleNode starts a node without auth whose workspace ads holds the
// clicks of clicks(), for the examples; stop ends it.
func exampleNode() (url string, stop func()) {
	dir, err := os.MkdirTemp("", "featurelog-example")
	if err != nil {
		log.Fatal(err)
	}
	db, err := engine.Open(engine.Options{Dir: dir, Now: func() time.Time { return t0 }, NoSync: true, Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	repo, err := os.ReadFile(filepath.Join("..", "examples", "ads", "features.yaml"))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := db.Apply("features.yaml", repo); err != nil {
		log.Fatal(err)
	}
	srv, err := httpapi.New(db, httpapi.Options{NoAuth: true, Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	c, _ := client.New(ts.URL, client.Options{})
	if _, err := c.Ingest(context.Background(), client.IngestRequest{Workspace: "ads", Records: clicks()}); err != nil {
		log.Fatal(err)
	}
	return ts.URL, func() {
		ts.Close()
		db.Close()
		os.RemoveAll(dir)
	}
}

func Example() {
	url, stop := exampleNode()
	defer stop()

	c, err := client.New(url, client.Options{APIKey: os.Getenv("FEATURELOG_API_KEY")})
	if err != nil {
		log.Fatal(err)
	}
	resp, err := c.GetFeatures(context.Background(), client.GetFeaturesRequest{
		Workspace: "ads", Service: "ad_ctr_feature_service_v2",
		JoinKeyMap: map[string]any{"user_id": "u1"},
		Metadata:   client.MetadataOptions{IncludeNames: true},
	})
	if err != nil {
		log.Fatal(err)
	}
	for i, f := range resp.Metadata.Features {
		fmt.Printf("%s = %s\n", f.Name, resp.Result.Features[i])
	}
	// Output:
	// click_events_fv.clicked = "0"
	// user_click_counts.clicked_count_1h_continuous = "3"
	// user_click_counts.clicked_count_12h_continuous = "3"
	// user_click_counts.clicked_count_1d_continuous = "3"
	// user_click_counts.clicked_squared_sum_1d_continuous = 2
}

func ExampleClient_Ingest() {
	url, stop := exampleNode()
	defer stop()
	c, _ := client.New(url, client.Options{})

	resp, err := c.Ingest(context.Background(), client.IngestRequest{
		Workspace: "ads",
		Records: map[string][]map[string]any{"impressions_event_source": {
			{"user_id": "C18947Z5", "timestamp": "2024-05-01T11:59:00Z", "clicked": 1},
		}},
		IdempotencyKey: "batch-0001", // a retry with the same key writes nothing
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range resp.IngestMetrics.FeatureViewIngestMetrics {
		fmt.Println(m.FeatureViewName, m.OnlineRecordIngestCount, m.OfflineRecordIngestCount)
	}
	// Output:
	// user_click_counts 1 1
	// click_events_fv 1 1
}

func ExampleClient_GetFeaturesBatch() {
	url, stop := exampleNode()
	defer stop()
	c, _ := client.New(url, client.Options{})

	resp, err := c.GetFeaturesBatch(context.Background(), client.GetFeaturesBatchRequest{
		Workspace: "ads", Service: "ad_ctr_feature_service",
		JoinKeyMaps: []map[string]any{{"user_id": "u1"}, {"user_id": "u2"}, {"user_id": "nobody"}},
		Metadata:    client.MetadataOptions{IncludeServingStatus: true},
	})
	if err != nil {
		log.Fatal(err)
	}
	for i, row := range resp.Result {
		fmt.Println(string(row.Features[0]), resp.Metadata.Features[0].Status[i])
	}
	// Output:
	// "0" PRESENT
	// "1" PRESENT
	// null MISSING_DATA
}

func ExampleClient_GetFeaturesForEvents() {
	url, stop := exampleNode()
	defer stop()
	c, _ := client.New(url, client.Options{})

	// The spine streams as NDJSON while the answer streams back.
	spine := strings.NewReader(`{"user_id": "u1", "ts": "2024-05-01T11:45:00Z", "label": 1}
{"user_id": "u2", "ts": "2024-05-01T12:00:00Z", "label": 0}
`)
	rows, err := c.GetFeaturesForEvents(context.Background(), client.HistoricalRequest{
		Workspace: "ads", Service: "ad_ctr_feature_service_v2", TimestampKey: "ts",
		SpineSource: client.NDJSONSpine(spine),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer rows.Close()
	fmt.Println(rows.Columns()[4].Name, rows.Columns()[4].DataType)
	for row, err := range rows.All() {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("spine line %d: %s\n", row.Tag, row.Line)
	}
	// Output:
	// user_click_counts.clicked_count_1h_continuous int64
	// spine line 1: {"user_id":"u1","ts":"2024-05-01T11:45:00Z","label":1,"click_events_fv.clicked":"1","user_click_counts.clicked_count_1h_continuous":"2","user_click_counts.clicked_count_12h_continuous":"2","user_click_counts.clicked_count_1d_continuous":"2","user_click_counts.clicked_squared_sum_1d_continuous":2}
	// spine line 2: {"user_id":"u2","ts":"2024-05-01T12:00:00Z","label":0,"click_events_fv.clicked":"1","user_click_counts.clicked_count_1h_continuous":"1","user_click_counts.clicked_count_12h_continuous":"1","user_click_counts.clicked_count_1d_continuous":"1","user_click_counts.clicked_squared_sum_1d_continuous":1}
}

func ExampleClient_OutputStream() {
	url, stop := exampleNode()
	defer stop()
	c, _ := client.New(url, client.Options{})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n := 0
	for rec, err := range c.OutputStream(ctx, "ads", "user_click_counts", client.StreamOptions{From: "earliest"}) {
		if err != nil {
			log.Fatal(err)
		}
		r, err := rec.Record()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(r.EntityKeys["user_id"], r.FeatureTimestamp.Format(time.TimeOnly), r.FeatureValues["clicked_count_1h_continuous"])
		if n++; n == 4 {
			break // resume later with StreamOptions{After: rec.Offset}
		}
	}
	// Output:
	// u1 11:30:00 1
	// u1 11:40:00 2
	// u1 11:50:00 3
	// u2 11:55:00 1
}

func ExampleError() {
	url, stop := exampleNode()
	defer stop()
	c, _ := client.New(url, client.Options{})

	_, err := c.GetFeatures(context.Background(), client.GetFeaturesRequest{
		Workspace: "ads", Service: "no_such_service", JoinKeyMap: map[string]any{"user_id": "u1"},
	})
	var ce *client.Error
	if errors.As(err, &ce) {
		fmt.Println(ce.Status, ce.Code)
	}
	// Output:
	// 404 5
}

func ExampleClient_WaitJob() {
	url, stop := exampleNode()
	defer stop()
	c, _ := client.New(url, client.Options{})
	ctx := context.Background()

	job, err := c.DeleteKeys(ctx, "ads", "click_events_fv", client.DeleteKeysRequest{Keys: []map[string]any{{"user_id": "u2"}}})
	if err != nil {
		log.Fatal(err)
	}
	for !job.Final() {
		if job, err = c.WaitJob(ctx, "ads", job.ID, 30*time.Second); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println(job.Type, job.State)
	// Output:
	// deletion SUCCESS
}

func ExampleClient_FeatureService() {
	url, stop := exampleNode()
	defer stop()
	c, _ := client.New(url, client.Options{})

	svc, err := c.FeatureService(context.Background(), "ads", "ad_ctr_feature_service")
	if err != nil {
		log.Fatal(err)
	}
	for _, k := range svc.JoinKeys {
		fmt.Println("join key", k.Name, k.DataType)
	}
	for _, f := range svc.Features {
		fmt.Println("feature", f.Name, f.DataType)
	}
	// Output:
	// join key user_id string
	// feature click_events_fv.clicked int64
}
