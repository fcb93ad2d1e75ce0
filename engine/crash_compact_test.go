package engine_test

// TestCrashKillCompaction: SIGKILL at random moments of flushes and merges
// under ingest; after every restart no acknowledged record is lost and none
// is counted twice.
//
// The child node checkpoints all the time: its memtables flush every 200
// records, two segments of a level merge into one, and a goroutine
// (crashMaintain) calls Flush, Compact and CompactAll back to back,
// announcing each on stderr. Half the kills are aimed: the parent kills the
// child a random 0–3ms after it announces an operation starting, which
// lands in the segment writes, the manifest's atomic replacement or the
// deletion of merged segments. The harness (crash_test.go) checks the log
// and what the node serves; this test also checks what each kill left in
// segments/ and that flushes and merges really happened.
//
//	go test ./engine -run TestCrashKillCompaction -crash.cycles=200

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// crashManifest is the part of segments/MANIFEST (engine/manifest.go) the
// test reads.
type crashManifest struct {
	Views map[string]struct {
		Segments []struct {
			File  string `json:"file"`
			Level int    `json:"level"`
		} `json:"segments"`
	} `json:"views"`
}

// crashSegments is what a kill left in segments/.
type crashSegments struct {
	manifest bool     // segments/MANIFEST exists
	named    int      // segment files the manifest names
	maxLevel int      // the highest level among them
	orphans  []string // files the manifest does not name: an interrupted flush or merge
}

// readCrashSegments reads segments/ of data directory dir. Every file the
// manifest names must exist.
func readCrashSegments(t *testing.T, dir, stage string) crashSegments {
	t.Helper()
	var s crashSegments
	segDir := filepath.Join(dir, "segments")
	named := map[string]bool{}
	data, err := os.ReadFile(filepath.Join(segDir, "MANIFEST"))
	if !errors.Is(err, os.ErrNotExist) {
		require.NoError(t, err, stage)
		var m crashManifest
		require.NoError(t, json.Unmarshal(data, &m), "%s: segments/MANIFEST", stage)
		s.manifest = true
		for _, v := range m.Views {
			for _, sg := range v.Segments {
				named[sg.File] = true
				s.maxLevel = max(s.maxLevel, sg.Level)
			}
		}
	}
	entries, err := os.ReadDir(segDir)
	if errors.Is(err, os.ErrNotExist) {
		require.Empty(t, named, stage)
		return s
	}
	require.NoError(t, err, stage)
	present := map[string]bool{}
	for _, e := range entries {
		present[e.Name()] = true
		if e.Name() != "MANIFEST" && !named[e.Name()] {
			s.orphans = append(s.orphans, e.Name())
		}
	}
	for f := range named {
		require.True(t, present[f], "%s: segments/MANIFEST names %s, which does not exist", stage, f)
	}
	s.named = len(named)
	return s
}

func TestCrashKillCompaction(t *testing.T) {
	var (
		maxLevel    int            // the highest segment level a kill left
		merged      int            // kills that left a merged segment (level ≥ 1)
		orphanKills map[string]int // kills that left orphan files, by the operation they interrupted
	)
	orphanKills = map[string]int{}
	run := runCrash(t, crashConfig{
		cycles: 20, maxTarget: 60,
		env:        []string{crashFlushRecordsEnv + "=200", crashFanInEnv + "=2", crashMaintainEnv + "=10ms"},
		aimAtMaint: 0.5, aimDelay: 3 * time.Millisecond,
		afterKill: func(t *testing.T, dir, stage, op string) {
			s := readCrashSegments(t, dir, stage)
			maxLevel = max(maxLevel, s.maxLevel)
			if s.maxLevel >= 1 {
				merged++
			}
			if len(s.orphans) > 0 {
				orphanKills[op]++
			}
		},
	})

	log, err := os.ReadFile(run.logFile.Name())
	require.NoError(t, err)
	flushes := strings.Count(string(log), "flushed memtables")
	inOp := 0
	for op, n := range run.killsIn {
		if op != "" {
			inOp += n
		}
	}
	t.Logf("%d kills (%d aimed): %d during a flush or merge %v; %d left orphan segment files %v; "+
		"%d flushes; %d kills left merged segments (highest level %d)",
		run.cycles, run.aimed, inOp, run.killsIn, sumCounts(orphanKills), orphanKills, flushes, merged, maxLevel)

	// The test tested what it claims: checkpoints happened, merges reached
	// the manifest, and kills interrupted flushes and merges.
	final := readCrashSegments(t, run.dir, "at the end")
	assert.True(t, final.manifest, "no segments/MANIFEST: nothing was ever flushed")
	assert.Positive(t, final.named, "segments/MANIFEST names no segment")
	if run.cycles < 20 {
		return // too few kills for the counts below to be certain
	}
	assert.GreaterOrEqual(t, flushes, run.cycles/2, "fewer flushes than half the cycles")
	assert.Positive(t, maxLevel, "no kill left a merged segment: merges never reached the manifest")
	assert.GreaterOrEqual(t, inOp, run.aimed/2, "fewer than half the aimed kills landed during a flush or merge")
	assert.Positive(t, sumCounts(orphanKills), "no kill interrupted a flush or merge between writing a segment and its commit")
}

func sumCounts(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
