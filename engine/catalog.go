package engine

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/go-json-experiment/json/v1"

	"github.com/featurelog/featurelog/internal/atomicfile"
	"github.com/featurelog/featurelog/repo"
)

// catalog is an immutable snapshot of every applied workspace. Apply builds
// a new one and swaps it in; readers load the pointer and never lock.
type catalog struct {
	workspaces map[string]*workspace
}

type workspace struct {
	name     string
	repo     *repo.Repo
	meta     wsMeta
	sources  map[string]*sourceRT
	views    map[string]*viewRT
	order    []*viewRT // views in file order
	services map[string]*serviceRT
}

type sourceRT struct {
	def      *repo.Source
	colIndex map[string]int
	views    []*viewRT // subscribed views, in file order
	// priors are the earlier versions of views being backfilled, which
	// serve until their successor's backfill succeeds: ingest applies
	// records to them too (backfill.go).
	priors []*viewRT
}

type serviceRT struct {
	def      *repo.FeatureService
	features []servedFeature
	joinKeys []string // union of the views' join keys, in first-seen order
	// unavailable is set while a view of the service is being backfilled
	// and no earlier version can serve its features (SPEC §6: 503).
	unavailable error
}

type servedFeature struct {
	view *viewRT
	idx  int // index into view.def.Features
	name string
}

// wsMeta is what the data directory keeps of an applied workspace, in
// catalog/<workspace>.json: the repo file as applied and each view's
// version. Everything else is derived from the log. Its JSON is part of
// the on-disk format (docs/format/catalog.md).
type wsMeta struct {
	File      string              `json:"file"`
	Source    string              `json:"source"`
	AppliedAt time.Time           `json:"applied_at"`
	Views     map[string]viewMeta `json:"views"`
	// Retired holds, for each view the workspace had and no longer has,
	// its last version: a view added back gets the next one, never a
	// version used before (segments, the manifest and the log of jobs
	// name view versions).
	Retired map[string]int `json:"retired,omitempty"`
	// Staged is set while the backfill jobs of the last apply run.
	Staged *stagedMeta `json:"staged,omitempty"`
}

// stagedMeta is an apply whose new view versions are being backfilled:
// they receive ingested records but do not serve; the versions they
// replace serve until the backfill jobs all succeed, when the new ones
// take over atomically. If a job fails or is cancelled the workspace goes
// back to Prev (backfill.go).
type stagedMeta struct {
	Apply string            `json:"apply"` // the apply's id, shared by its jobs (JobParams.Apply)
	Jobs  map[string]string `json:"jobs"`  // view → its backfill job
	// Prev is the workspace's metadata before the apply (nil: the
	// workspace is new): it defines the versions that serve meanwhile.
	Prev *wsMeta `json:"prev,omitempty"`
}

type viewMeta struct {
	Version     int       `json:"version"`
	Fingerprint string    `json:"fingerprint"`
	CreatedAt   time.Time `json:"created_at"`
}

func catalogDir(dir string) string { return filepath.Join(dir, "catalog") }

// loadCatalog reads every applied workspace from the data directory.
func loadCatalog(dir string, hot *hotTier) (*catalog, error) {
	cat := &catalog{workspaces: map[string]*workspace{}}
	paths, err := filepath.Glob(filepath.Join(catalogDir(dir), "*.json"))
	if err != nil {
		return nil, err
	}
	for _, p := range paths {
		ws, err := loadWorkspace(p, hot)
		if err != nil {
			return nil, err
		}
		cat.workspaces[ws.name] = ws
	}
	return cat, nil
}

func loadWorkspace(path string, hot *hotTier) (*workspace, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var meta wsMeta
	if err := json.Unmarshal(data, &meta); err != nil {
		return nil, fmt.Errorf("engine: catalog file %s is damaged: %w", path, err)
	}
	r, err := repo.Parse(meta.File, []byte(meta.Source))
	if err != nil {
		return nil, fmt.Errorf("engine: catalog file %s holds a repo that no longer parses: %w", path, err)
	}
	return buildWorkspace(r, meta, nil, hot)
}

// buildWorkspace resolves r into runtime form. Views whose version is
// unchanged from prev keep prev's online state.
func buildWorkspace(r *repo.Repo, meta wsMeta, prev *workspace, hot *hotTier) (*workspace, error) {
	ws := &workspace{name: r.Workspace, repo: r, meta: meta,
		sources: map[string]*sourceRT{}, views: map[string]*viewRT{}, services: map[string]*serviceRT{}}
	for _, s := range r.Sources {
		ws.sources[s.Name] = newSourceRT(s)
	}
	for _, def := range r.FeatureViews {
		v, err := buildView(ws, def, meta.Views[def.Name], prev, hot)
		if err != nil {
			return nil, err
		}
		ws.views[def.Name] = v
		ws.order = append(ws.order, v)
		v.src.views = append(v.src.views, v)
	}
	var prevRepo *repo.Repo
	if meta.Staged != nil {
		var err error
		if prevRepo, err = stageViews(ws, meta.Staged, prev, hot); err != nil {
			return nil, err
		}
	}
	for _, def := range r.FeatureServices {
		ws.services[def.Name] = buildService(ws, def, false)
	}
	if prevRepo != nil { // until the staged apply commits, services serve as before it
		for _, def := range prevRepo.FeatureServices {
			ws.services[def.Name] = buildService(ws, def, true)
		}
	}
	return ws, nil
}

func newSourceRT(s *repo.Source) *sourceRT {
	rt := &sourceRT{def: s, colIndex: map[string]int{}}
	for i, c := range s.Schema {
		rt.colIndex[c.Name] = i
	}
	return rt
}

func buildView(ws *workspace, def *repo.FeatureView, vm viewMeta, prev *workspace, hot *hotTier) (*viewRT, error) {
	v, err := newViewRT(def, ws.sources[def.Source], hot)
	if err != nil {
		return nil, err
	}
	v.version, v.createdAt = vm.Version, vm.CreatedAt
	v.data.identify(ws.name, def.Name, vm.Version, vm.Fingerprint, def.Aggregate())
	if old := prev.version(def.Name, v.version); old != nil {
		v.data, v.stats = old.data, old.stats
	} else if prev != nil && prev.views[def.Name] != nil { // a new version: the ingest rate goes on
		v.stats.rate = prev.views[def.Name].stats.rate
	}
	return v, nil
}

// version returns the runtime of a view version in ws, the one staged
// for a backfill or materialization before the one serving meanwhile;
// nil if ws has no such version.
func (ws *workspace) version(name string, version int) *viewRT {
	if ws == nil {
		return nil
	}
	v := ws.views[name]
	switch {
	case v == nil:
		return nil
	case v.version == version:
		return v
	case v.prior != nil && v.prior.version == version:
		return v.prior
	}
	return nil
}

// buildService resolves a service. fromPrior builds it from the
// workspace's earlier definition while an apply is staged: each view's
// version that serves is read (the prior of one being backfilled).
// Otherwise a view being backfilled with no earlier version makes the
// service unavailable (SPEC §6: 503 naming the view and the job).
func buildService(ws *workspace, def *repo.FeatureService, fromPrior bool) *serviceRT {
	s := &serviceRT{def: def}
	seen := map[string]bool{}
	for _, sf := range def.Features {
		v := ws.views[sf.View]
		if v == nil { // fromPrior: the staged apply removes the view
			if s.unavailable == nil {
				s.unavailable = errorf(CodeUnavailable, "feature service %q serves its earlier definition until the backfill jobs of the last apply to workspace %q succeed, "+
					"and that definition reads feature view %q, which the apply removes", def.Name, ws.name, sf.View)
			}
			continue
		}
		rv := v
		if v.pending != "" {
			if fromPrior && v.prior != nil {
				rv = v.prior
			} else if s.unavailable == nil {
				s.unavailable = errorf(CodeUnavailable, "feature view %q of feature service %q is being backfilled by job %s and serves once it succeeds (featurelog jobs wait %s)",
					v.def.Name, def.Name, v.pending, v.pending)
			}
		}
		for i, f := range rv.def.Features {
			if f.Name == sf.Feature {
				s.features = append(s.features, servedFeature{view: rv, idx: i, name: sf.View + "." + f.Name})
			}
		}
		for _, jk := range rv.def.JoinKeys {
			if !seen[jk.Name] {
				seen[jk.Name] = true
				s.joinKeys = append(s.joinKeys, jk.Name)
			}
		}
	}
	return s
}

// nextMeta versions r's views against the previous metadata and repo
// (nil for a new workspace): a view keeps its version while what it
// computes is unchanged, and gets the next version otherwise: one more
// than its current or, for a view added back, its retired version.
func nextMeta(filename string, data []byte, r *repo.Repo, prevRepo *repo.Repo, prev *wsMeta, now time.Time) (wsMeta, []string) {
	meta := wsMeta{File: filename, Source: string(data), AppliedAt: now.UTC(), Views: map[string]viewMeta{}, Retired: map[string]int{}}
	if prev != nil {
		maps.Copy(meta.Retired, prev.Retired)
		for name, vm := range prev.Views {
			if r.FeatureView(name) == nil {
				meta.Retired[name] = max(meta.Retired[name], vm.Version)
			}
		}
	}
	var rebuilt []string
	for _, v := range r.FeatureViews {
		fp := v.ComputeFingerprint()
		var old viewMeta
		if prev != nil {
			old = prev.Views[v.Name]
		}
		if old.Version > 0 && (old.Fingerprint == fp || keepsLegacyVersion(old, v, prevRepo)) {
			meta.Views[v.Name] = old
			continue
		}
		meta.Views[v.Name] = viewMeta{Version: max(old.Version, meta.Retired[v.Name]) + 1, Fingerprint: fp, CreatedAt: now.UTC()}
		delete(meta.Retired, v.Name)
		rebuilt = append(rebuilt, v.Name)
	}
	return meta, rebuilt
}

// keepsLegacyVersion reports whether old, a version whose fingerprint a
// build before issue 10 computed (repo.LegacyFingerprint), computes what v
// computes: the legacy fingerprint is unchanged and so are the types of
// the source columns the transform reads, which it left out. The version
// then keeps its legacy fingerprint, which its checkpoint names, instead
// of being rebuilt because the fingerprint's text changed.
func keepsLegacyVersion(old viewMeta, v *repo.FeatureView, prevRepo *repo.Repo) bool {
	if prevRepo == nil || old.Fingerprint != v.LegacyFingerprint() {
		return false
	}
	pv := prevRepo.FeatureView(v.Name)
	return pv != nil && pv.TransformInputs() == v.TransformInputs()
}

func saveWorkspaceMeta(dir string, meta wsMeta, name string) error {
	data, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(catalogDir(dir), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(catalogDir(dir), name+".json"), data, 0o644)
}

// with returns a copy of c with ws replacing the workspace of its name.
func (c *catalog) with(ws *workspace) *catalog {
	n := &catalog{workspaces: make(map[string]*workspace, len(c.workspaces)+1)}
	for k, v := range c.workspaces {
		n.workspaces[k] = v
	}
	n.workspaces[ws.name] = ws
	return n
}

// names returns the workspace names, sorted.
func (c *catalog) names() []string {
	out := make([]string, 0, len(c.workspaces))
	for k := range c.workspaces {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (c *catalog) workspace(name string) (*workspace, error) {
	ws := c.workspaces[name]
	if ws == nil {
		if len(c.workspaces) == 0 {
			return nil, errorf(CodeNotFound, "workspace %q not found: no workspace has been applied yet (run featurelog apply -f features.yaml)", name)
		}
		return nil, errorf(CodeNotFound, "workspace %q not found (known: %s)", name, strings.Join(c.names(), ", "))
	}
	return ws, nil
}
