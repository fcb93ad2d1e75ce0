package engine_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/featurelog/featurelog/engine"
)

// Open a data directory, apply a feature repo, ingest a record and read
// it back.
func Example() {
	dir, err := os.MkdirTemp("", "featurelog-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	db, err := engine.Open(engine.Options{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	repo := `workspace: ads
entities:
  - name: user
    join_keys: [user_id]
sources:
  - name: clicks
    schema:
      - {name: user_id, type: String}
      - {name: timestamp, type: Timestamp}
      - {name: clicked, type: Int64}
feature_views:
  - name: last_click
    source: clicks
    entities: [user]
    timestamp_field: timestamp
    ttl: 7d
    features:
      - attribute: {name: clicked}
feature_services:
  - name: ads_fs
    features: [last_click]
`
	if _, err := db.ApplyWait(context.Background(), "features.yaml", []byte(repo)); err != nil {
		log.Fatal(err)
	}

	resp, err := db.Ingest(&engine.IngestRequest{Workspace: "ads", Records: map[string][]map[string]any{
		"clicks": {{"user_id": "u1", "timestamp": time.Now().Add(-time.Minute), "clicked": 1}},
	}})
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range resp.Metrics {
		fmt.Printf("%s: %d online, %d offline\n", m.FeatureView, m.Online, m.Offline)
	}

	vec, err := db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "ads", Service: "ads_fs",
		JoinKeys: map[string]any{"user_id": "u1"}})
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range vec.Features {
		fmt.Println(f.Name, f.Value.Any(), f.Status)
	}
	// Output:
	// last_click: 1 online, 1 offline
	// last_click.clicked 1 PRESENT
}
