package client_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/client"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
)

// t0 is the nodes' clock: records are dated just before it.
var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

var quiet = slog.New(slog.DiscardHandler)

// testNode is a real node: an engine behind httpapi, over HTTP, with
// auth on. The client under test knows nothing of either.
type testNode struct {
	db  *engine.DB
	url string
	// keys of accounts with roles on workspace ads
	owner, editor, viewer, noRole string
}

func adsRepo(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "examples", "ads", "features.yaml"))
	require.NoError(t, err)
	return data
}

// newTestNode opens a node whose workspace ads is applied (through the
// client) and empty.
func newTestNode(t *testing.T) *testNode {
	t.Helper()
	db, err := engine.Open(engine.Options{Dir: t.TempDir(), Now: func() time.Time { return t0 }, NoSync: true, Logger: quiet})
	require.NoError(t, err)
	srv, err := httpapi.New(db, httpapi.Options{Logger: quiet, OutputStreamHeartbeat: 50 * time.Millisecond})
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		db.Close()
	})
	n := &testNode{db: db, url: ts.URL}
	account := func(name string, role auth.Role) string {
		key, acct, err := db.Accounts().CreateAccount(name, "")
		require.NoError(t, err)
		if role != 0 {
			require.NoError(t, db.Accounts().AssignRole(acct.ID, "ads", role))
		}
		return key
	}
	n.owner, n.editor, n.viewer, n.noRole = account("owner", auth.Owner), account("editor", auth.Editor), account("viewer", auth.Viewer), account("none", 0)
	res, err := n.client(t, n.owner).Apply(context.Background(), "features.yaml", adsRepo(t))
	require.NoError(t, err)
	require.True(t, res.Changed)
	return n
}

// client returns a client of the node with key.
func (n *testNode) client(t *testing.T, key string) *client.Client {
	t.Helper()
	c, err := client.New(n.url, client.Options{APIKey: key, UserAgent: "client-test"})
	require.NoError(t, err)
	return c
}

// clicks are the records every test ingests: u1 clicks twice then not,
// u2 once.
func clicks() map[string][]map[string]any {
	at := func(m int) string { return t0.Add(-time.Duration(m) * time.Minute).Format(time.RFC3339) }
	return map[string][]map[string]any{"impressions_event_source": {
		{"user_id": "u1", "timestamp": at(30), "clicked": 1},
		{"user_id": "u1", "timestamp": at(20), "clicked": "1"}, // an Int64 as a string, exact
		{"user_id": "u1", "timestamp": at(10), "clicked": 0},
		{"user_id": "u2", "timestamp": at(5), "clicked": 1},
	}}
}

// ingestClicks ingests clicks through the client.
func (n *testNode) ingestClicks(t *testing.T) {
	t.Helper()
	_, err := n.client(t, n.editor).Ingest(context.Background(), client.IngestRequest{Workspace: "ads", Records: clicks()})
	require.NoError(t, err)
}

// decode decodes served values with encoding/json: int64 come as
// strings, floats as float64, missing values as nil.
func decode(t *testing.T, raw []json.RawMessage) []any {
	t.Helper()
	out := make([]any, len(raw))
	for i, r := range raw {
		require.NoError(t, json.Unmarshal(r, &out[i]), "%s", r)
	}
	return out
}
