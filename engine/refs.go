package engine

import (
	"fmt"
	"slices"
	"time"

	"github.com/featurelog/featurelog/tiles"
)

// Key groups. A source's aggregate views keyed alike receive the same
// records, and a record's entity key was looked up in each view's
// memtable: one lookup in a large map, a cache miss or two, per view per
// record, the largest cost of ingest with several aggregate views. Their
// memtables are therefore made in one tiles.KeyGroup, which holds each
// key's state in all of them side by side: ingest looks a record's key
// up once per group (groupRun) and adds it to each view with the
// KeyRef. Groups are made when memtables are swapped (swapAll), all at
// once, and for empty memtables when a catalog is published
// (storeCatalog). A memtable that already holds records when its view is
// published (a view whose backfill ran with ingest going on), and a
// version being built (pending: backfill.go), which is not swapped with
// the others, have memtables of their own until the next flush, which
// changes nothing but the cost of their lookups.

// storeCatalog publishes cat, first putting the active memtables of its
// serving aggregate views that are still empty and in no group in
// KeyGroups, as swapAll does at every flush, so that views applied (or
// whose backfill committed) since the last flush share their lookups
// from the start too. The caller holds db.ingestMu for writing (or
// nothing runs yet, when opening): no record is being added.
func (db *DB) storeCatalog(cat *catalog) {
	empty := func(d *viewData) bool { return d.tiles.Group() == nil && d.tiles.KeyCount() == 0 }
	for d, g := range keyGroups(cat, empty) {
		st, err := g.NewStore(*d.spec, d.hot.forStore())
		if err != nil { // the spec made d's store already, and g has a slot per member
			panic(fmt.Sprintf("BUG: engine: a memtable of a key group: %v", err))
		}
		d.mu.Lock()
		d.tiles = st
		d.mu.Unlock()
	}
	db.cat.Store(cat)
}

// keyGroups returns, for the serving memtables of cat's aggregate views
// for which ok holds and that share a source and join keys with another
// such, the KeyGroup their next memtables are made in.
func keyGroups(cat *catalog, ok func(*viewData) bool) map[*viewData]*tiles.KeyGroup {
	out := map[*viewData]*tiles.KeyGroup{}
	for _, name := range cat.names() {
		for _, src := range cat.workspaces[name].sources {
			byKeys := map[string][]*viewData{}
			var order []string
			for _, v := range src.views {
				s := v.serving()
				if s == nil || s.data.spec == nil || out[s.data] != nil || !ok(s.data) {
					continue
				}
				k := fmt.Sprint(s.keyIdx)
				if byKeys[k] == nil {
					order = append(order, k)
				}
				if !containsData(byKeys[k], s.data) {
					byKeys[k] = append(byKeys[k], s.data)
				}
			}
			for _, k := range order {
				if ds := byKeys[k]; len(ds) > 1 {
					g := tiles.NewKeyGroup(len(ds))
					for _, d := range ds {
						out[d] = g
					}
				}
			}
		}
	}
	return out
}

func containsData(ds []*viewData, d *viewData) bool {
	for _, x := range ds {
		if x == d {
			return true
		}
	}
	return false
}

// groupTasks returns a groupRun per KeyGroup of the tasks' (one
// section's) memtables, with the tasks it applies, and marks them. A
// task keyed unlike its group's first (not for views keyed alike, which
// is what a group is made of; checked all the same) is applied on its
// own.
func groupTasks(tasks []applyTask) []*groupRun {
	var runs []*groupRun
	for i := range tasks {
		t := &tasks[i]
		st := t.v.data.tiles
		if st == nil || st.Group() == nil {
			continue
		}
		var g *groupRun
		for _, run := range runs {
			if run.group == st.Group() {
				g = run
			}
		}
		if g == nil {
			g = &groupRun{group: st.Group(), n: len(t.projs)}
			runs = append(runs, g)
		}
		if len(g.tasks) == 0 || slices.Equal(g.tasks[0].v.keyIdx, t.v.keyIdx) {
			g.tasks = append(g.tasks, t)
			t.grouped = true
		}
	}
	return runs
}

// groupRun applies a section's records to the views of one KeyGroup
// record by record: it looks the record's key up and takes its lock once
// and adds the record to each view in turn, while the key's entry, which
// holds its state in each view side by side, is in the core's cache. (Looked up
// for all records first, the entries were evicted again by the time
// they were written; applied view by view in parallel, as other views
// are, the states would bounce between cores.) A large request is split
// by the keys' lock stripes, so that its parts never wait for each
// other's locks and each key's records stay in order.
type groupRun struct {
	group  *tiles.KeyGroup
	n      int // records
	tasks  []*applyTask
	counts [][]applyCount // per part, per task
}

// units returns the work of applying the group's records in parts
// parts, which may run in parallel; finish publishes their counts after.
func (g *groupRun) units(parts int, seq uint64, now time.Time) []func() {
	g.counts = make([][]applyCount, parts)
	out := make([]func(), parts)
	for part := range parts {
		g.counts[part] = make([]applyCount, len(g.tasks))
		for i := range g.tasks {
			g.counts[part][i] = newApplyCount()
		}
		out[part] = func() { g.run(part, parts, seq, now) }
	}
	return out
}

// run applies the records of part part of parts. The tasks share their
// join keys, so any one's key for a record is all of theirs.
func (g *groupRun) run(part, parts int, seq uint64, now time.Time) {
	counts := g.counts[part]
	from := make([]int64, len(g.tasks)) // each task's viewRT.onlineFrom
	for i, t := range g.tasks {
		from[i] = t.v.onlineFrom(now)
	}
	for r := range g.n {
		var ref *tiles.KeyRef
		for i, t := range g.tasks {
			p := &t.projs[r]
			if p.skip {
				continue // applies and counts nothing
			}
			if ref == nil {
				if parts > 1 && g.group.Shard(p.key)%parts != part {
					break
				}
				ref = g.group.Lock(p.key)
			}
			t.applyRow(&counts[i], r, ref, seq, from[i])
		}
		if ref != nil {
			g.group.Unlock(ref)
		}
	}
}

// finish publishes each task's counts.
func (g *groupRun) finish(now time.Time) {
	for i, t := range g.tasks {
		c := newApplyCount()
		for _, part := range g.counts {
			c.add(part[i])
		}
		t.finish(c, now)
	}
}
