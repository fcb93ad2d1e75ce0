package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestProcsFor: small machines run twice the Ps of their cores, up to
// maxOversubscribed; bigger ones one a core.
func TestProcsFor(t *testing.T) {
	for cur, want := range map[int]int{1: 2, 2: 4, 4: 8, 5: 5, 8: 8, 64: 64} {
		require.Equal(t, want, procsFor(cur), "GOMAXPROCS %d", cur)
	}
}

// TestSetProcsHonoursEnvironment: the binary runs procsFor of Go's
// default unless GOMAXPROCS is in its environment (a child process of
// this test binary reports the Ps before and after setProcs).
func TestSetProcsHonoursEnvironment(t *testing.T) {
	if os.Getenv("FEATURELOG_PROCS_CHILD") != "" {
		before := runtime.GOMAXPROCS(0)
		setProcs()
		fmt.Printf("%d %d\n", before, runtime.GOMAXPROCS(0))
		os.Exit(0)
	}
	run := func(gomaxprocs string) (before, after int) {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestSetProcsHonoursEnvironment$")
		cmd.Env = append(os.Environ(), "GOMAXPROCS="+gomaxprocs, "FEATURELOG_PROCS_CHILD=1")
		out, err := cmd.Output()
		require.NoError(t, err)
		_, err = fmt.Sscan(string(out), &before, &after)
		require.NoError(t, err, "child output %q", out)
		return before, after
	}
	before, after := run("3")
	require.Equal(t, [2]int{3, 3}, [2]int{before, after}, "GOMAXPROCS in the environment wins")
	before, after = run("") // empty counts as unset, for Go and for setProcs
	require.Equal(t, procsFor(before), after)
}
