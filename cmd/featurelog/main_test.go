package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/internal/dirlock"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// run executes the CLI in-process and returns what it printed.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./cmd/featurelog -update to create %s", path)
	assert.Equal(t, string(want), got)
}

const example = "../../examples/ads/features.yaml"

func TestPlanApplyIdempotent(t *testing.T) {
	data := t.TempDir()
	out, err := run(t, "plan", "-f", example, "--data", data)
	require.NoError(t, err)
	golden(t, "plan_new", out)

	out, err = run(t, "apply", "-f", example, "--data", data)
	require.NoError(t, err)
	assert.Contains(t, out, "Applied. Views built by backfill jobs (from the log and batch files): [user_click_counts click_events_fv]")

	out, err = run(t, "apply", "-f", example, "--data", data)
	require.NoError(t, err)
	assert.Contains(t, out, "No changes: the workspace already matches the file.")

	out, err = run(t, "plan", "-f", example, "--data", data)
	require.NoError(t, err)
	golden(t, "plan_unchanged", out)
}

func TestApplyInvalidFileChangesNothing(t *testing.T) {
	data := t.TempDir()
	bad := filepath.Join(t.TempDir(), "features.yaml")
	src, err := os.ReadFile(example)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bad, bytes.Replace(src, []byte("function: count, window: 12h"), []byte("function: cnt, window: 12h"), 1), 0o644))
	_, err = run(t, "apply", "-f", bad, "--data", data)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `features.yaml:38: feature view "user_click_counts": aggregate 2: unknown function "cnt" (did you mean "count"?)`)
	_, statErr := os.Stat(filepath.Join(data, "catalog", "ads.json"))
	assert.True(t, os.IsNotExist(statErr), "nothing may be applied from an invalid file")
	_, err = run(t, "apply", "-f", filepath.Join(t.TempDir(), "missing.yaml"), "--data", data)
	assert.ErrorContains(t, err, "reading the feature repo")
	_, err = run(t, "apply", "--data", data)
	assert.ErrorContains(t, err, "-f FILE is required")
}

var idRE = regexp.MustCompile(`Service Account ID: ([0-9a-f]+)`)

func TestServiceAccountsAndRoles(t *testing.T) {
	data := t.TempDir()
	out, err := run(t, "service-account", "create", "--name", "ingest", "--description", "pushes events", "--data", data)
	require.NoError(t, err)
	assert.Regexp(t, `(?m)^API Key: fl_[0-9a-f]{16}_[a-z2-7]+$`, out)
	m := idRE.FindStringSubmatch(out)
	require.NotNil(t, m, out)
	id := m[1]
	key := regexp.MustCompile(`API Key: (\S+)`).FindStringSubmatch(out)[1]

	out, err = run(t, "access-control", "assign-role", "--role", "editor", "--workspace", "ads", "--service-account", id, "--data", data)
	require.NoError(t, err)
	assert.Equal(t, "Successfully updated role.\n", out)

	_, err = run(t, "access-control", "assign-role", "--role", "admin", "--workspace", "ads", "--service-account", id, "--data", data)
	assert.ErrorContains(t, err, "admin")

	out, err = run(t, "service-account", "list", "--data", data)
	require.NoError(t, err)
	assert.Regexp(t, `(?m)^ID +NAME +ROLES +CREATED$`, out)
	assert.Regexp(t, `(?m)^`+id+` +ingest +ads=editor +20\d\d-`, out)
	out, err = run(t, "service-account", "list", "--data", data, "--output", "json")
	require.NoError(t, err)
	var listed struct {
		ServiceAccounts []struct {
			ID, Name, Description string
			Roles                 map[string]string
		} `json:"service_accounts"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &listed), out)
	require.Len(t, listed.ServiceAccounts, 1)
	a := listed.ServiceAccounts[0]
	assert.Equal(t, []string{id, "ingest", "pushes events"}, []string{a.ID, a.Name, a.Description})
	assert.Equal(t, map[string]string{"ads": "editor"}, a.Roles)
	assert.NotContains(t, out, key)
	_, err = run(t, "service-account", "list", "--data", data, "--output", "yaml")
	assert.ErrorContains(t, err, `--output "yaml": use table or json`)

	stored, err := os.ReadFile(filepath.Join(data, "accounts.json"))
	require.NoError(t, err)
	assert.NotContains(t, string(stored), key, "only a hash of the key may be stored")

	out, err = run(t, "service-account", "delete", "--service-account", id, "--data", data)
	require.NoError(t, err)
	assert.Contains(t, out, "Deleted service account "+id)
	out, err = run(t, "service-account", "list", "--data", data)
	require.NoError(t, err)
	assert.NotContains(t, out, id)
}

func TestLockedDataDirectoryNamesHolder(t *testing.T) {
	data := t.TempDir()
	lock, err := dirlock.Acquire(data, "featurelog serve --addr 127.0.0.1:9999")
	require.NoError(t, err)
	defer lock.Release()
	for _, args := range [][]string{
		{"apply", "-f", example, "--data", data},
		{"service-account", "create", "--name", "x", "--data", data},
	} {
		_, err := run(t, args...)
		require.Error(t, err, strings.Join(args, " "))
		assert.Contains(t, err.Error(), "is in use by pid")
		assert.Contains(t, err.Error(), "featurelog serve --addr 127.0.0.1:9999")
	}
}

func TestServeRefusesNoAuthOffLoopback(t *testing.T) {
	_, err := run(t, "serve", "--data", t.TempDir(), "--no-auth", "--addr", "0.0.0.0:0")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--no-auth is refused")
}
