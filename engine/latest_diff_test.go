package engine_test

// A differential test of attribute serving (SPEC §3): seeded random
// workloads are ingested through both Ingest and IngestJSON, and every
// read is compared against a naive model that scans all accepted events:
// the latest record with event time in [T − ttl, T) and at or after the
// view's feature_start_time, ties going to the later-ingested record.
// Then the DB is closed and reopened (replaying the log) and compared
// again.
//
//	go test ./engine -run TestLatestDifferential              # 3 fixed seeds
//	go test ./engine -run TestLatestDifferential -seed=42     # one seed
//	go test ./engine -run TestLatestDifferential -long        # 10 random seeds, 10x the requests

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"math/rand"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/internal/schema"
)

var (
	diffSeed = flag.Int64("seed", 0, "run the differential test with this seed only (0: the default seeds)")
	diffLong = flag.Bool("long", false, "run the differential test on more seeds and bigger workloads")
)

// diffBase is the start of the workload's time line.
var diffBase = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// diffStart is latest_value's feature_start_time.
var diffStart = diffBase.Add(3*time.Hour + 30*time.Minute)

const diffSkew = 5 * time.Minute

var diffRepo = `workspace: diff
entities:
  - name: user
    join_keys: [user_id]
  - name: account
    join_keys: [account_id]
sources:
  - name: events
    schema:
      - {name: user_id, type: String}
      - {name: ts, type: Timestamp}
      - {name: value, type: Int64}
      - {name: label, type: String}
  - name: alt_events
    schema:
      - {name: account_id, type: Int64}
      - {name: event_time, type: Timestamp}
      - {name: score, type: Float64}
feature_views:
  - name: latest_value
    source: events
    entities: [user]
    timestamp_field: ts
    ttl: 1h
    feature_start_time: ` + diffStart.Format(time.RFC3339) + `
    features:
      - attribute: {name: value}
      - attribute: {name: label}
  - name: value_3h
    source: events
    entities: [user]
    timestamp_field: ts
    ttl: 3h
    features:
      - attribute: {name: value}
  - name: alt_score
    source: alt_events
    entities: [account]
    timestamp_field: event_time
    features:
      - attribute: {name: score}
feature_services:
  - name: user_fs
    features: [latest_value, value_3h]
  - name: account_fs
    features: [alt_score]
`

// diffView describes one view as the model sees it.
type diffView struct {
	name    string
	source  string
	ttl     time.Duration // 0: never expires
	start   int64         // feature_start_time, Unix ns (MinInt64: none)
	columns []string      // served columns, in feature order
}

var diffViews = []diffView{
	{"latest_value", "events", time.Hour, diffStart.UnixNano(), []string{"value", "label"}},
	{"value_3h", "events", 3 * time.Hour, math.MinInt64, []string{"value"}},
	{"alt_score", "alt_events", 0, math.MinInt64, []string{"score"}},
}

// diffEvent is one record as sent. Absent columns are missing from cols.
type diffEvent struct {
	source string
	key    string // user_id, or the decimal account_id
	acct   int64
	ts     int64
	cols   map[string]schema.Value // value, label, score (null or absent allowed)
	order  int                     // position in log order, among accepted records
	req    int                     // the request that carried it
	noKey  bool                    // the join key is left out (invalid)
}

// diffModel holds every accepted event, per source and key.
type diffModel struct {
	events map[string]map[string][]*diffEvent // source → key → events
	n      int
	// What the reads exercised, so that a workload that stops producing
	// ties or expiries fails instead of passing vacuously.
	present, missing, ties, crossRequestTies int
}

func newDiffModel() *diffModel {
	return &diffModel{events: map[string]map[string][]*diffEvent{}}
}

// add records accepted events in log order.
func (m *diffModel) add(evs ...*diffEvent) {
	for _, e := range evs {
		m.n++
		e.order = m.n
		if m.events[e.source] == nil {
			m.events[e.source] = map[string][]*diffEvent{}
		}
		m.events[e.source][e.key] = append(m.events[e.source][e.key], e)
	}
}

// latest is the naive answer: scan every event of the key.
func (m *diffModel) latest(v diffView, key string, t int64) *diffEvent {
	var best *diffEvent
	tied := map[int]bool{} // requests of the records tied with best
	for _, e := range m.events[v.source][key] {
		if e.ts >= t || e.ts < v.start {
			continue
		}
		switch {
		case best == nil || e.ts > best.ts:
			best, tied = e, map[int]bool{e.req: true}
		case e.ts == best.ts:
			tied[e.req] = true
			if e.order > best.order {
				best = e
			}
		}
	}
	if best == nil || (v.ttl > 0 && best.ts < t-int64(v.ttl)) {
		m.missing++
		return nil
	}
	m.present++
	if len(tied) > 1 {
		m.crossRequestTies++
	}
	if n := countTs(m.events[v.source][key], best.ts); n > 1 {
		m.ties++
	}
	return best
}

func countTs(evs []*diffEvent, ts int64) int {
	n := 0
	for _, e := range evs {
		if e.ts == ts {
			n++
		}
	}
	return n
}

// diffRun is one seeded workload against one DB.
type diffRun struct {
	t     *testing.T
	seed  int64
	r     *rand.Rand // the test goroutine's; writers have their own
	dir   string
	now   atomic.Int64 // the fake clock, Unix ns
	db    *engine.DB
	model *diffModel

	users    []string
	accounts []int64
	requests atomic.Int64
	rejected atomic.Int64
	dryRuns  atomic.Int64
}

// diffGen draws requests over a set of keys. Each goroutine that sends
// requests has its own.
type diffGen struct {
	r        *rand.Rand
	users    []string
	accounts []int64
	zipfU    *rand.Zipf
	zipfA    *rand.Zipf
	usedTs   []int64 // event times used so far, to make ties
}

func newDiffGen(seed int64, users []string, accounts []int64) *diffGen {
	r := rand.New(rand.NewSource(seed))
	return &diffGen{r: r, users: users, accounts: accounts,
		zipfU: rand.NewZipf(r, 1.2, 1, uint64(len(users)-1)),
		zipfA: rand.NewZipf(r, 1.2, 1, uint64(len(accounts)-1))}
}

func (d *diffRun) clock() time.Time { return time.Unix(0, d.now.Load()).UTC() }

func (d *diffRun) open() {
	db, err := engine.Open(engine.Options{Dir: d.dir, Now: d.clock, NoSync: true, SegmentSize: 8 << 10,
		Logger: slog.New(slog.DiscardHandler), DisableAutoFlush: true, CompactionFanIn: 2})
	require.NoError(d.t, err, "seed %d", d.seed)
	d.db = db
}

func TestLatestDifferential(t *testing.T) {
	seeds := []int64{1, 2, 3}
	requests := 300
	if *diffLong {
		requests = 3000
		seeds = nil
		for i := 0; i < 10; i++ {
			seeds = append(seeds, time.Now().UnixNano()+int64(i))
		}
	}
	if *diffSeed != 0 {
		seeds = []int64{*diffSeed}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			runDiff(t, seed, requests)
		})
	}
}

// diffWriters is the number of goroutines of the concurrent phase.
const diffWriters = 4

func runDiff(t *testing.T, seed int64, requests int) {
	t.Logf("seed %d (rerun with -seed=%d)", seed, seed)
	r := rand.New(rand.NewSource(seed))
	d := &diffRun{t: t, seed: seed, r: r, dir: t.TempDir(), model: newDiffModel()}
	d.now.Store(diffBase.Add(3 * time.Hour).UnixNano())
	nUsers, nAccounts := 20+r.Intn(60), 8+r.Intn(20)
	for i := 0; i < nUsers; i++ {
		d.users = append(d.users, fmt.Sprintf("u%03d", i))
	}
	for i := 0; i < nAccounts; i++ {
		d.accounts = append(d.accounts, int64(i*7919-50000)) // negative ids too
	}
	d.open()
	defer func() { d.db.Close() }()
	_, err := d.db.Apply("diff.yaml", []byte(diffRepo))
	require.NoError(t, err)

	// Phase 0: one writer over every key, the clock moving on after each
	// request. Phase 1: concurrent writers over disjoint keys (the order
	// of two requests is then known only for requests of one writer), the
	// clock still. Each phase ends with reads far after the last event,
	// then a close and reopen.
	gen := newDiffGen(r.Int63(), d.users, d.accounts)
	for i := 0; i < requests/2; i++ {
		accepted, err := d.request(gen, true)
		require.NoError(t, err)
		d.model.add(accepted...)
		// Flush and merge at random moments, so reads merge memtables
		// with segments and reopens start from a checkpoint.
		switch r.Intn(30) {
		case 0, 1:
			require.NoError(t, d.db.Flush())
		case 2:
			require.NoError(t, d.db.Compact())
		}
	}
	d.checkPhase("phase 0 (one writer)")
	d.concurrentPhase(requests / 2)
	d.checkPhase("phase 1 (concurrent writers)")

	m := d.model
	t.Logf("seed %d: %d requests, %d accepted records, %d rejected requests, %d dry runs",
		seed, d.requests.Load(), m.n, d.rejected.Load(), d.dryRuns.Load())
	t.Logf("seed %d: model answers: %d present, %d missing, %d with ties (%d across requests)",
		seed, m.present, m.missing, m.ties, m.crossRequestTies)
	require.Positive(t, d.rejected.Load(), "the workload never exercised a rejected request")
	require.Positive(t, m.missing, "the workload never read a missing or expired value")
	require.Positive(t, m.ties, "the workload never read a tie")
	require.Positive(t, m.crossRequestTies, "the workload never read a tie across requests")
}

func (d *diffRun) checkPhase(stage string) {
	// Reads far after the last event: move the clock past every TTL.
	d.now.Add(int64(10 * time.Hour))
	d.compare(stage + ", live")
	require.NoError(d.t, d.db.Close())
	d.open()
	d.compare(stage + ", after reopen")
}

// concurrentPhase sends requests from diffWriters goroutines, each over its
// own users and accounts, and adds what each accepted to the model in that
// writer's order.
func (d *diffRun) concurrentPhase(requests int) {
	accepted := make([][]*diffEvent, diffWriters)
	errs := make([]error, diffWriters)
	var wg sync.WaitGroup
	for w := 0; w < diffWriters; w++ {
		var users []string
		var accounts []int64
		for i, u := range d.users {
			if i%diffWriters == w {
				users = append(users, u)
			}
		}
		for i, a := range d.accounts {
			if i%diffWriters == w {
				accounts = append(accounts, a)
			}
		}
		gen := newDiffGen(d.r.Int63(), users, accounts)
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < requests/diffWriters && errs[w] == nil; i++ {
				evs, err := d.request(gen, false)
				accepted[w] = append(accepted[w], evs...)
				errs[w] = err
			}
		}(w)
	}
	wg.Wait()
	for w := range accepted {
		require.NoError(d.t, errs[w], "writer %d", w)
		d.model.add(accepted[w]...)
	}
}

// request sends one random request and returns the records it wrote (none
// for a rejected request or a dry run), or an error if the engine's answer
// is not the model's. When tick is set, the clock moves on afterwards.
func (d *diffRun) request(g *diffGen, tick bool) ([]*diffEvent, error) {
	reqNo := int(d.requests.Add(1))
	r := g.r
	now := d.now.Load()
	n := 1 + r.Intn(8)
	var evs []*diffEvent
	for i := 0; i < n; i++ {
		evs = append(evs, g.event(now))
	}
	valid := true
	for _, e := range evs {
		valid = valid && !e.noKey && acceptable(e, now)
		e.req = reqNo
	}
	dryRun := r.Intn(20) == 0
	useJSON := r.Intn(2) == 0
	resp, err := d.send(evs, dryRun, useJSON, r)
	where := fmt.Sprintf("seed %d request %d (json=%v dry_run=%v)", d.seed, reqNo, useJSON, dryRun)
	if tick {
		d.now.Add(r.Int63n(int64(90 * time.Second)))
	}
	if !valid {
		d.rejected.Add(1)
		var re *engine.RecordErrors
		if !errors.As(err, &re) {
			return nil, fmt.Errorf("%s: an invalid request was accepted (err %v)", where, err)
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if err := checkMetrics(resp, evs, now); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if dryRun {
		d.dryRuns.Add(1)
		return nil, nil
	}
	// Log order: within one request, records of one source keep their
	// list order; only the order within a source matters to a view.
	return evs, nil
}

// event draws one record: skewed keys, out-of-order, late and equal event
// times, nulls, absent columns, and now and then an invalid one.
func (g *diffGen) event(now int64) *diffEvent {
	r := g.r
	e := &diffEvent{cols: map[string]schema.Value{}}
	if r.Intn(5) == 0 {
		e.source = "alt_events"
		e.acct = g.accounts[g.zipfA.Uint64()]
		e.key = fmt.Sprint(e.acct)
		if r.Intn(6) > 0 {
			e.cols["score"] = schema.Float(math.Round(r.NormFloat64()*1e6) / 1e3)
		} else if r.Intn(2) == 0 {
			e.cols["score"] = schema.Value{}
		}
	} else {
		e.source = "events"
		e.key = g.users[g.zipfU.Uint64()]
		switch k := r.Intn(10); {
		case k < 7:
			e.cols["value"] = schema.Int(r.Int63n(2000) - 1000)
		case k < 9:
			e.cols["value"] = schema.Value{} // null
		}
		switch k := r.Intn(10); {
		case k < 6:
			e.cols["label"] = schema.Str(fmt.Sprintf("l%d", r.Intn(50)))
		case k < 8:
			e.cols["label"] = schema.Value{}
		}
	}
	switch k := r.Intn(100); {
	case k < 30 && len(g.usedTs) > 0: // an event time seen before: ties
		e.ts = g.usedTs[len(g.usedTs)-1-r.Intn(min(len(g.usedTs), 40))]
	case k < 40: // late, possibly beyond every TTL
		e.ts = now - r.Int63n(int64(3*time.Hour+15*time.Minute))
	case k < 45: // ahead of the clock, within the skew (rarely beyond)
		e.ts = now + r.Int63n(int64(diffSkew)+int64(time.Second))
	case k < 47: // exactly at the edges
		e.ts = []int64{now - int64(3*time.Hour), now + int64(diffSkew), now, diffStart.UnixNano(), diffStart.UnixNano() - 1}[r.Intn(5)]
	default: // recent, at second or nanosecond resolution
		e.ts = now - r.Int63n(int64(20*time.Minute))
		if r.Intn(2) == 0 {
			e.ts -= e.ts % int64(time.Second)
		}
	}
	g.usedTs = append(g.usedTs, e.ts)
	e.noKey = r.Intn(150) == 0
	return e
}

// acceptable reports whether ingest must accept e at now: within the
// clock skew, and within the TTL of at least one view of its source.
func acceptable(e *diffEvent, now int64) bool {
	if e.ts > now+int64(diffSkew) {
		return false
	}
	for _, v := range diffViews {
		if v.source == e.source && (v.ttl == 0 || e.ts >= now-int64(v.ttl)) {
			return true
		}
	}
	return false
}

// counted reports whether e counts in v's ingest metrics at now.
func counted(v diffView, e *diffEvent, now int64) bool {
	return e.source == v.source && e.ts >= v.start && (v.ttl == 0 || e.ts >= now-int64(v.ttl))
}

// checkMetrics compares a response's metrics with the model's: the views
// of the request's sources, in file order, with their counts.
func checkMetrics(resp *engine.IngestResponse, evs []*diffEvent, now int64) error {
	type metric struct {
		view            string
		online, offline int64
	}
	var want, got []metric
	for _, v := range diffViews {
		m, seen := metric{view: v.name}, false
		for _, e := range evs {
			if e.source == v.source {
				seen = true
				if counted(v, e, now) {
					m.online++
					m.offline++
				}
			}
		}
		if seen {
			want = append(want, m)
		}
	}
	for _, m := range resp.Metrics {
		got = append(got, metric{m.FeatureView, m.Online, m.Offline})
	}
	if !slices.Equal(want, got) {
		return fmt.Errorf("ingest metrics: got %+v, want %+v (views in file order)", got, want)
	}
	return nil
}

func (d *diffRun) send(evs []*diffEvent, dryRun, useJSON bool, r *rand.Rand) (*engine.IngestResponse, error) {
	if useJSON {
		return d.db.IngestJSON(jsonBody(evs, dryRun, r), nil)
	}
	req := &engine.IngestRequest{Workspace: "diff", DryRun: dryRun, Records: map[string][]map[string]any{}}
	for _, e := range evs {
		rec := map[string]any{}
		if e.source == "events" {
			if !e.noKey {
				rec["user_id"] = e.key
			}
			rec["ts"] = time.Unix(0, e.ts).UTC()
		} else {
			if !e.noKey {
				rec["account_id"] = e.acct
			}
			rec["event_time"] = time.Unix(0, e.ts).UTC()
		}
		for c, v := range e.cols {
			rec[c] = v.Any()
		}
		req.Records[e.source] = append(req.Records[e.source], rec)
	}
	return d.db.Ingest(req)
}

// jsonBody renders evs as an ingest body; the order of sources in the
// body is random.
func jsonBody(evs []*diffEvent, dryRun bool, r *rand.Rand) []byte {
	bySource := map[string][]string{}
	var sources []string
	for _, e := range evs {
		rec := map[string]any{}
		tsText := time.Unix(0, e.ts).UTC().Format(time.RFC3339Nano)
		if e.source == "events" {
			if !e.noKey {
				rec["user_id"] = e.key
			}
			rec["ts"] = tsText
		} else {
			if !e.noKey {
				rec["account_id"] = e.acct
			}
			rec["event_time"] = tsText
		}
		for c, v := range e.cols {
			rec[c] = v.Any()
		}
		data, err := json.Marshal(map[string]any{"record": rec})
		if err != nil {
			panic(err)
		}
		if bySource[e.source] == nil {
			sources = append(sources, e.source)
		}
		bySource[e.source] = append(bySource[e.source], string(data))
	}
	r.Shuffle(len(sources), func(i, j int) { sources[i], sources[j] = sources[j], sources[i] })
	var parts []string
	for _, s := range sources {
		parts = append(parts, fmt.Sprintf("%q:[%s]", s, strings.Join(bySource[s], ",")))
	}
	return []byte(fmt.Sprintf(`{"records":{%s},"dry_run":%t,"workspace_name":"diff"}`, strings.Join(parts, ","), dryRun))
}

// readTimes returns the read times worth checking for a key's events:
// every event time and its neighbours, the TTL edges, the feature start
// time, before everything and now.
func readTimes(evs []*diffEvent, now int64) []int64 {
	set := map[int64]bool{
		diffBase.UnixNano() - int64(time.Hour): true,
		diffStart.UnixNano() - 1:               true,
		diffStart.UnixNano():                   true,
		diffStart.UnixNano() + 1:               true,
		now:                                    true,
	}
	for _, e := range evs {
		for _, dt := range []time.Duration{0, 1, -1, time.Hour, time.Hour + 1, 3 * time.Hour, 3*time.Hour + 1} {
			if t := e.ts + int64(dt); t <= now {
				set[t] = true
			}
		}
	}
	out := make([]int64, 0, len(set))
	for t := range set {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// compare reads every key at every interesting time and checks the
// engine against the model.
func (d *diffRun) compare(stage string) {
	now := d.now.Load()
	reads := 0
	for _, u := range d.users {
		for _, t := range readTimes(d.model.events["events"][u], now) {
			d.check(stage, "user_fs", map[string]any{"user_id": u}, u, t, diffViews[:2])
			reads++
		}
	}
	for i, a := range d.accounts {
		key := fmt.Sprint(a)
		for _, t := range readTimes(d.model.events["alt_events"][key], now) {
			// Join-key values as an integer, a JSON number literal or a
			// decimal string all name the same key.
			var jk any = a
			switch i % 3 {
			case 1:
				jk = engine.Number(key)
			case 2:
				jk = key
			}
			d.check(stage, "account_fs", map[string]any{"account_id": jk}, key, t, diffViews[2:])
			reads++
		}
	}
	d.checkBatch(stage, now)
	d.t.Logf("%s: %d reads match the model", stage, reads)
}

func (d *diffRun) check(stage, svc string, jk map[string]any, key string, t int64, views []diffView) {
	asOf := time.Unix(0, t).UTC()
	if t == d.now.Load() && d.r.Intn(2) == 0 {
		asOf = time.Time{} // zero: read as of now
	}
	vec, err := d.db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "diff", Service: svc, JoinKeys: jk, AsOf: asOf})
	require.NoError(d.t, err, "seed %d %s: %s key %s", d.seed, stage, svc, key)
	d.match(stage, vec.Features, key, t, views)
}

// checkBatch reads every user at one random time with GetFeaturesBatch.
func (d *diffRun) checkBatch(stage string, now int64) {
	t := diffBase.UnixNano() + d.r.Int63n(now-diffBase.UnixNano()+1)
	var jks []map[string]any
	for _, u := range d.users {
		jks = append(jks, map[string]any{"user_id": u})
	}
	vecs, err := d.db.GetFeaturesBatch("diff", "user_fs", jks, time.Unix(0, t))
	require.NoError(d.t, err)
	require.Len(d.t, vecs, len(d.users))
	for i, u := range d.users {
		d.match(stage+" (batch)", vecs[i].Features, u, t, diffViews[:2])
	}
}

func (d *diffRun) match(stage string, got []engine.FeatureValue, key string, t int64, views []diffView) {
	i := 0
	for _, v := range views {
		want := d.model.latest(v, key, t)
		for _, col := range v.columns {
			f := got[i]
			i++
			where := fmt.Sprintf("seed %d %s: %s.%s key %s as of %s", d.seed, stage, v.name, col, key,
				time.Unix(0, t).UTC().Format(time.RFC3339Nano))
			require.Equal(d.t, v.name+"."+col, f.Name, where)
			if want == nil {
				require.Equal(d.t, engine.MissingData, f.Status, "%s: served %v from %s; the model has nothing", where, f.Value, f.EffectiveTime)
				require.True(d.t, f.Value.IsNull(), where)
				continue
			}
			wantVal := want.cols[col] // absent reads as null
			require.Equal(d.t, engine.Present, f.Status, "%s: want record #%d at %s", where, want.order,
				time.Unix(0, want.ts).UTC().Format(time.RFC3339Nano))
			require.Equal(d.t, want.ts, f.EffectiveTime.UnixNano(), where)
			require.True(d.t, wantVal.Equal(f.Value), "%s: got %v, want %v (record #%d; a tie at this time must go to the later-ingested record)",
				where, f.Value, wantVal, want.order)
		}
	}
	require.Len(d.t, got, i)
}

// TestIngestRejectsUnstorableTimestamps: event times are int64 Unix
// nanoseconds (1677 to 2262). A time outside that span must be rejected,
// not wrapped around into one inside it; likewise an as_of.
func TestIngestRejectsUnstorableTimestamps(t *testing.T) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	db, err := engine.Open(engine.Options{Dir: t.TempDir(), Now: func() time.Time { return now }, NoSync: true,
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Apply("diff.yaml", []byte(diffRepo))
	require.NoError(t, err)

	at := now.Add(-time.Minute)
	wrapped := at.Add(math.MaxInt64).Add(math.MaxInt64).Add(2) // 2^64ns later
	require.Equal(t, at.UnixNano(), wrapped.UnixNano(), "the test's premise: UnixNano wraps")
	for name, ts := range map[string]any{
		"time.Time beyond 2262": wrapped,
		"RFC 3339 beyond 2262":  wrapped.Format(time.RFC3339Nano),
		"zero time.Time":        time.Time{},
	} {
		_, err := db.Ingest(&engine.IngestRequest{Workspace: "diff", Records: map[string][]map[string]any{
			"events": {{"user_id": "wrap", "ts": ts, "value": 1}}}})
		var re *engine.RecordErrors
		require.True(t, errors.As(err, &re), "%s: accepted (err %v)", name, err)
	}
	_, err = db.IngestJSON([]byte(`{"workspace_name":"diff","dry_run":false,"records":{"events":[{"record":`+
		`{"user_id":"wrap","ts":"`+wrapped.Format(time.RFC3339Nano)+`","value":1}}]}}`), nil)
	var re *engine.RecordErrors
	require.True(t, errors.As(err, &re), "IngestJSON accepted a year-2608 timestamp (err %v)", err)

	_, err = db.Ingest(&engine.IngestRequest{Workspace: "diff", Records: map[string][]map[string]any{
		"events": {{"user_id": "wrap", "ts": at, "value": 1}}}})
	require.NoError(t, err)
	vec, err := db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "diff", Service: "user_fs",
		JoinKeys: map[string]any{"user_id": "wrap"}})
	require.NoError(t, err)
	require.Equal(t, engine.Present, vec.Features[2].Status)
	require.Equal(t, int64(1), vec.Features[2].Value.I, "only the valid record was written")
	// An as_of 2^64ns before a time that sees the record must not wrap.
	_, err = db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "diff", Service: "user_fs",
		JoinKeys: map[string]any{"user_id": "wrap"}, AsOf: now.Add(math.MinInt64).Add(math.MinInt64)})
	require.Error(t, err)
	require.Equal(t, engine.CodeInvalidArgument, engine.CodeOf(err))
}
