package main

import (
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
)

func TestVersionCommand(t *testing.T) {
	out, err := run(t, "version")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(out, "featurelog "), out)
	assert.Contains(t, out, "(commit ")
	assert.Contains(t, out, "go1.")
}

// TestCatalogCommands lists and describes on a data directory, then the
// same through a node: the JSON is the same either way.
func TestCatalogCommands(t *testing.T) {
	data := t.TempDir()
	_, err := run(t, "apply", "-f", example, "--data", data)
	require.NoError(t, err)

	out, err := run(t, "workspaces", "list", "--data", data)
	require.NoError(t, err)
	assert.Regexp(t, `NAME\s+SOURCES\s+FEATURE VIEWS\s+FEATURE SERVICES\nads\s+1\s+2\s+2\n`, out)

	out, err = run(t, "feature-views", "list", "--data", data)
	require.NoError(t, err, "the only workspace is the default")
	assert.Regexp(t, `user_click_counts\s+1\s+impressions_event_source\s+user\s+4\s+continuous\s+1d\s+true\s+true\s+yes`, out)
	assert.Regexp(t, `click_events_fv\s+1\s+impressions_event_source\s+user\s+1\s+continuous\s+7d`, out)

	out, err = run(t, "feature-views", "describe", "--data", data, "--workspace", "ads", "click_events_fv")
	require.NoError(t, err)
	for _, want := range []string{"Name:", "click_events_fv", "TTL:", "7d", "Join keys:", "user_id", "Feature start time:", "2022-01-01T00:00:00Z", "Features:", "  clicked"} {
		assert.Contains(t, out, want)
	}
	out, err = run(t, "feature-views", "describe", "--data", data, "--workspace", "ads", "user_click_counts")
	require.NoError(t, err)
	assert.Regexp(t, `Storage:\s+0 segments \(0 bytes\), 0 records in the memtable`, out)
	assert.Regexp(t, `Transformation:\s+clicked_squared = clicked \*\* 2\n`, out)
	assert.Regexp(t, `Versions:\s*\n\s+1\s+serving, created 20`, out)
	assert.Regexp(t, `clicked_squared_sum_1d_continuous\s+float64 = sum\(clicked_squared\) over 1d\n`, out)

	out, err = run(t, "feature-services", "list", "--data", data)
	require.NoError(t, err)
	assert.Regexp(t, `ad_ctr_feature_service\s+true\s+1\s+user_id\s+click_events_fv\s+yes`, out)
	assert.Regexp(t, `ad_ctr_feature_service_v2\s+true\s+5\s+user_id\s+click_events_fv,user_click_counts\s+yes`, out)

	out, err = run(t, "feature-services", "describe", "--data", data, "ad_ctr_feature_service_v2")
	require.NoError(t, err)
	assert.Regexp(t, `Join keys:\s*\n\s+user_id\s+string\n`, out)
	assert.Regexp(t, `user_click_counts.clicked_squared_sum_1d_continuous\s+float64`, out)

	// JSON, here and through a node.
	jsonCmds := [][]string{
		{"workspaces", "list", "--output", "json"},
		{"feature-views", "list", "--workspace", "ads", "--output", "json"},
		{"feature-views", "describe", "--workspace", "ads", "user_click_counts", "-o", "json"},
		{"feature-services", "list", "--workspace", "ads", "-o", "json"},
		{"feature-services", "describe", "--workspace", "ads", "ad_ctr_feature_service", "-o", "json"},
	}
	local := make([]string, len(jsonCmds))
	for i, args := range jsonCmds {
		local[i], err = run(t, append(args, "--data", data)...)
		require.NoError(t, err, "%v", args)
		require.True(t, json.Valid([]byte(local[i])), local[i])
	}
	var views struct {
		FeatureViews []struct{ Name string } `json:"feature_views"`
	}
	require.NoError(t, json.Unmarshal([]byte(local[1]), &views))
	require.Len(t, views.FeatureViews, 2)
	assert.Equal(t, "user_click_counts", views.FeatureViews[0].Name, "the repo file's order")
	var described map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(local[2]), &described))
	assert.JSONEq(t, `{"columns":{"clicked_squared":"clicked ** 2"},"filter":""}`, string(described["transformation"]))
	var defs []json.RawMessage
	require.NoError(t, json.Unmarshal(described["feature_definitions"], &defs))
	require.Len(t, defs, 4)
	assert.JSONEq(t, `{"name":"clicked_count_1h_continuous","dataType":{"type":"int64"},"function":"count","column":"clicked","time_window":"1h"}`, string(defs[0]))
	var versions []struct {
		Version int
		Serving bool
		Job     string
	}
	require.NoError(t, json.Unmarshal(described["versions"], &versions))
	assert.Equal(t, []struct {
		Version int
		Serving bool
		Job     string
	}{{Version: 1, Serving: true}}, versions)
	assert.JSONEq(t, `{"segments":0,"segment_bytes":0,"memtable_records":0,"memtable_bytes":0}`, string(described["storage"]))

	// Errors on a data directory.
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"feature-views", "describe", "--workspace", "ads", "nope"}, `feature view "nope" not found in workspace "ads"`},
		{[]string{"feature-services", "describe", "--workspace", "ads", "nope"}, `feature service "nope" not found in workspace "ads"`},
		{[]string{"feature-views", "list", "--workspace", "nope"}, `workspace "nope" not found (known: ads)`},
		{[]string{"feature-services", "list", "--workspace", "nope"}, `workspace "nope" not found (known: ads)`},
		{[]string{"feature-views", "describe", "--workspace", "ads"}, "describe takes one NAME"},
		{[]string{"feature-views", "list", "--output", "yaml"}, `--output "yaml": use table or json`},
		{[]string{"workspaces", "list", "--output", "yaml"}, `--output "yaml": use table or json`},
	} {
		_, err := run(t, append(c.args, "--data", data)...)
		require.Error(t, err, "%v", c.args)
		assert.Contains(t, err.Error(), c.msg, "%v", c.args)
	}

	// Through a node.
	db, err := engine.Open(engine.Options{Dir: data, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer db.Close()
	key, acct, err := db.Accounts().CreateAccount("viewer", "")
	require.NoError(t, err)
	require.NoError(t, db.Accounts().AssignRole(acct.ID, "ads", auth.Viewer))
	require.NoError(t, db.Accounts().AssignRole(acct.ID, "ghost", auth.Viewer))
	other, otherAcct, err := db.Accounts().CreateAccount("other", "")
	require.NoError(t, err)
	require.NoError(t, db.Accounts().AssignRole(otherAcct.ID, "other", auth.Owner))
	srv, err := httpapi.New(db, httpapi.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	remote := []string{"--server", ts.URL, "--api-key", key}
	for i, args := range jsonCmds {
		out, err := run(t, append(args, remote...)...)
		require.NoError(t, err, "%v", args)
		assert.JSONEq(t, local[i], out, "%v: the same through a node", args)
	}
	out, err = run(t, append([]string{"feature-services", "describe", "--workspace", "ads", "ad_ctr_feature_service"}, remote...)...)
	require.NoError(t, err)
	assert.Regexp(t, `click_events_fv.clicked\s+int64`, out)

	out, err = run(t, "workspaces", "list", "--server", ts.URL, "--api-key", other)
	require.NoError(t, err)
	assert.NotContains(t, out, "ads", "a key sees only the workspaces it holds a role on")

	for _, c := range []struct {
		args []string
		msg  string
	}{
		{append([]string{"feature-views", "list", "--workspace", "ghost"}, remote...), `workspace "ghost" not found (known: ads) (HTTP 404)`},
		{append([]string{"feature-views", "describe", "--workspace", "ads", "nope"}, remote...), `feature view "nope" not found in workspace "ads" (HTTP 404)`},
		{append([]string{"feature-services", "describe", "--workspace", "ads", "nope"}, remote...), `feature service "nope" not found in workspace "ads" (HTTP 404)`},
		{[]string{"feature-views", "list", "--workspace", "ads", "--server", ts.URL, "--api-key", other}, `lacks the viewer role on workspace "ads"`},
		{[]string{"feature-views", "list", "--workspace", "ads", "--server", ts.URL}, "HTTP 401"},
		{append([]string{"feature-views", "list"}, remote...), "--workspace is required with --server"},
		{[]string{"workspaces", "list", "--server", "127.0.0.1:1"}, "--server: client: the node URL"},
	} {
		_, err := run(t, c.args...)
		require.Error(t, err, "%v", c.args)
		assert.Contains(t, err.Error(), c.msg, "%v", c.args)
	}
}
