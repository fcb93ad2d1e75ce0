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
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
)

// The environment of TestCrashChild that sets its engine options; unset,
// the engine's defaults.
const (
	crashFlushRecordsEnv = "FEATURELOG_CRASH_FLUSH_RECORDS" // Options.FlushRecords
	crashFanInEnv        = "FEATURELOG_CRASH_FANIN"         // Options.CompactionFanIn
	// crashMaintainEnv is a duration: the child runs crashMaintain,
	// pausing up to that long between operations.
	crashMaintainEnv = "FEATURELOG_CRASH_MAINTAIN"
)

// crashMaintPrefix starts the lines on which a child running crashMaintain
// announces its flushes and merges on stderr: "begin <op>", "end <op>" and
// "error <op>: <err>", op being flush, merge or merge-all.
const crashMaintPrefix = "FEATURELOG_CRASH_MAINT "

// crashChildOptions sets the child's engine options from the environment
// and returns crashMaintain's pause bound, 0 for none.
func crashChildOptions(opts *engine.Options) (time.Duration, error) {
	var err error
	if s := os.Getenv(crashFlushRecordsEnv); s != "" {
		if opts.FlushRecords, err = strconv.Atoi(s); err != nil {
			return 0, fmt.Errorf("%s: %w", crashFlushRecordsEnv, err)
		}
	}
	if s := os.Getenv(crashFanInEnv); s != "" {
		if opts.CompactionFanIn, err = strconv.Atoi(s); err != nil {
			return 0, fmt.Errorf("%s: %w", crashFanInEnv, err)
		}
	}
	var pause time.Duration
	if s := os.Getenv(crashMaintainEnv); s != "" {
		if pause, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%s: %w", crashMaintainEnv, err)
		}
	}
	return pause, nil
}

// crashMaintain flushes and merges until the process dies, pausing up to
// pause between operations: a flush, then a merge of what is due, every
// fifth merge one of everything (CompactAll). It announces each operation
// on stderr (crashMaintPrefix). An operation that finds the background
// maintainer at work waits for it (they share a lock), so the time between
// "begin" and "end" is always a flush or merge at work, this one's or the
// maintainer's.
func crashMaintain(db *engine.DB, pause time.Duration) {
	r := rand.New(rand.NewSource(time.Now().UnixNano()))
	for i := 0; ; i++ {
		time.Sleep(time.Duration(r.Int63n(int64(pause))))
		op, fn := "flush", db.Flush
		switch {
		case i%10 == 9:
			op, fn = "merge-all", db.CompactAll
		case i%2 == 1:
			op, fn = "merge", db.Compact
		}
		fmt.Fprintf(os.Stderr, "%sbegin %s\n", crashMaintPrefix, op)
		err := fn()
		if errors.Is(err, engine.ErrClosed) {
			return
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "%serror %s: %v\n", crashMaintPrefix, op, err)
		}
		fmt.Fprintf(os.Stderr, "%send %s\n", crashMaintPrefix, op)
	}
}

// childLog is a child's stderr: it appends it to the shared log file and
// follows the child's announcements (crashMaintPrefix lines).
type childLog struct {
	file *os.File
	// mu guards the fields below; Write runs on exec's copying goroutine.
	mu struct {
		sync.Mutex
		line []byte   // the unfinished last line
		op   string   // the announced operation running, "" if none
		errs []string // failures the child announced
		aim  func()   // if set, called once, as the next operation begins
	}
}

func (l *childLog) Write(p []byte) (int, error) {
	if _, err := l.file.Write(p); err != nil {
		return 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mu.line = append(l.mu.line, p...)
	for {
		i := bytes.IndexByte(l.mu.line, '\n')
		if i < 0 {
			break
		}
		l.lineLocked(string(l.mu.line[:i]))
		l.mu.line = append(l.mu.line[:0], l.mu.line[i+1:]...)
	}
	return len(p), nil
}

func (l *childLog) lineLocked(line string) {
	msg, ok := strings.CutPrefix(line, crashMaintPrefix)
	if !ok {
		return
	}
	verb, op, _ := strings.Cut(msg, " ")
	switch verb {
	case "begin":
		l.mu.op = op
		if l.mu.aim != nil {
			l.mu.aim()
			l.mu.aim = nil
		}
	case "end":
		l.mu.op = ""
	case "error":
		l.mu.errs = append(l.mu.errs, op)
	}
}

func (l *childLog) aimAt(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mu.aim = f
}

// state returns the operation running and the failures announced so far;
// after the child's death, the operation its kill interrupted.
func (l *childLog) state() (op string, errs []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.op, slices.Clone(l.mu.errs)
}

// killAtMaint kills the child delay after it next announces a flush or
// merge starting; it reports false if none started within 10s.
func (c *child) killAtMaint(delay time.Duration) bool {
	fired := make(chan struct{})
	c.log.aimAt(func() {
		go func() {
			time.Sleep(delay)
			c.cmd.Process.Kill() // kill reaps the child
			close(fired)
		}()
	})
	select {
	case <-fired:
		return true
	case <-time.After(10 * time.Second):
		return false
	}
}

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
