package engine

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/featurelog/featurelog/schema"
)

// MaxDeleteKeys is the most keys one deletion request may list (SPEC §6).
const MaxDeleteKeys = 10000

// DeleteKeysRequest asks for a deletion job (SPEC §6 delete_keys).
type DeleteKeysRequest struct {
	// Keys are the entity keys to delete, each with every join key of the
	// view and nothing else.
	Keys []map[string]any
	// Online removes the view's serving state of the keys; Offline also
	// erases their records from the source's offline event log, for
	// every view of the source. Offline without Online is refused.
	Online, Offline bool
	// Cluster mode: JobID, when set, is the job's id, and a job that
	// already has it is returned as it is, starting nothing (a request
	// consumed again); Partitions and KeyIndexes go to JobParams.
	JobID      string
	Partitions []int32
	KeyIndexes []int
}

// DeleteKeys starts a deletion job: when it succeeds, the records of each
// key acknowledged before this call are gone, as SPEC §6 says. The keys
// are checked here: a bad one is refused with an error naming it, and
// nothing starts.
func (db *DB) DeleteKeys(workspace, view string, req DeleteKeysRequest) (Job, error) {
	db.applyMu.Lock()
	defer db.applyMu.Unlock()
	v, err := db.jobView(workspace, view)
	if err != nil {
		return Job{}, err
	}
	if req.JobID != "" {
		if j, err := db.Job(workspace, req.JobID); err == nil {
			return j, nil
		}
	}
	keys, err := checkDeleteRequest(v, req)
	if err != nil {
		return Job{}, err
	}
	db.ingestMu.Lock() // every ingest in flight is acknowledged before the cut
	cut := db.log.LastSeq()
	db.ingestMu.Unlock()
	now := db.opts.Now()
	id := req.JobID
	if id == "" {
		id = newJobID(now)
	}
	j := &Job{ID: id, Type: JobDeletion, Workspace: workspace, FeatureView: view, Version: v.version,
		CreatedAt: now.UTC(), Progress: JobProgress{Unit: "bytes"},
		Params: JobParams{Keys: keys, KeyCount: len(keys), Online: &req.Online, Offline: &req.Offline, LogSeq: &cut,
			Partitions: req.Partitions, KeyIndexes: req.KeyIndexes}}
	if err := db.jobs.create(j); err != nil {
		return Job{}, err
	}
	db.runner.push(j.ID)
	return db.Job(workspace, j.ID)
}

// jobView returns the view a job request names: ErrClosed, or a
// not-found error naming the workspace or the view. The caller holds
// applyMu.
func (db *DB) jobView(workspace, view string) (*viewRT, error) {
	if db.closed.Load() {
		return nil, ErrClosed
	}
	ws, err := db.cat.Load().workspace(workspace)
	if err != nil {
		return nil, err
	}
	v := ws.views[view]
	if v == nil {
		return nil, errorf(CodeNotFound, "feature view %q not found in workspace %q", view, workspace)
	}
	return v, nil
}

// checkDeleteRequest checks a request against view v and returns its keys
// in canonical form: each join key's value as a string for integer keys
// (exact for any int64), as given otherwise.
func checkDeleteRequest(v *viewRT, req DeleteKeysRequest) ([]map[string]any, error) {
	switch {
	case req.Offline && !req.Online:
		return nil, errorf(CodeInvalidArgument, "offline: true with online: false is not allowed: erasing the offline log erases what the online state is built from (SPEC §6)")
	case !req.Online:
		return nil, errorf(CodeInvalidArgument, "online and offline are both false: a deletion must remove at least the online state")
	case len(req.Keys) == 0:
		return nil, errorf(CodeInvalidArgument, "keys is empty: list at least one key, each with the join keys of feature view %q (%s)", v.def.Name, joinKeyNames(v))
	case len(req.Keys) > MaxDeleteKeys:
		return nil, errorf(CodeInvalidArgument, "%d keys given; one request may delete at most %d: split it", len(req.Keys), MaxDeleteKeys)
	}
	out := make([]map[string]any, len(req.Keys))
	for i, k := range req.Keys {
		c, err := canonicalKey(v, k)
		if err != nil {
			return nil, errorf(CodeInvalidArgument, "keys[%d]: %v", i, err)
		}
		out[i] = c
	}
	return out, nil
}

func joinKeyNames(v *viewRT) string {
	names := make([]string, len(v.def.JoinKeys))
	for i, jk := range v.def.JoinKeys {
		names[i] = jk.Name
	}
	return strings.Join(names, ", ")
}

// canonicalKey checks one key's join keys and returns them canonically.
func canonicalKey(v *viewRT, k map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(v.def.JoinKeys))
	for _, jk := range v.def.JoinKeys {
		x, ok := k[jk.Name]
		if !ok {
			return nil, fmt.Errorf("join key %q of feature view %q is missing (it needs: %s)", jk.Name, v.def.Name, joinKeyNames(v))
		}
		val, err := joinKeyValue(x, jk.Type)
		if err != nil {
			return nil, fmt.Errorf("join key %q: %v", jk.Name, err)
		}
		out[jk.Name] = canonicalValue(val)
	}
	if len(k) != len(out) {
		var extra []string
		for name := range k {
			if _, ok := out[name]; !ok {
				extra = append(extra, strconv.Quote(name))
			}
		}
		sort.Strings(extra)
		return nil, fmt.Errorf("%s %s not a join key of feature view %q (its join keys: %s)",
			strings.Join(extra, ", "), plural(len(extra), "is", "are"), v.def.Name, joinKeyNames(v))
	}
	return out, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// canonicalValue is how a key's value is kept in the job's params, so
// that the job reads it back exactly after a restart.
func canonicalValue(v schema.Value) any {
	switch {
	case v.Kind == schema.String:
		return v.S
	case v.Kind.Integral():
		return strconv.FormatInt(v.I, 10)
	case v.Kind == schema.Float64 || v.Kind == schema.Float32:
		return v.F
	default:
		return v.Any()
	}
}

// deletion is a deletion job's plan: the view and source it is about,
// the keys, and the views whose state it changes.
type deletion struct {
	j     Job
	ws    *workspace
	v     *viewRT
	keys  map[string]int // entity key → its index in the request
	cut   uint64
	views []*viewRT // the views whose state changes: v, or every view of the source
	// affected holds, per view, the entity keys whose state is rebuilt.
	affected map[*viewRT]map[string]bool
	// otherKeys is set when a view of views is keyed by other columns
	// than v: its affected keys come from the log (scanLog).
	otherKeys bool
	// replaced is the segments rewritten without the keys: their files
	// must be gone before the job succeeds (awaitRemoved).
	replaced []*segRef
	found    []bool // per request key: it had records
	res      JobResult
}

// planDeletion resolves job j against the current catalog.
func (db *DB) planDeletion(j Job) (*deletion, error) {
	ws, err := db.cat.Load().workspace(j.Workspace)
	if err != nil {
		return nil, err
	}
	v := ws.views[j.FeatureView]
	if v != nil {
		v = v.serving()
	}
	if v == nil {
		return nil, fmt.Errorf("feature view %q no longer serves in workspace %q", j.FeatureView, j.Workspace)
	}
	d := &deletion{j: j, ws: ws, v: v, keys: map[string]int{}, cut: *j.Params.LogSeq,
		affected: map[*viewRT]map[string]bool{}, found: make([]bool, len(j.Params.Keys))}
	for i, k := range j.Params.Keys {
		key, _, err := v.keyFromMap(k, nil)
		if err != nil {
			return nil, fmt.Errorf("keys[%d]: %v", i, err)
		}
		if _, dup := d.keys[key]; !dup {
			d.keys[key] = i
		}
	}
	d.views = []*viewRT{v}
	if *j.Params.Offline {
		d.views = nil
		for _, w := range v.src.views {
			if s := w.serving(); s != nil {
				d.views = append(d.views, s)
			}
		}
	}
	for _, w := range d.views {
		d.affected[w] = map[string]bool{}
		if w != v && joinKeyList(w) != joinKeyList(v) {
			d.otherKeys = true // its keys are found in the log (scanLog)
			continue
		}
		for key := range d.keys {
			d.affected[w][key] = true
		}
	}
	return d, nil
}

// erasureSet is what the job records in ERASURES.
func (d *deletion) erasureSet(e *erasures) *erasureSet {
	s := &erasureSet{Job: d.j.ID, Workspace: d.ws.name, Source: d.v.src.def.Name, LogSeq: d.cut}
	if !*d.j.Params.Offline {
		s.View = d.v.def.Name
	}
	for _, jk := range d.v.def.JoinKeys {
		s.Columns = append(s.Columns, jk.Name)
	}
	for key := range d.keys {
		dg := e.digest(key)
		s.Keys = append(s.Keys, hex.EncodeToString(dg[:]))
	}
	sort.Strings(s.Keys)
	return s
}

// runDeletion runs deletion job j. Every step can be repeated, so a job
// interrupted by a crash or a stop runs again from the start on open:
//
//  1. record the erasure (ERASURES), which every later replay of the log
//     and read of batch files honours until the records are gone;
//  2. offline, with views keyed by other columns: read the log up to the
//     cut for the entity keys the keys' records had in those views
//     (scanLog); views keyed like v rebuild the request keys;
//  3. collect the affected keys' remaining records from the log and the
//     batch files;
//  4. with flushes and merges held off: rewrite the segments holding
//     affected keys without them, then, with ingest paused, replace the
//     keys' memtable state by the collected records, and flush, so the
//     rebuilt state is in segments; empty the caches;
//  5. offline: rewrite the log without the keys' records up to the cut
//     (wal.Rewrite), and remove the log's damaged-segment copies.
//
// The log is erased last: until then it is what tells a re-run which
// states to rebuild, and nothing built from it needs the records any more
// once step 4 is durable. A crash after step 5 began re-runs steps 1-4
// over states already rebuilt, which changes nothing.
func (db *DB) runDeletion(_ context.Context, j Job) (*JobResult, error) {
	// A running deletion is not cancelled (CancelJob refuses): only a
	// close interrupts it, and it re-runs on open.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-db.maintStop:
			cancel()
		case <-ctx.Done():
		}
	}()
	d, err := db.planDeletion(j)
	if err != nil {
		return nil, err
	}
	start, phase := time.Now(), time.Now()
	took := func(name string) {
		db.opts.Logger.Info("deletion job step done", "job", j.ID, "step", name, "took", time.Since(phase).Round(time.Millisecond))
		phase = time.Now()
	}
	defer func() {
		db.opts.Logger.Info("deletion job ran", "job", j.ID, "keys", len(d.keys), "took", time.Since(start).Round(time.Millisecond))
	}()
	if prev := db.erasures.setOf(j.ID); prev != nil { // a re-run: what the first run found is gone by now
		for _, i := range prev.Found {
			d.found[i] = true
		}
	} else if err := db.markFound(d); err != nil {
		return nil, err
	}
	set := d.erasureSet(db.erasures)
	for i, f := range d.found {
		if f {
			set.Found = append(set.Found, i)
		}
	}
	if err := db.erasures.add(set); err != nil {
		return nil, err
	}
	if *j.Params.Offline && d.otherKeys {
		if err := db.scanLog(ctx, d); err != nil {
			return nil, err
		}
	}
	took("found and recorded")
	col, err := db.collect(ctx, d)
	if err != nil {
		return nil, err
	}
	took("collected the kept records")
	if err := db.replaceKeys(ctx, d, col); err != nil {
		return nil, err
	}
	took("replaced the keys' state")
	if err := db.awaitRemoved(ctx, d.replaced); err != nil {
		return nil, err
	}
	db.forgetCaches(d)
	if *j.Params.Offline {
		if err := db.eraseFromLog(ctx, d); err != nil {
			return nil, err
		}
		if err := db.erasures.logErased(j.ID); err != nil { // later replays need not test logged rows
			return nil, err
		}
		took("erased from the log")
		if err := db.removeDamagedCopies(); err != nil {
			return nil, err
		}
	}
	return d.result(), nil
}

// result is the job's result: keys found and not found, and the views
// it changed.
func (d *deletion) result() *JobResult {
	r := d.res
	r.KeysFound, r.KeysNotFound = 0, []int{}
	seen := map[int]bool{}
	for _, i := range d.keys {
		seen[i] = true
	}
	for i, f := range d.found {
		switch {
		case f:
			r.KeysFound++
		case seen[i]:
			r.KeysNotFound = append(r.KeysNotFound, i)
		}
	}
	for _, w := range d.views {
		if len(d.affected[w]) > 0 {
			r.FeatureViews = append(r.FeatureViews, w.def.Name)
		}
	}
	return &r
}

// removeDamagedCopies removes the copies of torn log segments that open
// keeps under wal/damaged/: they may hold erased records.
func (db *DB) removeDamagedCopies() error {
	dir := filepath.Join(db.opts.Dir, "wal", "damaged")
	ents, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	for _, e := range ents {
		if err := db.opts.FS.Remove(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("removing %s, a damaged log segment that may hold erased records: %w", e.Name(), err)
		}
		db.opts.Logger.Warn("removed a copy of a damaged log segment: it may have held erased records", "file", e.Name())
	}
	return db.opts.FS.SyncDir(dir)
}

// forgetCaches drops the decoded-state cache's entries of the affected
// keys in the replaced segments, whose copies share their cache entries
// (segRef.cacheID). It runs once no reader can hold a replaced segment
// (awaitRemoved), so none can put an entry back. The hot tier needs
// nothing: tiles.Store.Delete moved each key to a new generation, so its
// entries of the deleted state can never be found again, and the cache
// forgets them as it fills.
func (db *DB) forgetCaches(d *deletion) {
	for _, sg := range d.replaced {
		for _, keys := range d.affected {
			for key := range keys {
				db.hot.states.forget(sg.cacheID, key)
			}
		}
	}
}
