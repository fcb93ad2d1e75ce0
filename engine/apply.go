package engine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/featurelog/featurelog/internal/batchsrc"
	"github.com/featurelog/featurelog/repo"
)

// ApplyResult says what an Apply changed.
type ApplyResult struct {
	Workspace string
	Plan      *repo.Plan
	// Rebuilt lists the views that got a new version, built by the
	// backfill jobs in Jobs.
	Rebuilt []string
	// Jobs are the backfill jobs the apply started, one per rebuilt view
	// (SPEC §6). They run in the background; WaitJobs waits for them.
	Jobs []Job
}

// Plan parses a repo file and returns what applying it would change,
// without changing anything. It checks the sources' batch files too.
func (db *DB) Plan(filename string, data []byte) (*repo.Plan, error) {
	if db.closed.Load() {
		return nil, ErrClosed
	}
	r, err := parseRepo(filename, data)
	if err != nil {
		return nil, err
	}
	var old *repo.Repo
	if ws := db.cat.Load().workspaces[r.Workspace]; ws != nil {
		old = ws.repo
	}
	return repo.Diff(old, r), nil
}

// parseRepo parses and validates a repo file, its batch files included.
func parseRepo(filename string, data []byte) (*repo.Repo, error) {
	r, err := repo.Parse(filename, data)
	if err != nil {
		return nil, &Error{Code: CodeInvalidArgument, Msg: "invalid feature repo", Err: err}
	}
	if err := checkBatches(filename, r); err != nil {
		return nil, &Error{Code: CodeInvalidArgument, Msg: "invalid feature repo", Err: err}
	}
	return r, nil
}

// checkBatches checks every source's batch files (SPEC §6): they exist,
// hold every column of the source with a convertible type, and the
// timestamp field. A relative uri is resolved against the repo file's
// directory.
func checkBatches(filename string, r *repo.Repo) error {
	var errs []string
	for _, s := range r.Sources {
		if s.Batch == nil {
			continue
		}
		bs, err := batchsrc.Open(s, filepath.Dir(filename))
		if err == nil {
			err = bs.Check()
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s:%d: source %q: batch: %v", filename, s.Line, s.Name, err))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}

// Apply parses a repo file and makes it the definition of its workspace.
// Nothing is applied when anything in the file is invalid; applying the
// same file twice changes nothing. Views whose computation changed get a
// new version, built by a backfill job per view (SPEC §6) while the
// earlier version serves; Apply returns at once with the jobs (it waits
// for them only when there is nothing to read: an empty log and no batch
// files). ApplyWait waits for them.
func (db *DB) Apply(filename string, data []byte) (*ApplyResult, error) {
	res, quick, err := db.apply(filename, data)
	if err != nil || !quick {
		return res, err
	}
	if err := db.WaitJobs(context.Background(), res.Jobs); err != nil {
		return res, err
	}
	return res, db.refreshJobs(res)
}

// ApplyWait applies a repo file and waits for its backfill jobs; it
// fails if one of them does not succeed (the apply is then undone).
func (db *DB) ApplyWait(ctx context.Context, filename string, data []byte) (*ApplyResult, error) {
	res, err := db.Apply(filename, data)
	if err != nil {
		return res, err
	}
	if err := db.WaitJobs(ctx, res.Jobs); err != nil {
		return res, err
	}
	return res, db.refreshJobs(res)
}

func (db *DB) refreshJobs(res *ApplyResult) error {
	for i, j := range res.Jobs {
		cur, err := db.Job(j.Workspace, j.ID)
		if err != nil {
			return err
		}
		res.Jobs[i] = cur
	}
	return nil
}

func (db *DB) apply(filename string, data []byte) (*ApplyResult, bool, error) {
	db.applyMu.Lock()
	defer db.applyMu.Unlock()
	if db.closed.Load() {
		return nil, false, ErrClosed
	}
	r, err := parseRepo(filename, data)
	if err != nil {
		return nil, false, err
	}
	cat := db.cat.Load()
	prev := cat.workspaces[r.Workspace]
	var oldRepo *repo.Repo
	var oldMeta *wsMeta
	if prev != nil {
		oldRepo, oldMeta = prev.repo, &prev.meta
	}
	res := &ApplyResult{Workspace: r.Workspace, Plan: repo.Diff(oldRepo, r)}
	if res.Plan.Empty() { // the same file again: nothing to do, whatever runs
		return res, false, nil
	}
	if err := db.refuseWhileJobs(r.Workspace); err != nil {
		return nil, false, err
	}
	now := db.opts.Now()
	meta, rebuilt := nextMeta(filename, data, r, oldRepo, oldMeta, now)
	quick := db.log.LastSeq() == 0
	if len(rebuilt) > 0 {
		st := &stagedMeta{Apply: "apply_" + strings.TrimPrefix(newJobID(now), "job_"), Jobs: map[string]string{}}
		if oldMeta != nil {
			pm := *oldMeta
			pm.Staged = nil
			st.Prev = &pm
		}
		for _, name := range rebuilt {
			j := &Job{ID: newJobID(now), Type: JobBackfill, Workspace: r.Workspace, FeatureView: name,
				Version: meta.Views[name].Version, CreatedAt: now.UTC(), Params: JobParams{Apply: st.Apply},
				Progress: JobProgress{Unit: "bytes"}}
			if src := r.Source(r.FeatureView(name).Source); src.Batch != nil {
				quick = false
				end := meta.Views[name].CreatedAt
				j.Params.BatchEnd = &end
			}
			if err := db.jobs.create(j); err != nil {
				return nil, false, err
			}
			st.Jobs[name] = j.ID
			res.Jobs = append(res.Jobs, *j)
		}
		meta.Staged = st
	}
	ws, err := buildWorkspace(r, meta, prev, db.hot)
	if err == nil {
		err = db.stage(ws)
	}
	if err != nil {
		msg := "the apply that started this job failed: " + err.Error()
		now := db.opts.Now().UTC()
		for _, j := range res.Jobs {
			db.setState(j.ID, func(j *Job) { j.State, j.FinishedAt, j.Error = JobFailed, &now, &msg })
		}
		return nil, false, err
	}
	res.Rebuilt = rebuilt
	if meta.Staged != nil {
		db.runner.push(meta.Staged.Apply)
	}
	return res, quick && len(res.Jobs) > 0, nil
}

// refuseWhileJobs refuses a change to a workspace while one of its
// backfills or materializations has not ended: the apply is the unit a
// backfill commits or undoes, and a materialization builds the state of
// the version that serves.
func (db *DB) refuseWhileJobs(workspace string) error {
	if c := busyConflict(workspace, db.jobs.list(func(j *Job) bool { return j.Workspace == workspace })); c != nil {
		return c
	}
	return nil
}

// busyConflict is the conflict of a change to workspace with the oldest
// of jobs that has not ended, or nil. jobs are newest first.
func busyConflict(workspace string, jobs []Job) *JobConflict {
	var busy []Job
	for _, j := range jobs {
		if j.Workspace == workspace && !j.State.Final() {
			busy = append(busy, j)
		}
	}
	if len(busy) == 0 {
		return nil
	}
	j := busy[len(busy)-1]
	return &JobConflict{Job: j, Msg: fmt.Sprintf("workspace %q has a %s job that has not ended (%s, feature view %q, %s): "+
		"wait for it (featurelog jobs wait %s) or cancel it (featurelog jobs cancel %s), then apply again",
		workspace, j.Type, j.ID, j.FeatureView, j.State, j.ID, j.ID)}
}

// stage installs ws, with ingest paused for the instant it takes: its
// pending versions start empty with their checkpoint at the log's last
// entry, so every later record reaches them through ingest and every
// earlier one through their job.
func (db *DB) stage(ws *workspace) error {
	db.ingestMu.Lock()
	defer db.ingestMu.Unlock()
	s0 := db.log.LastSeq()
	for _, v := range ws.order {
		if v.pending != "" {
			v.data.covered = s0
		}
	}
	if err := db.sinks.stageSinks(ws, StreamOffset{Seq: s0 + 1}); err != nil {
		return err
	}
	if err := saveWorkspaceMeta(db.opts.Dir, ws.meta, ws.name); err != nil {
		return err
	}
	db.storeCatalog(db.cat.Load().with(ws))
	db.opts.Logger.Info("applied feature repo", "workspace", ws.name, "file", ws.meta.File, "backfilling", stagedViews(ws))
	return nil
}

func stagedViews(ws *workspace) []string {
	var out []string
	for _, v := range ws.order {
		if v.pending != "" {
			out = append(out, v.def.Name)
		}
	}
	return out
}
