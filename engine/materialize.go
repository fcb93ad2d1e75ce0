package engine

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// MaterializeRequest asks for a materialization job (SPEC §6): load the
// batch rows with event time in [Start, End) into a view.
type MaterializeRequest struct {
	Start, End time.Time
	// Online and Offline say which stores to load. featurelog serves
	// online reads and historical reads from one state, so loading either
	// loads both; at least one must be set.
	Online, Offline bool
	// Overwrite replaces the rows of a range an earlier materialization
	// loaded instead of refusing the overlap.
	Overwrite bool
	// Cluster mode: JobID, when set, is the job's id, and a job that
	// already has it is returned as it is, starting nothing (a request
	// consumed again); Partitions goes to JobParams.
	JobID      string
	Partitions []int32
}

// Materialize starts a materialization job. A range overlapping a
// successful earlier materialization of the same view version is refused
// with a *JobConflict naming it, unless Overwrite is set; the view's
// state is then rebuilt with that range read again, so its rows are
// replaced, never added twice.
func (db *DB) Materialize(workspace, view string, req MaterializeRequest) (Job, error) {
	db.applyMu.Lock()
	defer db.applyMu.Unlock()
	if req.JobID != "" {
		if j, err := db.Job(workspace, req.JobID); err == nil {
			return j, nil
		}
	}
	v, err := db.checkMaterialize(workspace, view, req)
	if err != nil {
		return Job{}, err
	}
	if c := MaterializeConflict(workspace, view, v.version, req, db.jobs.list(func(*Job) bool { return true })); c != nil {
		if c.Job.State.Final() {
			return c.Job, c
		}
		return Job{}, c
	}
	now := db.opts.Now()
	start, end := req.Start.UTC(), req.End.UTC()
	id := req.JobID
	if id == "" {
		id = newJobID(now)
	}
	j := &Job{ID: id, Type: JobMaterialization, Workspace: workspace, FeatureView: view, Version: v.version,
		CreatedAt: now.UTC(), Progress: JobProgress{Unit: "bytes"},
		Params: JobParams{StartTime: &start, EndTime: &end, Online: &req.Online, Offline: &req.Offline, Overwrite: &req.Overwrite,
			Partitions: req.Partitions}}
	if err := db.jobs.create(j); err != nil {
		return Job{}, err
	}
	db.runner.push(j.ID)
	return db.Job(workspace, j.ID)
}

// MaterializeConflict returns the conflict of a materialization request
// with jobs (newest first), as Materialize refuses it: a job of the
// workspace that has not ended, or, unless req.Overwrite, a successful
// materialization of the same version of view whose range overlaps;
// nil when there is none. Cluster mode checks the jobs of every
// partition with it.
func MaterializeConflict(workspace, view string, version int, req MaterializeRequest, jobs []Job) *JobConflict {
	if c := busyConflict(workspace, jobs); c != nil {
		return c
	}
	if req.Overwrite {
		return nil
	}
	for _, j := range jobs {
		if j.Type == JobMaterialization && j.State == JobSuccess && j.Workspace == workspace && j.FeatureView == view && j.Version == version &&
			j.Params.StartTime != nil && j.Params.EndTime != nil && j.Params.StartTime.Before(req.End) && req.Start.Before(*j.Params.EndTime) {
			return &JobConflict{Job: j, Msg: fmt.Sprintf(
				"[%s, %s) overlaps materialization job %s of feature view %q, which loaded [%s, %s); set overwrite to replace its rows",
				rfc(req.Start), rfc(req.End), j.ID, view, rfc(*j.Params.StartTime), rfc(*j.Params.EndTime))}
		}
	}
	return nil
}

// CheckMaterialize checks a materialization request as Materialize does,
// but for the jobs of this DB (overlaps, jobs running): the request's
// range and flags, the view, and its source's batch files.
func (db *DB) CheckMaterialize(workspace, view string, req MaterializeRequest) error {
	db.applyMu.Lock()
	defer db.applyMu.Unlock()
	_, err := db.checkMaterialize(workspace, view, req)
	return err
}

// checkMaterialize is CheckMaterialize; the caller holds applyMu.
func (db *DB) checkMaterialize(workspace, view string, req MaterializeRequest) (*viewRT, error) {
	v, err := db.jobView(workspace, view)
	if err != nil {
		return nil, err
	}
	switch {
	case req.Start.IsZero() || req.End.IsZero():
		return nil, errorf(CodeInvalidArgument, "start_time and end_time are required")
	case !req.Start.Before(req.End):
		return nil, errorf(CodeInvalidArgument, "start_time %s must be before end_time %s",
			req.Start.UTC().Format(time.RFC3339Nano), req.End.UTC().Format(time.RFC3339Nano))
	case !req.Online && !req.Offline:
		return nil, errorf(CodeInvalidArgument, "online and offline are both false: a materialization must load at least one of them")
	case v.src.def.Batch == nil:
		return nil, errorf(CodeInvalidArgument, "feature view %q reads source %q, which has no batch files to materialize (add batch: to the source)",
			view, v.src.def.Name)
	}
	return v, nil
}

func rfc(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// runMaterialization rebuilds the state of job j's view version from the
// log and the batch rows its version includes, this job's range among
// them, beside ingest and reads (the steps of backfill.go), and makes it
// the serving state.
func (db *DB) runMaterialization(ctx context.Context, j Job) (*JobResult, error) {
	v, cat, err := db.stageMaterialization(j)
	if err != nil {
		return nil, err
	}
	ws := cat.workspaces[j.Workspace]
	b, err := newBuild(v, j.ID, includeBatch(db.batchRanges(j.Workspace, j.FeatureView, j.Version, &j)))
	if err != nil {
		return nil, err
	}
	start, end := j.Params.StartTime.UnixNano(), j.Params.EndTime.UnixNano()
	b.counts = func(ts int64) bool { return ts >= start && ts < end }
	err = db.buildViews(ctx, cat, ws, []*build{b}, v.data.checkpoint(), db.reportProgress([]Job{j}))
	if err == nil {
		err = db.hookBeforeCommit(ctx)
	}
	if err == nil {
		err = db.commitMaterialization(j, b)
	}
	if err != nil {
		b.discard()
		return nil, err
	}
	return &b.res, nil
}

// stageMaterialization gives j's view a staged copy with empty state that
// ingest feeds from now on, while the current state serves as its prior.
func (db *DB) stageMaterialization(j Job) (*viewRT, *catalog, error) {
	db.applyMu.Lock()
	defer db.applyMu.Unlock()
	cat := db.cat.Load()
	ws := cat.workspaces[j.Workspace]
	if ws == nil || ws.views[j.FeatureView] == nil || ws.views[j.FeatureView].version != j.Version || ws.views[j.FeatureView].pending != "" {
		return nil, nil, fmt.Errorf("feature view %q version %d is no longer what serves in workspace %q", j.FeatureView, j.Version, j.Workspace)
	}
	nws, err := buildWorkspace(ws.repo, ws.meta, ws, db.hot)
	if err != nil {
		return nil, nil, err
	}
	cur := nws.views[j.FeatureView]
	v, err := newViewRT(cur.def, cur.src, db.hot)
	if err != nil {
		return nil, nil, err
	}
	v.version, v.createdAt, v.stats = cur.version, cur.createdAt, cur.stats
	v.data.identify(ws.name, cur.def.Name, cur.version, cur.data.print, cur.def.Aggregate())
	v.pending, v.prior = j.ID, cur
	nws.views[cur.def.Name] = v
	nws.order[slices.Index(nws.order, cur)] = v
	cur.src.views[slices.Index(cur.src.views, cur)] = v
	cur.src.priors = append(cur.src.priors, cur)
	for _, def := range nws.repo.FeatureServices {
		nws.services[def.Name] = buildService(nws, def, true)
	}
	db.ingestMu.Lock()
	defer db.ingestMu.Unlock()
	v.data.covered = db.log.LastSeq()
	ncat := db.cat.Load().with(nws)
	db.storeCatalog(ncat)
	return v, ncat, nil
}

// commitMaterialization makes the built state serve: the manifest names
// its segments in place of the old state's, then the catalog swaps.
func (db *DB) commitMaterialization(j Job, b *build) error {
	defer db.lockCatalog()()
	cat := db.cat.Load()
	ws := cat.workspaces[j.Workspace]
	v := ws.views[j.FeatureView]
	if v != b.v {
		return fmt.Errorf("BUG: engine: materialization %s is no longer staged", j.ID)
	}
	b.install()
	nws, err := buildWorkspace(ws.repo, ws.meta, ws, db.hot) // shares the staged state: version prefers it
	if err != nil {
		return err
	}
	ncat := cat.with(nws)
	if err := db.saveManifest(liveViews(ncat)); err != nil {
		return err
	}
	db.ingestMu.Lock()
	db.storeCatalog(ncat)
	db.ingestMu.Unlock()
	v.prior.data.closeSegments(true)
	return nil
}

// unstageMaterialization puts back the state that served before j.
func (db *DB) unstageMaterialization(j Job) error {
	defer db.lockCatalog()()
	cat := db.cat.Load()
	ws := cat.workspaces[j.Workspace]
	if ws == nil {
		return nil
	}
	v := ws.views[j.FeatureView]
	if v == nil || v.pending != j.ID {
		return nil // not staged (it failed before, or the node restarted)
	}
	orig := *ws
	orig.views = map[string]*viewRT{}
	for k, x := range ws.views {
		orig.views[k] = x
	}
	orig.views[j.FeatureView] = v.prior
	nws, err := buildWorkspace(ws.repo, ws.meta, &orig, db.hot)
	if err != nil {
		return err
	}
	db.ingestMu.Lock()
	db.storeCatalog(cat.with(nws))
	db.ingestMu.Unlock()
	v.data.closeSegments(true)
	return nil
}
