package bench

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRunOverloadTiny runs the overload benchmark briefly: it must
// complete, see its closed loop without errors, and find every
// acknowledged record after the server exits. Speed is never checked.
func TestRunOverloadTiny(t *testing.T) {
	res, err := RunOverload(OverloadConfig{Command: testServer(t, false, 0).Command, TempDir: t.TempDir(),
		Clients: 4, Workers: 64, BatchSize: 10, Loop: tiny})
	require.NoError(t, err)
	assert.Zero(t, res.Sustainable.Errors, "closed loop: %s", res.Sustainable.FirstError)
	assert.Positive(t, res.Acked)
	assert.Zero(t, res.Lost, "acknowledged records lost")
	assert.Zero(t, res.Failed, "open loop: answers other than 200 and 429")
	assert.Zero(t, res.MissingRetryAfter)
	assert.Len(t, OverloadRows(res), 6)
}

// TestRunSlowlorisTiny runs the slowloris benchmark briefly with 20
// connections: the normal requests succeed while they trickle.
func TestRunSlowlorisTiny(t *testing.T) {
	res, err := RunSlowloris(SlowlorisConfig{Command: testServer(t, false, 0).Command, TempDir: t.TempDir(),
		Conns: 20, Keys: 100, Loop: tiny})
	require.NoError(t, err)
	for _, r := range []*Result{&res.GetBase, &res.GetLoris, &res.IngestBase, &res.IngestLoris} {
		assert.Zero(t, r.Errors, "%s: %s", r.Name, r.FirstError)
		assert.Positive(t, r.Ops, r.Name)
	}
	assert.Len(t, SlowlorisRows(res), 3)
}
