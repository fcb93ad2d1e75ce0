//go:build unix

package main

import (
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
