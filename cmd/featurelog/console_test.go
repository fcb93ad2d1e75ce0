//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/internal/console/browsertest"
)

// TestConsoleAgainstServe: `featurelog serve` with the ads example and
// --no-auth, a real child process, then its address opened in headless
// Chromium shows a usable console: / leads to it, the workspaces page
// lists the example, the lookup shows what get-features answers, the
// jobs page the apply's backfills, and the stream tail a record ingested
// after it opened; no page logs an error. internal/console's
// TestConsoleInBrowser covers roles, cancel and the view page in depth,
// against the same server code in-process. Skipped with -short (the
// race run); without chromium it skips, or fails with CI=true.
func TestConsoleAgainstServe(t *testing.T) {
	if testing.Short() {
		t.Skip("the browser test runs in the full (non -short) run")
	}
	path := browsertest.Chromium(t)
	c := startServe(t, t.TempDir())
	base := "http://" + c.addr
	post := func(route, body string) []byte {
		t.Helper()
		resp, err := http.Post(base+route, "application/json", strings.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
		return b
	}
	ingest := func(user string, at time.Time, clicked int) {
		post("/ingest", fmt.Sprintf(`{"workspace_name":"ads","dry_run":false,"records":{"impressions_event_source":[{"record":{"user_id":%q,"timestamp":%q,"clicked":%d}}]}}`,
			user, at.Format(time.RFC3339Nano), clicked))
	}
	now := time.Now().UTC()
	ingest("C18947Z5", now.Add(-2*time.Hour), 1)
	ingest("C18947Z5", now.Add(-30*time.Minute), 1)
	ingest("C98FG569", now.Add(-20*time.Minute), 0)

	b := browsertest.New(t, path)
	tab := b.NewTab(t, base, false)
	assert.Contains(t, tab.Text(), "ad_ctr_feature_service_v2")
	tab.Screenshot("serve-workspaces")

	// / redirects to the console.
	browsertest.Eval[chromedp.Void](tab, `document.body.dataset.ready = 'false'; undefined`)
	tab.Do(chromedp.Navigate(base + "/"))
	tab.WaitReady("workspaces")
	assert.Equal(t, base+"/ui/", browsertest.Eval[string](tab, `location.origin + location.pathname`))

	asOf := now.Truncate(time.Second).Format(time.RFC3339)
	tab.Open("#/lookup?ws=ads&service=ad_ctr_feature_service_v2&key.user_id=C18947Z5&as_of=" + asOf)
	shown := browsertest.Eval[[]browsertest.VectorRow](tab, browsertest.ReadVector)
	var want struct {
		Result struct{ Features []json.RawMessage }
	}
	require.NoError(t, json.Unmarshal(post("/api/v1/feature-service/get-features", fmt.Sprintf(
		`{"params":{"workspace_name":"ads","feature_service_name":"ad_ctr_feature_service_v2","join_key_map":{"user_id":"C18947Z5"},"as_of":%q}}`, asOf)), &want))
	require.Len(t, shown, len(want.Result.Features))
	for i, v := range want.Result.Features {
		assert.JSONEq(t, string(v), shown[i].JSON, "%s", shown[i].Name)
	}
	tab.Screenshot("serve-lookup")

	tab.Open("#/jobs/ads")
	assert.Equal(t, 2, browsertest.Eval[int](tab, `[...document.querySelectorAll('td.state')].filter((td) => td.textContent === 'SUCCESS').length`),
		"the apply's two backfills")

	tab.Open("#/stream/ads/user_click_counts")
	tab.WaitFor("the stream to be live", `document.getElementById('stream-status').dataset.state === 'live'`)
	ingest("C_SERVE_STREAM", time.Now().UTC().Add(-time.Second), 1)
	tab.WaitFor("the record in the tail", `document.querySelector('#stream tbody').textContent.includes('C_SERVE_STREAM')`)
	tab.Screenshot("serve-stream")
	tab.Log.Check(t, "featurelog serve")

	require.NoError(t, c.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 0, c.wait(t), "serve stops cleanly with the console's stream open; stderr:\n%s", c.stderr)
	assert.Contains(t, c.stderr.String(), "featurelog: web console at "+base+"/ui/")
}
