//go:build unix

package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/client"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
	"github.com/featurelog/featurelog/schema"
	"github.com/featurelog/featurelog/tabread"
)

const (
	historicalPath = "/api/v1/feature-service/get-features-for-events"
	adsV2          = "ad_ctr_feature_service_v2" // click_events_fv.clicked and user_click_counts' aggregates
)

// historicalNode is a node with ads events: u1 clicked at t0−50m and did
// not click at t0−20m; u2 clicked at t0−30m.
func historicalNode(t *testing.T, opts httpapi.Options) *node {
	n := newNode(t, opts)
	body := fmt.Sprintf(`{"workspace_name": "ads", "dry_run": false, "records": {"impressions_event_source": [
	  {"record": {"timestamp": %q, "user_id": "u1", "clicked": 1}},
	  {"record": {"timestamp": %q, "user_id": "u1", "clicked": 0}},
	  {"record": {"timestamp": %q, "user_id": "u2", "clicked": 1}}]}}`,
		ts(t0.Add(-50*time.Minute)), ts(t0.Add(-20*time.Minute)), ts(t0.Add(-30*time.Minute)))
	status, resp := n.ingest(n.editor, []byte(body))
	require.Equal(t, http.StatusOK, status, "body %s", resp)
	return n
}

// member is one member of a spine row, its value as raw JSON text.
type member struct{ name, raw string }

type row []member

func (r row) json() string {
	parts := make([]string, len(r))
	for i, m := range r {
		parts[i] = fmt.Sprintf("%q: %s", m.name, m.raw)
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func (r row) get(name string) string {
	for _, m := range r {
		if m.name == name {
			return m.raw
		}
	}
	return ""
}

// spineRows is a spine over both users and a key without data, with
// pass-through columns whose raw JSON must come back byte for byte.
func spineRows() []row {
	at := func(d time.Duration) string { return fmt.Sprintf("%q", ts(t0.Add(d))) }
	return []row{
		{{"user_id", `"u1"`}, {"ts", at(-55 * time.Minute)}, {"label", `1`}, {"weight", `0.5`}, {"note", `"caf\u00e9"`}},
		{{"user_id", `"u1"`}, {"ts", at(-45 * time.Minute)}, {"label", `0`}, {"weight", `1e2`}, {"note", `null`}},
		{{"user_id", `"u2"`}, {"ts", at(-10 * time.Minute)}, {"label", `1`}, {"weight", `-0.0`}},
		{{"user_id", `"u1"`}, {"ts", at(0)}, {"label", `12345678901234567890`}, {"weight", `0.25`}, {"note", `{"a": [1, "x"]}`}},
		{{"user_id", `"u1"`}, {"ts", at(-55 * time.Minute)}, {"label", `true`}, {"weight", `0.5`}, {"note", `"same key and time as row 0"`}},
		{{"user_id", `"nobody"`}, {"ts", at(-time.Minute)}, {"label", `0`}, {"weight", `2`}},
	}
}

var spineCols = []string{"user_id", "ts", "label", "weight", "note"}

func jsonSpineBody(svc string, rows []row, extra string) []byte {
	parts := make([]string, len(rows))
	for i, r := range rows {
		parts[i] = r.json()
	}
	return []byte(fmt.Sprintf(`{"params": {"workspace_name": "ads", "feature_service_name": %q, "timestamp_key": "ts"%s,
	  "spine": [%s]}}`, svc, extra, strings.Join(parts, ",\n")))
}

// ndjsonSpine is the spine as NDJSON, with blank lines between rows.
func ndjsonSpine(rows []row) []byte {
	var b strings.Builder
	for _, r := range rows {
		b.WriteString(r.json() + "\n\n")
	}
	return []byte(b.String())
}

// answer is a historical response.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// lines returns the answer's lines, each as its members in order.
func (a answer) lines(t *testing.T) [][]member {
	t.Helper()
	var out [][]member
	for _, line := range strings.Split(strings.TrimSuffix(string(a.body), "\n"), "\n") {
		if line == "" {
			continue
		}
		var ms []member
		require.NoError(t, tabread.ReadObject([]byte(line), func(name string, raw jsontext.Value) error {
			ms = append(ms, member{name, string(raw)})
			return nil
		}), "line %s", line)
		out = append(out, ms)
	}
	return out
}

func (n *node) historical(authz, contentType, query string, body []byte) answer {
	n.t.Helper()
	req, err := http.NewRequest(http.MethodPost, n.srv.URL+historicalPath+query, bytes.NewReader(body))
	require.NoError(n.t, err)
	req.Header.Set("Content-Type", contentType)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(n.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(n.t, err)
	return answer{status: resp.StatusCode, header: resp.Header, body: data}
}

func (n *node) historicalJSON(key string, body []byte) answer {
	return n.historical("Tecton-key "+key, "application/json", "", body)
}

func (n *node) historicalNDJSON(key string, query url.Values, body []byte) answer {
	return n.historical("Tecton-key "+key, "application/x-ndjson", "?"+query.Encode(), body)
}

// servedAsOf returns get-features' raw feature values for user at asOf.
func (n *node) servedAsOf(svc, user string, asOf string) []string {
	n.t.Helper()
	status, body := n.getFeatures(n.viewer, fmt.Sprintf(`{"params": {"workspace_name": "ads", "feature_service_name": %q,
	  "join_key_map": {"user_id": %q}, "as_of": %s}}`, svc, user, asOf))
	require.Equal(n.t, http.StatusOK, status, "body %s", body)
	var resp struct {
		Result struct {
			Features []json.RawMessage `json:"features"`
		} `json:"result"`
	}
	require.NoError(n.t, json.Unmarshal(body, &resp))
	out := make([]string, len(resp.Result.Features))
	for i, f := range resp.Result.Features {
		out[i] = string(f)
	}
	return out
}

// checkSpineAnswer asserts one answer line per spine row, in order: the
// spine's members as given (null where a row lacks one), then each
// feature exactly as get-features serves it with as_of the row's time.
func checkSpineAnswer(t *testing.T, n *node, svc string, a answer, rows []row, cols []string) {
	t.Helper()
	require.Equal(t, http.StatusOK, a.status, "body %s", a.body)
	assert.Equal(t, "application/x-ndjson", a.header.Get("Content-Type"))
	features, err := n.db.ServiceFeatures("ads", svc)
	require.NoError(t, err)
	lines := a.lines(t)
	require.Len(t, lines, len(rows), "one line per spine row: %s", a.body)
	for i, line := range lines {
		require.Len(t, line, len(cols)+len(features), "line %d: %v", i, line)
		for j, c := range cols {
			want := rows[i].get(c)
			if want == "" {
				want = "null"
			}
			assert.Equal(t, member{c, want}, line[j], "row %d: spine columns pass through byte for byte", i)
		}
		served := n.servedAsOf(svc, strings.Trim(rows[i].get("user_id"), `"`), rows[i].get("ts"))
		for j, f := range features {
			assert.Equal(t, member{f.Name, served[j]}, line[len(cols)+j], "row %d: %s as of its time", i, f.Name)
		}
	}
	var hdr []map[string]any
	require.NoError(t, json.Unmarshal([]byte(a.header.Get(httpapi.ColumnsHeader)), &hdr))
	require.Len(t, hdr, len(cols)+len(features))
	assert.Equal(t, map[string]any{"name": cols[0], "spine": true}, hdr[0])
	assert.Equal(t, map[string]any{"name": features[0].Name, "dataType": map[string]any{"type": features[0].Type.Kind.DataType()}}, hdr[len(cols)])
}

func TestHistoricalHTTPSpineJSONAndNDJSON(t *testing.T) {
	n := historicalNode(t, httpapi.Options{})
	rows := spineRows()
	for _, svc := range []string{"ad_ctr_feature_service", adsV2} {
		t.Run(svc, func(t *testing.T) {
			byJSON := n.historicalJSON(n.viewer, jsonSpineBody(svc, rows, ""))
			checkSpineAnswer(t, n, svc, byJSON, rows, spineCols)

			q := url.Values{"workspace_name": {"ads"}, "feature_service_name": {svc}, "timestamp_key": {"ts"}}
			byNDJSON := n.historicalNDJSON(n.viewer, q, ndjsonSpine(rows))
			checkSpineAnswer(t, n, svc, byNDJSON, rows, spineCols)
			assert.Equal(t, string(byJSON.body), string(byNDJSON.body), "JSON and NDJSON spines give the same answer")

			camel := url.Values{"workspaceName": {"ads"}, "featureServiceName": {svc}, "timestampKey": {"ts"}, "fromSource": {"false"}}
			assert.Equal(t, string(byJSON.body), string(n.historicalNDJSON(n.viewer, camel, ndjsonSpine(rows)).body), "camelCase query parameters")
			camelBody := bytes.Replace(bytes.Replace(jsonSpineBody(svc, rows, `, "fromSource": false`), []byte(`"workspace_name"`), []byte(`"workspaceName"`), 1),
				[]byte(`"feature_service_name"`), []byte(`"featureServiceName"`), 1)
			assert.Equal(t, string(byJSON.body), string(n.historicalJSON(n.viewer, camelBody).body), "camelCase params")

			fromSource := n.historicalJSON(n.viewer, jsonSpineBody(svc, rows, `, "from_source": true`))
			require.Equal(t, http.StatusOK, fromSource.status, "body %s", fromSource.body)
			assert.Equal(t, string(byJSON.body), string(fromSource.body), "from_source recomputes from the log: results must be identical")
		})
	}
}

func TestHistoricalHTTPSpineColumnsAreTheUnion(t *testing.T) {
	n := historicalNode(t, httpapi.Options{})
	at := fmt.Sprintf("%q", ts(t0.Add(-40*time.Minute)))
	rows := []row{
		{{"ts", at}, {"user_id", `"u1"`}},
		{{"user_id", `"u2"`}, {"extra", `[1, 2]`}, {"ts", at}},
		{{"ts", at}, {"user_id", `"u1"`}, {"label", `"x"`}},
	}
	a := n.historicalJSON(n.viewer, jsonSpineBody("ad_ctr_feature_service", rows, ""))
	checkSpineAnswer(t, n, "ad_ctr_feature_service", a, rows, []string{"ts", "user_id", "extra", "label"})
}

func TestHistoricalHTTPEmptySpine(t *testing.T) {
	n := historicalNode(t, httpapi.Options{})
	a := n.historicalJSON(n.viewer, []byte(`{"params": {"workspace_name": "ads", "feature_service_name": "ad_ctr_feature_service", "spine": []}}`))
	if a.status == http.StatusOK {
		assert.Empty(t, a.body)
	} else {
		requireServingError(t, a.status, a.body, http.StatusBadRequest, 3) // the engine may refuse a spine without columns
	}
}

func TestHistoricalHTTPRange(t *testing.T) {
	n := historicalNode(t, httpapi.Options{})
	start, end := t0.Add(-time.Hour), t0
	rangeBody := func(entities string) []byte {
		return []byte(fmt.Sprintf(`{"params": {"workspace_name": "ads", "feature_service_name": "ad_ctr_feature_service",
		  "start_time": %q, "end_time": %q%s}}`, ts(start), ts(end), entities))
	}
	check := func(t *testing.T, a answer) map[string][][]member {
		t.Helper()
		require.Equal(t, http.StatusOK, a.status, "body %s", a.body)
		byKey := map[string][][]member{}
		for _, line := range a.lines(t) {
			require.Len(t, line, 4, "%v", line)
			assert.Equal(t, []string{"user_id", "_valid_from", "_valid_to", "click_events_fv.clicked"},
				[]string{line[0].name, line[1].name, line[2].name, line[3].name})
			user := strings.Trim(line[0].raw, `"`)
			byKey[user] = append(byKey[user], line)
		}
		for user, lines := range byKey {
			prevTo := start
			for _, line := range lines {
				var from, to time.Time
				require.NoError(t, json.Unmarshal([]byte(line[1].raw), &from))
				require.NoError(t, json.Unmarshal([]byte(line[2].raw), &to))
				require.True(t, !from.Before(prevTo) && to.After(from) && !to.After(end),
					"%s: intervals are ordered, disjoint, non-empty and within [start, end): %v", user, lines)
				prevTo = to
				mid := from.Add(to.Sub(from) / 2)
				served := n.servedAsOf("ad_ctr_feature_service", user, fmt.Sprintf("%q", ts(mid)))
				assert.Equal(t, served[0], line[3].raw, "%s: the value holds over [%s, %s)", user, line[1].raw, line[2].raw)
			}
		}
		return byKey
	}
	t.Run("entities", func(t *testing.T) {
		byKey := check(t, n.historicalJSON(n.viewer, rangeBody(`, "entities": [{"user_id": "u1"}]`)))
		assert.Equal(t, []string{"u1"}, keys(byKey))
		var values []string
		for _, line := range byKey["u1"] {
			if len(values) == 0 || values[len(values)-1] != line[3].raw {
				values = append(values, line[3].raw)
			}
		}
		assert.Subset(t, values, []string{`"1"`, `"0"`}, "u1 clicked, then did not")
	})
	t.Run("every key", func(t *testing.T) {
		byKey := check(t, n.historicalJSON(n.viewer, rangeBody("")))
		assert.Subset(t, keys(byKey), []string{"u1", "u2"})
	})
	t.Run("client", func(t *testing.T) {
		var out bytes.Buffer
		rows, err := newClient(t, n.srv.URL, n.viewer, nil).GetFeaturesForEvents(context.Background(), client.HistoricalRequest{
			Workspace: "ads", Service: "ad_ctr_feature_service", Start: start, End: end, Entities: []map[string]any{{"user_id": "u1"}}})
		require.NoError(t, err)
		defer rows.Close()
		for row, err := range rows.All() {
			require.NoError(t, err)
			out.Write(append(row.Line, '\n'))
		}
		want := n.historicalJSON(n.viewer, rangeBody(`, "entities": [{"user_id": "u1"}]`))
		assert.Equal(t, string(want.body), out.String())
	})
}

func keys(m map[string][][]member) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestHistoricalHTTPErrors(t *testing.T) {
	// Chunks of 4 rows: the engine answers the first rows of a spine before
	// it reads a bad row further on. A JSON spine must still get a 400.
	n := historicalNode(t, httpapi.Options{HistoricalChunkRows: 4})
	good := ndjsonSpine(spineRows()[:2])
	ads := func(extra ...string) url.Values {
		q := url.Values{"workspace_name": {"ads"}, "feature_service_name": {"ad_ctr_feature_service"}}
		for i := 0; i+1 < len(extra); i += 2 {
			q.Set(extra[i], extra[i+1])
		}
		return q
	}
	params := func(members string) []byte { return []byte(`{"params": {` + members + `}}`) }
	spine := `"spine": [{"user_id": "u1", "ts": "` + ts(t0.Add(-time.Minute)) + `"}]`
	cases := []struct {
		name         string
		a            answer
		status, code int
		msg          string
	}{
		{"malformed NDJSON row", n.historicalNDJSON(n.viewer, ads(), []byte("{\"user_id\": \"u1\", \"ts\": \""+ts(t0)+"\"}\n\n{\"user_id\": \"u1\", \"ts\": }\n")),
			400, 3, "line 3: invalid JSON"},
		{"NDJSON row not an object", n.historicalNDJSON(n.viewer, ads(), []byte("{\"user_id\": \"u1\", \"ts\": \""+ts(t0)+"\"}\n[1]\n")),
			400, 3, "line 2: expected a JSON object"},
		{"NDJSON row with a new member", n.historicalNDJSON(n.viewer, ads(), []byte("{\"user_id\": \"u1\", \"ts\": \""+ts(t0)+"\"}\n{\"user_id\": \"u1\", \"ts\": \""+ts(t0)+"\", \"x\": 1}\n")),
			400, 3, `line 2: member "x" is not a column of the first row`},
		{"NDJSON duplicate member", n.historicalNDJSON(n.viewer, ads(), []byte("\n{\"user_id\": \"u1\", \"user_id\": \"u2\"}\n")),
			400, 3, "line 2: invalid JSON: duplicate object member name"},
		{"NDJSON invalid UTF-8", n.historicalNDJSON(n.viewer, ads(), []byte("{\"user_id\": \"u\xff\", \"ts\": \""+ts(t0)+"\"}\n")),
			400, 3, "line 1: invalid JSON: invalid UTF-8"},
		{"NDJSON bad timestamp", n.historicalNDJSON(n.viewer, ads("timestamp_key", "ts"), []byte("{\"user_id\": \"u1\", \"ts\": \""+ts(t0)+"\"}\n\n\n{\"user_id\": \"u1\", \"ts\": \"yesterday\"}\n")),
			400, 3, "line 4: "},
		{"JSON row not an object", n.historicalJSON(n.viewer, params(`"workspace_name": "ads", "feature_service_name": "ad_ctr_feature_service", "spine": [{"user_id": "u1", "ts": "`+ts(t0)+`"}, 7]`)),
			400, 3, "params.spine[1] must be a JSON object"},
		{"JSON bad timestamp", n.historicalJSON(n.viewer, jsonSpineBody("ad_ctr_feature_service", append(spineRows(), row{{"user_id", `"u1"`}, {"ts", `"yesterday"`}}), "")),
			400, 3, "params.spine[6]: "},
		{"JSON duplicate member", n.historicalJSON(n.viewer, params(`"workspace_name": "ads", "feature_service_name": "ad_ctr_feature_service", "spine": [{"user_id": "u1", "user_id": "u1"}]`)),
			400, 3, "duplicate object member name"},
		{"unknown service", n.historicalJSON(n.viewer, params(`"workspace_name": "ads", "feature_service_name": "nope", `+spine)), 404, 5, "nope"},
		{"unknown service NDJSON", n.historicalNDJSON(n.viewer, ads("feature_service_name", "nope"), good), 404, 5, "nope"},
		{"unknown workspace", n.historicalJSON(n.ghostEditor, params(`"workspace_name": "ghost", "feature_service_name": "x", `+spine)), 404, 5, "ghost"},
		{"no key", n.historical("", "application/json", "", params(`"workspace_name": "ads", "feature_service_name": "ad_ctr_feature_service", `+spine)), 401, 16, "missing API key"},
		{"no key NDJSON", n.historical("", "application/x-ndjson", "?"+ads().Encode(), good), 401, 16, "missing API key"},
		{"editor of another workspace", n.historicalJSON(n.otherEditor, params(`"workspace_name": "ads", "feature_service_name": "ad_ctr_feature_service", `+spine)), 403, 7, "viewer role"},
		{"editor of another workspace NDJSON", n.historicalNDJSON(n.otherEditor, ads(), good), 403, 7, "viewer role"},
		{"no role", n.historicalJSON(n.noRole, params(`"workspace_name": "ads", "feature_service_name": "ad_ctr_feature_service", `+spine)), 403, 7, "viewer role"},
		{"missing service", n.historicalJSON(n.viewer, params(`"workspace_name": "ads", `+spine)), 400, 3, "params.feature_service_name is required"},
		{"missing service NDJSON", n.historicalNDJSON(n.viewer, url.Values{"workspace_name": {"ads"}}, good), 400, 3, "params.feature_service_name is required"},
		{"spine and range", n.historicalJSON(n.viewer, params(`"workspace_name": "ads", "feature_service_name": "s", "start_time": "`+ts(t0.Add(-time.Hour))+`", "end_time": "`+ts(t0)+`", `+spine)),
			400, 3, "not both"},
		{"neither spine nor range", n.historicalJSON(n.viewer, params(`"workspace_name": "ads", "feature_service_name": "s"`)), 400, 3, "params.spine"},
		{"bad start_time", n.historicalJSON(n.viewer, params(`"workspace_name": "ads", "feature_service_name": "s", "start_time": "monday", "end_time": "`+ts(t0)+`"`)),
			400, 3, "params.start_time"},
		{"end before start", n.historicalJSON(n.viewer, params(`"workspace_name": "ads", "feature_service_name": "s", "start_time": "`+ts(t0)+`", "end_time": "`+ts(t0)+`"`)),
			400, 3, "must be after params.start_time"},
		{"start without end", n.historicalJSON(n.viewer, params(`"workspace_name": "ads", "feature_service_name": "s", "start_time": "`+ts(t0)+`"`)),
			400, 3, "params.end_time is required"},
		{"entities with a spine", n.historicalJSON(n.viewer, params(`"workspace_name": "ads", "feature_service_name": "s", "entities": [], `+spine)),
			400, 3, "params.entities belongs to range mode"},
		{"unknown param", n.historicalJSON(n.viewer, params(`"workspace_name": "ads", "feature_service_name": "s", "bogus": 1, `+spine)), 400, 3, `unknown parameter "bogus"`},
		{"unknown query parameter", n.historicalNDJSON(n.viewer, ads("start_time", ts(t0)), good), 400, 3, `unknown query parameter "start_time"`},
		{"bad from_source", n.historicalNDJSON(n.viewer, ads("from_source", "maybe"), good), 400, 3, "must be true or false"},
		{"bad body", n.historicalJSON(n.viewer, []byte(`{"params": `)), 400, 3, "not valid JSON"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			requireServingError(t, tc.a.status, tc.a.body, tc.status, tc.code)
			var e struct{ Message string }
			require.NoError(t, json.Unmarshal(tc.a.body, &e))
			assert.Contains(t, e.Message, tc.msg)
			assert.Equal(t, "application/json", tc.a.header.Get("Content-Type"), "nothing was streamed")
		})
	}
}

func TestHistoricalHTTPBodyLimits(t *testing.T) {
	n := historicalNode(t, httpapi.Options{MaxBodyBytes: 1 << 10, MaxSpineBytes: 2 << 10})
	rows := spineRows()
	var big []row
	for len(ndjsonSpine(big)) < 4<<10 {
		big = append(big, rows...)
	}
	a := n.historicalJSON(n.viewer, jsonSpineBody("ad_ctr_feature_service", big, ""))
	requireServingError(t, a.status, a.body, http.StatusRequestEntityTooLarge, 3)
	assert.Contains(t, string(a.body), "send a large spine as NDJSON")

	q := url.Values{"workspace_name": {"ads"}, "feature_service_name": {"ad_ctr_feature_service"}, "timestamp_key": {"ts"}}
	a = n.historicalNDJSON(n.viewer, q, ndjsonSpine(big))
	if a.status == http.StatusOK { // the engine answered rows before it read past the limit
		lines := a.lines(t)
		last := lines[len(lines)-1]
		assert.Equal(t, "code", last[0].name, "the answer ends with the error: %s", a.body)
		assert.Contains(t, string(a.body), "larger than the limit of 2048 bytes")
	} else {
		requireServingError(t, a.status, a.body, http.StatusRequestEntityTooLarge, 3)
		assert.Contains(t, string(a.body), "larger than the limit of 2048 bytes")
	}

	// Within the limits, a spine larger than MaxBodyBytes streams as NDJSON.
	var mid []row
	for len(ndjsonSpine(mid)) < 1500 {
		mid = append(mid, rows...)
	}
	a = n.historicalNDJSON(n.viewer, q, ndjsonSpine(mid))
	checkSpineAnswer(t, n, "ad_ctr_feature_service", a, mid, spineCols)
}

// TestHistoricalHTTPClientStreams sends a large NDJSON spine through the
// Client while reading the answer, and checks every row comes back in
// order, decoded, equal to the engine's own reads.
func TestHistoricalHTTPClientStreams(t *testing.T) {
	n := historicalNode(t, httpapi.Options{})
	const rows = 30_000
	pr, pw := io.Pipe()
	go func() {
		for i := range rows {
			at := t0.Add(-time.Duration(i%90) * time.Minute)
			user := []string{"u1", "u2", "nobody"}[i%3]
			fmt.Fprintf(pw, "{\"i\": %d, \"user_id\": %q, \"ts\": %q}\n", i, user, ts(at))
		}
		pw.Close()
	}()
	c := newClient(t, n.srv.URL, n.viewer, nil)
	res, err := c.GetFeaturesForEvents(context.Background(), client.HistoricalRequest{Workspace: "ads", Service: adsV2, SpineSource: client.NDJSONSpine(pr)})
	require.NoError(t, err)
	defer res.Close()
	cols := res.Columns()
	require.Equal(t, []client.Column{{Name: "i", Spine: true}, {Name: "user_id", Spine: true}, {Name: "ts", Spine: true}}, cols[:3])
	require.Equal(t, 3, res.Lead())
	want := map[string]*engine.FeatureVector{} // user and time → the engine's read
	for i := 0; ; i++ {
		row, err := res.Next()
		if err == io.EOF {
			require.Equal(t, rows, i, "every spine row is answered")
			break
		}
		require.NoError(t, err)
		require.Equal(t, fmt.Sprint(i), string(row.Values[0]), "spine order")
		require.Equal(t, i+1, row.Tag, "the tag of the spine row answered: its line")
		var user, at string
		require.NoError(t, json.Unmarshal(row.Values[1], &user))
		require.NoError(t, json.Unmarshal(row.Values[2], &at))
		vec := want[user+at]
		if vec == nil {
			asOf, err := schema.ParseTimestamp(at)
			require.NoError(t, err)
			vec, err = n.db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "ads", Service: adsV2, JoinKeys: map[string]any{"user_id": user}, AsOf: asOf})
			require.NoError(t, err)
			want[user+at] = vec
		}
		require.Len(t, row.Values, 3+len(vec.Features))
		for j, f := range vec.Features {
			typ, err := httpapi.ParseDataType(cols[3+j].DataType.Type, elemType(cols[3+j].DataType))
			require.NoError(t, err)
			got, err := httpapi.DecodeValue(jsontext.Value(row.Values[3+j]), typ)
			require.NoError(t, err)
			require.True(t, f.Value.Equal(got), "row %d %s: got %v, engine reads %v", i, f.Name, got, f.Value)
			require.Equal(t, f.Name, cols[3+j].Name)
		}
	}
}

// TestHistoricalHTTPLateErrors: with an NDJSON spine, an error found
// after the answer started is its last line, and the Client returns it as
// an error.
func TestHistoricalHTTPLateErrors(t *testing.T) {
	n := historicalNode(t, httpapi.Options{HistoricalChunkRows: 1000})
	var spine strings.Builder
	const rows = 20_500
	for i := range rows {
		fmt.Fprintf(&spine, "{\"user_id\": \"u1\", \"ts\": %q}\n", ts(t0.Add(-time.Duration(i%60)*time.Minute)))
	}
	spine.WriteString("{\"user_id\": \"u1\", \"ts\": \n")

	q := url.Values{"workspace_name": {"ads"}, "feature_service_name": {"ad_ctr_feature_service"}, "timestamp_key": {"ts"}}
	a := n.historicalNDJSON(n.viewer, q, []byte(spine.String()))
	require.Equal(t, http.StatusOK, a.status, "the answer started before the bad line was read")
	lines := a.lines(t)
	require.Len(t, lines, rows/1000*1000+1, "the rows of every whole chunk, then the error")
	last := lines[len(lines)-1]
	require.Equal(t, []string{"code", "error", "message"}, []string{last[0].name, last[1].name, last[2].name}, "%v", last)
	assert.Equal(t, "3", last[0].raw)
	assert.Contains(t, last[2].raw, fmt.Sprintf("line %d: invalid JSON", rows+1))

	var out bytes.Buffer
	c := newClient(t, n.srv.URL, n.viewer, nil)
	res, err := c.GetFeaturesForEvents(context.Background(), client.HistoricalRequest{Workspace: "ads", Service: "ad_ctr_feature_service",
		TimestampKey: "ts", SpineSource: client.NDJSONSpine(strings.NewReader(spine.String()))})
	require.NoError(t, err)
	defer res.Close()
	for row, rerr := range res.All() {
		if err = rerr; err == nil {
			out.Write(append(row.Line, '\n'))
		}
	}
	require.Error(t, err)
	var ce *client.Error
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, http.StatusOK, ce.Status, "an error after the answer started")
	assert.Equal(t, 3, ce.Code)
	assert.Contains(t, err.Error(), fmt.Sprintf("line %d: invalid JSON", rows+1))
	assert.NotContains(t, out.String(), `"code"`, "the error line is not copied as a row")
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if line != "" {
			assert.True(t, strings.HasPrefix(line, `{"user_id":"u1"`), line)
		}
	}
}

// TestHistoricalHTTPRangeRefusals: range mode without entities over views
// whose join keys share a name but not a type, and over a join key named
// like one of range mode's own columns, are 400s naming the cause.
func TestHistoricalHTTPRangeRefusals(t *testing.T) {
	n := newNode(t, httpapi.Options{})
	_, err := n.db.Apply("mixed.yaml", []byte(`workspace: mixed
entities:
  - name: user
    join_keys: [user_id]
  - name: period
    join_keys: [_valid_to]
sources:
  - name: s_str
    schema:
      - {name: user_id, type: String}
      - {name: _valid_to, type: String}
      - {name: ts, type: Timestamp}
      - {name: a, type: Int64}
  - name: s_int
    schema:
      - {name: user_id, type: Int64}
      - {name: ts, type: Timestamp}
      - {name: b, type: Int64}
feature_views:
  - name: va
    source: s_str
    entities: [user]
    features:
      - aggregate: {input: a, function: sum, window: 1d}
  - name: vb
    source: s_int
    entities: [user]
    features:
      - aggregate: {input: b, function: sum, window: 1d}
  - name: vp
    source: s_str
    entities: [period]
    features:
      - aggregate: {input: a, function: count, window: 1d}
feature_services:
  - name: users_fs
    features: [va, vb]
  - name: periods_fs
    features: [vp]
`))
	require.NoError(t, err)
	viewer := n.account("mixed-viewer", map[string]auth.Role{"mixed": auth.Viewer})
	rangeBody := func(svc, entities string) []byte {
		return []byte(fmt.Sprintf(`{"params": {"workspace_name": "mixed", "feature_service_name": %q,
		  "start_time": %q, "end_time": %q%s}}`, svc, ts(t0.Add(-time.Hour)), ts(t0), entities))
	}
	a := n.historicalJSON(viewer, rangeBody("users_fs", ""))
	requireServingError(t, a.status, a.body, http.StatusBadRequest, 3)
	assert.Contains(t, string(a.body), "va: user_id String; vb: user_id Int64")
	a = n.historicalJSON(viewer, rangeBody("users_fs", `, "entities": [{"user_id": "7"}]`))
	require.Equal(t, http.StatusOK, a.status, "with an entities list the views are joined: %s", a.body)
	a = n.historicalJSON(viewer, rangeBody("periods_fs", ""))
	requireServingError(t, a.status, a.body, http.StatusBadRequest, 3)
	assert.Contains(t, string(a.body), `\"_valid_to\" is a join key`)
}

// elemType returns an array type's element type name, else "".
func elemType(t *client.DataType) string {
	if t.ElementType == nil {
		return ""
	}
	return t.ElementType.Type
}
