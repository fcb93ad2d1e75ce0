//go:build unix

package engine

// Power-loss images of deletion jobs (issue #12), beside the workload's in
// powerloss_test.go: a deletion job runs over a errorfs.Recorder, and before
// every fsync the test takes the data directory as a power loss at that
// instant could leave it (the durable directory entries of wal/ and
// segments/, each file cut to its fsynced bytes; the log's tail, while an
// append is in flight, also cut after every stride-th unsynced byte or
// with an unsynced 4 KiB block zero-filled). The images cover the log
// rewrite (temporary file written and fsynced, renamed, directory
// fsynced), the seal of the log's tail, the segment rewrites and manifest
// switches, and the flush of the rebuilt keys; a few, taken while a
// request and a flush ran before the deletion, predate its job file.
//
// Every image must open, without a corruption error, with every
// acknowledged record of the kept keys; then the job, resumed on open or
// requested again when the image predates it, succeeds; reads equal the
// reference; and no byte of a deleted record is on disk.
//
// The jobs directory, ERASURES and the catalog are written with os
// (atomicfile: temp file, fsync, rename, directory fsync) and so are not
// tracked: an image has them as they were when it was taken.

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/vfs"
	"github.com/featurelog/featurelog/vfs/errorfs"
)

var delPowerLossLong = flag.Bool("delpowerloss.long", false,
	"TestDeletionPowerLossImages: cut the log tail at every byte instead of a sample")

// delImage is one image waiting to be checked.
type delImage struct {
	dir, desc string
	// extra is the state of the request sent before the deletion: 0 not
	// sent, 1 in flight (its records may or may not be there), 2
	// acknowledged.
	extra int
	// job is set once the deletion was requested.
	job bool
}

func TestDeletionPowerLossImages(t *testing.T) {
	f := newDelFixture(111, 1000, 0)
	extra := without(delEvents(112, 40), isDeleted) // acknowledged just before the request
	scratch := delScratch(t)
	tmplRoot := filepath.Join(scratch, "template")
	require.NoError(t, os.MkdirAll(tmplRoot, 0o755))
	// Small log segments: the rewrite replaces several.
	opts := delOptions("", vfs.Default, true)
	opts.SegmentSize = 2 << 10
	db := delPrepare(t, f, tmplRoot, opts)
	require.NoError(t, db.Close())
	refPre := delReference(t, f, nil)
	refExtra := delReference(t, f, extra)
	kept := without(f.pre[delBatchN:], isDeleted)

	dir := filepath.Join(scratch, "run")
	require.NoError(t, os.CopyFS(dir, os.DirFS(filepath.Join(tmplRoot, "data"))))
	graveyard := filepath.Join(scratch, "graveyard")
	require.NoError(t, os.Mkdir(graveyard, 0o755))
	rec, err := errorfs.NewRecorder(vfs.Default, dir, graveyard, "wal", "segments")
	require.NoError(t, err)

	stride := int64(61) // bytes between cuts of a torn tail: a sample
	if *delPowerLossLong {
		stride = 1
	}
	var (
		pending  []delImage
		takeErr  error
		n        int
		extraNow int
		jobNow   bool
		syncs    int
		whereAt  = map[string]int{}
	)
	take := func(desc string, content func(errorfs.FileState, []byte) []byte) {
		n++
		img := delImage{dir: filepath.Join(scratch, fmt.Sprintf("img%d", n)), desc: desc, extra: extraNow, job: jobNow}
		if err := rec.Image(img.dir, content); err != nil && takeErr == nil {
			takeErr = fmt.Errorf("%s: %w", desc, err)
		}
		pending = append(pending, img)
	}
	rec.BeforeSync = func(path string) {
		syncs++
		at := fmt.Sprintf("before fsync #%d, of %s", syncs, strings.TrimPrefix(path, dir+string(filepath.Separator)))
		whereAt[delSyncKind(path)]++
		take(at+": durable state", nil)
		for _, st := range rec.Files() {
			if st.Size > st.Durable && strings.Contains(st.Path, string(filepath.Separator)+"wal"+string(filepath.Separator)) {
				TornImages(take, at, st, stride)
			}
		}
	}

	opts.Dir, opts.FS, opts.NoSync = dir, rec, false
	db, err = Open(opts)
	require.NoError(t, err)
	extraNow = 1
	bfIngest(t, db, extra)
	extraNow = 2
	require.NoError(t, db.Flush())
	jobNow = true
	j := delDeleteAndWait(t, db, "the recorded deletion")
	require.Equal(t, JobSuccess, j.State, "%v", j.Error)
	require.NoError(t, db.Close())
	require.NoError(t, takeErr)

	counts := struct{ images, resumed, requested, extraLogged int }{}
	for _, img := range pending {
		msg := "image " + img.desc
		extraLogged := img.extra == 2
		if img.extra == 1 { // in flight: its records are there or not, all of them
			c := delLogRows(t, img.dir, msg)
			extraLogged = c[extra[0].id()] == 1
			for _, e := range extra {
				require.Equal(t, c[extra[0].id()], c[e.id()], "%s: a request's records are all there or none", msg)
			}
		}
		db, err := Open(delOptions(img.dir, vfs.Default, true))
		require.NoError(t, err, "%s: open", msg)
		all, err := db.Jobs("bf", JobFilter{})
		require.NoError(t, err)
		require.NoError(t, db.WaitJobs(t.Context(), pendingOnly(all)))
		jobs, err := db.Jobs("bf", JobFilter{Type: JobDeletion})
		require.NoError(t, err)
		if img.job {
			require.Len(t, jobs, 1, "%s: the job file", msg)
			require.Equal(t, JobSuccess, jobs[0].State, "%s: the job, resumed on open: %v", msg, jobs[0].Error)
			if jobs[0].Runs > 1 {
				counts.resumed++
			}
		} else {
			require.Empty(t, jobs, msg)
			j := delDeleteAndWait(t, db, msg)
			require.Equal(t, JobSuccess, j.State, "%s: the deletion requested again: %v", msg, j.Error)
			counts.requested++
		}
		ref := refPre
		logged := kept
		if extraLogged {
			ref, logged = refExtra, append(slices.Clone(kept), extra...)
			counts.extraLogged++
		}
		delCheckReads(t, ref, db, true, msg)
		require.NoError(t, db.Close())
		delMarkers(t, img.dir, msg)
		delCheckLog(t, img.dir, logged, msg)
		require.NoError(t, os.RemoveAll(img.dir))
		counts.images++
	}
	var where []string
	for k, v := range whereAt {
		where = append(where, fmt.Sprintf("%s: %d", k, v))
	}
	slices.Sort(where)
	t.Logf("%d power-loss images at %d fsyncs (%s) opened and checked: %d with the deletion's job file (%d of them resumed it, the others had it done), "+
		"%d from before it (requested again); %d with the request sent before the deletion; each with every acknowledged record of the kept keys, "+
		"reads equal to the reference and 0 deleted markers on disk once the job succeeded",
		counts.images, syncs, strings.Join(where, ", "), counts.images-counts.requested, counts.resumed, counts.requested, counts.extraLogged)
}

// delSyncKind names what an fsync of path is for.
func delSyncKind(path string) string {
	base := filepath.Base(path)
	switch {
	case strings.HasSuffix(base, ".rewrite"):
		return "log rewrite temporary file"
	case base == "wal":
		return "wal directory"
	case base == "segments":
		return "segments directory"
	case strings.Contains(base, "MANIFEST"):
		return "manifest"
	case strings.Contains(path, string(filepath.Separator)+"wal"+string(filepath.Separator)):
		return "log segment"
	case strings.Contains(base, ".seg"):
		return "segment file"
	}
	return base
}
