// Command featurelog-library uses featurelog as a Go library from a module
// of its own, as an application would: it opens a data directory, applies
// the ads example repo, ingests clicks out of time order, reads feature
// vectors, joins a spine point-in-time correctly into a sink it
// implements, follows a view's output stream, runs a materialization job
// and deletes a key. It checks every answer and exits 1 on the first one
// that is wrong, so CI runs it as a test (`go run .` in this directory).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/schema"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "featurelog-library:", err)
		os.Exit(1)
	}
}

// The ads example, as the README serves it.
const repoPath = "../ads/features.yaml"

func run(out io.Writer) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "featurelog-library-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	db, err := engine.Open(engine.Options{Dir: filepath.Join(dir, "data"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer db.Close()

	repoYAML, err := os.ReadFile(repoPath)
	if err != nil {
		return err
	}
	applied, err := db.ApplyWait(ctx, "features.yaml", repoYAML)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "applied workspace %s: %d changes\n", applied.Workspace, len(applied.Plan.Changes))

	// Follow user_click_counts' output stream from its end: it sees the
	// records ingested after it opens.
	stream, err := db.OpenOutputStream("ads", "user_click_counts", engine.StreamStart{Kind: engine.StartLatest})
	if err != nil {
		return err
	}
	defer stream.Close()

	// Clicks of two users, out of time order, in one atomic request.
	now := time.Now().UTC().Truncate(time.Second)
	clicks := []map[string]any{
		{"user_id": "u1", "timestamp": now.Add(-10 * time.Minute), "clicked": 1},
		{"user_id": "u1", "timestamp": now.Add(-50 * time.Minute), "clicked": 0},
		{"user_id": "u2", "timestamp": now.Add(-5 * time.Minute), "clicked": 1},
		{"user_id": "u1", "timestamp": now.Add(-30 * time.Minute), "clicked": 1},
	}
	if _, err := db.Ingest(&engine.IngestRequest{Workspace: "ads",
		Records: map[string][]map[string]any{"impressions_event_source": clicks}}); err != nil {
		return err
	}

	// Online read: the latest click and the click counts of u1.
	vec, err := db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "ads", Service: "ad_ctr_feature_service_v2",
		JoinKeys: map[string]any{"user_id": "u1"}})
	if err != nil {
		return err
	}
	got := map[string]any{}
	for _, f := range vec.Features {
		got[f.Name] = f.Value.Any()
		fmt.Fprintf(out, "u1 %s = %v (%s)\n", f.Name, f.Value.Any(), f.Status)
	}
	if err := expect(got, map[string]any{
		"click_events_fv.clicked":                       int64(1), // the latest of u1's clicks is at -10m
		"user_click_counts.clicked_count_1h_continuous": int64(3),
	}); err != nil {
		return fmt.Errorf("get-features: %w", err)
	}

	// Point-in-time join: u1 as of 20 minutes ago saw two clicks in the
	// last hour (at -50m and -30m) and its latest click was the one at -30m.
	spine := &rows{cols: []string{"user_id", "ts"}, rows: [][]any{
		{"u1", now.Add(-20 * time.Minute)},
		{"u2", now.Add(-20 * time.Minute)},
	}}
	sink := &collect{}
	if err := db.GetFeaturesForEvents(ctx, &engine.HistoricalRequest{Workspace: "ads", Service: "ad_ctr_feature_service_v2",
		TimestampKey: "ts"}, spine, sink); err != nil {
		return err
	}
	if len(sink.rows) != 2 {
		return fmt.Errorf("historical join: %d rows, want 2", len(sink.rows))
	}
	for i, r := range sink.rows {
		fmt.Fprintf(out, "spine row %d: %v\n", i, r)
	}
	if err := expect(sink.rows[0], map[string]any{"click_events_fv.clicked": int64(1),
		"user_click_counts.clicked_count_1h_continuous": int64(2)}); err != nil {
		return fmt.Errorf("historical join, u1: %w", err)
	}
	if err := expect(sink.rows[1], map[string]any{"click_events_fv.clicked": nil}); err != nil {
		return fmt.Errorf("historical join, u2 before its first click: %w", err)
	}

	// The output stream saw the four records.
	recs, err := stream.Next(ctx, nil, 100, 5*time.Second)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "output stream: %d records\n", len(recs))
	if len(recs) != len(clicks) {
		return fmt.Errorf("output stream: %d records, want %d", len(recs), len(clicks))
	}

	// Delete u2 everywhere, and wait for the job.
	job, err := db.DeleteKeys("ads", "click_events_fv", engine.DeleteKeysRequest{
		Keys: []map[string]any{{"user_id": "u2"}}, Online: true, Offline: true})
	if err != nil {
		return err
	}
	if job, err = db.WaitJob(ctx, "ads", job.ID); err != nil {
		return err
	}
	fmt.Fprintf(out, "delete_keys job %s: %s\n", job.ID, job.State)
	if job.State != engine.JobSuccess {
		return fmt.Errorf("delete_keys job ended %s", job.State)
	}
	vec, err = db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "ads", Service: "ad_ctr_feature_service",
		JoinKeys: map[string]any{"user_id": "u2"}})
	if err != nil {
		return err
	}
	if v := vec.Features[0].Value; !v.IsNull() {
		return fmt.Errorf("u2 after delete_keys: %v, want null", v.Any())
	}
	fmt.Fprintln(out, "u2 after delete_keys: null")
	return nil
}

// rows is a Spine over rows held in memory.
type rows struct {
	cols []string
	rows [][]any
	next int
}

func (r *rows) Columns() []string { return r.cols }

func (r *rows) Next() ([]any, error) {
	if r.next == len(r.rows) {
		return nil, io.EOF
	}
	r.next++
	return r.rows[r.next-1], nil
}

// collect is a HistoricalSink that keeps each row's features by column
// name.
type collect struct {
	cols []engine.HistoricalColumn
	rows []map[string]any
}

func (c *collect) Begin(cols []engine.HistoricalColumn) error {
	c.cols = cols
	return nil
}

func (c *collect) Row(lead []any, features []schema.Value) error {
	row := map[string]any{}
	for i, v := range features {
		row[c.cols[len(lead)+i].Name] = v.Any()
	}
	c.rows = append(c.rows, row)
	return nil
}

// expect reports the first of want's columns whose value in got differs.
func expect(got, want map[string]any) error {
	var errs []error
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			errs = append(errs, fmt.Errorf("no column %s", k))
		} else if g != w {
			errs = append(errs, fmt.Errorf("%s = %v (%T), want %v (%T)", k, g, g, w, w))
		}
	}
	return errors.Join(errs...)
}
