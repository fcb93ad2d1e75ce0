package engine_test

// Output streams (SPEC §7) in the differential test over generated repos
// (gen_diff_test.go). The generator gives a random subset of the views
// that may have one (continuous aggregate views and attribute views)
// output_stream: {include_features: true}, now and then false. At
// checkpoints of runGenDiff every streaming view's stream is read from
// earliest and compared, record by record, with the naive model:
//
//   - the records are exactly the view's records the model applied and
//     that were within the view's TTL at their ingest (none missing, none
//     extra), in log order, offsets strictly increasing;
//   - entity keys, feature_timestamp, feature_view_name and _id, and
//     feature_values: an attribute view's own values of the record; an
//     aggregate view's whole vector as of feature_timestamp + 1ns over
//     the key's records logged at or before it (records logged later,
//     even with earlier event times, left out), computed as the engine
//     does (event time, then log order; Neumaier sums), so that every
//     value but the variances' and the sketches' is compared as the very
//     string; those are parsed back and held to aggCheck's tolerances;
//   - a stream started at a record's offset (from=), right after it
//     (Last-Event-ID) or at the start of its log entry yields exactly the
//     suffix;
//   - after a reopen the stream is the same, byte for byte; after the
//     deletions, the erased records are gone, and every record of a key
//     the deletions left alone is as before, byte for byte;
//   - consumers following every stream live, from latest, while phase 2
//     (one writer, the clock moving) and phase 3 (concurrent writers,
//     flushes and merges) ingest, receive byte for byte what a replay
//     from where they started reads afterwards.
//
// Log order: the sequential phases send one request at a time, so request
// numbers are log order. In the concurrent phases (3 and 4) writers own
// disjoint keys, so the model knows each key's log order but not the
// interleaving of keys: records are matched key by key (the engine's
// records of a key, in offset order, with the model's, in log order), and
// request order is checked across keys except between two records of the
// concurrent phases.
//
// A record waits until the clock passes its time + 1ns + the view's
// largest window offset (outstream.go, publishAt): the stream stops at
// the first record still waiting. The checkpoints of the sequential
// phases predict where; the last one moves the clock past every record.

import (
	"context"
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"math/rand"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/schema"
)

// A view's output stream in a generated repo (genView.stream).
const (
	genStreamNone     = iota
	genStreamKeys     // output_stream: {include_features: false}
	genStreamFeatures // output_stream: {include_features: true}
)

// genOutputStreams gives five in eight of the views that may have an
// output stream one, one in five of those without features. It draws from a
// source of its own, so a seed's repo is the one it was before output
// streams, but for them.
func genOutputStreams(seed int64, g *genRepo) {
	r := rand.New(rand.NewSource(seed ^ 0x6f75747374726d)) // "outstrm"
	for _, v := range g.views {
		if v.interval > 0 {
			continue // refused by the parser
		}
		switch r.Intn(8) {
		case 0, 1, 2, 3:
			v.stream = genStreamFeatures
		case 4:
			v.stream = genStreamKeys
		}
	}
}

// genStreamRun is the output stream checks' part of a genRun.
type genStreamRun struct {
	r *rand.Rand // its own, so that the rest of the run draws what it did before
	// last is each view's stream as the previous checkpoint read it.
	last map[string][]genStreamRec
	// beforeDel is each streaming view's records per model key, as event
	// IDs, before the deletion phase.
	beforeDel map[string]map[string][]string
	// concFrom and concTo delimit the request numbers of the concurrent
	// phases, (concFrom, concTo]: their log order across keys is unknown.
	concFrom, concTo int64
	fails            []string
	stats            genStreamStats
}

// genStreamStats count what the checks compared.
type genStreamStats struct {
	aggViews, attrViews, keysOnly  int // streaming views of the repo: with features, without
	reads, aggRecords, attrRecords int // records of views with features compared with the model
	keysRecords                    int // records of views without features
	values, exact                  int // feature values compared; as strings
	held, starts, deleted          int // records held by publishAt; suffix reads; records erased by deletions
	live                           int // records live consumers received during phases 2 and 3
	checkpoints                    int
}

// genStreamCoverage adds up the default run's streams, so that a
// generator that stopped declaring streams fails TestGenDiff instead of
// passing vacuously.
var genStreamCoverage struct {
	sync.Mutex
	genAggViews, genAttrViews     int // in generated repos
	genAggRecords, genAttrRecords int
	aggRecords, attrRecords       int // fixed repos too
}

// genStreamRec is one output record as read, and the model event it was
// matched with.
type genStreamRec struct {
	rec  engine.OutputRecord
	json string
	ev   *genEvent // nil when it matched none
}

// genStreamWant is a record the model says the stream publishes.
type genStreamWant struct {
	ev  *genEvent
	key string
	ts  int64
	row map[string]schema.Value
	pub int64 // when it may be published (publishAt)
}

func (d *genRun) streamRun() *genStreamRun {
	if d.streams.r == nil {
		d.streams.r = rand.New(rand.NewSource(d.c.seed ^ 0x73747265616d)) // "stream"
	}
	return &d.streams
}

// streamViews lists the repo's views with an output stream.
func (d *genRun) streamViews() []*genView {
	var out []*genView
	for _, v := range d.repo.views {
		if v.stream != genStreamNone {
			out = append(out, v)
		}
	}
	return out
}

// rerunCommand is the command that runs the case again.
func (d *genRun) rerunCommand() string {
	return "go test ./engine -run 'TestGenDiff$' -count=1 " + d.c.rerun()
}

// streamFail records one mismatch of a stream with the model.
func (d *genRun) streamFail(stage string, v *genView, format string, args ...any) {
	s := d.streamRun()
	msg := fmt.Sprintf("STREAM MISMATCH %s, %s: view %s: ", d.c.name, stage, v.name) + fmt.Sprintf(format, args...)
	s.fails = append(s.fails, msg)
	if len(s.fails) <= genMaxDetailed {
		d.t.Log(msg)
	}
}

// streamDone fails the test when the checkpoint found mismatches.
func (d *genRun) streamDone(stage string) {
	s := d.streamRun()
	if len(s.fails) > 0 {
		d.t.Fatalf("%s, %s: %d output stream mismatches (the first %d printed above; the repo is printed below); rerun with\n\t%s",
			d.c.name, stage, len(s.fails), min(len(s.fails), genMaxDetailed), d.rerunCommand())
	}
}

// readStream reads a view's stream from start until it has no record
// ready: to the end of the log, or to a record that waits for the clock.
func (d *genRun) readStream(stage string, v *genView, start engine.StreamStart) []genStreamRec {
	st, err := d.db.OpenOutputStream(d.repo.ws, v.name, start)
	require.NoError(d.t, err, "%s %s: opening the output stream of %s (rerun with %s)", d.c.name, stage, v.name, d.rerunCommand())
	defer st.Close()
	var out []genStreamRec
	var buf []engine.OutputRecord
	for {
		// Every record ingested is applied when its request returns, and
		// Next fills from the log before it waits: a short wait only
		// bounds the last, empty call.
		buf, err = st.Next(context.Background(), buf, 512, time.Millisecond)
		require.NoError(d.t, err, "%s %s: reading the output stream of %s (rerun with %s)", d.c.name, stage, v.name, d.rerunCommand())
		if len(buf) == 0 {
			return out
		}
		for i := range buf {
			out = append(out, genStreamRec{rec: buf[i], json: string(buf[i].AppendJSON(nil))})
		}
	}
}

// genStreamJSON returns the records' JSON lines.
func genStreamJSON(recs []genStreamRec) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.json
	}
	return out
}

// checkStreams reads every streaming view's stream from earliest,
// compares it with the model and checks streams started at its records.
func (d *genRun) checkStreams(stage string) map[string][]genStreamRec {
	return d.checkStreamsAgainst(stage, nil)
}

// checkStreamsReopened checks the streams after a reopen: they must be
// the very bytes read before it (so the model's too, the clock and the
// model being what they were then; the model is asked only to explain a
// difference).
func (d *genRun) checkStreamsReopened(stage string) {
	d.checkStreamsAgainst(stage, d.streamRun().last)
}

// checkStreamsAgainst is checkStreams; with before, each view's stream
// must equal before's, byte for byte, and is compared with the model
// only when it does not.
func (d *genRun) checkStreamsAgainst(stage string, before map[string][]genStreamRec) map[string][]genStreamRec {
	s := d.streamRun()
	views := d.streamViews()
	if len(views) == 0 {
		return nil
	}
	start := time.Now()
	versions := d.versions()
	got := map[string][]genStreamRec{}
	n := 0
	for _, v := range views {
		recs := d.readStream(stage, v, engine.StreamStart{Kind: engine.StartEarliest})
		got[v.name] = recs
		n += len(recs)
		want, ok := before[v.name]
		if !ok {
			d.matchStream(stage, v, recs, versions[v.name])
			d.checkStarts(stage, v, recs)
			continue
		}
		w, g := genStreamJSON(want), genStreamJSON(recs)
		if slices.Equal(w, g) {
			for i := range recs {
				recs[i].ev = want[i].ev
			}
			continue
		}
		i := 0
		for i < len(w) && i < len(g) && w[i] == g[i] {
			i++
		}
		at := func(l []string) string {
			if i < len(l) {
				return l[i]
			}
			return "(none)"
		}
		d.streamFail(stage, v, "the stream differs from the one read before the reopen (%d records then, %d now); first difference at record %d:\n  before: %s\n  now:    %s",
			len(w), len(g), i, at(w), at(g))
		d.matchStream(stage, v, recs, versions[v.name]) // which of the two is wrong
	}
	d.streamDone(stage)
	s.last = got
	s.stats.checkpoints++
	d.t.Logf("%s: output streams: %d records of %d views compared in %v", stage, n, len(views), time.Since(start).Round(time.Millisecond))
	return got
}

func (d *genRun) viewNamed(name string) *genView {
	for _, v := range d.repo.views {
		if v.name == name {
			return v
		}
	}
	panic("gen: no view " + name)
}

// streamsBeforeDeletions checks the streams and notes each key's records,
// for checkStreamsAfterDeletions.
func (d *genRun) streamsBeforeDeletions(stage string) {
	s := d.streamRun()
	d.checkStreams(stage)
	s.beforeDel = map[string]map[string][]string{}
	for _, v := range d.streamViews() {
		s.beforeDel[v.name] = d.modelKeyEvents(v)
	}
}

// modelKeyEvents returns the IDs of each key's applied records of v.
func (d *genRun) modelKeyEvents(v *genView) map[string][]string {
	out := map[string][]string{}
	for _, k := range d.model.keys(v) {
		for _, r := range d.model.keyRows(v, k) {
			out[k] = append(out[k], genEventID(r.ev))
		}
	}
	return out
}

// checkStreamsAfterDeletions checks the streams after the deletion phase:
// the model's (which no longer has the erased records), and against the
// streams read before it: a record the deletions erased is gone, every
// other is at its offset, and byte for byte the same when the deletions
// erased no record of its key (its values depend on its key's records
// only).
func (d *genRun) checkStreamsAfterDeletions(stage string) {
	s := d.streamRun()
	before := s.last
	got := d.checkStreams(stage)
	for _, v := range d.streamViews() {
		now := d.modelKeyEvents(v)
		affected := map[string]bool{}
		for k, ids := range s.beforeDel[v.name] {
			for _, id := range ids {
				if !slices.Contains(now[k], id) {
					affected[k] = true
					break
				}
			}
		}
		byOffset := map[engine.StreamOffset]genStreamRec{}
		for _, r := range got[v.name] {
			byOffset[r.rec.Offset] = r
		}
		for _, r := range before[v.name] {
			if r.ev == nil {
				continue
			}
			key, _ := genViewKey(v, r.ev.cols)
			kept := slices.Contains(now[key], genEventID(r.ev))
			g, ok := byOffset[r.rec.Offset]
			switch {
			case !kept && ok:
				d.streamFail(stage, v, "record %s (%s) was erased by a deletion but is still in the stream: %s", r.rec.Offset, r.ev, g.json)
			case !kept:
				s.stats.deleted++
			case !ok:
				d.streamFail(stage, v, "record %s (%s) was not erased but is gone from the stream; before: %s", r.rec.Offset, r.ev, r.json)
			case !affected[key] && g.json != r.json:
				d.streamFail(stage, v, "record %s of a key no deletion touched changed:\n  before: %s\n  after:  %s", r.rec.Offset, r.json, g.json)
			}
		}
	}
	d.streamDone(stage)
}

// checkStreamsFinal moves the clock past every record's publication time,
// checks the streams, reopens the DB and checks them again, byte for
// byte; then it logs what the checks compared.
func (d *genRun) checkStreamsFinal(stage string) {
	s := d.streamRun()
	d.now.Add(d.publishDelay())
	d.checkStreams(stage)
	require.NoError(d.t, d.db.Close())
	d.open()
	d.checkStreamsReopened(stage + ", after a reopen")
	for _, v := range d.streamViews() {
		switch {
		case v.stream == genStreamKeys:
			s.stats.keysOnly++
		case v.aggregate():
			s.stats.aggViews++
		default:
			s.stats.attrViews++
		}
	}
	st := s.stats
	d.t.Logf("%s: output streams: %d streaming views (%d aggregate and %d attribute with features, %d without); %d checkpoints compared %d aggregate and %d attribute records with features and %d without (%d reads; a record counts at each checkpoint), %d feature values (%d as exact strings), %d suffix reads, %d records held for the clock, %d erased, %d received live",
		d.c.name, len(d.streamViews()), st.aggViews, st.attrViews, st.keysOnly, st.checkpoints, st.aggRecords, st.attrRecords, st.keysRecords, st.reads,
		st.values, st.exact, st.starts, st.held, st.deleted, st.live)
	genStreamCoverage.Lock()
	defer genStreamCoverage.Unlock()
	genStreamCoverage.aggRecords += st.aggRecords
	genStreamCoverage.attrRecords += st.attrRecords
	if strings.HasPrefix(d.c.name, "seed=") {
		genStreamCoverage.genAggViews += st.aggViews
		genStreamCoverage.genAttrViews += st.attrViews
		genStreamCoverage.genAggRecords += st.aggRecords
		genStreamCoverage.genAttrRecords += st.attrRecords
	}
}

// resetGenStreamCoverage starts a run's count (-count=N runs it again).
func resetGenStreamCoverage() {
	c := &genStreamCoverage
	c.Lock()
	defer c.Unlock()
	c.genAggViews, c.genAttrViews, c.genAggRecords, c.genAttrRecords, c.aggRecords, c.attrRecords = 0, 0, 0, 0, 0, 0
}

// publishDelay is how far the clock must move for every record ingested
// so far to be published: the clock skew, the largest window offset, and
// 1ns (outstream.go, publishAt).
func (d *genRun) publishDelay() int64 {
	var maxOff int64
	for _, v := range d.repo.views {
		for _, f := range v.aggs {
			maxOff = max(maxOff, int64(f.window.offset))
		}
	}
	return genSkew + maxOff + 1
}

// requireGenStreamCoverage fails a TestGenDiff run of the default seeds
// whose generated repos had no streaming aggregate view or no streaming
// attribute view with features, or compared no record of either. (Random
// seeds of -long may draw none.)
func requireGenStreamCoverage(t *testing.T) {
	if *diffSeed != 0 || *diffRepo != "" || t.Failed() {
		return
	}
	c := &genStreamCoverage
	c.Lock()
	defer c.Unlock()
	t.Logf("output streams over the run: generated repos had %d aggregate and %d attribute streaming views (with features); %d and %d of their records compared (%d and %d with the fixed repos)",
		c.genAggViews, c.genAttrViews, c.genAggRecords, c.genAttrRecords, c.aggRecords, c.attrRecords)
	if *diffLong {
		return
	}
	if testing.Short() { // one seed only: the fixed repos stream both kinds
		require.Positive(t, c.aggRecords, "no aggregate view's output record was compared")
		require.Positive(t, c.attrRecords, "no attribute view's output record was compared")
		return
	}
	require.Positive(t, c.genAggViews, "no generated repo has a continuous aggregate view with output_stream: {include_features: true}")
	require.Positive(t, c.genAttrViews, "no generated repo has an attribute view with output_stream: {include_features: true}")
	require.Positive(t, c.genAggRecords, "no generated aggregate view's output record was compared")
	require.Positive(t, c.genAttrRecords, "no generated attribute view's output record was compared")
}

// streamWant lists the records the model says v's stream publishes, in
// log order (request order: within the concurrent phases, only each
// key's order is the log's).
func (d *genRun) streamWant(v *genView) []genStreamWant {
	var pubOff int64
	for _, f := range v.aggs {
		pubOff = max(pubOff, int64(f.window.offset))
	}
	var out []genStreamWant
	for _, k := range d.model.keys(v) {
		for _, r := range d.model.keyRows(v, k) {
			if genOnline(v, r.ts, r.ev.now) {
				out = append(out, genStreamWant{ev: r.ev, key: k, ts: r.ts, row: r.row, pub: r.ts + 1 + pubOff})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ev.before(out[j].ev) })
	return out
}

// genStreamKey is the model key of an output record's entity keys.
func genStreamKey(v *genView, keys []engine.NamedValue) (string, error) {
	cols := v.joinKeys()
	if len(keys) != len(cols) {
		return "", fmt.Errorf("%d entity keys, want %d", len(keys), len(cols))
	}
	var parts []string
	for i, c := range cols {
		k := genWire(keys[i])
		if keys[i].Name != c.name || k.Null {
			return "", fmt.Errorf("entity key %d is %q (null %v), want %q", i, keys[i].Name, k.Null, c.name)
		}
		if c.t.Kind == schema.String {
			parts = append(parts, "s:"+k.Value)
			continue
		}
		n, err := strconv.ParseInt(k.Value, 10, 64)
		if err != nil || strconv.FormatInt(n, 10) != k.Value {
			return "", fmt.Errorf("entity key %s is %q, not an integer in decimal", keys[i].Name, k.Value)
		}
		parts = append(parts, "i:"+k.Value)
	}
	return strings.Join(parts, "\x00"), nil
}

// matchStream compares one view's stream, read from earliest, with the
// model, and sets each record's event.
func (d *genRun) matchStream(stage string, v *genView, recs []genStreamRec, version int) {
	s := d.streamRun()
	now := d.now.Load()
	want := d.streamWant(v)
	sequential := s.concFrom == 0 // no concurrent phase yet: request order is log order
	for i, w := range want {
		if w.pub > now {
			if !sequential {
				d.t.Fatalf("%s %s: %s: record %s waits for the clock (publishable at %s, clock %s) after the clock was moved past every record",
					d.c.name, stage, v.name, w.ev, aggTime(w.pub), aggTime(now))
			}
			s.stats.held += len(want) - i
			want = want[:i] // the stream stops at the first record that waits
			break
		}
	}
	s.stats.reads++

	// Offsets, names, and the records of each key.
	byKey := map[string][]*genStreamRec{}
	var keys []string
	wantID := fmt.Sprintf("%s/%s@%d", d.repo.ws, v.name, version)
	for i := range recs {
		r := &recs[i]
		if i > 0 && !recs[i-1].rec.Offset.Less(r.rec.Offset) {
			d.streamFail(stage, v, "offsets do not increase: record %d has offset %s after %s", i, r.rec.Offset, recs[i-1].rec.Offset)
		}
		if r.rec.FeatureView != v.name || r.rec.FeatureViewID != wantID {
			d.streamFail(stage, v, "record %s names view %q, id %q; want %q, %q", r.rec.Offset, r.rec.FeatureView, r.rec.FeatureViewID, v.name, wantID)
		}
		k, err := genStreamKey(v, r.rec.EntityKeys)
		if err != nil {
			d.streamFail(stage, v, "record %s: %v: %s", r.rec.Offset, err, r.json)
			continue
		}
		if byKey[k] == nil {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], r)
	}
	wantByKey := map[string][]genStreamWant{}
	for _, w := range want {
		if wantByKey[w.key] == nil && byKey[w.key] == nil {
			keys = append(keys, w.key)
		}
		wantByKey[w.key] = append(wantByKey[w.key], w)
	}
	for _, k := range keys {
		got, ws := byKey[k], wantByKey[k]
		if len(got) != len(ws) {
			d.streamFail(stage, v, "key %s: %d records, want %d (clock %s)\n%s", genKeyText(k), len(got), len(ws), aggTime(now), genStreamListing(got, ws))
			continue
		}
		var rows []genRow
		var rank map[*genEvent]int
		if v.aggregate() && v.stream == genStreamFeatures {
			rows, rank = d.keyLog(v, k)
		}
		for i, r := range got {
			r.ev = ws[i].ev
			d.matchRecord(stage, v, r, ws[i], rows, rank)
		}
	}

	// Log order across keys: request order, but between two records of
	// the concurrent phases.
	var prev *genEvent
	for i := range recs {
		e := recs[i].ev
		if e == nil {
			continue
		}
		if prev != nil && !d.streamOrdered(prev, e) {
			d.streamFail(stage, v, "record %s (%s) comes after %s in the stream, but was logged before it", recs[i].rec.Offset, e, prev)
		}
		prev = e
	}
}

// streamOrdered reports whether a record of request a may precede one of
// b in the log.
func (d *genRun) streamOrdered(a, b *genEvent) bool {
	s := d.streamRun()
	conc := func(e *genEvent) bool {
		return int64(e.req) > s.concFrom && (s.concTo == 0 || int64(e.req) <= s.concTo)
	}
	if s.concFrom > 0 && conc(a) && conc(b) {
		return true // the writers' interleaving: each key's order is checked
	}
	return a.before(b)
}

// keyLog returns the model's rows of a key in (event time, log order),
// and each row's rank in log order.
func (d *genRun) keyLog(v *genView, key string) ([]genRow, map[*genEvent]int) {
	rows := d.model.keyRows(v, key)
	byLog := make([]*genEvent, len(rows))
	for i, r := range rows {
		byLog[i] = r.ev
	}
	sort.Slice(byLog, func(i, j int) bool { return byLog[i].before(byLog[j]) })
	rank := make(map[*genEvent]int, len(byLog))
	for i, e := range byLog {
		rank[e] = i
	}
	return rows, rank
}

func genKeyText(k string) string { return strings.ReplaceAll(k, "\x00", ",") }

// genStreamListing prints a key's records as got and as wanted.
func genStreamListing(got []*genStreamRec, want []genStreamWant) string {
	var b strings.Builder
	b.WriteString("  got (offset, feature_timestamp):\n")
	for i, r := range got {
		if i == 15 {
			fmt.Fprintf(&b, "    ... %d more\n", len(got)-i)
			break
		}
		fmt.Fprintf(&b, "    %s %s\n", r.rec.Offset, aggTime(r.rec.FeatureTimestamp.UnixNano()))
	}
	b.WriteString("  want (event time, record, ingested at):\n")
	for i, w := range want {
		if i == 15 {
			fmt.Fprintf(&b, "    ... %d more\n", len(want)-i)
			break
		}
		fmt.Fprintf(&b, "    %s %s at %s\n", aggTime(w.ts), w.ev, aggTime(w.ev.now))
	}
	return b.String()
}

// matchRecord compares one record with the model's.
func (d *genRun) matchRecord(stage string, v *genView, r *genStreamRec, w genStreamWant, rows []genRow, rank map[*genEvent]int) {
	s := d.streamRun()
	if got := r.rec.FeatureTimestamp.UnixNano(); got != w.ts || r.rec.FeatureTimestamp.Location() != time.UTC {
		d.streamFail(stage, v, "record %s: feature_timestamp %s, want %s (%s)", r.rec.Offset, r.rec.FeatureTimestamp, aggTime(w.ts), w.ev)
	}
	if got := r.rec.IngestTime.UnixNano(); got != w.ev.now {
		d.streamFail(stage, v, "record %s: ingest time %s, want %s (%s)", r.rec.Offset, aggTime(got), aggTime(w.ev.now), w.ev)
	}
	switch {
	case v.stream == genStreamKeys:
		s.stats.keysRecords++
	case v.aggregate():
		s.stats.aggRecords++
	default:
		s.stats.attrRecords++
	}
	if v.stream == genStreamKeys {
		if r.rec.FeatureValues != nil {
			d.streamFail(stage, v, "record %s has feature_values without include_features: %s", r.rec.Offset, r.json)
		}
		return
	}
	names := v.featureNames()
	if len(r.rec.FeatureValues) != len(names) {
		d.streamFail(stage, v, "record %s has %d feature values, want %d: %s", r.rec.Offset, len(r.rec.FeatureValues), len(names), r.json)
		return
	}
	for i, name := range names {
		got := r.rec.FeatureValues[i]
		if got.Name != name {
			d.streamFail(stage, v, "record %s: feature value %d is named %q, want %q", r.rec.Offset, i, got.Name, name)
			return
		}
	}
	if !v.aggregate() {
		for i, a := range v.attrs {
			s.stats.values++
			s.stats.exact++
			want := genStreamText(w.row[a])
			if got := genWire(r.rec.FeatureValues[i]); got != want {
				d.streamFail(stage, v, "record %s (%s): attribute %s is %s, want %s\n  the record: %s", r.rec.Offset, genKeyText(w.key), a,
					genNamedText(got), genNamedText(want), r.json)
			}
		}
		return
	}
	t := w.ts + 1
	upTo := rank[w.ev]
	for i, f := range v.aggs {
		s.stats.values++
		lo, hi := genWindow(v, f, t)
		var pts []aggPoint
		for j := sort.Search(len(rows), func(j int) bool { return rows[j].ts >= lo }); j < len(rows) && rows[j].ts < hi; j++ {
			if rank[rows[j].ev] > upTo {
				continue // logged after the record
			}
			if val := rows[j].row[f.input]; !val.IsNull() {
				pts = append(pts, aggPoint{ts: rows[j].ts, req: rows[j].ev.req, val: val})
			}
		}
		kind := v.colType(f.input).Kind
		got := genWire(r.rec.FeatureValues[i])
		want, exact := genStreamAgg(f, kind, pts)
		var why string
		if exact {
			s.stats.exact++
			if wt := genStreamText(want); got != wt {
				why = fmt.Sprintf("%s, want %s", genNamedText(got), genNamedText(wt))
			}
		} else {
			gv, err := genStreamParse(got, want.Kind)
			if err != nil {
				why = err.Error()
			} else if ok, reason := aggCheck(f, gv, want, pts); !ok {
				why = fmt.Sprintf("%s, want %s (%s)", genNamedText(got), aggFmt(want), reason)
			}
		}
		if why != "" {
			d.streamFail(stage, v, "record %s (key %s, %s): feature %s is %s\n  window [%s, %s) as of %s over the key's %d records logged up to this one; %d values in it:\n%s  the record: %s",
				r.rec.Offset, genKeyText(w.key), w.ev, v.featureNames()[i], why, aggTime(lo), aggTime(hi), aggTime(t), upTo+1, len(pts),
				genStreamPoints(f, pts), r.json)
		}
	}
}

// genStreamPoints prints a window's values.
func genStreamPoints(f aggFeature, pts []aggPoint) string {
	var b strings.Builder
	for i, p := range pts {
		if len(pts) > 20 && i >= 15 && i < len(pts)-5 {
			if i == 15 {
				fmt.Fprintf(&b, "    ... %d more ...\n", len(pts)-20)
			}
			continue
		}
		fmt.Fprintf(&b, "    %s = %s at %s (req %d)\n", f.input, aggFmt(p.val), aggTime(p.ts), p.req)
	}
	return b.String()
}

// checkStarts reads the stream again from some of its records: at one
// (from=), right after one (Last-Event-ID), and at the start of one's log
// entry; each must be the suffix of the stream read from earliest.
func (d *genRun) checkStarts(stage string, v *genView, recs []genStreamRec) {
	if len(recs) == 0 {
		return
	}
	s := d.streamRun()
	all := genStreamJSON(recs)
	check := func(how string, start engine.StreamStart, want []string) {
		s.stats.starts++
		got := genStreamJSON(d.readStream(stage, v, start))
		if !slices.Equal(got, want) {
			i := 0
			for i < len(got) && i < len(want) && got[i] == want[i] {
				i++
			}
			d.streamFail(stage, v, "the stream %s %s has %d records, want the %d of the stream from earliest from there; first difference at record %d",
				how, start.Offset, len(got), len(want), i)
		}
	}
	i := s.r.Intn(len(recs))
	check("from", engine.StreamStart{Kind: engine.StartAt, Offset: recs[i].rec.Offset}, all[i:])
	i = s.r.Intn(len(recs))
	check("after", engine.StreamStart{Kind: engine.StartAfter, Offset: recs[i].rec.Offset}, all[i+1:])
	i = s.r.Intn(len(recs))
	entry := engine.StreamOffset{Seq: recs[i].rec.Offset.Seq}
	j := slices.IndexFunc(recs, func(r genStreamRec) bool { return !r.rec.Offset.Less(entry) })
	check("from the start of the entry of", engine.StreamStart{Kind: engine.StartAt, Offset: entry}, all[j:])
	check("latest", engine.StreamStart{Kind: engine.StartLatest}, nil)
}

// genFollower is a consumer following a view's stream live.
type genFollower struct {
	v    *genView
	from engine.StreamOffset // where it started: the end of the log then
	got  []string
	err  error
}

// followStreams starts a live consumer of every streaming view, from
// latest; checkFollowers stops them.
func (d *genRun) followStreams() ([]*genFollower, func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	var fs []*genFollower
	for _, v := range d.streamViews() {
		st, err := d.db.OpenOutputStream(d.repo.ws, v.name, engine.StreamStart{Kind: engine.StartLatest})
		require.NoError(d.t, err)
		f := &genFollower{v: v, from: st.Position()}
		fs = append(fs, f)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer st.Close()
			var buf []engine.OutputRecord
			stopping := false
			for {
				select {
				case <-done:
					stopping = true
				default:
				}
				wait := 5 * time.Millisecond
				if stopping { // the writers are done: drain what is ready
					wait = time.Millisecond
				}
				buf, f.err = st.Next(context.Background(), buf, 256, wait)
				if f.err != nil || stopping && len(buf) == 0 {
					return
				}
				for i := range buf {
					f.got = append(f.got, string(buf[i].AppendJSON(nil)))
				}
			}
		}()
	}
	return fs, func() { close(done); wg.Wait() }
}

// checkFollowers stops the live consumers once the writers are done and
// requires each to have received, byte for byte, what a replay from
// where it started reads now. With release, it first moves the clock
// past every record's publication time, while the consumers still run:
// in the concurrent phase the clock stands still, and a consumer stops at
// the first record dated ahead of it.
func (d *genRun) checkFollowers(stage string, fs []*genFollower, stop func(), release bool) {
	if release {
		d.now.Add(d.publishDelay())
		time.Sleep(20 * time.Millisecond) // a few polls of the consumers
	}
	stop()
	for _, f := range fs {
		require.NoError(d.t, f.err, "%s %s: the live consumer of %s (rerun with %s)", d.c.name, stage, f.v.name, d.rerunCommand())
		replay := genStreamJSON(d.readStream(stage, f.v, engine.StreamStart{Kind: engine.StartAt, Offset: f.from}))
		d.streamRun().stats.live += len(f.got)
		if slices.Equal(f.got, replay) {
			continue
		}
		i := 0
		for i < len(f.got) && i < len(replay) && f.got[i] == replay[i] {
			i++
		}
		at := func(l []string) string {
			if i < len(l) {
				return l[i]
			}
			return "(none)"
		}
		d.streamFail(stage, f.v, "the live consumer received %d records, a replay from where it started (%s) reads %d; first difference at record %d:\n  live:   %s\n  replay: %s",
			len(f.got), f.from, len(replay), i, at(f.got), at(replay))
	}
	d.streamDone(stage)
}

// ---------------------------------------------------------------------
// Values as the stream sends them.

// genStreamText is SPEC §7's string of a value: integers in decimal,
// floats in the shortest form that reads back (non-finite ones "NaN",
// "Infinity", "-Infinity"), timestamps in RFC 3339 with nanoseconds,
// arrays as JSON (numbers as numbers), null as null.
func genStreamText(v schema.Value) genText {
	switch v.Kind {
	case schema.Null:
		return genText{Null: true}
	case schema.String:
		return genText{Value: v.S}
	case schema.Int64, schema.Int32:
		return genText{Value: strconv.FormatInt(v.I, 10)}
	case schema.Float64, schema.Float32:
		return genText{Value: genFloatText(v)}
	case schema.Bool:
		return genText{Value: strconv.FormatBool(v.Bool())}
	case schema.Timestamp:
		return genText{Value: v.Time().Format(time.RFC3339Nano)}
	case schema.Array:
		b := []byte{'['}
		for i, e := range v.A {
			if i > 0 {
				b = append(b, ',')
			}
			switch t := genStreamText(e).Value; {
			case e.Kind == schema.String || e.Kind == schema.Timestamp,
				(e.Kind == schema.Float64 || e.Kind == schema.Float32) && (math.IsNaN(e.F) || math.IsInf(e.F, 0)):
				b, _ = jsontext.AppendQuote(b, t)
			default:
				b = append(b, t...)
			}
		}
		return genText{Value: string(append(b, ']'))}
	}
	panic(fmt.Sprintf("gen: no stream text for %v", v.Kind))
}

func genFloatText(v schema.Value) string {
	switch {
	case math.IsNaN(v.F):
		return "NaN"
	case math.IsInf(v.F, 1):
		return "Infinity"
	case math.IsInf(v.F, -1):
		return "-Infinity"
	}
	size := 64
	if v.Kind == schema.Float32 {
		size = 32
	}
	return strconv.FormatFloat(v.F, 'g', -1, size)
}

// genText is a value as the wire sends it.
type genText struct {
	Value string
	Null  bool
}

// genWire is the wire text of an engine value.
func genWire(v engine.NamedValue) genText { return genText{Value: v.Text(), Null: v.IsNull()} }

func genNamedText(v genText) string {
	if v.Null {
		return "null"
	}
	return strconv.Quote(v.Value)
}

// genStreamParse reads a scalar value of kind k back from its string.
func genStreamParse(v genText, k schema.Kind) (schema.Value, error) {
	if v.Null {
		return schema.Value{}, nil
	}
	switch k {
	case schema.Int64, schema.Int32:
		n, err := strconv.ParseInt(v.Value, 10, 64)
		if err != nil {
			return schema.Value{}, fmt.Errorf("%q is not an integer", v.Value)
		}
		return schema.Value{Kind: k, I: n}, nil
	case schema.Float64, schema.Float32:
		switch v.Value {
		case "NaN":
			return schema.Value{Kind: k, F: math.NaN()}, nil
		case "Infinity":
			return schema.Value{Kind: k, F: math.Inf(1)}, nil
		case "-Infinity":
			return schema.Value{Kind: k, F: math.Inf(-1)}, nil
		}
		f, err := strconv.ParseFloat(v.Value, 64)
		if err != nil || strings.ContainsAny(v.Value, "nN") {
			return schema.Value{}, fmt.Errorf("%q is not a float", v.Value)
		}
		return schema.Value{Kind: k, F: f}, nil
	}
	return schema.Value{}, fmt.Errorf("gen: cannot parse a %v", k)
}

// genStreamAgg computes f over pts (the window's non-null values in
// event time, then log order) as the engine adds them: integer sums
// exact and saturated to the input type, float sums and means with
// Neumaier's compensated summation, float min and max with Go's min and
// max. exact is false for the variances and the sketches, whose values
// only aggCheck's tolerances pin down: want is then aggCompute's.
func genStreamAgg(f aggFeature, kind schema.Kind, pts []aggPoint) (want schema.Value, exact bool) {
	n := len(pts)
	integral := kind == schema.Int64 || kind == schema.Int32
	switch f.fn {
	case "var_samp", "stddev_samp", "var_pop", "stddev_pop", "approx_count_distinct", "approx_percentile":
		return aggCompute(f, kind, pts), false
	case "count":
		return schema.Int(int64(n)), true
	case "last", "last_n", "first_n", "last_distinct_n", "first_distinct_n":
		return aggCompute(f, kind, pts), true
	}
	if n == 0 {
		return schema.Value{}, true
	}
	switch f.fn {
	case "sum", "mean":
		if integral {
			var s genI128
			for _, p := range pts {
				s.add(p.val.I)
			}
			if f.fn == "mean" {
				return schema.Float(s.float64() / float64(n)), true
			}
			lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
			if kind == schema.Int32 {
				lo, hi = math.MinInt32, math.MaxInt32
			}
			return schema.Value{Kind: kind, I: s.clamp(lo, hi)}, true
		}
		var s, c float64
		for _, p := range pts {
			t := s + p.val.F
			if math.Abs(s) >= math.Abs(p.val.F) {
				c += (s - t) + p.val.F
			} else {
				c += (p.val.F - t) + s
			}
			s = t
		}
		total := s
		if !math.IsInf(s, 0) && !math.IsNaN(s) {
			total = s + c
		}
		if f.fn == "mean" {
			return schema.Float(total / float64(n)), true
		}
		if kind == schema.Float32 {
			total = float64(float32(total))
		}
		return schema.Value{Kind: kind, F: total}, true
	case "min", "max":
		if integral {
			best := pts[0].val.I
			for _, p := range pts[1:] {
				if f.fn == "min" {
					best = min(best, p.val.I)
				} else {
					best = max(best, p.val.I)
				}
			}
			return schema.Value{Kind: kind, I: best}, true
		}
		best := math.Inf(1)
		if f.fn == "max" {
			best = math.Inf(-1)
		}
		for _, p := range pts {
			if f.fn == "min" {
				best = min(best, p.val.F)
			} else {
				best = max(best, p.val.F)
			}
		}
		return schema.Value{Kind: kind, F: best}, true
	}
	panic("gen: no stream value for " + f.fn)
}

// genI128 is an exact integer sum.
type genI128 struct {
	hi int64
	lo uint64
}

func (a *genI128) add(x int64) {
	var carry uint64
	a.lo, carry = bits.Add64(a.lo, uint64(x), 0)
	a.hi += int64(carry) + x>>63
}

func (a genI128) fits() bool { return a.hi == int64(a.lo)>>63 }

func (a genI128) big() *big.Int {
	b := new(big.Int).Lsh(big.NewInt(a.hi), 64)
	return b.Add(b, new(big.Int).SetUint64(a.lo))
}

func (a genI128) clamp(lo, hi int64) int64 {
	if a.fits() {
		return min(max(int64(a.lo), lo), hi)
	}
	b := a.big()
	switch {
	case b.Cmp(big.NewInt(lo)) < 0:
		return lo
	case b.Cmp(big.NewInt(hi)) > 0:
		return hi
	}
	return b.Int64()
}

func (a genI128) float64() float64 {
	if a.fits() {
		return float64(int64(a.lo))
	}
	f, _ := new(big.Float).SetInt(a.big()).Float64()
	return f
}
