//go:build unix

// The build constraint is for RLIMIT_FSIZE, which injects a real write
// failure into the log.

package httpapi_test

// The Stream Ingest API and the online serving API over real HTTP, with
// real service accounts: every row of the SPEC §2 error table, the success
// shapes, and the get-features shapes and errors of SPEC §4. Every failed
// ingest is checked to have written nothing, by counting the log's entries
// (close the engine, read the log's last seq, reopen).

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
	"github.com/featurelog/featurelog/vfs"
	"github.com/featurelog/featurelog/wal"
)

// t0 is the fake clock's time: what the node believes "now" is.
var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// shopRepo is a second workspace with the column types the error table
// needs (Int32, String, Float64), views with different TTLs and start
// times, a view that is offline only, and a source nobody subscribes to.
const shopRepo = `workspace: shop
entities:
  - name: customer
    join_keys: [customer_id]
sources:
  - name: orders
    schema:
      - {name: customer_id, type: String}
      - {name: ts, type: Timestamp}
      - {name: amount, type: Int64}
      - {name: qty, type: Int32}
      - {name: note, type: String}
      - {name: price, type: Float64}
  - name: calcs
    schema:
      - {name: customer_id, type: String}
      - {name: ts, type: Timestamp}
      - {name: a, type: Int64}
      - {name: b, type: Int64}
  - name: orphan_source
    schema:
      - {name: customer_id, type: String}
      - {name: ts, type: Timestamp}
feature_views:
  - name: last_order
    source: orders
    entities: [customer]
    timestamp_field: ts
    ttl: 7d
    features:
      - attribute: {name: amount}
      - attribute: {name: qty}
      - attribute: {name: note}
      - attribute: {name: price}
  - name: recent_order
    source: orders
    entities: [customer]
    timestamp_field: ts
    ttl: 2d
    feature_start_time: 2024-05-01T00:00:00Z
    features:
      - attribute: {name: amount}
  - name: note_audit
    source: orders
    entities: [customer]
    timestamp_field: ts
    online: false
    ttl: 1d
    features:
      - attribute: {name: note}
  - name: calc_fv
    source: calcs
    entities: [customer]
    timestamp_field: ts
    ttl: 7d
    transform:
      columns:
        rem: "a % b"
      filter: "a >= 0"
    features:
      - attribute: {name: rem}
feature_services:
  - name: shop_fs
    features:
      - last_order
      - {feature_view: recent_order, features: [amount]}
`

// fakeClock is the node's clock, settable by tests.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) Now() time.Time  { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) Set(t time.Time) { c.ns.Store(t.UnixNano()) }

// node is a featurelog node behind a real HTTP server, with auth on.
type node struct {
	t     *testing.T
	dir   string
	clock *fakeClock
	hopts httpapi.Options
	fs    vfs.FS // the engine's file system; nil: the operating system's
	db    *engine.DB
	h     atomic.Value // http.Handler of the current engine
	srv   *httptest.Server

	editor      string // editor on ads and shop
	viewer      string // viewer on ads and shop
	otherEditor string // editor on workspace "other" only
	ghostEditor string // editor on "ghost", a workspace never applied
	noRole      string // an account without any role
}

var quiet = slog.New(slog.DiscardHandler)

func newNode(t *testing.T, hopts httpapi.Options) *node {
	t.Helper()
	return newNodeFS(t, hopts, nil)
}

// newNodeFS is newNode with the engine on the file system fs.
func newNodeFS(t *testing.T, hopts httpapi.Options, fs vfs.FS) *node {
	t.Helper()
	n := &node{t: t, dir: t.TempDir(), clock: &fakeClock{}, fs: fs}
	n.clock.Set(t0)
	hopts.Logger = quiet
	n.hopts = hopts
	n.open()
	ads, err := os.ReadFile(filepath.Join("..", "examples", "ads", "features.yaml"))
	require.NoError(t, err)
	_, err = n.db.Apply("features.yaml", ads)
	require.NoError(t, err)
	_, err = n.db.Apply("shop.yaml", []byte(shopRepo))
	require.NoError(t, err)
	n.editor = n.account("editor", map[string]auth.Role{"ads": auth.Editor, "shop": auth.Editor})
	n.viewer = n.account("viewer", map[string]auth.Role{"ads": auth.Viewer, "shop": auth.Viewer})
	n.otherEditor = n.account("other-editor", map[string]auth.Role{"other": auth.Editor})
	n.ghostEditor = n.account("ghost-editor", map[string]auth.Role{"ghost": auth.Editor})
	n.noRole = n.account("no-role", nil)
	n.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.h.Load().(http.Handler).ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		n.srv.Close()
		n.db.Close()
	})
	return n
}

// open opens the engine on the node's directory and points the HTTP
// server at it.
func (n *node) open() {
	db, err := engine.Open(engine.Options{Dir: n.dir, Now: n.clock.Now, NoSync: true, Logger: quiet, FS: n.fs})
	require.NoError(n.t, err)
	s, err := httpapi.New(db, n.hopts)
	require.NoError(n.t, err)
	n.db = db
	n.h.Store(validated(n.t, s.Handler(), n.hopts.NoAuth))
}

// account creates a service account with roles and returns its key.
func (n *node) account(name string, roles map[string]auth.Role) string {
	key, acct, err := n.db.Accounts().CreateAccount(name, "")
	require.NoError(n.t, err)
	for ws, r := range roles {
		require.NoError(n.t, n.db.Accounts().AssignRole(acct.ID, ws, r))
	}
	return key
}

// logEntries returns the number of entries in the log: it closes the
// engine, reads the log's last seq, and reopens the engine.
func (n *node) logEntries() uint64 {
	n.t.Helper()
	require.NoError(n.t, n.db.Close())
	l, err := wal.Open(wal.Options{Dir: filepath.Join(n.dir, "wal"), NoSync: true, Logger: quiet})
	require.NoError(n.t, err)
	seq := l.LastSeq()
	require.NoError(n.t, l.Close())
	n.open()
	return seq
}

// post sends body to path with the Authorization header authz (none when
// empty) and returns the status and the body.
func (n *node) post(path, authz string, body []byte) (int, []byte) {
	n.t.Helper()
	req, err := http.NewRequest(http.MethodPost, n.srv.URL+path, bytes.NewReader(body))
	require.NoError(n.t, err)
	req.Header.Set("Content-Type", "application/json")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	return do(n.t, req)
}

func do(t *testing.T, req *http.Request) (int, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if len(data) > 0 {
		assert.Equal(t, "application/json", resp.Header.Get("Content-Type"), "body %s", data)
	}
	return resp.StatusCode, data
}

func (n *node) ingest(key string, body []byte) (int, []byte) {
	return n.post("/ingest", "Tecton-key "+key, body)
}

func (n *node) getFeatures(key string, body string) (int, []byte) {
	return n.post("/api/v1/feature-service/get-features", "Tecton-key "+key, []byte(body))
}

// missing asserts that nothing was served for the keys: every feature of
// the workspace's test service is MISSING_DATA.
func (n *node) missing(ws string, keys ...string) {
	n.t.Helper()
	svc, jk := "shop_fs", "customer_id"
	if ws == "ads" {
		svc, jk = "ad_ctr_feature_service", "user_id"
	}
	for _, k := range keys {
		vec, err := n.db.GetFeatures(&engine.GetFeaturesRequest{Workspace: ws, Service: svc, JoinKeys: map[string]any{jk: k}})
		require.NoError(n.t, err)
		for _, f := range vec.Features {
			assert.Equal(n.t, engine.MissingData, f.Status, "key %q feature %s was written", k, f.Name)
		}
	}
}

// ts formats a time as the ingest API expects.
func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// orderRec is the JSON of one valid {"record": ...} of source orders,
// with extra raw members appended.
func orderRec(key string, at time.Time, extra ...string) string {
	members := append([]string{fmt.Sprintf(`"customer_id":%q`, key), fmt.Sprintf(`"ts":%q`, ts(at)), `"amount":5`}, extra...)
	return `{"record":{` + strings.Join(members, ",") + `}}`
}

// rawRec wraps raw record members (nothing added).
func rawRec(members ...string) string { return `{"record":{` + strings.Join(members, ",") + `}}` }

func shopBody(dryRun bool, recs ...string) []byte {
	return []byte(fmt.Sprintf(`{"workspace_name":"shop","dry_run":%t,"records":{"orders":[%s]}}`, dryRun, strings.Join(recs, ",")))
}

// jsonObject decodes a JSON object and asserts its member names.
func jsonObject(t *testing.T, data []byte, names ...string) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(data, &m), "body %s", data)
	got := make([]string, 0, len(m))
	for k := range m {
		got = append(got, k)
	}
	sort.Strings(got)
	want := append([]string(nil), names...)
	sort.Strings(want)
	require.Equal(t, want, got, "members of %s", data)
	return m
}

func objectOf(t *testing.T, v any, names ...string) map[string]any {
	t.Helper()
	data, err := json.Marshal(v)
	require.NoError(t, err)
	return jsonObject(t, data, names...)
}

// requireRequestError asserts the ingest API's requestError shape.
func requireRequestError(t *testing.T, status int, body []byte, wantStatus int, wantType string) string {
	t.Helper()
	require.Equal(t, wantStatus, status, "body %s", body)
	m := jsonObject(t, body, "requestError")
	inner := objectOf(t, m["requestError"], "errorMessage", "errorType")
	assert.Equal(t, wantType, inner["errorType"])
	msg, _ := inner["errorMessage"].(string)
	assert.NotEmpty(t, msg)
	return msg
}

// recordError is one element of a recordErrors body.
type recordError struct {
	FeatureViewName string `json:"featureViewName"`
	PushSourceName  string `json:"pushSourceName"`
	RecordIndex     int    `json:"recordIndex"`
	ErrorType       string `json:"errorType"`
	ErrorMessage    string `json:"errorMessage"`
}

// requireRecordErrors asserts the recordErrors shape exactly and returns
// the errors.
func requireRecordErrors(t *testing.T, status int, body []byte, ws string) []recordError {
	t.Helper()
	require.Equal(t, http.StatusBadRequest, status, "body %s", body)
	m := jsonObject(t, body, "workspaceName", "recordErrors")
	assert.Equal(t, ws, m["workspaceName"])
	list, ok := m["recordErrors"].([]any)
	require.True(t, ok, "recordErrors is a list: %s", body)
	require.NotEmpty(t, list)
	out := make([]recordError, len(list))
	for i, e := range list {
		obj := objectOf(t, e, "featureViewName", "pushSourceName", "recordIndex", "errorType", "errorMessage")
		_, isNum := obj["recordIndex"].(float64)
		require.True(t, isNum, "recordIndex is a number: %s", body)
		data, _ := json.Marshal(obj)
		require.NoError(t, json.Unmarshal(data, &out[i]))
		assert.Equal(t, "TectonObjectValidationError", out[i].ErrorType)
		assert.NotEmpty(t, out[i].ErrorMessage)
	}
	return out
}

// requireServingError asserts the serving API's error shape.
func requireServingError(t *testing.T, status int, body []byte, wantStatus, wantCode int) {
	t.Helper()
	require.Equal(t, wantStatus, status, "body %s", body)
	m := jsonObject(t, body, "code", "error", "message")
	assert.Equal(t, float64(wantCode), m["code"])
	assert.NotEmpty(t, m["message"])
	assert.Equal(t, m["message"], m["error"])
}

func TestIngestHTTPRequestValidationError(t *testing.T) {
	n := newNode(t, httpapi.Options{})
	good := func(key string) string { return orderRec(key, t0.Add(-time.Minute)) }
	records := func(key string) string { return `{"orders":[` + good(key) + `]}` }
	cases := []struct {
		name string
		body string
	}{
		{"empty body", ``},
		{"not JSON", `workspace_name=shop`},
		{"truncated", `{"workspace_name":"shop","dry_run":false,"records":` + records("rv-truncated")},
		{"array", `[{"workspace_name":"shop","dry_run":false,"records":` + records("rv-array") + `}]`},
		{"string", `"{\"workspace_name\":\"shop\"}"`},
		{"number", `42`},
		{"null", `null`},
		{"unknown top-level field", `{"workspace_name":"shop","dry_run":false,"records":` + records("rv-unknown") + `,"extra":true}`},
		{"camelCase field", `{"workspaceName":"shop","dry_run":false,"records":` + records("rv-camel") + `}`},
		{"duplicate workspace_name", `{"workspace_name":"shop","workspace_name":"shop","dry_run":false,"records":` + records("rv-dup-ws") + `}`},
		{"duplicate records", `{"workspace_name":"shop","dry_run":false,"records":` + records("rv-dup-rec1") + `,"records":` + records("rv-dup-rec2") + `}`},
		{"duplicate dry_run", `{"workspace_name":"shop","dry_run":true,"dry_run":false,"records":` + records("rv-dup-dry") + `}`},
		{"duplicate column in a record", `{"workspace_name":"shop","dry_run":false,"records":{"orders":[` +
			rawRec(`"customer_id":"rv-dup-col"`, fmt.Sprintf(`"ts":%q`, ts(t0.Add(-time.Minute))), `"amount":1`, `"amount":2`) + `]}}`},
		{"missing workspace_name", `{"dry_run":false,"records":` + records("rv-no-ws") + `}`},
		{"missing dry_run", `{"workspace_name":"shop","records":` + records("rv-no-dry") + `}`},
		{"missing records", `{"workspace_name":"shop","dry_run":false}`},
		{"empty object", `{}`},
		{"workspace_name not a string", `{"workspace_name":7,"dry_run":false,"records":` + records("rv-ws-num") + `}`},
		{"dry_run not a boolean", `{"workspace_name":"shop","dry_run":"false","records":` + records("rv-dry-str") + `}`},
		{"records not an object", `{"workspace_name":"shop","dry_run":false,"records":[` + good("rv-rec-list") + `]}`},
		{"trailing object", `{"workspace_name":"shop","dry_run":false,"records":` + records("rv-trail-obj") + `}{}`},
		{"trailing garbage", `{"workspace_name":"shop","dry_run":false,"records":` + records("rv-trail-x") + `}x`},
		{"invalid UTF-8 in a record string", `{"workspace_name":"shop","dry_run":false,"records":{"orders":[` +
			orderRec("rv-utf8-\xff\xfe", t0.Add(-time.Minute)) + `,` + good("rv-utf8-ok") + `]}}`},
		{"invalid UTF-8 in workspace_name", `{"workspace_name":"sh\xffop","dry_run":false,"records":` + records("rv-utf8-ws") + `}`},
		{"invalid UTF-8 in a column name", `{"workspace_name":"shop","dry_run":false,"records":{"orders":[` +
			orderRec("rv-utf8-col", t0.Add(-time.Minute), `"no\xc3te":"x"`) + `]}}`},
	}
	before := n.logEntries()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := n.ingest(n.editor, []byte(tc.body))
			requireRequestError(t, status, body, http.StatusBadRequest, "RequestValidationError")
			assert.Equal(t, before, n.logEntries(), "a rejected request wrote to the log")
			n.missing("shop", "rv-truncated", "rv-array", "rv-unknown", "rv-camel", "rv-dup-ws", "rv-dup-rec1", "rv-dup-rec2",
				"rv-dup-dry", "rv-dup-col", "rv-trail-obj", "rv-trail-x", "rv-utf8-ok", "rv-utf8-col")
		})
	}
}

// badRecord is a record that violates its source schema or a view's rules,
// with a word its error message must contain (the column it is about).
type badRecord struct {
	name    string
	rec     string
	mention string
	// view is set for errors found by a view's rules rather than by the
	// source schema; the error then names one of the source's views.
	view bool
}

func badRecords() []badRecord {
	at := fmt.Sprintf(`"ts":%q`, ts(t0.Add(-time.Minute)))
	return []badRecord{
		{"unknown column", rawRec(`"customer_id":"br-unknown"`, at, `"amout":2`), "amout", false},
		{"missing join key", rawRec(at, `"amount":1`), "customer_id", true},
		{"null join key", rawRec(`"customer_id":null`, at, `"amount":1`), "customer_id", true},
		{"missing timestamp", rawRec(`"customer_id":"br-no-ts"`, `"amount":1`), "ts", true},
		{"null timestamp", rawRec(`"customer_id":"br-null-ts"`, `"ts":null`, `"amount":1`), "ts", true},
		{"string for Int64", rawRec(`"customer_id":"br-str-int"`, at, `"amount":"five"`), "amount", false},
		{"number for String", rawRec(`"customer_id":"br-num-str"`, at, `"note":42`), "note", false},
		{"object for Int64", rawRec(`"customer_id":"br-obj-int"`, at, `"amount":{"value":1}`), "amount", false},
		{"array for String", rawRec(`"customer_id":"br-arr-str"`, at, `"note":["a"]`), "note", false},
		{"boolean for Float64", rawRec(`"customer_id":"br-bool-float"`, at, `"price":true`), "price", false},
		{"number for String join key", rawRec(`"customer_id":17`, at), "customer_id", false},
		{"bad RFC 3339 (space)", rawRec(`"customer_id":"br-ts-space"`, `"ts":"2024-05-01 11:59:00"`), "ts", false},
		{"bad RFC 3339 (word)", rawRec(`"customer_id":"br-ts-word"`, `"ts":"yesterday"`), "ts", false},
		{"bad RFC 3339 (no zone)", rawRec(`"customer_id":"br-ts-nozone"`, `"ts":"2024-05-01T11:59:00"`), "ts", false},
		{"timestamp as a number", rawRec(`"customer_id":"br-ts-num"`, `"ts":1714564740`), "ts", false},
		{"non-integral Int64", rawRec(`"customer_id":"br-frac"`, at, `"amount":1.5`), "amount", false},
		{"Int64 out of range", rawRec(`"customer_id":"br-int64-range"`, at, `"amount":9223372036854775808`), "amount", false},
		{"Int32 out of range", rawRec(`"customer_id":"br-int32-range"`, at, `"qty":3000000000`), "qty", false},
		{"Int32 below range", rawRec(`"customer_id":"br-int32-low"`, at, `"qty":-2147483649`), "qty", false},
		{"record not an object", `{"record":5}`, "object", false},
		{"older than every view's TTL", orderRec("br-expired", t0.Add(-7*24*time.Hour-time.Nanosecond)), "TTL", true},
		{"far older than every view's TTL", orderRec("br-ancient", time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)), "TTL", true},
		// Event times are int64 Unix nanoseconds: a time 2^64ns after
		// t0 − 1m must not wrap around to t0 − 1m and be accepted.
		{"timestamp beyond 2262 that wraps into the TTL", orderRec("br-wrap", t0.Add(-time.Minute).Add(math.MaxInt64).Add(math.MaxInt64).Add(2)), "range", false},
		{"timestamp in year 1", rawRec(`"customer_id":"br-year1"`, `"ts":"0001-01-01T00:00:00Z"`), "range", false},
		{"more than the clock skew in the future", orderRec("br-future", t0.Add(5*time.Minute+time.Nanosecond)), "future", true},
		{"far in the future", orderRec("br-far-future", t0.Add(24*time.Hour)), "future", true},
	}
}

var shopViews = []string{"last_order", "recent_order", "note_audit"}

func TestIngestHTTPRecordErrors(t *testing.T) {
	n := newNode(t, httpapi.Options{})
	before := n.logEntries()
	for i, bad := range badRecords() {
		t.Run(bad.name, func(t *testing.T) {
			goodKey := fmt.Sprintf("re-good-%d", i)
			status, body := n.ingest(n.editor, shopBody(false, orderRec(goodKey, t0.Add(-time.Minute)), bad.rec))
			errs := requireRecordErrors(t, status, body, "shop")
			require.Len(t, errs, 1, "body %s", body)
			e := errs[0]
			assert.Equal(t, 1, e.RecordIndex)
			assert.Equal(t, "orders", e.PushSourceName)
			assert.Contains(t, e.ErrorMessage, bad.mention)
			if bad.view {
				assert.Contains(t, shopViews, e.FeatureViewName)
			}
			assert.Equal(t, before, n.logEntries(), "a request with an invalid record wrote to the log")
			n.missing("shop", goodKey)
		})
	}
}

// TestIngestHTTPRecordErrorsAllListed sends every bad record of the table
// in one request, interleaved with valid ones: each is listed with its
// index within the source's list, and nothing is written.
func TestIngestHTTPRecordErrorsAllListed(t *testing.T) {
	n := newNode(t, httpapi.Options{})
	var recs []string
	var goodKeys []string
	wantBad := map[int]badRecord{}
	for i, bad := range badRecords() {
		if i%3 == 0 {
			k := fmt.Sprintf("all-good-%d", i)
			goodKeys = append(goodKeys, k)
			recs = append(recs, orderRec(k, t0.Add(-time.Minute)))
		}
		wantBad[len(recs)] = bad
		recs = append(recs, bad.rec)
	}
	goodKeys = append(goodKeys, "all-good-last")
	recs = append(recs, orderRec("all-good-last", t0.Add(-time.Minute)))
	before := n.logEntries()

	status, body := n.ingest(n.editor, shopBody(false, recs...))
	errs := requireRecordErrors(t, status, body, "shop")
	got := map[int]bool{}
	for _, e := range errs {
		bad, ok := wantBad[e.RecordIndex]
		if !assert.True(t, ok, "record %d is valid but was reported: %+v", e.RecordIndex, e) {
			continue
		}
		got[e.RecordIndex] = true
		assert.Equal(t, "orders", e.PushSourceName)
		assert.Contains(t, e.ErrorMessage, bad.mention, "record %d (%s)", e.RecordIndex, bad.name)
	}
	for idx, bad := range wantBad {
		assert.True(t, got[idx], "record %d (%s) is not listed", idx, bad.name)
	}
	assert.Equal(t, before, n.logEntries())
	n.missing("shop", goodKeys...)

	// The same request as a dry run is rejected the same way.
	status, body = n.ingest(n.editor, shopBody(true, recs...))
	assert.Len(t, requireRecordErrors(t, status, body, "shop"), len(errs))
	assert.Equal(t, before, n.logEntries())
}

func TestIngestHTTPUnauthenticated(t *testing.T) {
	n := newNode(t, httpapi.Options{})
	wellFormedUnknown := "fl_0123456789abcdef_" + strings.Repeat("a", 52)
	cases := []struct{ name, authz string }{
		{"no header", ""},
		{"unknown scheme", "Basic " + n.editor},
		{"no scheme", n.editor},
		{"scheme only", "Tecton-key"},
		{"two words", "Tecton-key " + n.editor + " extra"},
		{"not a key", "Tecton-key not-a-key"},
		{"unknown key", "Tecton-key " + wellFormedUnknown},
		{"unknown bearer key", "Bearer " + wellFormedUnknown},
		{"key cut short", "Tecton-key " + n.editor[:len(n.editor)-1]},
		{"key with a wrong secret", "Tecton-key " + n.editor[:len(n.editor)-1] + flip(n.editor[len(n.editor)-1])},
	}
	before := n.logEntries()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := fmt.Sprintf("unauth-%d", i)
			status, body := n.post("/ingest", tc.authz, shopBody(false, orderRec(key, t0.Add(-time.Minute))))
			requireRequestError(t, status, body, http.StatusUnauthorized, "Unauthenticated")
			assert.NotContains(t, string(body), n.editor, "the error echoes the key")
			assert.Equal(t, before, n.logEntries())
			n.missing("shop", key)
		})
	}
}

func flip(c byte) string {
	if c == 'a' {
		return "b"
	}
	return "a"
}

// TestIngestHTTPRevokedKey revokes a key that has just written and checks
// that the very next request with it fails and writes nothing.
func TestIngestHTTPRevokedKey(t *testing.T) {
	n := newNode(t, httpapi.Options{})
	key, acct, err := n.db.Accounts().CreateAccount("soon-revoked", "")
	require.NoError(t, err)
	require.NoError(t, n.db.Accounts().AssignRole(acct.ID, "shop", auth.Editor))

	status, body := n.ingest(key, shopBody(false, orderRec("revoked-1", t0.Add(-time.Minute))))
	require.Equal(t, http.StatusOK, status, "body %s", body)
	before := n.logEntries()

	require.NoError(t, n.db.Accounts().DeleteAccount(acct.ID))
	status, body = n.ingest(key, shopBody(false, orderRec("revoked-2", t0.Add(-time.Minute))))
	requireRequestError(t, status, body, http.StatusUnauthorized, "Unauthenticated")
	status, body = n.post("/ingest", "Bearer "+key, shopBody(false, orderRec("revoked-3", t0.Add(-time.Minute))))
	requireRequestError(t, status, body, http.StatusUnauthorized, "Unauthenticated")
	assert.Equal(t, before, n.logEntries())
	n.missing("shop", "revoked-2", "revoked-3")
}

func TestIngestHTTPPermissionDenied(t *testing.T) {
	n := newNode(t, httpapi.Options{})
	cases := []struct{ name, key string }{
		{"viewer", n.viewer},
		{"editor of another workspace", n.otherEditor},
		{"account without roles", n.noRole},
	}
	before := n.logEntries()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := fmt.Sprintf("denied-%d", i)
			status, body := n.ingest(tc.key, shopBody(false, orderRec(key, t0.Add(-time.Minute))))
			requireRequestError(t, status, body, http.StatusForbidden, "PermissionDenied")
			status, body = n.ingest(tc.key, shopBody(true, orderRec(key, t0.Add(-time.Minute))))
			requireRequestError(t, status, body, http.StatusForbidden, "PermissionDenied")
			assert.Equal(t, before, n.logEntries())
			n.missing("shop", key)
		})
	}
}

func TestIngestHTTPNotFound(t *testing.T) {
	n := newNode(t, httpapi.Options{})
	at := ts(t0.Add(-time.Minute))
	cases := []struct{ name, key, body string }{
		// A key must hold a role on a workspace to learn that it does not
		// exist; to anyone else it is a 403 (tested above).
		{"unknown workspace", n.ghostEditor,
			`{"workspace_name":"ghost","dry_run":false,"records":{"orders":[` + orderRec("nf-ghost", t0.Add(-time.Minute)) + `]}}`},
		{"unknown source", n.editor,
			`{"workspace_name":"shop","dry_run":false,"records":{"ordres":[` + orderRec("nf-source", t0.Add(-time.Minute)) + `]}}`},
		{"unknown source after a valid one", n.editor,
			`{"workspace_name":"shop","dry_run":false,"records":{"orders":[` + orderRec("nf-first", t0.Add(-time.Minute)) +
				`],"ordres":[` + orderRec("nf-second", t0.Add(-time.Minute)) + `]}}`},
		{"source without subscribed views", n.editor,
			`{"workspace_name":"shop","dry_run":false,"records":{"orphan_source":[` + rawRec(`"customer_id":"nf-orphan"`, `"ts":"`+at+`"`) + `]}}`},
		{"source without subscribed views after a valid one", n.editor,
			`{"workspace_name":"shop","dry_run":false,"records":{"orders":[` + orderRec("nf-before-orphan", t0.Add(-time.Minute)) +
				`],"orphan_source":[` + rawRec(`"customer_id":"nf-orphan2"`, `"ts":"`+at+`"`) + `]}}`},
		{"source of another workspace", n.editor,
			`{"workspace_name":"ads","dry_run":false,"records":{"orders":[` + orderRec("nf-other-ws", t0.Add(-time.Minute)) + `]}}`},
	}
	before := n.logEntries()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := n.ingest(tc.key, []byte(tc.body))
			requireRequestError(t, status, body, http.StatusNotFound, "NotFound")
			assert.Equal(t, before, n.logEntries())
			n.missing("shop", "nf-source", "nf-first", "nf-before-orphan", "nf-other-ws")
		})
	}
}

func TestIngestHTTPRequestTooLarge(t *testing.T) {
	const limit = 600
	n := newNode(t, httpapi.Options{MaxBodyBytes: limit})
	small := shopBody(false, orderRec("big-ok", t0.Add(-time.Minute)))
	require.Less(t, len(small), limit)
	var recs []string
	for i := 0; i < 20; i++ {
		recs = append(recs, orderRec(fmt.Sprintf("big-%d", i), t0.Add(-time.Minute)))
	}
	large := shopBody(false, recs...)
	require.Greater(t, len(large), limit)
	before := n.logEntries()

	t.Run("with Content-Length", func(t *testing.T) {
		status, body := n.ingest(n.editor, large)
		requireRequestError(t, status, body, http.StatusRequestEntityTooLarge, "RequestTooLarge")
	})
	t.Run("chunked", func(t *testing.T) {
		// A reader of unknown length makes the client send the body chunked,
		// so the limit must be enforced while reading.
		req, err := http.NewRequest(http.MethodPost, n.srv.URL+"/ingest", io.MultiReader(bytes.NewReader(large)))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Tecton-key "+n.editor)
		req.ContentLength = -1
		status, body := do(t, req)
		requireRequestError(t, status, body, http.StatusRequestEntityTooLarge, "RequestTooLarge")
	})
	assert.Equal(t, before, n.logEntries())
	n.missing("shop", "big-0", "big-19")

	status, body := n.ingest(n.editor, small)
	require.Equal(t, http.StatusOK, status, "a body under the limit is accepted: %s", body)
	assert.Equal(t, before+1, n.logEntries())
}

// TestIngestHTTPTooLargeForTheLog: a body under MaxBodyBytes whose records
// do not fit one log entry (16 MiB) is the client's to split: 413, nothing
// written, and the log stays usable.
func TestIngestHTTPTooLargeForTheLog(t *testing.T) {
	n := newNode(t, httpapi.Options{MaxBodyBytes: 64 << 20})
	before := n.logEntries()
	status, body := n.ingest(n.editor, shopBody(false, orderRec("huge", t0.Add(-time.Minute), `"note":"`+strings.Repeat("x", 17<<20)+`"`)))
	requireRequestError(t, status, body, http.StatusRequestEntityTooLarge, "RequestTooLarge")
	assert.Equal(t, before, n.logEntries())
	n.missing("shop", "huge")
	status, body = n.ingest(n.editor, shopBody(false, orderRec("after-huge", t0.Add(-time.Minute))))
	require.Equal(t, http.StatusOK, status, "body %s", body)
}

// TestIngestHTTPUnavailableAfterWriteFailure makes the log's write fail
// for real: RLIMIT_FSIZE is lowered to the tail segment's size, so the
// next write gets EFBIG (Go ignores SIGXFSZ). The node must answer 503,
// keep answering 503 after the limit is lifted (the failure is sticky:
// no retried write is ever acknowledged), and after a restart hold
// exactly what it acknowledged.
func TestIngestHTTPUnavailableAfterWriteFailure(t *testing.T) {
	n := newNode(t, httpapi.Options{})
	status, body := n.ingest(n.editor, shopBody(false, orderRec("fail-before", t0.Add(-time.Minute))))
	require.Equal(t, http.StatusOK, status, "body %s", body)
	tail := tailSegment(t, filepath.Join(n.dir, "wal"))
	padPastTestLog(t, n, tail)
	before := n.logEntries()

	fi, err := os.Stat(tail)
	require.NoError(t, err)
	require.Positive(t, fi.Size())
	func() {
		var old syscall.Rlimit
		require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old))
		lim := old
		lim.Cur = uint64(fi.Size())
		require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim))
		defer func() { require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old)) }()
		status, body = n.ingest(n.editor, shopBody(false, orderRec("fail-during", t0.Add(-time.Minute))))
	}()
	requireRequestError(t, status, body, http.StatusServiceUnavailable, "Unavailable")

	// The file size limit is lifted: the log stays failed until restart.
	status, body = n.ingest(n.editor, shopBody(false, orderRec("fail-after", t0.Add(-time.Minute))))
	requireRequestError(t, status, body, http.StatusServiceUnavailable, "Unavailable")
	req, err := http.NewRequest(http.MethodGet, n.srv.URL+"/readyz", nil)
	require.NoError(t, err)
	status, body = do(t, req)
	assert.Equal(t, http.StatusServiceUnavailable, status, "readyz: %s", body)
	// Validation still runs first: a bad request is still a 400.
	status, body = n.ingest(n.editor, []byte(`{}`))
	requireRequestError(t, status, body, http.StatusBadRequest, "RequestValidationError")
	// Reads keep working.
	n.missing("shop", "fail-during", "fail-after")

	// Restart: exactly the acknowledged entries, and writes work again.
	// Close reports the failure, so that it is never lost.
	require.ErrorIs(t, n.db.Close(), wal.ErrFailed)
	assert.Equal(t, before, n.logEntries())
	n.missing("shop", "fail-during", "fail-after")
	status, body = n.ingest(n.editor, shopBody(false, orderRec("fail-restarted", t0.Add(-time.Minute))))
	require.Equal(t, http.StatusOK, status, "body %s", body)
	assert.Equal(t, before+1, n.logEntries())
}

// padPastTestLog grows the log's tail segment past the size of go test's
// test log (-test.testlogfile, when go test caches results), with 1 MiB
// to spare. RLIMIT_FSIZE binds every file of the process: had the test
// log already passed the limit, a flush of its buffer while the limit is
// lowered would fail with EFBIG too, and the package with "testing:
// can't write testlog.txt: file too large". The padding is notes of
// random hex, which zstd cannot shrink away.
func padPastTestLog(t *testing.T, n *node, tail string) {
	t.Helper()
	f := flag.Lookup("test.testlogfile")
	if f == nil || f.Value.String() == "" {
		return
	}
	logInfo, err := os.Stat(f.Value.String())
	require.NoError(t, err)
	target := logInfo.Size() + 1<<20
	note := make([]byte, 512<<10)
	for i := 0; ; i++ {
		fi, err := os.Stat(tail)
		require.NoError(t, err)
		if fi.Size() >= target {
			return
		}
		require.Less(t, i, 64, "padding the log's tail to %d bytes", target)
		_, err = rand.Read(note)
		require.NoError(t, err)
		status, body := n.ingest(n.editor, shopBody(false, orderRec(fmt.Sprintf("pad-%d", i), t0.Add(-time.Minute), fmt.Sprintf(`"note":"%x"`, note))))
		require.Equal(t, http.StatusOK, status, "body %s", body)
	}
}

func tailSegment(t *testing.T, dir string) string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, strings.Repeat("[0-9]", 20)))
	require.NoError(t, err)
	require.NotEmpty(t, names)
	sort.Strings(names)
	return names[len(names)-1]
}

// TestIngestHTTPUnavailableWhenClosed: a node whose engine is closed
// answers 503 to ingest.
func TestIngestHTTPUnavailableWhenClosed(t *testing.T) {
	n := newNode(t, httpapi.Options{})
	before := n.logEntries()
	require.NoError(t, n.db.Close())
	status, body := n.ingest(n.editor, shopBody(false, orderRec("closed-1", t0.Add(-time.Minute))))
	requireRequestError(t, status, body, http.StatusServiceUnavailable, "Unavailable")
	assert.Equal(t, before, n.logEntries())
	n.missing("shop", "closed-1")
}

// adsSample is the SPEC §2 sample request with current timestamps.
func adsSample(dryRun bool, u1, u2 string, t1, t2 time.Time) []byte {
	return []byte(fmt.Sprintf(`{"workspace_name": "ads", "dry_run": %t,
 "records": {"impressions_event_source": [
    {"record": {"timestamp": %q, "user_id": %q, "clicked": 1}},
    {"record": {"timestamp": %q, "user_id": %q, "clicked": 1}}]}}`, dryRun, ts(t1), u1, ts(t2), u2))
}

func adsMetrics(uccOnline, uccOffline, cefOnline, cefOffline int) string {
	return fmt.Sprintf(`{"workspaceName": "ads",
 "ingestMetrics": {"featureViewIngestMetrics": [
    {"featureViewName": "user_click_counts", "onlineRecordIngestCount": "%d", "offlineRecordIngestCount": "%d"},
    {"featureViewName": "click_events_fv", "onlineRecordIngestCount": "%d", "offlineRecordIngestCount": "%d"}]}}`,
		uccOnline, uccOffline, cefOnline, cefOffline)
}

func adsRead(user string) string {
	return fmt.Sprintf(`{"params": {"workspace_name": "ads", "feature_service_name": "ad_ctr_feature_service",
  "join_key_map": {"user_id": %q}, "metadata_options": {"include_serving_status": true}}}`, user)
}

func TestIngestHTTPSuccess(t *testing.T) {
	n := newNode(t, httpapi.Options{})
	for _, scheme := range []string{"Tecton-key", "Bearer", "tecton-key", "bearer"} {
		t.Run(scheme, func(t *testing.T) {
			u1, u2 := "C18947Z5-"+scheme, "C98FG569-"+scheme
			before := n.logEntries()
			status, body := n.post("/ingest", scheme+" "+n.editor, adsSample(false, u1, u2, t0.Add(-5*time.Minute), t0.Add(-time.Minute)))
			require.Equal(t, http.StatusOK, status, "body %s", body)
			assert.JSONEq(t, adsMetrics(2, 2, 2, 2), string(body))

			// Read-after-write: a read that starts after the 200 sees both.
			for _, u := range []string{u1, u2} {
				status, body = n.getFeatures(n.viewer, adsRead(u))
				require.Equal(t, http.StatusOK, status, "body %s", body)
				assert.JSONEq(t, `{"result":{"features":["1"]},"metadata":{"features":[{"status":"PRESENT"}]}}`, string(body))
			}
			assert.Equal(t, before+1, n.logEntries(), "one request is one log entry")
		})
	}
}

func TestIngestHTTPDryRun(t *testing.T) {
	n := newNode(t, httpapi.Options{})
	before := n.logEntries()
	status, body := n.ingest(n.editor, adsSample(true, "dry-1", "dry-2", t0.Add(-5*time.Minute), t0.Add(-time.Minute)))
	require.Equal(t, http.StatusOK, status, "body %s", body)
	assert.JSONEq(t, adsMetrics(2, 2, 2, 2), string(body))
	assert.Equal(t, before, n.logEntries())
	n.missing("ads", "dry-1", "dry-2")
	status, body = n.getFeatures(n.viewer, adsRead("dry-1"))
	require.Equal(t, http.StatusOK, status)
	assert.JSONEq(t, `{"result":{"features":[null]},"metadata":{"features":[{"status":"MISSING_DATA"}]}}`, string(body))
}

// TestIngestHTTPOutsideSomeTTLs: user_click_counts serves 24h (its largest
// window), click_events_fv 7d. A 2-day-old record is accepted, written,
// served by click_events_fv, and not counted for user_click_counts.
func TestIngestHTTPOutsideSomeTTLs(t *testing.T) {
	n := newNode(t, httpapi.Options{})
	before := n.logEntries()
	status, body := n.ingest(n.editor, adsSample(false, "ttl-old", "ttl-new", t0.Add(-48*time.Hour), t0.Add(-time.Minute)))
	require.Equal(t, http.StatusOK, status, "body %s", body)
	assert.JSONEq(t, adsMetrics(1, 1, 2, 2), string(body))
	assert.Equal(t, before+1, n.logEntries())
	status, body = n.getFeatures(n.viewer, adsRead("ttl-old"))
	require.Equal(t, http.StatusOK, status)
	assert.JSONEq(t, `{"result":{"features":["1"]},"metadata":{"features":[{"status":"PRESENT"}]}}`, string(body))

	// The dry run counts the same way.
	status, body = n.ingest(n.editor, adsSample(true, "ttl-old2", "ttl-new2", t0.Add(-48*time.Hour), t0.Add(-time.Minute)))
	require.Equal(t, http.StatusOK, status, "body %s", body)
	assert.JSONEq(t, adsMetrics(1, 1, 2, 2), string(body))

	// Exactly at now − ttl is inside the TTL; 1ns earlier is outside.
	status, body = n.ingest(n.editor, adsSample(false, "ttl-edge", "ttl-edge-out", t0.Add(-24*time.Hour), t0.Add(-24*time.Hour-time.Nanosecond)))
	require.Equal(t, http.StatusOK, status, "body %s", body)
	assert.JSONEq(t, adsMetrics(1, 1, 2, 2), string(body))
}

func shopMetrics(lastOrder, recentOrder, noteAuditOffline int) string {
	return fmt.Sprintf(`{"workspaceName":"shop","ingestMetrics":{"featureViewIngestMetrics":[
  {"featureViewName":"last_order","onlineRecordIngestCount":"%d","offlineRecordIngestCount":"%d"},
  {"featureViewName":"recent_order","onlineRecordIngestCount":"%d","offlineRecordIngestCount":"%d"},
  {"featureViewName":"note_audit","onlineRecordIngestCount":"0","offlineRecordIngestCount":"%d"}]}}`,
		lastOrder, lastOrder, recentOrder, recentOrder, noteAuditOffline)
}

// TestIngestHTTPFeatureStartTime: recent_order starts at 2024-05-01T00:00Z;
// records before are written and served by the other views, not by it.
// note_audit is offline only (online count 0) with a 1d TTL.
func TestIngestHTTPFeatureStartTime(t *testing.T) {
	n := newNode(t, httpapi.Options{})
	start := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	before := n.logEntries()
	status, body := n.ingest(n.editor, shopBody(false,
		orderRec("fst-before", start.Add(-time.Nanosecond)),
		orderRec("fst-at", start),
		orderRec("fst-2d", t0.Add(-2*24*time.Hour-time.Nanosecond)), // outside recent_order's and note_audit's TTL
	))
	require.Equal(t, http.StatusOK, status, "body %s", body)
	assert.JSONEq(t, shopMetrics(3, 1, 2), string(body))
	assert.Equal(t, before+1, n.logEntries())

	vec, err := n.db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "shop", Service: "shop_fs", JoinKeys: map[string]any{"customer_id": "fst-before"}})
	require.NoError(t, err)
	require.Len(t, vec.Features, 5)
	assert.Equal(t, engine.Present, vec.Features[0].Status)
	assert.Equal(t, engine.MissingData, vec.Features[4].Status, "recent_order serves a record before its feature_start_time")
	vec, err = n.db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "shop", Service: "shop_fs", JoinKeys: map[string]any{"customer_id": "fst-at"}})
	require.NoError(t, err)
	assert.Equal(t, engine.Present, vec.Features[4].Status)
}

func calcBody(dryRun bool, recs ...string) []byte {
	return []byte(fmt.Sprintf(`{"workspace_name":"shop","dry_run":%t,"records":{"calcs":[%s]}}`, dryRun, strings.Join(recs, ",")))
}

func calcRec(key, members string) string {
	return fmt.Sprintf(`{"record":{"customer_id":%q,"ts":%q,%s}}`, key, ts(t0.Add(-time.Minute)), members)
}

// TestIngestHTTPTransform: a transform that fails at run time is a record
// error naming the view; records the filter drops (false or null) count
// for neither online nor offline.
func TestIngestHTTPTransform(t *testing.T) {
	n := newNode(t, httpapi.Options{})
	before := n.logEntries()
	status, body := n.ingest(n.editor, calcBody(false,
		calcRec("tf-good", `"a":7,"b":3`),
		calcRec("tf-div0", `"a":7,"b":0`),
	))
	errs := requireRecordErrors(t, status, body, "shop")
	require.Len(t, errs, 1, "body %s", body)
	assert.Equal(t, recordError{FeatureViewName: "calc_fv", PushSourceName: "calcs", RecordIndex: 1,
		ErrorType: "TectonObjectValidationError", ErrorMessage: errs[0].ErrorMessage}, errs[0])
	assert.Equal(t, before, n.logEntries())

	status, body = n.ingest(n.editor, calcBody(false,
		calcRec("tf-good", `"a":7,"b":3`),
		calcRec("tf-negative", `"a":-1,"b":3`),
		calcRec("tf-null", `"a":null,"b":3`),
	))
	require.Equal(t, http.StatusOK, status, "body %s", body)
	assert.JSONEq(t, `{"workspaceName":"shop","ingestMetrics":{"featureViewIngestMetrics":[
	  {"featureViewName":"calc_fv","onlineRecordIngestCount":"1","offlineRecordIngestCount":"1"}]}}`, string(body))
	assert.Equal(t, before+1, n.logEntries(), "records dropped by a filter are still logged")
}

// TestIngestHTTPMultiSourceMetrics: one request may carry several
// sources; the metrics list every subscribed view in file order, whatever
// the order of the sources in the body, and the request is one log entry.
func TestIngestHTTPMultiSourceMetrics(t *testing.T) {
	n := newNode(t, httpapi.Options{})
	want := `{"workspaceName":"shop","ingestMetrics":{"featureViewIngestMetrics":[
	  {"featureViewName":"last_order","onlineRecordIngestCount":"2","offlineRecordIngestCount":"2"},
	  {"featureViewName":"recent_order","onlineRecordIngestCount":"2","offlineRecordIngestCount":"2"},
	  {"featureViewName":"note_audit","onlineRecordIngestCount":"0","offlineRecordIngestCount":"2"},
	  {"featureViewName":"calc_fv","onlineRecordIngestCount":"1","offlineRecordIngestCount":"1"}]}}`
	orders := `"orders":[` + orderRec("ms-1", t0.Add(-time.Minute)) + `,` + orderRec("ms-2", t0.Add(-2*time.Minute)) + `]`
	calcs := `"calcs":[` + calcRec("ms-3", `"a":1,"b":2`) + `]`
	for i, records := range []string{orders + "," + calcs, calcs + "," + orders} {
		before := n.logEntries()
		status, body := n.ingest(n.editor, []byte(`{"workspace_name":"shop","dry_run":false,"records":{`+records+`}}`))
		require.Equal(t, http.StatusOK, status, "body %s", body)
		assert.JSONEq(t, want, string(body), "order %d", i)
		assert.Equal(t, before+1, n.logEntries())
	}
}

// TestIngestHTTPBoundaryValuesAccepted: the edges of every rule that the
// error table tests from the other side.
func TestIngestHTTPBoundaryValuesAccepted(t *testing.T) {
	n := newNode(t, httpapi.Options{})
	cases := []struct{ name, rec string }{
		{"exactly now − the largest TTL", orderRec("ok-ttl", t0.Add(-7*24*time.Hour))},
		{"exactly the clock skew in the future", orderRec("ok-skew", t0.Add(5*time.Minute))},
		{"integral float for Int64", rawRec(`"customer_id":"ok-2.0"`, `"ts":"`+ts(t0.Add(-time.Minute))+`"`, `"amount":2.0`)},
		{"decimal string for Int64", rawRec(`"customer_id":"ok-str"`, `"ts":"`+ts(t0.Add(-time.Minute))+`"`, `"amount":"123"`)},
		{"Int32 max", rawRec(`"customer_id":"ok-i32"`, `"ts":"`+ts(t0.Add(-time.Minute))+`"`, `"qty":2147483647`)},
		{"Int32 min", rawRec(`"customer_id":"ok-i32min"`, `"ts":"`+ts(t0.Add(-time.Minute))+`"`, `"qty":-2147483648`)},
		{"Int64 max", rawRec(`"customer_id":"ok-i64"`, `"ts":"`+ts(t0.Add(-time.Minute))+`"`, `"amount":9223372036854775807`)},
		{"nulls and absent columns", rawRec(`"customer_id":"ok-null"`, `"ts":"`+ts(t0.Add(-time.Minute))+`"`, `"amount":null`, `"note":null`)},
		{"timestamp with an offset", rawRec(`"customer_id":"ok-offset"`, `"ts":"2024-05-01T13:59:00+02:00"`)},
		{"non-ASCII string", rawRec(`"customer_id":"ok-ü-日本"`, `"ts":"`+ts(t0.Add(-time.Minute))+`"`, `"note":"naïve ☕"`)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := n.logEntries()
			status, body := n.ingest(n.editor, shopBody(false, tc.rec))
			require.Equal(t, http.StatusOK, status, "body %s", body)
			assert.Equal(t, before+1, n.logEntries())
		})
	}
	// Read back a few: the values are what was sent.
	vec, err := n.db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "shop", Service: "shop_fs", JoinKeys: map[string]any{"customer_id": "ok-str"}})
	require.NoError(t, err)
	assert.Equal(t, int64(123), vec.Features[0].Value.I)
	vec, err = n.db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "shop", Service: "shop_fs", JoinKeys: map[string]any{"customer_id": "ok-ü-日本"}})
	require.NoError(t, err)
	assert.Equal(t, "naïve ☕", vec.Features[2].Value.S)
	vec, err = n.db.GetFeatures(&engine.GetFeaturesRequest{Workspace: "shop", Service: "shop_fs", JoinKeys: map[string]any{"customer_id": "ok-null"}})
	require.NoError(t, err)
	assert.Equal(t, engine.Present, vec.Features[0].Status, "a record with null columns is served")
	assert.True(t, vec.Features[0].Value.IsNull())
	assert.True(t, vec.Features[1].Value.IsNull(), "an absent column is null")
}

// ---------------------------------------------------------------------------
// get-features

// servingNode returns a node with shop data: c1 has one order at
// t0 − 10m + 123456789ns; c2 has amount 1 at t0 − 30m and 2 at t0 − 10m.
func servingNode(t *testing.T) *node {
	n := newNode(t, httpapi.Options{})
	status, body := n.ingest(n.editor, shopBody(false,
		rawRec(`"customer_id":"c1"`, `"ts":"`+ts(t0.Add(-10*time.Minute+123456789))+`"`, `"amount":42`, `"qty":7`, `"note":"hi"`, `"price":9.5`),
		rawRec(`"customer_id":"c2"`, `"ts":"`+ts(t0.Add(-30*time.Minute))+`"`, `"amount":1`),
	))
	require.Equal(t, http.StatusOK, status, "body %s", body)
	status, body = n.ingest(n.editor, shopBody(false,
		rawRec(`"customer_id":"c2"`, `"ts":"`+ts(t0.Add(-10*time.Minute))+`"`, `"amount":2`),
	))
	require.Equal(t, http.StatusOK, status, "body %s", body)
	return n
}

const c1Features = `["42","7","hi",9.5,"42"]`

func TestGetFeaturesHTTPParamSpellings(t *testing.T) {
	n := servingNode(t)
	for name, req := range map[string]string{
		"snake_case": `{"params":{"workspace_name":"shop","feature_service_name":"shop_fs","join_key_map":{"customer_id":"c1"}}}`,
		"camelCase":  `{"params":{"workspaceName":"shop","featureServiceName":"shop_fs","joinKeyMap":{"customer_id":"c1"}}}`,
		"mixed":      `{"params":{"workspaceName":"shop","feature_service_name":"shop_fs","joinKeyMap":{"customer_id":"c1"},"metadataOptions":{}}}`,
	} {
		t.Run(name, func(t *testing.T) {
			status, body := n.getFeatures(n.viewer, req)
			require.Equal(t, http.StatusOK, status, "body %s", body)
			assert.JSONEq(t, `{"result":{"features":`+c1Features+`}}`, string(body))
		})
	}
}

func TestGetFeaturesHTTPMetadata(t *testing.T) {
	n := servingNode(t)
	eff := `"2024-05-01T11:50:00.123456789Z"`
	want := `{"result":{"features":` + c1Features + `},"metadata":{"features":[
	  {"name":"last_order.amount","dataType":{"type":"int64"},"effectiveTime":` + eff + `,"status":"PRESENT"},
	  {"name":"last_order.qty","dataType":{"type":"int64"},"effectiveTime":` + eff + `,"status":"PRESENT"},
	  {"name":"last_order.note","dataType":{"type":"string"},"effectiveTime":` + eff + `,"status":"PRESENT"},
	  {"name":"last_order.price","dataType":{"type":"float64"},"effectiveTime":` + eff + `,"status":"PRESENT"},
	  {"name":"recent_order.amount","dataType":{"type":"int64"},"effectiveTime":` + eff + `,"status":"PRESENT"}]}}`
	for name, opts := range map[string]string{
		"snake_case": `"metadata_options":{"include_names":true,"include_data_types":true,"include_effective_times":true,"include_serving_status":true}`,
		"camelCase":  `"metadataOptions":{"includeNames":true,"includeDataTypes":true,"includeEffectiveTimes":true,"includeServingStatus":true}`,
	} {
		t.Run(name, func(t *testing.T) {
			status, body := n.getFeatures(n.viewer, `{"params":{"workspace_name":"shop","feature_service_name":"shop_fs","join_key_map":{"customer_id":"c1"},`+opts+`}}`)
			require.Equal(t, http.StatusOK, status, "body %s", body)
			assert.JSONEq(t, want, string(body))
		})
	}
	t.Run("names only", func(t *testing.T) {
		status, body := n.getFeatures(n.viewer, `{"params":{"workspace_name":"shop","feature_service_name":"shop_fs","join_key_map":{"customer_id":"c1"},"metadata_options":{"include_names":true}}}`)
		require.Equal(t, http.StatusOK, status, "body %s", body)
		assert.JSONEq(t, `{"result":{"features":`+c1Features+`},"metadata":{"features":[{"name":"last_order.amount"},{"name":"last_order.qty"},
		  {"name":"last_order.note"},{"name":"last_order.price"},{"name":"recent_order.amount"}]}}`, string(body))
	})
	t.Run("missing key", func(t *testing.T) {
		status, body := n.getFeatures(n.viewer, `{"params":{"workspace_name":"shop","feature_service_name":"shop_fs","join_key_map":{"customer_id":"nobody"},"metadata_options":{"include_serving_status":true}}}`)
		require.Equal(t, http.StatusOK, status, "body %s", body)
		assert.JSONEq(t, `{"result":{"features":[null,null,null,null,null]},"metadata":{"features":[{"status":"MISSING_DATA"},
		  {"status":"MISSING_DATA"},{"status":"MISSING_DATA"},{"status":"MISSING_DATA"},{"status":"MISSING_DATA"}]}}`, string(body))
	})
}

func TestGetFeaturesHTTPBatch(t *testing.T) {
	n := servingNode(t)
	req := `{"params":{"workspace_name":"shop","feature_service_name":"shop_fs",
	  "request_data":[{"join_key_map":{"customer_id":"c1"}},{"joinKeyMap":{"customer_id":"nobody"}},{"join_key_map":{"customer_id":"c2"}}],
	  "metadata_options":{"include_names":true,"include_serving_status":true}}}`
	status, body := n.post("/api/v1/feature-service/get-features-batch", "Tecton-key "+n.viewer, []byte(req))
	require.Equal(t, http.StatusOK, status, "body %s", body)
	st := func(a, b, c string) string { return fmt.Sprintf(`"status":[%q,%q,%q]`, a, b, c) }
	const P, M = "PRESENT", "MISSING_DATA"
	assert.JSONEq(t, `{"result":[{"features":`+c1Features+`},{"features":[null,null,null,null,null]},{"features":["2",null,null,null,"2"]}],
	  "metadata":{"features":[
	    {"name":"last_order.amount",`+st(P, M, P)+`},{"name":"last_order.qty",`+st(P, M, P)+`},
	    {"name":"last_order.note",`+st(P, M, P)+`},{"name":"last_order.price",`+st(P, M, P)+`},
	    {"name":"recent_order.amount",`+st(P, M, P)+`}]}}`, string(body))

	// A bad row fails the whole batch with 400 / INVALID_ARGUMENT.
	status, body = n.post("/api/v1/feature-service/get-features-batch", "Tecton-key "+n.viewer, []byte(
		`{"params":{"workspace_name":"shop","feature_service_name":"shop_fs","request_data":[{"join_key_map":{"customer_id":"c1"}},{"join_key_map":{}}]}}`))
	requireServingError(t, status, body, http.StatusBadRequest, 3)
}

func TestGetFeaturesHTTPAsOf(t *testing.T) {
	n := servingNode(t)
	read := func(asOf time.Time) []byte {
		status, body := n.getFeatures(n.viewer, fmt.Sprintf(`{"params":{"workspace_name":"shop","feature_service_name":"shop_fs",
		  "join_key_map":{"customer_id":"c2"},"as_of":%q,"metadata_options":{"include_effective_times":true}}}`, ts(asOf)))
		require.Equal(t, http.StatusOK, status, "body %s", body)
		return body
	}
	eff := func(t time.Time) string {
		return fmt.Sprintf(`{"effectiveTime":%q}`, ts(t))
	}
	one := `{"result":{"features":["1",null,null,null,"1"]},"metadata":{"features":[` + strings.Repeat(eff(t0.Add(-30*time.Minute))+",", 4) + eff(t0.Add(-30*time.Minute)) + `]}}`
	two := `{"result":{"features":["2",null,null,null,"2"]},"metadata":{"features":[` + strings.Repeat(eff(t0.Add(-10*time.Minute))+",", 4) + eff(t0.Add(-10*time.Minute)) + `]}}`
	none := `{"result":{"features":[null,null,null,null,null]},"metadata":{"features":[{"effectiveTime":null},{"effectiveTime":null},{"effectiveTime":null},{"effectiveTime":null},{"effectiveTime":null}]}}`
	assert.JSONEq(t, none, string(read(t0.Add(-30*time.Minute))), "as_of sees only events strictly before it")
	assert.JSONEq(t, one, string(read(t0.Add(-30*time.Minute+time.Nanosecond))))
	assert.JSONEq(t, one, string(read(t0.Add(-20*time.Minute))))
	assert.JSONEq(t, one, string(read(t0.Add(-10*time.Minute))))
	assert.JSONEq(t, two, string(read(t0.Add(-10*time.Minute+time.Nanosecond))))
	assert.JSONEq(t, two, string(read(t0)), "as_of equal to now is allowed")

	// The last one is 2^64ns before a time that would read "2": it must
	// not wrap around.
	wrapped := t0.Add(-10*time.Minute + time.Nanosecond).Add(math.MinInt64).Add(math.MinInt64)
	for _, asOf := range []time.Time{t0.Add(time.Nanosecond), t0.Add(time.Hour), wrapped} {
		status, body := n.getFeatures(n.viewer, fmt.Sprintf(`{"params":{"workspace_name":"shop","feature_service_name":"shop_fs",
		  "join_key_map":{"customer_id":"c2"},"asOf":%q}}`, ts(asOf)))
		requireServingError(t, status, body, http.StatusBadRequest, 3)
	}
}

func TestGetFeaturesHTTPErrors(t *testing.T) {
	n := servingNode(t)
	read := func(key, ws, svc, jk string) (int, []byte) {
		return n.getFeatures(key, fmt.Sprintf(`{"params":{"workspace_name":%q,"feature_service_name":%q,"join_key_map":%s}}`, ws, svc, jk))
	}
	cases := []struct {
		name           string
		status, code   int
		key, ws, svc   string
		joinKeys       string
		rawBody, authz string // override the request
	}{
		{name: "missing join key", status: 400, code: 3, key: n.viewer, ws: "shop", svc: "shop_fs", joinKeys: `{}`},
		{name: "wrong join key", status: 400, code: 3, key: n.viewer, ws: "shop", svc: "shop_fs", joinKeys: `{"user_id":"c1"}`},
		{name: "extra join key", status: 400, code: 3, key: n.viewer, ws: "shop", svc: "shop_fs", joinKeys: `{"customer_id":"c1","user_id":"u1"}`},
		{name: "null join key", status: 400, code: 3, key: n.viewer, ws: "shop", svc: "shop_fs", joinKeys: `{"customer_id":null}`},
		{name: "bad body", status: 400, code: 3, rawBody: `{"params":`, authz: "Tecton-key " + n.viewer},
		{name: "unknown parameter", status: 400, code: 3, rawBody: `{"params":{"workspace_name":"shop","feature_service_name":"shop_fs","join_key_map":{"customer_id":"c1"},"bogus":1}}`, authz: "Tecton-key " + n.viewer},
		{name: "no key", status: 401, code: 16, ws: "shop", svc: "shop_fs", joinKeys: `{"customer_id":"c1"}`, authz: "-"},
		{name: "malformed header", status: 401, code: 16, ws: "shop", svc: "shop_fs", joinKeys: `{"customer_id":"c1"}`, authz: "Basic abc"},
		{name: "unknown key", status: 401, code: 16, key: "fl_0123456789abcdef_" + strings.Repeat("a", 52), ws: "shop", svc: "shop_fs", joinKeys: `{"customer_id":"c1"}`},
		{name: "no role", status: 403, code: 7, key: n.noRole, ws: "shop", svc: "shop_fs", joinKeys: `{"customer_id":"c1"}`},
		{name: "role on another workspace", status: 403, code: 7, key: n.otherEditor, ws: "shop", svc: "shop_fs", joinKeys: `{"customer_id":"c1"}`},
		{name: "unknown workspace", status: 404, code: 5, key: n.ghostEditor, ws: "ghost", svc: "shop_fs", joinKeys: `{"customer_id":"c1"}`},
		{name: "unknown service", status: 404, code: 5, key: n.viewer, ws: "shop", svc: "nope_fs", joinKeys: `{"customer_id":"c1"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var status int
			var body []byte
			switch {
			case tc.rawBody != "":
				status, body = n.post("/api/v1/feature-service/get-features", tc.authz, []byte(tc.rawBody))
			case tc.authz == "-":
				status, body = n.post("/api/v1/feature-service/get-features", "",
					[]byte(fmt.Sprintf(`{"params":{"workspace_name":%q,"feature_service_name":%q,"join_key_map":%s}}`, tc.ws, tc.svc, tc.joinKeys)))
			case tc.authz != "":
				status, body = n.post("/api/v1/feature-service/get-features", tc.authz,
					[]byte(fmt.Sprintf(`{"params":{"workspace_name":%q,"feature_service_name":%q,"join_key_map":%s}}`, tc.ws, tc.svc, tc.joinKeys)))
			default:
				status, body = read(tc.key, tc.ws, tc.svc, tc.joinKeys)
			}
			requireServingError(t, status, body, tc.status, tc.code)
		})
	}
}
