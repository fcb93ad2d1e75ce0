package engine_test

// Re-applying a repo in the differential test over generated repos: what
// must and must not be rebuilt, and what the views serve afterwards.

import (
	"context"
	"maps"
	"slices"
	"sort"

	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/schema"
)

// reapply re-applies the repo three times, checking each result against
// the model and the data directory:
//
//  1. every view gets a description: metadata, so nothing is rebuilt and
//     every version is kept;
//  2. an Int32 or Float32 payload column becomes Int64 or Float64 (one
//     that only transforms or filters read, if there is one): every view
//     that reads it computes something else, so it gets a new version,
//     rebuilt from the log, in which the records logged before read the
//     column as null (DESIGN.md, "Schema evolution");
//  3. a view is removed, then added back: its version is not reused (the
//     re-added view gets the next one), it is rebuilt from the whole log,
//     and after a flush and a merge the segments directory holds exactly
//     the files the manifest names.
func (d *genRun) reapply() {
	d.stage = "re-apply"
	described := d.repo.clone()
	for _, v := range described.views {
		v.desc = "re-applied with a description"
	}
	before := d.versions()
	res, err := d.db.ApplyWait(context.Background(), "gen.yaml", []byte(described.render()))
	require.NoError(d.t, err)
	require.Empty(d.t, res.Rebuilt, "%s: a description change rebuilt views", d.c.name)
	require.Equal(d.t, before, d.versions(), "%s: a description change changed versions", d.c.name)
	d.rebind(described, nil)

	if col, src := d.retypable(); col != "" {
		retyped := d.repo.clone()
		var readers []string
		for _, s := range retyped.sources {
			if s.name != src {
				continue
			}
			for i, c := range s.cols {
				if c.name == col {
					s.cols[i].t = schema.ScalarType(map[schema.Kind]schema.Kind{schema.Int32: schema.Int64, schema.Float32: schema.Float64}[c.t.Kind])
				}
			}
			for _, v := range retyped.viewsOf(s) {
				if genReads(v, col) {
					readers = append(readers, v.name)
				}
			}
		}
		res, err := d.db.ApplyWait(context.Background(), "gen.yaml", []byte(retyped.render()))
		require.NoError(d.t, err)
		sort.Strings(readers)
		sort.Strings(res.Rebuilt)
		require.Equal(d.t, readers, res.Rebuilt, "%s: retyping %s.%s must rebuild exactly the views that read it", d.c.name, src, col)
		d.t.Logf("%s: retyped %s.%s; rebuilt %v", d.c.name, src, col, res.Rebuilt)
		d.rebind(retyped, func(e *genEvent) {
			if e.src.name == src {
				delete(e.cols, col) // logged as the old type: read as null
			}
		})
		d.compareAll("after retyping "+src+"."+col, d.readPlan())
	}

	v := d.repo.views[d.r.Intn(len(d.repo.views))]
	require.NoError(d.t, d.db.Flush())
	version := d.versions()[v.name]
	without := d.repo.clone()
	without.views = slices.DeleteFunc(without.views, func(x *genView) bool { return x.name == v.name })
	without.services = slices.DeleteFunc(without.services, func(s *genService) bool {
		s.entries = slices.DeleteFunc(s.entries, func(e genEntry) bool { return e.view.name == v.name })
		return len(s.entries) == 0
	})
	_, err = d.db.ApplyWait(context.Background(), "gen.yaml", []byte(without.render()))
	require.NoError(d.t, err)
	res, err = d.db.ApplyWait(context.Background(), "gen.yaml", []byte(d.repo.render()))
	require.NoError(d.t, err)
	require.Equal(d.t, []string{v.name}, res.Rebuilt, "%s: re-adding %s", d.c.name, v.name)
	require.Equal(d.t, version+1, d.versions()[v.name], "%s: %s removed and added back must not reuse version %d", d.c.name, v.name, version)
	require.NoError(d.t, d.db.Flush())
	require.NoError(d.t, d.db.CompactAll())
	d.checkSegmentFiles()
}

// versions returns each view's version.
func (d *genRun) versions() map[string]int {
	out := map[string]int{}
	for _, v := range d.repo.views {
		s, err := d.db.FeatureViewSummary(d.repo.ws, v.name)
		require.NoError(d.t, err)
		out[v.name] = s.Version
	}
	return out
}

// retypable picks a payload column of type Int32 or Float32 that some
// view reads, preferring one that only transforms and filters read.
func (d *genRun) retypable() (col, src string) {
	best := 0
	for _, s := range d.repo.sources {
		for _, c := range s.cols {
			if slices.Contains(s.keys, c.name) || (c.t.Kind != schema.Int32 && c.t.Kind != schema.Float32) {
				continue
			}
			score := 0
			for _, v := range d.repo.viewsOf(s) {
				switch {
				case slices.Contains(v.attrs, c.name) || slices.ContainsFunc(v.aggs, func(f aggFeature) bool { return f.input == c.name }):
					score = max(score, 1)
				case genReads(v, c.name):
					score = 2
				}
			}
			if score > best {
				best, col, src = score, c.name, s.name
			}
		}
	}
	return col, src
}

// rebind makes repo the run's repo: the model is rebuilt from the log
// (each record copied and passed to edit first, when set), and the
// generators draw for its sources.
func (d *genRun) rebind(repo *genRepo, edit func(e *genEvent)) {
	d.mu.Lock()
	log := genRebind(d.log, repo)
	if edit != nil {
		for _, e := range log {
			cols := make(map[string]schema.Value, len(e.cols))
			for k, v := range e.cols {
				cols[k] = v
			}
			e.cols = cols
			edit(e)
		}
	}
	d.log = log
	d.mu.Unlock()
	d.repo = repo
	skip := d.model.skip
	d.model = newGenModel(repo)
	d.model.skip = skip
	d.model.add(log...)
	d.w.setRepo(repo)
	recent := map[*genSource][]*genEvent{}
	for _, e := range log {
		recent[e.src] = append(recent[e.src], e)
	}
	for _, g := range d.gens {
		g.recent = maps.Clone(recent)
	}
	d.lastCheckpoint = nil
}

// checkSegmentFiles requires the segments directory to hold exactly the
// segment files the manifest names.
func (d *genRun) checkSegmentFiles() {
	s := readCrashSegments(d.t, d.dir, d.c.name)
	require.True(d.t, s.manifest, "%s: no segments/MANIFEST", d.c.name)
	require.Empty(d.t, s.orphans, "%s: segment files the manifest does not name", d.c.name)
}
