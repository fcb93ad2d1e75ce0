//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestServeEngineFlagsRejected: an engine option that cannot work is
// refused with the option's name, before the data directory is created.
func TestServeEngineFlagsRejected(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--compaction-fan-in", "1"}, "CompactionFanIn must be at least 2"},
		{[]string{"--flush-records", "-3"}, "FlushRecords must not be negative"},
		{[]string{"--hot-tier-bytes", "-2"}, "HotTierBytes and StateCacheBytes"},
		{[]string{"--max-clock-skew", "-1s"}, "MaxClockSkew must not be negative"},
		{[]string{"--flush-interval", "soon"}, `invalid argument "soon" for "--flush-interval"`},
		{[]string{"--segment-codec", "lz4"}, `--segment-codec: unknown segment codec "lz4": use s2`},
	} {
		data := filepath.Join(t.TempDir(), "data")
		_, err := run(t, append([]string{"serve", "--data", data, "--no-auth", "--addr", "127.0.0.1:0"}, c.args...)...)
		require.Error(t, err, "%v", c.args)
		assert.Contains(t, err.Error(), c.want, "%v", c.args)
		assert.NoDirExists(t, data, "%v: nothing opened", c.args)
	}
}

// TestServeEngineFlagsReachTheEngine: --max-clock-skew 1s makes the node
// refuse a record 30s in the future, which the default (5m) accepts.
func TestServeEngineFlagsReachTheEngine(t *testing.T) {
	body := fmt.Sprintf(`{"workspace_name":"ads","dry_run":false,"records":{"impressions_event_source":[{"record":{"timestamp":%q,"user_id":"u1","clicked":1}}]}}`,
		time.Now().Add(30*time.Second).UTC().Format(time.RFC3339Nano))
	post := func(c *serveChild) (int, string) {
		resp, err := http.Post("http://"+c.addr+"/ingest", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		args []string
		want int
	}{{nil, http.StatusOK}, {[]string{"--max-clock-skew", "1s"}, http.StatusBadRequest}} {
		child := startServe(t, t.TempDir(), c.args...)
		status, resp := post(child)
		assert.Equal(t, c.want, status, "%v: %s", c.args, resp)
		if c.want == http.StatusBadRequest {
			assert.Contains(t, resp, "in the future", "%v", c.args)
		}
		require.NoError(t, child.cmd.Process.Signal(syscall.SIGTERM))
		require.Equal(t, 0, child.wait(t))
	}
}

// TestServeFlushesAtShutdown: after SIGTERM the records are in segments,
// not only in the log, so the next open replays nothing: restarted on the
// same directory, every view's memtable is empty and the records are
// served.
func TestServeFlushesAtShutdown(t *testing.T) {
	data := t.TempDir()
	child := startServe(t, data)
	for i := range 3 {
		body := fmt.Sprintf(`{"workspace_name":"ads","dry_run":false,"records":{"impressions_event_source":[{"record":{"timestamp":%q,"user_id":"u%d","clicked":1}}]}}`,
			time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano), i)
		resp, err := http.Post("http://"+child.addr+"/ingest", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	require.NoError(t, child.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, child.wait(t))
	assert.Contains(t, child.stderr.String(), "flushed the memtables")

	child = startServe(t, data)
	for _, view := range []string{"user_click_counts", "click_events_fv"} {
		resp, err := http.Get("http://" + child.addr + "/api/v1/workspaces/ads/feature-views/" + view)
		require.NoError(t, err)
		var got struct {
			Storage struct {
				Segments        int   `json:"segments"`
				MemtableRecords int64 `json:"memtable_records"`
			} `json:"storage"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
		resp.Body.Close()
		assert.Equal(t, int64(0), got.Storage.MemtableRecords, "%s: nothing replayed", view)
		assert.Positive(t, got.Storage.Segments, "%s", view)
	}
	resp, err := http.Post("http://"+child.addr+"/api/v1/feature-service/get-features", "application/json",
		strings.NewReader(`{"params":{"workspace_name":"ads","feature_service_name":"ad_ctr_feature_service","join_key_map":{"user_id":"u1"}}}`))
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
	assert.JSONEq(t, `{"result":{"features":["1"]}}`, string(b), "u1's click, read back from the segments")
	require.NoError(t, child.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, child.wait(t))
}
