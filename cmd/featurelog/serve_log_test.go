//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/auth"
)

// TestServeLogFlagsRejected: a bad --log-level or --log-format is refused
// before anything opens, naming the value and the accepted ones.
func TestServeLogFlagsRejected(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--log-level", "verbose"}, `--log-level "verbose": want debug, info, warn or error`},
		{[]string{"--log-level", ""}, `--log-level "": want debug, info, warn or error`},
		{[]string{"--log-format", "yaml"}, `--log-format "yaml": want text or json`},
		{[]string{"--log-format", "json", "--log-level", "trace"}, `--log-level "trace"`},
	} {
		data := filepath.Join(t.TempDir(), "data")
		_, err := run(t, append([]string{"serve", "--data", data, "--no-auth", "--addr", "127.0.0.1:0"}, c.args...)...)
		require.Error(t, err, "%v", c.args)
		assert.Contains(t, err.Error(), c.want, "%v", c.args)
		assert.NoDirExists(t, data, "%v: nothing opened", c.args)
	}
}

// jsonLines parses every line of out as one JSON object, failing on any
// other line.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), "a line that is not one JSON object: %q\nall:\n%s", l, out)
		for _, k := range []string{"time", "level", "msg"} {
			require.Contains(t, m, k, "line %q", l)
		}
		recs = append(recs, m)
	}
	return recs
}

// TestServeJSONLogs: with --log-format json --log-level debug, everything
// serve writes on stderr, from opening to the drain, is one JSON object
// per line with time, level and msg; each HTTP request gets an access
// record, and neither the API key nor the query reaches the log.
func TestServeJSONLogs(t *testing.T) {
	c := startServe(t, t.TempDir(), "--log-format", "json", "--log-level", "debug")
	req, err := http.NewRequest(http.MethodPost, "http://"+c.addr+"/ingest?api_key=query-secret", strings.NewReader(ingestBody("u1")))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Tecton-key header-secret")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, c.wait(t), "stderr:\n%s", c.stderr)

	out := c.stderr.String()
	msgs := map[string]map[string]any{}
	for _, r := range jsonLines(t, out) {
		msgs[r["msg"].(string)] = r
	}
	for _, m := range []string{"opened data directory", "repo applied", "serving", "shutting down: draining in-flight requests", "stopped serving", "closed"} {
		assert.Contains(t, msgs, m, "stderr:\n%s", out)
	}
	acc := msgs["http request"]
	require.NotNil(t, acc, "an access record at debug level; stderr:\n%s", out)
	assert.Equal(t, "DEBUG", acc["level"])
	assert.Equal(t, "POST", acc["method"])
	assert.Equal(t, "/ingest", acc["path"])
	assert.Equal(t, 200.0, acc["status"])
	assert.Positive(t, acc["bytes"])
	assert.Positive(t, acc["duration"])
	assert.Contains(t, acc["remote"], "127.0.0.1:")
	assert.NotContains(t, out, "secret")
	assert.Empty(t, c.stdout.String(), "nothing on stdout with --no-auth")
}

// TestServeTextLogsDefault: by default logs are text (slog's key=value
// lines) at info level: no access records.
func TestServeTextLogsDefault(t *testing.T) {
	c := startServe(t, t.TempDir())
	resp, err := http.Get("http://" + c.addr + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, c.wait(t), "stderr:\n%s", c.stderr)
	out := c.stderr.String()
	assert.Contains(t, out, "level=INFO msg=serving addr=")
	assert.Contains(t, out, "featurelog: serving on http://")
	assert.Contains(t, out, "featurelog: web console at http://"+c.addr+"/ui/")
	assert.NotContains(t, out, "http request")
	assert.NotContains(t, out, `{"time"`)
}

// TestServeJSONFailure: a failing serve with JSON logs reports the error
// as a JSON record and prints no plain-text line, and exits 1.
func TestServeJSONFailure(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeChild$", "-test.count=1", "--",
		"serve", "--data", t.TempDir(), "--repo", filepath.Join(t.TempDir(), "missing.yaml"), "--no-auth",
		"--addr", "127.0.0.1:0", "--log-format", "json")
	cmd.Env = append(os.Environ(), serveChildEnv+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "stderr:\n%s", stderr.String())
	assert.Equal(t, 1, ee.ExitCode())
	recs := jsonLines(t, stderr.String())
	last := recs[len(recs)-1]
	assert.Equal(t, "ERROR", last["level"])
	assert.Equal(t, "featurelog serve failed", last["msg"])
	assert.Contains(t, last["err"], "missing.yaml")
	assert.Empty(t, stdout.String())
}

// TestBootstrapOwnerJSON: with JSON logs the first account's key is one
// JSON object on stdout, and the log record names the account but not
// the key.
func TestBootstrapOwnerJSON(t *testing.T) {
	store, err := auth.OpenStore(filepath.Join(t.TempDir(), "accounts.json"))
	require.NoError(t, err)
	var stdout, stderr, logs bytes.Buffer
	sio := serveIO{logger: slog.New(slog.NewJSONHandler(&logs, nil)), json: true, stdout: &stdout, stderr: &stderr}
	require.NoError(t, bootstrapOwner(sio, store, "ads"))
	var out struct{ APIKey, ServiceAccountID, Workspace string }
	dec := json.NewDecoder(&stdout)
	require.NoError(t, dec.Decode(&struct {
		APIKey           *string `json:"api_key"`
		ServiceAccountID *string `json:"service_account_id"`
		Workspace        *string `json:"workspace"`
	}{&out.APIKey, &out.ServiceAccountID, &out.Workspace}))
	assert.False(t, dec.More(), "one object")
	p, err := store.Authenticate(out.APIKey)
	require.NoError(t, err, "the printed key works")
	assert.True(t, p.Allowed("ads", auth.Owner))
	assert.Equal(t, "ads", out.Workspace)
	assert.Empty(t, stderr.String(), "no plain text")
	rec := jsonLines(t, logs.String())
	require.Len(t, rec, 1)
	assert.Equal(t, out.ServiceAccountID, rec[0]["service_account_id"])
	assert.NotContains(t, logs.String(), out.APIKey)
}
