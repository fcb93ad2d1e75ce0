package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
)

// Example serves an engine over HTTP, ingests two records through the
// Stream Ingest API and reads one user's features back, as a client
// would; then it drains the server and closes the engine.
func Example() {
	dir, err := os.MkdirTemp("", "featurelog-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := engine.Open(engine.Options{Dir: dir, Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close() // after the server has drained
	repoFile, err := os.ReadFile("../examples/ads/features.yaml")
	if err != nil {
		log.Fatal(err)
	}
	if _, err := db.ApplyWait(context.Background(), "features.yaml", repoFile); err != nil {
		log.Fatal(err)
	}

	srv, err := httpapi.New(db, httpapi.Options{Addr: "127.0.0.1:0", NoAuth: true, Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	addr := make(chan net.Addr, 1)
	served := make(chan error, 1)
	go func() { served <- srv.ListenAndServe(ctx, func(a net.Addr) { addr <- a }) }()
	base := "http://" + (<-addr).String()

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	post := func(path, body string) string {
		resp, err := client.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.Status + " " + string(b)
	}

	ts := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	fmt.Println(post("/ingest", `{"workspace_name": "ads", "dry_run": false,
		"records": {"impressions_event_source": [
		  {"record": {"timestamp": "`+ts+`", "user_id": "C18947Z5", "clicked": 1}},
		  {"record": {"timestamp": "`+ts+`", "user_id": "C18947Z5", "clicked": 0}}]}}`))
	fmt.Println(post("/api/v1/feature-service/get-features", `{"params": {
		"workspace_name": "ads", "feature_service_name": "ad_ctr_feature_service_v2",
		"join_key_map": {"user_id": "C18947Z5"}}}`))

	stop() // ListenAndServe drains in-flight requests, then returns
	if err := <-served; err != nil {
		log.Fatal(err)
	}
	// Output:
	// 200 OK {"workspaceName":"ads","ingestMetrics":{"featureViewIngestMetrics":[{"featureViewName":"user_click_counts","onlineRecordIngestCount":"2","offlineRecordIngestCount":"2"},{"featureViewName":"click_events_fv","onlineRecordIngestCount":"2","offlineRecordIngestCount":"2"}]}}
	// 200 OK {"result":{"features":["0","2","2","2",1]}}
}
