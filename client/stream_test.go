package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/client"
)

// spineRows are a spine's rows: user, time, a passed-through label.
func spineRows() []map[string]any {
	return []map[string]any{
		{"user_id": "u1", "ts": t0.Add(-15 * time.Minute).Format(time.RFC3339), "label": 1},
		{"user_id": "u2", "ts": t0.Format(time.RFC3339), "label": 0},
		{"user_id": "nobody", "ts": t0.Format(time.RFC3339), "label": 0},
	}
}

// readRows reads every row of an answer and closes it.
func readRows(t *testing.T, rows *client.Rows) []*client.Row {
	t.Helper()
	defer rows.Close()
	var out []*client.Row
	for row, err := range rows.All() {
		require.NoError(t, err)
		out = append(out, row)
	}
	return out
}

// TestGetFeaturesForEvents: the JSON spine and the streamed NDJSON spine
// give every row, in spine order, exactly what get-features as_of the
// row's time gives.
func TestGetFeaturesForEvents(t *testing.T) {
	n := newTestNode(t)
	n.ingestClicks(t)
	ctx := context.Background()
	c := n.client(t, n.viewer)
	const svc = "ad_ctr_feature_service_v2"

	var ndjson strings.Builder
	for _, r := range spineRows() {
		line, err := json.Marshal(r)
		require.NoError(t, err)
		ndjson.Write(append(line, '\n'))
	}
	for _, mode := range []string{"json", "ndjson"} {
		t.Run(mode, func(t *testing.T) {
			req := client.HistoricalRequest{Workspace: "ads", Service: svc, TimestampKey: "ts"}
			if mode == "json" {
				req.Spine = spineRows()
			} else {
				req.SpineSource = client.NDJSONSpine(strings.NewReader("\n" + ndjson.String())) // a blank line is skipped
			}
			res, err := c.GetFeaturesForEvents(ctx, req)
			require.NoError(t, err)
			cols := res.Columns()
			require.Len(t, cols, 8)
			assert.Equal(t, 3, res.Lead())
			assert.True(t, cols[0].Spine)
			assert.Equal(t, "click_events_fv.clicked", cols[3].Name)
			assert.Equal(t, "int64", cols[3].DataType.Type)
			rows := readRows(t, res)
			require.Len(t, rows, 3)
			for i, spine := range spineRows() {
				at, err := time.Parse(time.RFC3339, spine["ts"].(string))
				require.NoError(t, err)
				online, err := c.GetFeatures(ctx, client.GetFeaturesRequest{Workspace: "ads", Service: svc,
					JoinKeyMap: map[string]any{"user_id": spine["user_id"]}, AsOf: at})
				require.NoError(t, err)
				assert.Equal(t, decode(t, online.Result.Features), decode(t, rows[i].Values[3:]), "row %d: as an online read as of its time", i)
				var got map[string]any
				require.NoError(t, json.Unmarshal(rows[i].Line, &got))
				assert.Equal(t, spine["user_id"], got["user_id"], "spine order")
				if mode == "ndjson" {
					assert.Equal(t, i+2, rows[i].Tag, "the tag of the spine row answered: its line")
				} else {
					assert.Nil(t, rows[i].Tag)
				}
			}
			assert.Equal(t, []any{"1", "2", "2", "2", 2.0}, decode(t, rows[0].Values[3:]))
		})
	}

	t.Run("range", func(t *testing.T) {
		res, err := c.GetFeaturesForEvents(ctx, client.HistoricalRequest{Workspace: "ads", Service: svc,
			Start: t0.Add(-time.Hour), End: t0, Entities: []map[string]any{{"user_id": "u2"}}})
		require.NoError(t, err)
		assert.Equal(t, 3, res.Lead(), "user_id, _valid_from, _valid_to")
		assert.Equal(t, []string{"user_id", "_valid_from", "_valid_to"}, []string{res.Columns()[0].Name, res.Columns()[1].Name, res.Columns()[2].Name})
		assert.Equal(t, "string", res.Columns()[0].DataType.Type, "range mode types its join keys")
		rows := readRows(t, res)
		require.NotEmpty(t, rows)
		last := decode(t, rows[len(rows)-1].Values)
		assert.Equal(t, "u2", last[0])
		assert.Equal(t, t0.Format(time.RFC3339), last[2], "the last interval ends at the range's end")
		assert.Equal(t, "1", last[3], "u2's click")
	})
}

// failingSpine sends one row, then fails.
type failingSpine struct{ sent bool }

var errSpineFile = errors.New("reading the spine file: disk on fire")

func (f *failingSpine) Next() ([]byte, any, error) {
	if f.sent {
		return nil, nil, errSpineFile
	}
	f.sent = true
	return []byte(`{"user_id": "u1", "ts": "2024-05-01T11:00:00Z"}`), "first", nil
}

func TestGetFeaturesForEventsErrors(t *testing.T) {
	n := newTestNode(t)
	ctx := context.Background()
	c := n.client(t, n.viewer)
	open := func(req client.HistoricalRequest) error {
		if req.Workspace == "" {
			req.Workspace = "ads"
		}
		if req.Service == "" {
			req.Service = "ad_ctr_feature_service"
		}
		res, err := c.GetFeaturesForEvents(ctx, req)
		if err != nil {
			return err
		}
		defer res.Close()
		for _, err := range res.All() {
			if err != nil {
				return err
			}
		}
		return nil
	}
	err := open(client.HistoricalRequest{Service: "nope", Spine: spineRows()})
	requireError(t, err, 404, 5, `"nope"`)
	err = open(client.HistoricalRequest{Spine: []map[string]any{{"user_id": "u1", "ts": "2024-05-01T11:00:00Z"}, {"user_id": "u1", "ts": "noon"}}, TimestampKey: "ts"})
	requireError(t, err, 400, 3, "spine[1]")
	err = open(client.HistoricalRequest{SpineSource: client.NDJSONSpine(strings.NewReader("{\"user_id\": \"u1\", \"ts\": \"2024-05-01T11:00:00Z\"}\n{\"user_id\": \"u1\", \"ts\": \"noon\"}\n")), TimestampKey: "ts"})
	requireError(t, err, 400, 3, "line 2")
	err = open(client.HistoricalRequest{SpineSource: client.NDJSONSpine(strings.NewReader("{\"user_id\": \"u1\", \"ts\": \n"))})
	requireError(t, err, 400, 3, "line 1")
	err = open(client.HistoricalRequest{SpineSource: &failingSpine{}})
	require.ErrorIs(t, err, errSpineFile, "the spine's own failure is the cause")
	err = open(client.HistoricalRequest{Start: t0, End: t0.Add(-time.Hour)})
	requireError(t, err, 400, 3, "end_time")
	err = open(client.HistoricalRequest{Spine: spineRows(), SpineSource: &failingSpine{}})
	require.ErrorContains(t, err, "not both")
	_, err = n.client(t, n.noRole).GetFeaturesForEvents(ctx, client.HistoricalRequest{Workspace: "ads", Service: "ad_ctr_feature_service", Spine: spineRows()})
	requireError(t, err, 403, 7, "")
}

func TestRun(t *testing.T) {
	n := newTestNode(t)
	n.ingestClicks(t)
	ctx := context.Background()
	c := n.client(t, n.viewer)
	res, err := c.Run(ctx, "ads", "user_click_counts", client.RunRequest{StartTime: t0.Add(-time.Hour), EndTime: t0, AggregationLevel: "full"})
	require.NoError(t, err)
	cols := res.Columns()
	require.NotEmpty(t, cols)
	assert.Equal(t, "user_id", cols[0].Name)
	byUser := map[string][]any{}
	for _, row := range readRows(t, res) {
		v := decode(t, row.Values)
		byUser[v[0].(string)] = v
	}
	require.Len(t, byUser, 2)
	assert.Contains(t, byUser["u1"], "3", "u1's three events in the hour")

	mock := map[string][]map[string]any{"impressions_event_source": {
		{"user_id": "m", "timestamp": t0.Add(-time.Minute).Format(time.RFC3339), "clicked": 3},
		{"user_id": "m", "timestamp": t0.Add(time.Hour).Format(time.RFC3339), "clicked": 3}, // outside the range: ignored
	}}
	res, err = c.Run(ctx, "ads", "user_click_counts", client.RunRequest{StartTime: t0.Add(-time.Hour), EndTime: t0, AggregationLevel: "disabled", MockSources: mock})
	require.NoError(t, err)
	rows := readRows(t, res)
	require.Len(t, rows, 1)
	var got map[string]any
	require.NoError(t, json.Unmarshal(rows[0].Line, &got))
	assert.Equal(t, 9.0, got["clicked_squared"], "the transform ran")

	_, err = c.Run(ctx, "ads", "user_click_counts", client.RunRequest{StartTime: t0.Add(-time.Hour), EndTime: t0, AggregationLevel: "tiles"})
	requireError(t, err, 400, 3, `"tiles"`)
	_, err = c.Run(ctx, "ads", "nope", client.RunRequest{StartTime: t0.Add(-time.Hour), EndTime: t0, AggregationLevel: "full"})
	requireError(t, err, 404, 5, `"nope"`)
}

func TestJobs(t *testing.T) {
	n := newTestNode(t)
	n.ingestClicks(t)
	ctx := context.Background()
	owner, viewer := n.client(t, n.owner), n.client(t, n.viewer)

	jobs, err := viewer.ListJobs(ctx, "ads", client.JobFilter{Type: "backfill"})
	require.NoError(t, err)
	require.Len(t, jobs, 2, "the first apply built both views")
	for _, j := range jobs {
		assert.Equal(t, "SUCCESS", j.State)
		assert.True(t, j.Final())
		assert.Nil(t, j.Error)
	}
	one, err := viewer.ListJobs(ctx, "ads", client.JobFilter{FeatureView: "click_events_fv", Limit: 5})
	require.NoError(t, err)
	require.Len(t, one, 1)
	assert.Equal(t, "click_events_fv", one[0].FeatureView)
	got, err := viewer.GetJob(ctx, "ads", one[0].ID)
	require.NoError(t, err)
	assert.Equal(t, one[0].ID, got.ID)
	_, err = viewer.GetJob(ctx, "ads", "job_nope")
	requireError(t, err, 404, 5, "job_nope")
	_, err = viewer.ListJobs(ctx, "ads", client.JobFilter{Limit: -1})
	requireError(t, err, 400, 3, "limit")

	_, err = viewer.CancelJob(ctx, "ads", one[0].ID)
	requireError(t, err, 403, 7, "")
	_, err = owner.CancelJob(ctx, "ads", one[0].ID)
	ce := requireError(t, err, 409, 9, "already ended SUCCESS")
	require.NotNil(t, ce.Job)
	assert.Equal(t, one[0].ID, ce.Job.ID)

	// A changed view: a new version, built by a backfill over the log.
	repo := strings.Replace(string(adsRepo(t)), "      - aggregate: {input: clicked, function: count, window: 1h}\n",
		"      - aggregate: {input: clicked, function: count, window: 1h}\n      - aggregate: {input: clicked, function: count, window: 2h}\n", 1)
	res, err := owner.Apply(ctx, "features.yaml", []byte(repo))
	require.NoError(t, err)
	require.Len(t, res.Jobs, 1)
	assert.Equal(t, []string{"user_click_counts"}, res.Rebuilt)
	j := &res.Jobs[0]
	for !j.Final() {
		j, err = viewer.WaitJob(ctx, "ads", j.ID, 10*time.Second)
		require.NoError(t, err)
	}
	assert.Equal(t, "SUCCESS", j.State, "%v", j.Error)
	assert.Equal(t, "backfill", j.Type)
	assert.Equal(t, 2, j.Version)
	assert.Equal(t, 4.0, j.Result["log_records"], "the four clicks")

	_, err = owner.Materialize(ctx, "ads", "user_click_counts", client.MaterializationRequest{StartTime: t0.Add(-time.Hour), EndTime: t0})
	requireError(t, err, 400, 3, "no batch files")
	_, err = viewer.Materialize(ctx, "ads", "user_click_counts", client.MaterializationRequest{StartTime: t0.Add(-time.Hour), EndTime: t0})
	requireError(t, err, 403, 7, "")
}

func TestDeleteKeys(t *testing.T) {
	n := newTestNode(t)
	n.ingestClicks(t)
	ctx := context.Background()
	owner := n.client(t, n.owner)

	j, err := owner.DeleteKeys(ctx, "ads", "click_events_fv", client.DeleteKeysRequest{Keys: []map[string]any{{"user_id": "u2"}, {"user_id": "nobody"}}})
	require.NoError(t, err)
	assert.Equal(t, "deletion", j.Type)
	for !j.Final() {
		j, err = owner.WaitJob(ctx, "ads", j.ID, 10*time.Second)
		require.NoError(t, err)
	}
	require.Equal(t, "SUCCESS", j.State, "%v", j.Error)
	assert.Equal(t, 1.0, j.Result["keys_found"])
	deletions, err := owner.ListJobs(ctx, "ads", client.JobFilter{Type: "deletion"})
	require.NoError(t, err)
	require.Len(t, deletions, 1)

	resp, err := owner.GetFeatures(ctx, client.GetFeaturesRequest{Workspace: "ads", Service: "ad_ctr_feature_service_v2", JoinKeyMap: map[string]any{"user_id": "u2"}})
	require.NoError(t, err)
	assert.Equal(t, []any{nil, "0", "0", "0", nil}, decode(t, resp.Result.Features), "as for a key never seen, in every view of the source")
	resp, err = owner.GetFeatures(ctx, client.GetFeaturesRequest{Workspace: "ads", Service: "ad_ctr_feature_service_v2", JoinKeyMap: map[string]any{"user_id": "u1"}})
	require.NoError(t, err)
	assert.Equal(t, "3", decode(t, resp.Result.Features)[1], "other keys are untouched")

	f := false
	for _, tc := range []struct {
		name, key, view string
		req             client.DeleteKeysRequest
		status, code    int
		msg             string
	}{
		{"missing join key", n.owner, "click_events_fv", client.DeleteKeysRequest{Keys: []map[string]any{{"user": "u1"}}}, 400, 3, "user_id"},
		{"offline without online", n.owner, "click_events_fv", client.DeleteKeysRequest{Keys: []map[string]any{{"user_id": "u1"}}, Online: &f}, 400, 3, "offline"},
		{"no keys", n.owner, "click_events_fv", client.DeleteKeysRequest{}, 400, 3, "keys"},
		{"unknown view", n.owner, "nope", client.DeleteKeysRequest{Keys: []map[string]any{{"user_id": "u1"}}}, 404, 5, `"nope"`},
		{"editor", n.editor, "click_events_fv", client.DeleteKeysRequest{Keys: []map[string]any{{"user_id": "u1"}}}, 403, 7, "owner"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := n.client(t, tc.key).DeleteKeys(ctx, "ads", tc.view, tc.req)
			requireError(t, err, tc.status, tc.code, tc.msg)
		})
	}
}

// streamRecords reads n records of a view's stream.
func streamRecords(t *testing.T, c *client.Client, view string, opts client.StreamOptions, n int) []client.StreamRecord {
	t.Helper()
	var out []client.StreamRecord
	for rec, err := range c.OutputStream(context.Background(), "ads", view, opts) {
		require.NoError(t, err)
		out = append(out, rec)
		if len(out) == n {
			break
		}
	}
	return out
}

func TestOutputStream(t *testing.T) {
	n := newTestNode(t)
	n.ingestClicks(t)
	c := n.client(t, n.viewer)

	all := streamRecords(t, c, "user_click_counts", client.StreamOptions{From: "earliest"}, 4)
	require.Len(t, all, 4)
	users := []string{"u1", "u1", "u1", "u2"}
	for i, rec := range all {
		r, err := rec.Record()
		require.NoError(t, err)
		assert.Equal(t, "user_click_counts", r.FeatureViewName)
		assert.Equal(t, "featurelog", r.Producer)
		assert.Equal(t, users[i], r.EntityKeys["user_id"])
		assert.Equal(t, rec.Offset, r.Offset)
		if i > 0 {
			assert.Less(t, all[i-1].Offset, rec.Offset, "offsets increase")
		}
	}
	last, err := all[2].Record()
	require.NoError(t, err)
	assert.Equal(t, "3", last.FeatureValues["clicked_count_1h_continuous"])
	assert.Equal(t, t0.Add(-10*time.Minute), last.FeatureTimestamp)

	from := streamRecords(t, c, "user_click_counts", client.StreamOptions{From: all[2].Offset}, 2)
	assert.Equal(t, all[2:], from, "from an offset, inclusive")
	after := streamRecords(t, c, "user_click_counts", client.StreamOptions{From: "earliest", After: all[1].Offset}, 2)
	assert.Equal(t, all[2:], after, "after an offset (Last-Event-ID)")
	sse := streamRecords(t, c, "user_click_counts", client.StreamOptions{From: "earliest", SSE: true}, 4)
	assert.Equal(t, all, sse, "server-sent events carry the same records")

	// The iterator ends with ctx's error once ctx is done.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := 0
	var end error
	for _, err := range c.OutputStream(ctx, "ads", "user_click_counts", client.StreamOptions{From: "earliest"}) {
		if err != nil {
			end = err
			break
		}
		if seen++; seen == 4 {
			cancel() // while the stream waits for more
		}
	}
	require.ErrorIs(t, end, context.Canceled)

	for _, tc := range []struct {
		view, from   string
		key          string
		status, code int
		msg          string
	}{
		{"nope", "", n.viewer, 404, 5, `"nope"`},
		{"click_events_fv", "", n.viewer, 404, 5, "no output stream"},
		{"user_click_counts", "12", n.viewer, 400, 3, "12"},
		{"user_click_counts", "", n.noRole, 403, 7, ""},
	} {
		t.Run(fmt.Sprint(tc.view, tc.from, tc.status), func(t *testing.T) {
			var err error
			for _, err = range n.client(t, tc.key).OutputStream(context.Background(), "ads", tc.view, client.StreamOptions{From: tc.from}) {
				require.Error(t, err, "no record before the refusal")
			}
			requireError(t, err, tc.status, tc.code, tc.msg)
		})
	}
}

// TestOutputStreamEndsWithError: an error after the stream started ends
// it as an *Error with Status 200, in NDJSON and SSE alike.
func TestOutputStreamEndsWithError(t *testing.T) {
	for _, sse := range []bool{false, true} {
		t.Run(fmt.Sprint("sse=", sse), func(t *testing.T) {
			n := newTestNode(t)
			n.ingestClicks(t)
			c := n.client(t, n.viewer)
			var err error
			seen := 0
			for _, err = range c.OutputStream(context.Background(), "ads", "user_click_counts", client.StreamOptions{From: "earliest", SSE: sse}) {
				if err != nil {
					break
				}
				if seen++; seen == 4 {
					require.NoError(t, n.db.Close()) // the stream waits for more: the engine's closing ends it
				}
			}
			requireError(t, err, 200, 14, "closed")
			assert.Contains(t, err.Error(), "the node stopped the answer with code 14")
		})
	}
}

// TestNDJSONSpineLastLine: a last line without a newline is a row.
func TestNDJSONSpineLastLine(t *testing.T) {
	s := client.NDJSONSpine(strings.NewReader("{\"a\": 1}\n\n{\"a\": 2}"))
	var rows []string
	var tags []any
	for {
		row, tag, err := s.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		rows, tags = append(rows, string(row)), append(tags, tag)
	}
	assert.Equal(t, []string{`{"a": 1}`, `{"a": 2}`}, rows)
	assert.Equal(t, []any{1, 3}, tags)
}
