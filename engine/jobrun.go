package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// jobRunner runs job groups one at a time, in the order they were
// queued: on two cores a second concurrent job would only slow ingest.
type jobRunner struct {
	mu    sync.Mutex
	queue []string
	wakeC chan struct{}
}

func newJobRunner() *jobRunner { return &jobRunner{wakeC: make(chan struct{}, 1)} }

func (r *jobRunner) push(group string) {
	r.mu.Lock()
	r.queue = append(r.queue, group)
	r.mu.Unlock()
	r.wake()
}

func (r *jobRunner) wake() {
	select {
	case r.wakeC <- struct{}{}:
	default:
	}
}

func (r *jobRunner) pop() (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.queue) == 0 {
		return "", false
	}
	g := r.queue[0]
	r.queue = r.queue[1:]
	return g, true
}

// runJobs is the job runner's goroutine.
func (db *DB) runJobs() {
	defer close(db.jobsDone)
	for {
		select {
		case <-db.maintStop:
			return
		default:
		}
		g, ok := db.runner.pop()
		if !ok {
			select {
			case <-db.maintStop:
				return
			case <-db.runner.wakeC:
			}
			continue
		}
		db.runGroup(g)
	}
}

// groupJobs returns the jobs of group g that have not ended.
func (db *DB) groupJobs(g string) []Job {
	return db.jobs.list(func(j *Job) bool { return groupOf(j) == g && !j.State.Final() })
}

func (db *DB) cancelRequested(jobs []Job) bool {
	for _, j := range jobs {
		if cur, _, _ := db.jobs.get(j.ID); cur.State == JobCancelRequested {
			return true
		}
	}
	return false
}

func (db *DB) closing() bool {
	select {
	case <-db.maintStop:
		return true
	default:
		return false
	}
}

// runGroup runs one group of jobs to its end.
func (db *DB) runGroup(g string) {
	jobs := db.groupJobs(g)
	if len(jobs) == 0 {
		return
	}
	if db.cancelRequested(jobs) {
		db.endGroup(g, jobs, errCancelled, nil)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db.jobs.mu.Lock()
	db.jobs.running[g] = cancel
	db.jobs.mu.Unlock()
	defer func() {
		db.jobs.mu.Lock()
		delete(db.jobs.running, g)
		db.jobs.mu.Unlock()
	}()
	go func() {
		select {
		case <-db.maintStop:
			cancel()
		case <-ctx.Done():
		}
	}()
	now := db.opts.Now().UTC()
	for _, j := range jobs {
		db.setState(j.ID, func(j *Job) {
			j.State, j.StartedAt, j.Progress = JobRunning, &now, JobProgress{Unit: "bytes"}
			j.Runs++
		})
	}
	start := time.Now()
	var results map[string]*JobResult
	var err error
	switch jobs[0].Type {
	case JobBackfill:
		results, err = db.runBackfill(ctx, g, jobs)
	case JobMaterialization:
		var res *JobResult
		res, err = db.runMaterialization(ctx, jobs[0])
		results = map[string]*JobResult{jobs[0].ID: res}
	case JobDeletion:
		var res *JobResult
		res, err = db.runDeletion(ctx, jobs[0])
		results = map[string]*JobResult{jobs[0].ID: res}
	default:
		err = fmt.Errorf("engine: job type %q cannot run here", jobs[0].Type)
	}
	if err == nil {
		db.endGroup(g, jobs, nil, results)
		db.opts.Logger.Info("job group succeeded", "group", g, "type", jobs[0].Type, "jobs", len(jobs), "took", time.Since(start).Round(time.Millisecond))
		return
	}
	if db.closing() && !db.cancelRequested(jobs) {
		db.opts.Logger.Info("job interrupted by close; it re-runs on open", "group", g)
		return
	}
	if db.cancelRequested(jobs) || errors.Is(err, context.Canceled) {
		err = errCancelled
	}
	db.endGroup(g, jobs, err, nil)
}

// setState updates a job, logging a failure to persist it (the job then
// re-runs on open, which is safe).
func (db *DB) setState(id string, fn func(*Job)) {
	if err := db.jobs.update(id, fn); err != nil {
		db.opts.Logger.Error("recording a job's state failed", "job", id, "err", err)
	}
}

// endGroup ends a group: SUCCESS with results, or, on err, puts back what
// was there before the group and records CANCELLED (errCancelled: error
// stays null) or FAILED, the job err is about with err and the others of
// its apply with an error naming it.
func (db *DB) endGroup(g string, jobs []Job, err error, results map[string]*JobResult) {
	now := db.opts.Now().UTC()
	if err == nil {
		for _, j := range jobs {
			db.setState(j.ID, func(j *Job) {
				j.State, j.FinishedAt, j.Result, j.Error = JobSuccess, &now, results[j.ID], nil
				j.Progress.Done = max(j.Progress.Done, j.Progress.Total)
				j.Params.Keys = nil // a deletion's keys leave the disk with its records
			})
		}
		return
	}
	var undo error
	switch jobs[0].Type {
	case JobBackfill:
		undo = db.revertStaged(jobs[0].Workspace, g)
	case JobMaterialization:
		undo = db.unstageMaterialization(jobs[0])
	}
	if undo != nil {
		db.opts.Logger.Error("undoing a job failed; it re-runs or is undone on the next open", "group", g, "err", undo)
		return
	}
	failed := ""
	var je *jobError
	if errors.As(err, &je) {
		failed = je.job
	} else if !errors.Is(err, errCancelled) {
		failed = jobs[0].ID
	}
	for _, j := range jobs {
		switch {
		case errors.Is(err, errCancelled):
			db.setState(j.ID, func(j *Job) { j.State, j.FinishedAt, j.Params.Keys = JobCancelled, &now, nil })
		case j.ID == failed:
			msg := err.Error()
			if j.Type == JobDeletion {
				msg += "; the keys may be partly erased: request the deletion again to finish it"
			}
			db.setState(j.ID, func(j *Job) { j.State, j.FinishedAt, j.Error, j.Params.Keys = JobFailed, &now, &msg, nil })
			db.opts.Logger.Warn("job failed; nothing of it was applied", "job", j.ID, "err", msg)
		default: // the apply failed as a whole (SPEC §6: error is set only on FAILED jobs)
			msg := fmt.Sprintf("job %s of the same apply failed, so nothing of the apply was applied: %v", failed, err)
			db.setState(j.ID, func(j *Job) { j.State, j.FinishedAt, j.Error = JobFailed, &now, &msg })
		}
	}
}

// resumeJobs handles, on open, the jobs a stop or crash interrupted: a
// staged apply is re-staged and its backfills re-run (or undone if their
// cancellation was requested); a materialization re-runs; a job whose
// effects were committed just before the stop is marked SUCCESS.
func (db *DB) resumeJobs() error {
	cat := db.cat.Load()
	staged := map[string]bool{}
	for _, name := range cat.names() {
		ws := cat.workspaces[name]
		st := ws.meta.Staged
		if st == nil {
			continue
		}
		staged[st.Apply] = true
		jobs := db.groupJobs(st.Apply)
		// The jobs of an apply end together, so one that ended means an
		// undo the stop interrupted: finish it.
		if len(jobs) < len(st.Jobs) || db.cancelRequested(jobs) {
			if len(jobs) == 0 {
				if err := db.revertStaged(name, st.Apply); err != nil {
					return err
				}
			} else {
				db.endGroup(st.Apply, jobs, errCancelled, nil)
			}
			continue
		}
		db.ingestMu.Lock()
		s0 := db.log.LastSeq()
		for _, v := range ws.order {
			if v.pending != "" {
				v.data.covered = s0
			}
		}
		db.ingestMu.Unlock()
		for _, j := range jobs {
			db.setState(j.ID, func(j *Job) { j.State = JobPending })
		}
		db.runner.push(st.Apply)
	}
	now := db.opts.Now().UTC()
	for _, j := range db.jobs.list(func(j *Job) bool { return !j.State.Final() }) {
		g := groupOf(&j)
		if staged[g] {
			continue
		}
		switch {
		case j.Type == JobBackfill:
			ws := cat.workspaces[j.Workspace]
			if ws != nil && ws.views[j.FeatureView] != nil && ws.views[j.FeatureView].version == j.Version {
				db.setState(j.ID, func(j *Job) { j.State, j.FinishedAt = JobSuccess, &now })
			} else {
				msg := "the apply that started this job did not complete (the node stopped before it was recorded); apply the file again"
				db.setState(j.ID, func(j *Job) { j.State, j.FinishedAt, j.Error = JobFailed, &now, &msg })
			}
		case j.State == JobCancelRequested:
			db.setState(j.ID, func(j *Job) { j.State, j.FinishedAt = JobCancelled, &now })
		default:
			db.setState(j.ID, func(j *Job) { j.State = JobPending })
			db.runner.push(g)
		}
	}
	return nil
}
