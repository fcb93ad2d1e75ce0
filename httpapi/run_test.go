//go:build unix

package httpapi_test

// POST .../feature-views/{name}/run (SPEC §6): at every level, over the
// log and over mock rows, a viewer gets an NDJSON stream whose rows are
// the engine's Run rows in the encodings of §4 (int64 as strings,
// timestamps RFC 3339), with the columns typed in Featurelog-Columns;
// mock rows sent as JSON give what the same rows give through the Go
// API; the Go client reads it back; and nothing is written.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/client"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
	"github.com/featurelog/featurelog/schema"
)

// runStats is an aggregate view of shopRepo's orders, for run's partial
// level.
const runStats = `  - name: order_stats
    source: orders
    entities: [customer]
    timestamp_field: ts
    features:
      - aggregate: {input: amount, function: count, window: 1h}
      - aggregate: {input: amount, function: sum, window: lifetime}
      - aggregate: {input: note, function: last_n, n: 2, window: 1d}
`

// runEngineRows collects the engine's answer as the values of each row.
type runEngineRows struct {
	cols []engine.HistoricalColumn
	rows [][]schema.Value
}

func (r *runEngineRows) Begin(cols []engine.HistoricalColumn) error { r.cols = cols; return nil }
func (r *runEngineRows) Row(_ []any, vals []schema.Value) error {
	r.rows = append(r.rows, append([]schema.Value(nil), vals...))
	return nil
}

func runOrderRecs() []string {
	var recs []string
	for i := range 60 {
		at := t0.Add(-time.Duration(i*37%300) * time.Minute) // out of order
		recs = append(recs, orderRec(fmt.Sprintf("c%d", i%7), at, fmt.Sprintf(`"note":"n%d"`, i%5), `"qty":3`))
	}
	return recs
}

func TestRunHTTP(t *testing.T) {
	n := newNode(t, httpapi.Options{})
	_, err := n.db.ApplyWait(context.Background(), "shop.yaml", []byte(strings.Replace(shopRepo, "feature_views:\n", "feature_views:\n"+runStats, 1)))
	require.NoError(t, err)
	r := n.send(postJSON("/ingest", string(shopBody(false, runOrderRecs()...))), bearer(n.editor))
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	before := n.state()
	start, end := t0.Add(-6*time.Hour), t0
	mocks := `{"orders":[{"customer_id":"m1","ts":"` + ts(t0.Add(-time.Hour)) + `","amount":"9007199254740993","note":"x"},` +
		`{"customer_id":"m1","ts":"` + ts(t0.Add(-2*time.Hour)) + `","amount":4}]}`
	for _, view := range []string{"last_order", "order_stats"} {
		for _, level := range []string{"disabled", "partial", "full"} {
			for _, mock := range []string{"", mocks} {
				where := fmt.Sprintf("%s %s mock=%v", view, level, mock != "")
				body := fmt.Sprintf(`{"start_time":%q,"end_time":%q,"aggregation_level":%q`, ts(start), ts(end), level)
				req := engine.RunRequest{Start: start, End: end, Level: engine.RunLevel(level)}
				if mock != "" {
					body += `,"mock_sources":` + mock
					req.MockSources = runGoMocks(t, mock)
				}
				r := n.send(runReq(view, body+"}"), bearer(n.viewer))
				require.Equal(t, http.StatusOK, r.status, "%s: %s", where, r.body)
				assert.Equal(t, "application/x-ndjson", r.header.Get("Content-Type"), where)
				want := &runEngineRows{}
				require.NoError(t, n.db.Run(context.Background(), "shop", view, &req, want))
				require.NotEmpty(t, want.rows, "%s: the engine answered nothing", where)
				runCheckAnswer(t, where, r, want)
				runCheckClient(t, n, where, view, start, end, level, mock, r.body)
			}
		}
	}
	n.requireUnchanged(t, before, "run")
}

// runGoMocks decodes mock rows as Go values (numbers as int64 when
// integral), the Go API's spelling of the same rows.
func runGoMocks(t *testing.T, mock string) map[string][]map[string]any {
	d := json.NewDecoder(strings.NewReader(mock))
	d.UseNumber()
	var raw map[string][]map[string]any
	require.NoError(t, d.Decode(&raw))
	for _, rows := range raw {
		for _, row := range rows {
			for k, v := range row {
				if num, ok := v.(json.Number); ok {
					i, err := num.Int64()
					require.NoError(t, err)
					row[k] = i
				}
			}
		}
	}
	return raw
}

// runCheckAnswer compares the NDJSON answer with the engine's rows: the
// columns (names and types) and every value in its §4 encoding.
func runCheckAnswer(t *testing.T, where string, r testReply, want *runEngineRows) {
	var cols []struct {
		Name     string `json:"name"`
		DataType struct {
			Type string `json:"type"`
		} `json:"dataType"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.header.Get(httpapi.ColumnsHeader)), &cols), where)
	require.Len(t, cols, len(want.cols), where)
	for i, c := range cols {
		assert.Equal(t, want.cols[i].Name, c.Name, where)
		assert.Equal(t, want.cols[i].Type.Kind.DataType(), c.DataType.Type, where)
	}
	lines := strings.Split(strings.TrimSuffix(string(r.body), "\n"), "\n")
	require.Len(t, lines, len(want.rows), "%s: %s", where, r.body)
	for i, line := range lines {
		var got map[string]json.RawMessage
		require.NoError(t, json.Unmarshal([]byte(line), &got), where)
		require.Len(t, got, len(cols), "%s: line %d", where, i+1)
		for j, c := range want.cols {
			assert.JSONEq(t, runJSON(want.rows[i][j]), string(got[c.Name]), "%s: line %d, column %s", where, i+1, c.Name)
		}
	}
}

// runJSON is the §4 encoding of v, written out independently of the
// server's encoder.
func runJSON(v schema.Value) string {
	switch v.Kind {
	case schema.Null:
		return "null"
	case schema.Int64, schema.Int32:
		return fmt.Sprintf(`"%d"`, v.I)
	case schema.Timestamp:
		return fmt.Sprintf("%q", v.Time().Format(time.RFC3339Nano))
	case schema.Array:
		parts := make([]string, len(v.A))
		for i, e := range v.A {
			parts[i] = runJSON(e)
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	b, _ := json.Marshal(v.Any())
	return string(b)
}

// runCheckClient: the Go client sends the same request (mock rows as Go
// values) and copies the same bytes.
func runCheckClient(t *testing.T, n *node, where, view string, start, end time.Time, level, mock string, body []byte) {
	q := client.RunRequest{StartTime: start, EndTime: end, AggregationLevel: level}
	if mock != "" {
		q.MockSources = runGoMocks(t, mock)
	}
	var buf bytes.Buffer
	c := newClient(t, n.srv.URL, n.viewer, nil)
	rows, err := c.Run(context.Background(), "shop", view, q)
	require.NoError(t, err, where)
	for row, err := range rows.All() {
		require.NoError(t, err, where)
		buf.Write(append(row.Line, '\n'))
	}
	rows.Close()
	assert.Equal(t, string(body), buf.String(), "%s: the client's copy", where)
	q.AggregationLevel = "tiles"
	_, err = c.Run(context.Background(), "shop", view, q)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `aggregation_level "tiles" is unknown`)
	assert.Contains(t, err.Error(), "HTTP 400")
}
