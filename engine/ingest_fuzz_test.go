package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/featurelog/featurelog/internal/record"
)

// fuzzNow is the fuzz DB's clock: fixed, so that a body's TTL and clock
// skew checks give the same answer on every run and in every worker.
var fuzzNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fuzzRepo declares a source with a column of every type, read by an
// aggregate view with a transform, a filter and a TTL, and by an attribute
// view with a short TTL: so that a fuzzed body reaches the validator's
// projections (transform errors, filters, TTLs, clock skew) as well as
// the decoder.
const fuzzRepo = `workspace: fz
entities:
  - name: cust
    join_keys: [cid]
sources:
  - name: orders
    schema:
      - {name: cid, type: String}
      - {name: ts, type: Timestamp}
      - {name: amt, type: Float64}
      - {name: qty, type: Int32}
      - {name: n, type: Int64}
      - {name: disc, type: Float32}
      - {name: gift, type: Bool}
      - {name: items, type: Array(String)}
      - {name: prices, type: Array(Float64)}
      - {name: counts, type: Array(Int64)}
      - {name: times, type: Array(Timestamp)}
    push: {log_offline: true}
  - name: unsubscribed
    schema:
      - {name: cid, type: String}
      - {name: ts, type: Timestamp}
feature_views:
  - name: orders_agg
    source: orders
    entities: [cust]
    timestamp_field: ts
    ttl: 2d
    transform:
      columns:
        total: "amt * qty"
        ratio: "amt / qty"
        n_items: len(items)
        first_item: "len(items) > 0 ? items[0] : ''"
      filter: "amt >= 0 && !gift"
    aggregation_interval: 10m
    features:
      - aggregate: {input: amt, function: sum, window: 1h}
      - aggregate: {input: total, function: last_n, n: 3, window: 1d}
      - aggregate: {input: ratio, function: max, window: 1h}
      - aggregate: {input: n_items, function: sum, window: 1h}
      - aggregate: {input: first_item, function: approx_count_distinct, window: 1h}
      - aggregate: {input: disc, function: approx_percentile, percentile: 0.5, window: 1h}
  - name: orders_latest
    source: orders
    entities: [cust]
    timestamp_field: ts
    ttl: 1h
    features:
      - attribute: {name: n}
      - attribute: {name: items}
      - attribute: {name: times}
      - attribute: {name: prices}
      - attribute: {name: counts}
feature_services:
  - name: fz_svc
    features: [orders_agg, orders_latest]
`

// openFuzzDB opens one DB per fuzz process (the coordinator and each
// worker run the Fuzz function once) with the ads example and fuzzRepo
// applied. Auto flush is on with a small threshold, so long runs bound
// their memory and exercise flushes under ingest too.
func openFuzzDB(f testing.TB) *DB {
	ads, err := os.ReadFile("../examples/ads/features.yaml")
	if err != nil {
		f.Fatal(err)
	}
	db, err := Open(Options{Dir: f.TempDir(), Now: func() time.Time { return fuzzNow }, NoSync: true,
		Logger: slog.New(slog.DiscardHandler), FlushRecords: 20_000, StateCacheBytes: 8 << 20, HotTierBytes: -1})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		if err := db.Close(); err != nil {
			f.Error(err)
		}
	})
	for file, src := range map[string][]byte{"ads.yaml": ads, "fz.yaml": []byte(fuzzRepo)} {
		if _, err := db.ApplyWait(context.Background(), file, src); err != nil {
			f.Fatalf("apply %s: %v", file, err)
		}
	}
	return db
}

// fuzzTS formats a time relative to fuzzNow.
func fuzzTS(d time.Duration) string { return fuzzNow.Add(d).Format(time.RFC3339Nano) }

// ingestSeeds returns valid requests, and one of each kind of bad input.
func ingestSeeds() (valid, invalid []string) {
	ad := func(dry bool, recs ...string) string {
		return fmt.Sprintf(`{"workspace_name":"ads","dry_run":%v,"records":{"impressions_event_source":[%s]}}`, dry, strings.Join(recs, ","))
	}
	click := func(user string, ago time.Duration, clicked string) string {
		return fmt.Sprintf(`{"record":{"user_id":%q,"timestamp":%q,"clicked":%s}}`, user, fuzzTS(-ago), clicked)
	}
	order := fmt.Sprintf(`{"record":{"cid":"c1","ts":%q,"amt":12.5,"qty":3,"n":"9007199254740993","disc":0.25,"gift":false,`+
		`"items":["a","b"],"prices":[1.5,2],"counts":[1,-2,3e2],"times":[%q]}}`, fuzzTS(-time.Minute), fuzzTS(-time.Hour))
	fz := func(recs ...string) string {
		return fmt.Sprintf(`{"records":{"orders":[%s]},"workspace_name":"fz","dry_run":false}`, strings.Join(recs, ","))
	}
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	valid = []string{
		// The SPEC's example shape, a dry run, nulls, several records, an
		// empty list, unicode escapes.
		ad(false, click("u1", time.Minute, "1")),
		ad(true, click("u1", time.Minute, "0")),
		ad(false, click("u1", time.Minute, "1"), click("u2", 2*time.Hour, `"7"`), `{"record":{"user_id":"u3","timestamp":"`+fuzzTS(-time.Second)+`","clicked":null}}`),
		ad(false),
		fz(order),
		fz(order, `{"record":{"cid":"c2","ts":"`+fuzzTS(-30*time.Minute)+`","amt":-1,"qty":0,"gift":true,"items":[]}}`),
		fz(`{"record":{"cid":"c3","ts":"` + fuzzTS(-time.Minute) + `","amt":1e308,"qty":2147483647,"disc":3.4e38}}`),
		`{"workspace_name":"\u0061ds","dry_run":false,"records":{"impressions_event_source":[{"record":{"user_id":"\ud83d\ude00\u0000","timestamp":"` + fuzzTS(-time.Minute) + `","clicked":1}}]}}`,
	}
	invalid = []string{
		// Bad envelopes.
		``, `null`, `[]`, `{}`, `{"workspace_name":"ads"}`,
		// Duplicate key.
		`{"workspace_name":"ads","workspace_name":"ads","dry_run":false,"records":{}}`,
		// Trailing data.
		`{"workspace_name":"ads","dry_run":false,"records":{}} {}`,
		// Wrong type.
		`{"workspace_name":"ads","dry_run":0,"records":{}}`,
		`{"workspace_name":"","dry_run":false,"records":{}}`,
		`{"workspace_name":"nope","dry_run":false,"records":{}}`,
		`{"workspace_name":"ads","dry_run":false,"records":[]}`,
		`{"workspace_name":"ads","dry_run":false,"records":{"nope":[]}}`,
		`{"workspace_name":"fz","dry_run":false,"records":{"unsubscribed":[]}}`,
		`{"workspace_name":"ads","dry_run":false,"records":{"impressions_event_source":[]},"extra":1}`,
		// Invalid UTF-8.
		"{\"workspace_name\":\"a\xffds\",\"dry_run\":false,\"records\":{}}",
		// Lone surrogate.
		`{"workspace_name":"ads","dry_run":false,"records":{"impressions_event_source":[{"record":{"user_id":"\ud800","clicked":1}}]}}`,
		// Deep nesting.
		`{"workspace_name":"ads","dry_run":false,"records":{"impressions_event_source":` + deep + `}}`,
		`{"workspace_name":"ads","dry_run":false,"records":{"impressions_event_source":[{"record":{"user_id":` + deep + `}}]}}`,
		// Truncated.
		`{"workspace_name":"ads","dry_run":false,"records":{"impressions_event_source":[{"record":{"user_id":"u","timestamp":"` + fuzzTS(-time.Minute) + `"`,
		// Bad records: wrong types, huge numbers, bad timestamps, unknown columns.
		ad(false, click("u1", time.Minute, `"x"`), click("u1", time.Minute, "1.5"), click("u1", time.Minute, "1e400"), click("u1", time.Minute, "99999999999999999999")),
		ad(false, click("u1", time.Minute, "true"), click("u1", time.Minute, "[1]"), click("u1", time.Minute, `{"a":1}`)),
		ad(false, `{"record":{"user_id":"u1","timestamp":"yesterday","clicked":1}}`, `{"record":{"user_id":"u1","timestamp":"2026-02-30T00:00:00Z","clicked":1}}`),
		// Future, and outside every TTL.
		ad(false, click("u1", -time.Hour, "1"), click("u1", 30*24*time.Hour, "1")),
		ad(false, `{"record":{"user_id":"u1","timestamp":"`+fuzzTS(-time.Minute)+`","clicks":1}}`, `{"record":{}}`, `{"rec":{}}`, `[]`, `{"record":[]}`),
		// Duplicate column.
		ad(false, `{"record":{"user_id":"u1","user_id":"u2","timestamp":"`+fuzzTS(-time.Minute)+`","clicked":1}}`),
		fz(`{"record":{"cid":"c1","ts":"` + fuzzTS(-time.Minute) + `","qty":2147483648,"disc":1e39,"items":[1],"prices":["x"],"counts":[1.5],"times":["now"]}}`),
		fz(`{"record":{"cid":"c1","ts":"` + fuzzTS(-time.Minute) + `","amt":-5e-324,"qty":-0,"n":-9223372036854775808,"items":[null]}}`),
	}
	return valid, invalid
}

// TestIngestJSONSeeds keeps the fuzz seeds meaningful: the valid ones are
// accepted and logged, the invalid ones rejected.
func TestIngestJSONSeeds(t *testing.T) {
	valid, invalid := ingestSeeds()
	db := openFuzzDB(t)
	for i, s := range valid {
		before := db.log.LastSeq()
		resp, err := db.IngestJSON([]byte(s), nil)
		if err != nil {
			t.Fatalf("valid seed %d rejected: %v", i, err)
		}
		checkAccepted(t, db, []byte(s), resp, before, db.log.LastSeq())
	}
	for i, s := range invalid {
		if _, err := db.IngestJSON([]byte(s), nil); err == nil {
			t.Fatalf("invalid seed %d accepted", i)
		}
	}
}

// FuzzIngestJSON feeds arbitrary bodies to IngestJSON on a DB with the ads
// example and fuzzRepo applied. It must never panic; it either accepts the
// body, or rejects it with an *Error or *RecordErrors that says why and
// writes nothing. An accepted body that is not a dry run and holds a record
// appends exactly one log entry, which decodes back to the body's sources
// with as many rows as the body has records.
//
//	go test ./engine -run '^$' -fuzz '^FuzzIngestJSON$' -fuzztime 1m
func FuzzIngestJSON(f *testing.F) {
	valid, invalid := ingestSeeds()
	for _, s := range append(valid, invalid...) {
		f.Add([]byte(s))
	}
	db := openFuzzDB(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		before := db.log.LastSeq()
		resp, err := db.IngestJSON(body, nil)
		after := db.log.LastSeq()
		if err != nil {
			checkRejected(t, err)
			if after != before {
				t.Fatalf("a rejected body wrote log entries %d..%d: %v", before+1, after, err)
			}
			return
		}
		checkAccepted(t, db, body, resp, before, after)
	})
}

// checkRejected requires err to say what was wrong with the body.
func checkRejected(t *testing.T, err error) {
	var rerrs *RecordErrors
	var e *Error
	switch {
	case errors.As(err, &rerrs):
		if len(rerrs.Errors) == 0 {
			t.Fatalf("*RecordErrors with no record errors: %v", err)
		}
		for _, re := range rerrs.Errors {
			if re.Msg == "" || re.Source == "" || re.Index < 0 {
				t.Fatalf("record error without a source, index or message: %#v", re)
			}
		}
	case errors.As(err, &e):
		if e.Msg == "" {
			t.Fatalf("*Error with an empty message: %#v", e)
		}
		if e.Code == CodeInternal || e.Code == CodeUnavailable {
			t.Fatalf("a request body caused a server-side failure (code %d): %v", e.Code, err)
		}
	default:
		t.Fatalf("rejection is neither *Error nor *RecordErrors: %T %v", err, err)
	}
}

// fuzzBody is what an accepted body holds, decoded independently of the
// engine (the engine already rejected duplicate names, so the standard
// decoder sees what it saw).
type fuzzBody struct {
	Workspace string                       `json:"workspace_name"`
	DryRun    bool                         `json:"dry_run"`
	Records   map[string][]json.RawMessage `json:"records"`
}

func checkAccepted(t *testing.T, db *DB, body []byte, resp *IngestResponse, before, after uint64) {
	var b fuzzBody
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&b); err != nil {
		t.Fatalf("accepted a body encoding/json rejects: %v", err)
	}
	if resp == nil || resp.Workspace != b.Workspace {
		t.Fatalf("response %+v is not for workspace %q", resp, b.Workspace)
	}
	total := 0
	for _, recs := range b.Records {
		total += len(recs)
	}
	for _, m := range resp.Metrics {
		if m.Online < 0 || m.Offline < 0 || m.Online > int64(total) || m.Offline > int64(total) {
			t.Fatalf("metrics %+v out of range for %d records", m, total)
		}
	}
	if b.DryRun || total == 0 {
		if after != before {
			t.Fatalf("a dry run or empty request wrote log entries %d..%d", before+1, after)
		}
		return
	}
	if after != before+1 {
		t.Fatalf("an accepted request moved the log from %d to %d; want one entry", before, after)
	}
	checkLogged(t, db, after, &b)
}

// checkLogged replays entry seq and compares it with the body.
func checkLogged(t *testing.T, db *DB, seq uint64, b *fuzzBody) {
	var e record.Entry
	n := 0
	err := db.log.Replay(seq, func(s uint64, payload []byte) error {
		n++
		if s != seq {
			return fmt.Errorf("replayed seq %d, want %d", s, seq)
		}
		return record.Decode(payload, &e)
	})
	if err != nil || n != 1 {
		t.Fatalf("replaying entry %d: %d entries, %v", seq, n, err)
	}
	if e.Workspace != b.Workspace || e.IngestTime != fuzzNow.UnixNano() {
		t.Fatalf("entry %d is for %q at %d, want %q at %d", seq, e.Workspace, e.IngestTime, b.Workspace, fuzzNow.UnixNano())
	}
	if len(e.Sections) != len(b.Records) {
		t.Fatalf("entry %d has %d sections, the body %d sources", seq, len(e.Sections), len(b.Records))
	}
	for i := range e.Sections {
		s := &e.Sections[i]
		recs, ok := b.Records[s.Source]
		if !ok || s.NumRows() != len(recs) {
			t.Fatalf("entry %d section %q has %d rows; the body has %d records (source present: %v)", seq, s.Source, s.NumRows(), len(recs), ok)
		}
	}
}
