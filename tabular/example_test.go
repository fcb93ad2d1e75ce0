package tabular_test

import (
	"context"
	"log"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/tabread"
	"github.com/featurelog/featurelog/tabular"
)

// A point-in-time join of a CSV spine, written as CSV: each row gets the
// user's latest amount strictly before the row's time, and the sum of
// their amounts over the hour before it.
func Example() {
	dir, err := os.MkdirTemp("", "featurelog-tabular-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := engine.Open(engine.Options{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	repo := `workspace: shop
entities:
  - {name: user, join_keys: [user_id]}
sources:
  - name: payments
    schema:
      - {name: user_id, type: String}
      - {name: ts, type: Timestamp}
      - {name: amount, type: Float64}
feature_views:
  - name: last_amount
    source: payments
    entities: [user]
    timestamp_field: ts
    features:
      - attribute: {name: amount}
  - name: spend
    source: payments
    entities: [user]
    timestamp_field: ts
    features:
      - aggregate: {input: amount, function: sum, window: 1h}
feature_services:
  - name: checkout
    features: [last_amount, spend]
`
	ctx := context.Background()
	if _, err := db.ApplyWait(ctx, "features.yaml", []byte(repo)); err != nil {
		log.Fatal(err)
	}
	at := func(s string) time.Time { t, _ := time.Parse(time.RFC3339, s); return t }
	if _, err := db.Ingest(&engine.IngestRequest{Workspace: "shop", Records: map[string][]map[string]any{"payments": {
		{"user_id": "ann", "ts": at("2025-03-01T10:20:00Z"), "amount": 12.5},
		{"user_id": "ann", "ts": at("2025-03-01T10:05:00Z"), "amount": 4.0},
		{"user_id": "bob", "ts": at("2025-03-01T09:00:00Z"), "amount": 7.0},
	}}}); err != nil {
		log.Fatal(err)
	}

	spine, err := tabread.OpenSpine("spine.csv", strings.NewReader(
		"row,user_id,ts\n1,ann,2025-03-01T10:10:00Z\n2,ann,2025-03-01T10:30:00Z\n3,bob,2025-03-01T10:30:00Z\n"))
	if err != nil {
		log.Fatal(err)
	}
	w, err := tabular.CreateWriter("training.csv", os.Stdout)
	if err != nil {
		log.Fatal(err)
	}
	if err := db.GetFeaturesForEvents(ctx, &engine.HistoricalRequest{Workspace: "shop", Service: "checkout", TimestampKey: "ts"}, spine, w); err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// row,user_id,ts,last_amount.amount,spend.amount_sum_1h_continuous
	// 1,ann,2025-03-01T10:10:00Z,4,4
	// 2,ann,2025-03-01T10:30:00Z,12.5,16.5
	// 3,bob,2025-03-01T10:30:00Z,7,
}
