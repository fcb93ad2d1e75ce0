//go:build unix

package console_test

// The console in a real browser: headless Chromium (Debian's chromium
// package), driven through the DevTools protocol by chromedp, against a
// node serving the ads example with ingested data: a real engine on a
// temporary data directory behind httpapi's http.Server, as `featurelog
// serve` runs them, with two accounts (owner and viewer of ads), a job
// held RUNNING for the cancel test, and a second server on the same
// engine with --no-auth.
//
// Every page of every tab is watched: a console.error, an uncaught
// exception, a browser log entry at error level (a CSP violation, a
// failed module load) or a request answered >= 400 fails the test,
// except the answers a step expects (the role probe of the jobs page, a
// refusal the viewer test provokes). Screenshots of each page go to
// $FEATURELOG_TEST_OUT/console, or to featurelog-console-screenshots in
// the temporary directory; the test logs where.
//
// Without a chromium on the PATH the test skips, saying so; with
// CI=true it fails instead, as .ci/run installs chromium before go test.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
	"github.com/featurelog/featurelog/internal/console"
	"github.com/featurelog/featurelog/internal/console/browsertest"
	"github.com/featurelog/featurelog/vfs"
	"github.com/featurelog/featurelog/vfs/errorfs"
)

var consoleHandler = console.Handler()

// slowView is a view the example does not have: applying it starts a
// backfill that the gate holds RUNNING.
const slowView = `
  - name: console_slow_view
    source: impressions_event_source
    entities: [user]
    timestamp_field: timestamp
    ttl: 7d
    description: A view whose backfill the test holds running.
    features:
      - attribute: {name: clicked}
`

// node is the server under test.
type node struct {
	db                  *engine.DB
	gate                *errorfs.Gate
	url, noAuthURL      string    // the server with auth, and the one without
	ownerKey, viewerKey string    // of ads
	slowJob             string    // the backfill the gate holds RUNNING
	now                 time.Time // when the data was ingested
}

func startNode(t *testing.T) *node {
	t.Helper()
	example, err := os.ReadFile(filepath.Join("..", "..", "examples", "ads", "features.yaml"))
	require.NoError(t, err)
	n := &node{gate: errorfs.NewGate(vfs.Default)}
	quiet := slog.New(slog.DiscardHandler)
	n.db, err = engine.Open(engine.Options{Dir: t.TempDir(), FS: n.gate, Logger: quiet})
	require.NoError(t, err)
	res, err := n.db.ApplyWait(context.Background(), "features.yaml", example)
	require.NoError(t, err)
	require.Equal(t, "ads", res.Workspace)
	n.ownerKey = account(t, n.db, "console-owner", auth.Owner)
	n.viewerKey = account(t, n.db, "console-viewer", auth.Viewer)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	serve := func(opts httpapi.Options) string {
		opts.Addr, opts.Logger = "127.0.0.1:0", quiet
		srv, err := httpapi.New(n.db, opts)
		require.NoError(t, err)
		addr := make(chan net.Addr, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			assert.NoError(t, srv.ListenAndServe(ctx, func(a net.Addr) { addr <- a }))
		}()
		return "http://" + (<-addr).String()
	}
	n.url = serve(httpapi.Options{})
	n.noAuthURL = serve(httpapi.Options{NoAuth: true})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		n.gate.Release() // before Close, which may write segments
		require.NoError(t, n.db.Close())
	})

	n.now = time.Now().UTC()
	n.ingest(t, "C18947Z5", n.now.Add(-3*time.Hour), 1)
	n.ingest(t, "C98FG569", n.now.Add(-170*time.Minute), 1)
	n.ingest(t, "C18947Z5", n.now.Add(-160*time.Minute), 0)
	n.ingest(t, "C18947Z5", n.now.Add(-40*time.Minute), 1)
	n.ingest(t, "C18947Z5", n.now.Add(-10*time.Minute), 1)

	n.gate.Arm()
	res, err = n.db.Apply("features.yaml", []byte(strings.Replace(string(example), "feature_views:\n", "feature_views:"+slowView, 1)))
	require.NoError(t, err)
	require.Len(t, res.Jobs, 1, "one backfill, of console_slow_view")
	n.slowJob = res.Jobs[0].ID
	select {
	case <-n.gate.Blocked():
	case <-time.After(time.Minute):
		t.Fatal("the backfill of console_slow_view wrote no segment within a minute")
	}
	return n
}

func account(t *testing.T, db *engine.DB, name string, role auth.Role) string {
	t.Helper()
	key, acct, err := db.Accounts().CreateAccount(name, "")
	require.NoError(t, err)
	require.NoError(t, db.Accounts().AssignRole(acct.ID, "ads", role))
	return key
}

// call makes an API call as the console would and returns the status
// and body.
func (n *node) call(t *testing.T, method, path, key, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, n.url+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

func (n *node) ingest(t *testing.T, user string, at time.Time, clicked int) {
	t.Helper()
	status, body := n.call(t, "POST", "/ingest", n.ownerKey, fmt.Sprintf(
		`{"workspace_name":"ads","dry_run":false,"records":{"impressions_event_source":[{"record":{"user_id":%q,"timestamp":%q,"clicked":%d}}]}}`,
		user, at.Format(time.RFC3339Nano), clicked))
	require.Equal(t, http.StatusOK, status, "%s", body)
}

// browsertest.VectorRow is a row of the lookup page's vector table.
// apiVector asks get-features what the lookup page should show.
func (n *node) apiVector(t *testing.T, key, service, user, asOf string) []browsertest.VectorRow {
	t.Helper()
	params := map[string]any{"workspace_name": "ads", "feature_service_name": service, "join_key_map": map[string]string{"user_id": user},
		"metadata_options": map[string]bool{"include_names": true, "include_data_types": true, "include_effective_times": true, "include_serving_status": true}}
	if asOf != "" {
		params["as_of"] = asOf
	}
	body, err := json.Marshal(map[string]any{"params": params})
	require.NoError(t, err)
	status, out := n.call(t, "POST", "/api/v1/feature-service/get-features", key, string(body))
	require.Equal(t, http.StatusOK, status, "%s", out)
	var resp struct {
		Result   struct{ Features []json.RawMessage }
		Metadata struct {
			Features []struct {
				Name          string
				DataType      struct{ Type string }
				EffectiveTime string
				Status        string
			}
		}
	}
	require.NoError(t, json.Unmarshal(out, &resp))
	rows := make([]browsertest.VectorRow, len(resp.Result.Features))
	for i, v := range resp.Result.Features {
		m := resp.Metadata.Features[i]
		rows[i] = browsertest.VectorRow{Name: m.Name, Type: m.DataType.Type, JSON: string(v), Effective: m.EffectiveTime, Status: m.Status}
	}
	return rows
}

func TestConsoleInBrowser(t *testing.T) {
	path := browsertest.Chromium(t)
	n := startNode(t)
	b := browsertest.New(t, path)
	owner := b.NewTab(t, n.url, true)
	assert.Contains(t, owner.Text(), "This node needs an API key", "a first visit without a key")
	owner.Log.Check(t, "first visit")
	owner.UseKey(n.ownerKey)

	t.Run("pages load without errors", func(t *testing.T) {
		owner.T = t
		for _, p := range []struct{ hash, shot, want string }{
			{"#/workspaces", "workspaces", "ad_ctr_feature_service_v2"},
			{"#/view/ads/user_click_counts", "view", "clicked_count_12h_continuous"},
			{"#/lookup?ws=ads&service=ad_ctr_feature_service_v2&key.user_id=C18947Z5", "lookup", "Timeline, last day"},
			{"#/jobs/ads", "jobs", n.slowJob},
		} {
			owner.Open(p.hash)
			assert.Contains(t, owner.Text(), p.want, "%s", p.hash)
			owner.Screenshot(p.shot)
			owner.Log.Check(t, p.hash)
		}
		// The view page shows the summary's counts and freshness.
		owner.Open("#/view/ads/user_click_counts")
		stats := browsertest.Eval[string](owner, `document.getElementById('view-stats').innerText`)
		assert.Contains(t, stats, "Entity keys online\n2")
		assert.Contains(t, stats, n.now.Add(-10*time.Minute).Format("2006-01-02 15:04"), "freshness: the newest event")
		// The timeline chart is drawn from range mode.
		// As a user does it: pick the service, type the key, submit.
		owner.Open("#/lookup?ws=ads&service=ad_ctr_feature_service_v2")
		browsertest.Eval[chromedp.Void](owner, `document.body.dataset.ready = 'false'; undefined`)
		owner.Do(chromedp.SendKeys(chromedp.CSS(`#lookup-form input[name="user_id"]`), "C18947Z5"),
			chromedp.Click(chromedp.CSS(`#lookup-form button[type="submit"]`)))
		owner.WaitReady("lookup")
		assert.Equal(t, 5, browsertest.Eval[int](owner, `document.querySelectorAll('#vector tbody tr').length`))
		assert.True(t, browsertest.Eval[bool](owner, `document.querySelector('#timeline svg path.line') !== null`), "the timeline draws a line")
		owner.Log.Check(t, "view and lookup")
	})

	t.Run("lookup shows what get-features answers", func(t *testing.T) {
		owner.T = t
		asOf := time.Now().UTC().Truncate(time.Second).Format(time.RFC3339)
		for _, c := range []struct{ service, user, asOf string }{
			{"ad_ctr_feature_service_v2", "C18947Z5", asOf},
			{"ad_ctr_feature_service_v2", "C98FG569", asOf},
			{"ad_ctr_feature_service", "C18947Z5", ""},
			{"ad_ctr_feature_service_v2", "nobody", asOf},
		} {
			hash := "#/lookup?ws=ads&service=" + c.service + "&key.user_id=" + c.user
			if c.asOf != "" {
				hash += "&as_of=" + c.asOf
			}
			owner.Open(hash)
			shown := browsertest.Eval[[]browsertest.VectorRow](owner, browsertest.ReadVector)
			want := n.apiVector(t, n.ownerKey, c.service, c.user, c.asOf)
			require.Len(t, shown, len(want), "%s", hash)
			for i := range want {
				if c.asOf == "" { // now moves between the two reads: compare what does not
					shown[i].Effective, want[i].Effective = "", ""
				}
				var a, b any
				require.NoError(t, json.Unmarshal([]byte(shown[i].JSON), &a))
				require.NoError(t, json.Unmarshal([]byte(want[i].JSON), &b))
				assert.Equal(t, b, a, "%s: %s", hash, want[i].Name)
				shown[i].JSON, want[i].JSON = "", ""
			}
			assert.Equal(t, want, shown, "%s: names, types, effective times and statuses", hash)
		}
		// A lookup the API refuses (as_of after now) shows its message.
		future := "2099-01-01T00:00:00Z"
		status, body := n.call(t, "POST", "/api/v1/feature-service/get-features", n.ownerKey,
			`{"params":{"workspace_name":"ads","feature_service_name":"ad_ctr_feature_service","join_key_map":{"user_id":"C18947Z5"},"as_of":"`+future+`"}}`)
		require.Equal(t, http.StatusBadRequest, status, "%s", body)
		var refusal struct{ Message string }
		require.NoError(t, json.Unmarshal(body, &refusal))
		owner.Log.Expect(browsertest.Refusal{Part: "/api/v1/feature-service/get-features", Status: 400})
		owner.Open("#/lookup?ws=ads&service=ad_ctr_feature_service&key.user_id=C18947Z5&as_of=" + future)
		shownErr := browsertest.Eval[string](owner, `document.querySelector('#page .error').textContent`)
		stable, _, _ := strings.Cut(refusal.Message, "(now is ") // the rest names the node's clock
		require.NotEmpty(t, stable)
		assert.True(t, strings.HasPrefix(shownErr, "HTTP 400: "+stable), "the page shows %q; the API says %q", shownErr, refusal.Message)
		owner.Log.Forget(browsertest.Refusal{Part: "/api/v1/feature-service/get-features", Status: 400})
		owner.Log.Check(t, "lookup")
	})

	t.Run("stream tail shows a record ingested after the page opened", func(t *testing.T) {
		owner.T = t
		owner.Open("#/stream/ads/user_click_counts")
		owner.WaitFor("the stream to be live", `document.getElementById('stream-status').dataset.state === 'live'`)
		n.ingest(t, "C_STREAMED_1", time.Now().UTC().Add(-time.Minute), 1)
		owner.WaitFor("the record in the tail", `document.querySelector('#stream tbody').textContent.includes('C_STREAMED_1')`)
		owner.Screenshot("stream")
		owner.Open("#/workspaces") // leaving ends the stream (an aborted fetch, not an error)
		owner.Log.Check(t, "stream")
	})

	t.Run("a viewer sees no cancel button and the API's refusals", func(t *testing.T) {
		viewer := b.NewTab(t, n.url, true, browsertest.Refusal{Part: "/api/v1/workspaces/secret/", Status: 403})
		viewer.UseKey(n.viewerKey)
		viewer.Open("#/jobs/ads")
		viewer.WaitFor("the running job", fmt.Sprintf(`document.querySelector('tr[data-job=%q] td.state').textContent === 'RUNNING'`, n.slowJob))
		assert.Equal(t, 0, browsertest.Eval[int](viewer, `document.querySelectorAll('button.cancel').length`), "a viewer gets no cancel button")
		viewer.Screenshot("jobs-viewer")
		// A view of a workspace the key holds no role on: the page shows
		// the API's refusal as the API states it.
		status, body := n.call(t, "GET", "/api/v1/workspaces/secret/feature-views/x", n.viewerKey, "")
		require.Equal(t, http.StatusForbidden, status)
		var refusal struct{ Message string }
		require.NoError(t, json.Unmarshal(body, &refusal))
		require.NotEmpty(t, refusal.Message)
		viewer.Open("#/view/secret/x")
		assert.Equal(t, "HTTP 403: "+refusal.Message, browsertest.Eval[string](viewer, `document.querySelector('#page .error').textContent`))
		viewer.Screenshot("refused")
		viewer.Log.Check(t, "viewer")
	})

	t.Run("an owner cancels a running job", func(t *testing.T) {
		owner.T = t
		owner.Open("#/jobs/ads")
		row := fmt.Sprintf(`tr[data-job=%q]`, n.slowJob)
		owner.WaitFor("the running job's cancel button", `document.querySelector('`+row+` button.cancel') !== null`)
		owner.Do(chromedp.Click(chromedp.CSS(row + " button.cancel")))
		owner.WaitFor("the job cancelled", `['MANUAL_CANCELLATION_REQUESTED', 'CANCELLED'].includes(document.querySelector('`+row+` td.state').textContent)`)
		assert.Equal(t, 0, browsertest.Eval[int](owner, `document.querySelectorAll('`+row+` button.cancel').length`), "no cancel button once cancelled")
		j, err := n.db.Job("ads", n.slowJob)
		require.NoError(t, err)
		assert.Contains(t, []engine.JobState{engine.JobCancelRequested, engine.JobCancelled}, j.State)
		n.gate.Release()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		j, err = n.db.WaitJob(ctx, "ads", n.slowJob)
		require.NoError(t, err)
		assert.Equal(t, engine.JobCancelled, j.State)
		owner.WaitFor("the page to show CANCELLED", `document.querySelector('`+row+` td.state').textContent === 'CANCELLED'`)
		owner.Screenshot("jobs-cancelled")
		owner.Log.Check(t, "cancel")
	})

	t.Run("a newer node's view fields and ingest rate", func(t *testing.T) {
		// The API's newer summary fields and ingest-rate route, from a
		// stub: the page shows them where a node has them (and "—"
		// where it has not, as the pages above show).
		stub := b.NewTab(t, newerNode(t), false)
		stub.Open("#/view/ads/fv")
		assert.Equal(t, 60, browsertest.Eval[int](stub, `document.querySelectorAll('#ingest-rate svg rect.bar').length`), "a bar per minute")
		text := stub.Text()
		assert.Contains(t, text, "count\tclicked\t1h")
		assert.Contains(t, text, "clicked ** 2")
		assert.Contains(t, text, "Segments\n3\n120.6 KiB")
		assert.Equal(t, 2, browsertest.Eval[int](stub, `document.querySelectorAll('table.versions tbody tr').length`))
		stub.Screenshot("view-newer-node")
		stub.Log.Check(t, "newer view")
	})

	t.Run("works without auth", func(t *testing.T) {
		open := b.NewTab(t, n.noAuthURL, false)
		assert.Contains(t, open.Text(), "user_click_counts")
		open.Open("#/lookup?ws=ads&service=ad_ctr_feature_service&key.user_id=C18947Z5")
		shown := browsertest.Eval[[]browsertest.VectorRow](open, browsertest.ReadVector)
		require.Len(t, shown, 1)
		assert.Equal(t, "click_events_fv.clicked", shown[0].Name)
		assert.Equal(t, `"1"`, shown[0].JSON)
		open.Screenshot("lookup-no-auth")
		open.Log.Check(t, "no-auth")
	})
}

// newerView is a summary with the fields a newer node adds
// ("transformation", "feature_definitions", "versions", "storage"), for
// the view page's test against a stub of that API.
const newerView = `{"name": "fv", "description": "A view of a newer node.", "owner": "", "source": "events", "tags": {},
 "entities": ["user"], "join_keys": ["user_id"], "features": ["clicked_count_1h_continuous", "clicked_sum_1d_continuous"],
 "timestamp_field": "ts", "aggregation_interval": "continuous", "ttl": "1d", "batch_schedule": null,
 "feature_start_time": null, "created_at": "2026-01-01T00:00:00Z", "version": 2, "online": true, "offline": true,
 "online_record_count": 42, "offline_record_count": 42, "freshness": "2026-01-01T00:10:00Z", "entity_keys_online": 7,
 "serving_version": 2, "job": null,
 "transformation": {"columns": {"clicked_squared": "clicked ** 2"}, "filter": "clicked >= 0"},
 "feature_definitions": [
   {"name": "clicked_count_1h_continuous", "dataType": {"type": "int64"}, "function": "count", "column": "clicked", "time_window": "1h"},
   {"name": "clicked_sum_1d_continuous", "dataType": {"type": "int64"}, "function": "sum", "column": "clicked", "time_window": "1d"}],
 "versions": [
   {"version": 2, "created_at": "2026-01-01T00:00:00Z", "serving": true, "job": "job_2"},
   {"version": 1, "created_at": "2025-12-01T00:00:00Z", "serving": false, "job": "job_1"}],
 "storage": {"segments": 3, "segment_bytes": 123456, "memtable_records": 10, "memtable_bytes": 2048}}`

// newerNode stubs the routes the view page calls on a newer node, with
// the console's own handler at /ui/.
func newerNode(t *testing.T) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("GET /ui/", consoleHandler)
	mux.HandleFunc("GET /api/v1/workspaces/ads/feature-views/fv", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, newerView)
	})
	mux.HandleFunc("GET /api/v1/workspaces/ads/feature-views/fv/ingest-rate", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("minutes") != "60" {
			http.Error(w, `{"code":3,"error":"minutes","message":"minutes"}`, http.StatusBadRequest)
			return
		}
		start := time.Now().UTC().Truncate(time.Minute).Add(-59 * time.Minute)
		var points []string
		for i := range 60 {
			points = append(points, fmt.Sprintf(`{"start":%q,"records":%d}`, start.Add(time.Duration(i)*time.Minute).Format(time.RFC3339), (i*7)%23))
		}
		fmt.Fprintf(w, `{"interval_seconds":60,"points":[%s]}`, strings.Join(points, ","))
	})
	mux.HandleFunc("GET /api/v1/workspaces", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"workspaces":[]}`)
	})
	mux.HandleFunc("GET /api/v1/workspaces/ads/jobs", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"jobs":[]}`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}
