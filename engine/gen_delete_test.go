package engine_test

// Deletions in the differential test (issue 12): deletion jobs at random
// moments between requests, flushes and merges, on generated repos. The
// model forgets the deleted keys' records accepted before each request:
// offline, from every view of the source (the records are gone from the
// log); online only, from the view alone. Every later comparison, live,
// after reopens, re-applies and backfills, checks the engine against it.

import (
	"context"
	"slices"
	"strconv"

	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/schema"
)

// deletionPhase sends requests, flushing and merging at random, with a
// deletion job now and then: at least one offline and one online-only.
func (d *genRun) deletionPhase(requests int, step int64) {
	d.stage = "deletions"
	done := map[bool]int{}
	for i := 0; i < requests; i++ {
		evs, err := d.request(d.gen)
		require.NoError(d.t, err)
		d.accept(d.gen, evs)
		d.tick(step)
		d.maintain()
		if d.r.Intn(8) == 0 {
			offline := d.r.Intn(3) > 0
			if d.deleteSome(offline) {
				done[offline]++
			}
		}
	}
	for _, offline := range []bool{true, false} {
		if done[offline] == 0 && d.deleteSome(offline) {
			done[offline]++
		}
	}
	d.t.Logf("%s: %d offline and %d online-only deletion jobs", d.c.name, done[true], done[false])
}

// deleteSome deletes one to three keys of a random view that has records,
// and one key no record has, and makes the model forget them; false when
// no view has records.
func (d *genRun) deleteSome(offline bool) bool {
	d.mu.Lock()
	log := slices.Clone(d.log)
	d.mu.Unlock()
	views := slices.DeleteFunc(slices.Clone(d.repo.views), func(v *genView) bool { return len(d.model.keys(v)) == 0 })
	if len(views) == 0 {
		return false
	}
	v := views[d.r.Intn(len(views))]
	var candidates []*genEvent
	for _, e := range log {
		if e.src == v.src && genProject(v, e).outcome == genApplied {
			candidates = append(candidates, e)
		}
	}
	keys, modelKeys := []map[string]any{}, map[string]bool{}
	for range 1 + d.r.Intn(3) {
		e := candidates[len(candidates)-1-int(d.r.ExpFloat64()*float64(len(candidates))/4)%len(candidates)]
		k, mk := genDeleteKey(v, e.cols)
		keys, modelKeys[mk] = append(keys, k), true
	}
	unseen := map[string]any{}
	for _, c := range v.joinKeys() {
		unseen[c.name] = "987654321"
	}
	keys = append(keys, unseen)
	j, err := d.db.DeleteKeys(d.repo.ws, v.name, engine.DeleteKeysRequest{Keys: keys, Online: true, Offline: offline})
	require.NoError(d.t, err)
	j, err = d.db.WaitJob(context.Background(), d.repo.ws, j.ID)
	require.NoError(d.t, err)
	require.Equal(d.t, engine.JobSuccess, j.State, "deletion job of %s: %v", v.name, j.Error)
	require.Contains(d.t, j.Result.KeysNotFound, len(keys)-1, "the unseen key has no data")
	d.model.erase(v, modelKeys, offline)
	if offline { // the records are gone from the log: rebuilds never see them
		d.mu.Lock()
		d.log = slices.DeleteFunc(d.log, func(e *genEvent) bool {
			k, ok := genViewKey(v, e.cols)
			return e.src == v.src && ok && modelKeys[k]
		})
		d.mu.Unlock()
	}
	return true
}

// genDeleteKey returns a record's join keys for view v as a deletion
// request names them, and the model's key.
func genDeleteKey(v *genView, cols map[string]schema.Value) (map[string]any, string) {
	k := map[string]any{}
	for _, c := range v.joinKeys() {
		val := cols[c.name]
		if val.Kind == schema.String {
			k[c.name] = val.S
		} else {
			k[c.name] = strconv.FormatInt(val.I, 10)
		}
	}
	mk, ok := genViewKey(v, cols)
	if !ok {
		panic("gen: an applied record without its join keys")
	}
	return k, mk
}

// erase forgets the records accepted so far of v's keys: offline, in
// every view of v's source (the records matched by v's join-key
// columns); online only, in v.
func (m *genModel) erase(v *genView, keys map[string]bool, offline bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !offline {
		if m.skip == nil {
			m.skip = map[string]map[string]bool{}
		}
		if m.skip[v.name] == nil {
			m.skip[v.name] = map[string]bool{}
		}
		for k := range keys {
			if rs := m.rows[v][k]; rs != nil {
				for _, r := range rs.rows {
					m.skip[v.name][genEventID(r.ev)] = true
				}
			}
			delete(m.rows[v], k)
		}
		return
	}
	for _, w := range m.repo.viewsOf(v.src) {
		for wk, rs := range m.rows[w] {
			rs.rows = slices.DeleteFunc(rs.rows, func(r genRow) bool {
				k, ok := genViewKey(v, r.ev.cols)
				return ok && keys[k]
			})
			if len(rs.rows) == 0 {
				delete(m.rows[w], wk)
			}
		}
	}
}
