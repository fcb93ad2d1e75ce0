//go:build unix

// Uses the node of ingest_http_test.go, which is unix-only.

package httpapi_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
)

// ingestKeyed posts body to /ingest as the account apiKey with the
// Idempotency-Key header set to each of keys (none when empty), and
// returns the status, the Idempotent-Replayed header and the body.
func (n *node) ingestKeyed(apiKey string, body []byte, keys ...string) (int, string, []byte) {
	n.t.Helper()
	req, err := http.NewRequest(http.MethodPost, n.srv.URL+"/ingest", bytes.NewReader(body))
	require.NoError(n.t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Tecton-key "+apiKey)
	for _, k := range keys {
		req.Header.Add("Idempotency-Key", k)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(n.t, err)
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, err = buf.ReadFrom(resp.Body)
	require.NoError(n.t, err)
	return resp.StatusCode, resp.Header.Get("Idempotent-Replayed"), buf.Bytes()
}

// adsClicks is a request of k clicks by user, a minute before the node's now.
func (n *node) adsClicks(user string, k int) []byte {
	recs := make([]string, k)
	for i := range recs {
		recs[i] = fmt.Sprintf(`{"record":{"user_id":%q,"timestamp":%q,"clicked":1}}`, user, ts(n.clock.Now().Add(-time.Minute)))
	}
	return []byte(`{"workspace_name":"ads","dry_run":false,"records":{"impressions_event_source":[` + strings.Join(recs, ",") + `]}}`)
}

// clicks1h reads user's clicked_count_1h through the engine.
func (n *node) clicks1h(user string) int64 {
	vec, err := n.db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "ads", Service: "ad_ctr_feature_service_v2", JoinKeys: map[string]any{"user_id": user}})
	require.NoError(n.t, err)
	require.Equal(n.t, "user_click_counts.clicked_count_1h_continuous", vec.Features[1].Name)
	return vec.Features[1].Value.I
}

// TestIdempotencyKeyOverHTTP: a repeat gets the first response's bytes,
// marked Idempotent-Replayed, and writes nothing, also after a restart.
func TestIdempotencyKeyOverHTTP(t *testing.T) {
	n := newNode(t, httpapi.Options{})
	before := n.logEntries()
	status, replayed, first := n.ingestKeyed(n.editor, n.adsClicks("u1", 2), "retry-1")
	require.Equal(t, http.StatusOK, status, "body %s", first)
	assert.Equal(t, "", replayed)
	assert.Contains(t, string(first), `"onlineRecordIngestCount":"2"`)

	status, replayed, again := n.ingestKeyed(n.editor, n.adsClicks("u1", 5), "retry-1")
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, "true", replayed)
	assert.Equal(t, string(first), string(again), "the first response, byte for byte")
	assert.Equal(t, int64(2), n.clicks1h("u1"), "counted once")
	assert.Equal(t, before+1, n.logEntries(), "one log entry (logEntries also restarts the node)")

	status, replayed, afterRestart := n.ingestKeyed(n.editor, n.adsClicks("u1", 2), "retry-1")
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, "true", replayed)
	assert.Equal(t, string(first), string(afterRestart))
	assert.Equal(t, int64(2), n.clicks1h("u1"))
	assert.Equal(t, before+1, n.logEntries(), "nothing written after the restart")

	// Without the header, the same body writes.
	status, replayed, _ = n.ingestKeyed(n.editor, n.adsClicks("u1", 2))
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, "", replayed)
	assert.Equal(t, int64(4), n.clicks1h("u1"))
}

// TestIdempotencyKeyRejectedOverHTTP: an empty, repeated, too long or
// non-printable key is a 400 RequestValidationError that writes nothing.
func TestIdempotencyKeyRejectedOverHTTP(t *testing.T) {
	n := newNode(t, httpapi.Options{})
	before := n.logEntries()
	cases := []struct {
		name string
		keys []string
		want string
	}{
		{"empty", []string{""}, "empty"},
		{"twice", []string{"a", "b"}, "2 times"},
		{"too_long", []string{strings.Repeat("k", engine.MaxIdempotencyKeyLen+1)}, "limit is 255"},
		{"non_ascii", []string{"clé"}, "printable ASCII"},
		{"tab", []string{"a\tb"}, "printable ASCII"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, _, body := n.ingestKeyed(n.editor, n.adsClicks("u1", 1), c.keys...)
			msg := requireRequestError(t, status, body, http.StatusBadRequest, "RequestValidationError")
			assert.Contains(t, msg, "Idempotency-Key")
			assert.Contains(t, msg, c.want)
		})
	}
	assert.Equal(t, before, n.logEntries())
	status, _, body := n.ingestKeyed(n.editor, n.adsClicks("u1", 1), strings.Repeat("k", engine.MaxIdempotencyKeyLen))
	assert.Equal(t, http.StatusOK, status, "a 255-byte key is fine: %s", body)
}

// TestIdempotencyKeyScopeOverHTTP: keys are per workspace; a caller
// without the role on the workspace gets 403, not the recorded response;
// a key whose first request failed is not remembered.
func TestIdempotencyKeyScopeOverHTTP(t *testing.T) {
	n := newNode(t, httpapi.Options{})
	status, _, _ := n.ingestKeyed(n.editor, n.adsClicks("u1", 1), "k")
	require.Equal(t, http.StatusOK, status)
	status, replayed, body := n.ingestKeyed(n.editor, shopBody(false, orderRec("c1", t0.Add(-time.Minute))), "k")
	assert.Equal(t, http.StatusOK, status, "body %s", body)
	assert.Equal(t, "", replayed, "the same key in another workspace is another key")
	assert.Contains(t, string(body), `"workspaceName":"shop"`)

	status, replayed, body = n.ingestKeyed(n.otherEditor, n.adsClicks("u1", 1), "k")
	requireRequestError(t, status, body, http.StatusForbidden, "PermissionDenied")
	assert.Equal(t, "", replayed)

	// A first request with a bad record fails; the retry executes.
	bad := []byte(`{"workspace_name":"ads","dry_run":false,"records":{"impressions_event_source":[{"record":{"user_id":"u2","clicked":1}}]}}`)
	status, _, body = n.ingestKeyed(n.editor, bad, "f")
	assert.Equal(t, http.StatusBadRequest, status, "body %s", body)
	status, replayed, body = n.ingestKeyed(n.editor, n.adsClicks("u2", 3), "f")
	assert.Equal(t, http.StatusOK, status, "body %s", body)
	assert.Equal(t, "", replayed)
	assert.Equal(t, int64(3), n.clicks1h("u2"))
}
