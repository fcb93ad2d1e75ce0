//go:build unix

package engine_test

// Power-loss images (issue #5): the fault workload runs over a
// errorfs.Recorder, and at every fsync the test takes the data directory as a
// power loss at that instant could leave it: the durable directory
// entries only (files not yet made durable by a directory fsync are
// gone), each file cut to its fsynced bytes, and the log's tail, when an
// append is in flight, cut at every byte after the last acknowledged
// frame or with its unsynced 4 KiB blocks zero-filled. Every image must
// open (repairing the tail) with every acknowledged record, once, and
// nothing that was never sent.

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/vfs"
	"github.com/featurelog/featurelog/vfs/errorfs"
)

var powerLossLong = flag.Bool("powerloss.long", false,
	"TestPowerLossImages: cut the log tail at every byte (over 10,000 images) instead of a sample")

// powerImage is one image waiting to be checked, with what was
// acknowledged and in flight when it was taken.
type powerImage struct {
	dir      string
	desc     string
	acked    int // requests 1..acked were acknowledged
	inflight int // request in flight, or 0
}

func TestPowerLossImages(t *testing.T) {
	scratch := faultScratch(t)
	template := faultTemplate(t, scratch)
	dir := filepath.Join(scratch, "run")
	require.NoError(t, os.CopyFS(dir, os.DirFS(template)))
	graveyard := filepath.Join(scratch, "graveyard")
	require.NoError(t, os.Mkdir(graveyard, 0o755))
	rec, err := errorfs.NewRecorder(vfs.Default, dir, graveyard, "wal", "segments")
	require.NoError(t, err)

	stride := int64(23) // bytes between cuts: a sample in CI
	if *powerLossLong {
		stride = 1
	}
	var acked, inflight atomic.Int64
	var pending []powerImage
	var takeErr error
	n := 0
	take := func(desc string, content func(errorfs.FileState, []byte) []byte) {
		n++
		img := powerImage{dir: filepath.Join(scratch, fmt.Sprintf("img%d", n)), desc: desc,
			acked: int(acked.Load()), inflight: int(inflight.Load())}
		if err := rec.Image(img.dir, content); err != nil && takeErr == nil {
			takeErr = fmt.Errorf("%s: %w", desc, err)
		}
		pending = append(pending, img)
	}
	rec.BeforeSync = func(path string) {
		at := fmt.Sprintf("before fsync of %s (acked %d, in flight %d)", filepath.Base(path), acked.Load(), inflight.Load())
		take(at+": durable state", nil)
		for _, f := range rec.Files() {
			if f.Size > f.Durable && strings.Contains(f.Path, string(filepath.Separator)+"wal"+string(filepath.Separator)) {
				engine.TornImages(take, at, f, stride)
			}
		}
	}

	counts := struct{ images, acked int }{}
	check := func() {
		require.NoError(t, takeErr)
		for _, img := range pending {
			o := &faultOutcome{acked: map[int]bool{}, failed: map[int]bool{}}
			for k := 1; k <= img.acked; k++ {
				o.acked[k] = true
			}
			if img.inflight > 0 {
				o.failed[img.inflight] = true // may or may not have reached the disk
			}
			checkRecovered(t, img.dir, o, img.desc)
			require.NoError(t, os.RemoveAll(img.dir))
			counts.images++
			counts.acked += img.acked
		}
		pending = pending[:0]
	}

	requests := faultRequests
	if *powerLossLong {
		requests = 3 * faultRequests
	}
	db, err := engine.Open(faultOptions(dir, rec, slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	check()
	for k := 1; k <= requests; k++ {
		inflight.Store(int64(k))
		_, err := db.IngestJSON(faultRequest(k), nil)
		require.NoError(t, err)
		inflight.Store(0)
		acked.Store(int64(k))
		if k%faultFlushEvery == 0 {
			require.NoError(t, db.Flush())
		}
		if k%faultCompactAt == 0 {
			require.NoError(t, db.CompactAll())
		}
		check()
	}
	require.NoError(t, db.Close())
	check()
	t.Logf("%d power-loss images opened and checked: %d acknowledged requests expected across them, 0 lost, 0 phantoms",
		counts.images, counts.acked)
}
