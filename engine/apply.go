package engine

import (
	"github.com/featurelog/featurelog/internal/repo"
)

// ApplyResult says what an Apply changed.
type ApplyResult struct {
	Workspace string
	Plan      *repo.Plan
	// Rebuilt lists the views that got a new version and were rebuilt from
	// the log.
	Rebuilt []string
	// Records is the number of log records replayed to rebuild them.
	Records int
}

// Plan parses a repo file and returns what applying it would change,
// without changing anything.
func (db *DB) Plan(filename string, data []byte) (*repo.Plan, error) {
	if db.closed.Load() {
		return nil, ErrClosed
	}
	r, err := repo.Parse(filename, data)
	if err != nil {
		return nil, &Error{Code: CodeInvalidArgument, Msg: "invalid feature repo", Err: err}
	}
	var old *repo.Repo
	if ws := db.cat.Load().workspaces[r.Workspace]; ws != nil {
		old = ws.repo
	}
	return repo.Diff(old, r), nil
}

// Apply parses a repo file and makes it the definition of its workspace.
// Nothing is applied when anything in the file is invalid; applying the
// same file twice changes nothing. Views whose computation changed get a
// new version, rebuilt from the log before Apply returns.
func (db *DB) Apply(filename string, data []byte) (*ApplyResult, error) {
	db.applyMu.Lock()
	defer db.applyMu.Unlock()
	if db.closed.Load() {
		return nil, ErrClosed
	}
	r, err := repo.Parse(filename, data)
	if err != nil {
		return nil, &Error{Code: CodeInvalidArgument, Msg: "invalid feature repo", Err: err}
	}
	cat := db.cat.Load()
	prev := cat.workspaces[r.Workspace]
	var oldRepo *repo.Repo
	var oldMeta *wsMeta
	if prev != nil {
		oldRepo, oldMeta = prev.repo, &prev.meta
	}
	res := &ApplyResult{Workspace: r.Workspace, Plan: repo.Diff(oldRepo, r)}
	if res.Plan.Empty() {
		return res, nil
	}
	meta, rebuilt := nextMeta(filename, data, r, oldRepo, oldMeta, db.opts.Now())
	ws, err := buildWorkspace(r, meta, prev, db.hot)
	if err != nil {
		return nil, err
	}
	res.Rebuilt = rebuilt
	return res, db.swapWorkspace(ws, rebuilt, res)
}

// swapWorkspace rebuilds the new view versions from the log and installs
// ws, with ingest paused so no record falls between the rebuild and the
// swap.
func (db *DB) swapWorkspace(ws *workspace, rebuilt []string, res *ApplyResult) error {
	db.ingestMu.Lock()
	defer db.ingestMu.Unlock()
	if len(rebuilt) > 0 {
		fresh := map[*viewRT]bool{}
		for _, name := range rebuilt {
			fresh[ws.views[name]] = true
		}
		n, err := db.replay(db.cat.Load().with(ws), func(v *viewRT) bool { return fresh[v] })
		if err != nil {
			return err
		}
		res.Records = n
	}
	if err := saveWorkspaceMeta(db.opts.Dir, ws.meta, ws.name); err != nil {
		return err
	}
	db.cat.Store(db.cat.Load().with(ws))
	db.opts.Logger.Info("applied feature repo", "workspace", ws.name, "file", ws.meta.File,
		"rebuilt_views", rebuilt, "records_replayed", res.Records)
	return nil
}
