//go:build unix

package httpapi_test

// The bad-input catalogue: one table of distinct bad requests across every
// endpoint that takes input, and the repo file. Each case states its exact
// status, its error type (the ingest API's requestError.errorType or
// recordErrors[].errorType, or the gRPC code of the other APIs) and a
// fragment proving the message says what is wrong and where; after each,
// nothing may have been written (log entries, catalog, accounts).

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/httpapi"
	"github.com/featurelog/featurelog/internal/jsondec"
)

// Error types of the catalogue. The ingest API's are its errorType
// strings; the serving and admin APIs' are gRPC codes.
const (
	reqValidation = "RequestValidationError"
	reqNotFound   = "NotFound"
	reqTooLarge   = "RequestTooLarge"
	recordInvalid = "TectonObjectValidationError"
	grpcInvalid   = "INVALID_ARGUMENT"
	grpcNotFound  = "NOT_FOUND"
)

var grpcCodes = map[string]int{grpcInvalid: 3, grpcNotFound: 5}

// badInputLimit is the catalogue node's MaxBodyBytes.
const badInputLimit = 64 << 10

type badCase struct {
	name   string
	req    testRequest
	authz  func(m *authMatrix) string // default: the admin key, owner of shop and ads
	status int
	typ    string
	msg    string // a fragment of the message (of one of the record errors)
}

// depthMsg is the fragment of a too-deep body's message: the depth
// reached and the limit.
var depthMsg = fmt.Sprintf("JSON nesting depth %d (at byte offset ", jsondec.MaxDepth+1)

// depthLimitMsg must follow depthMsg in the message.
var depthLimitMsg = fmt.Sprintf(") exceeds the limit of %d levels of objects and arrays", jsondec.MaxDepth)

// deep returns JSON nested depth levels: depth−1 arrays around {"x":1}.
func deep(depth int) string {
	return strings.Repeat("[", depth-1) + `{"x":1}` + strings.Repeat("]", depth-1)
}

func ingestReq(body string) testRequest { return postJSON("/ingest", body) }

func featuresReq(body string) testRequest {
	return postJSON("/api/v1/feature-service/get-features", body)
}

func batchReq(body string) testRequest {
	return postJSON("/api/v1/feature-service/get-features-batch", body)
}

func eventsReq(body string) testRequest { return postJSON(historicalPath, body) }

func ndjsonReq(query url.Values, body string) testRequest {
	return testRequest{method: http.MethodPost, path: historicalPath + "?" + query.Encode(), contentType: "application/x-ndjson", body: []byte(body)}
}

func planReq(file, content string) testRequest {
	data, _ := json.Marshal(httpapi.ApplyRequest{File: file, Content: content})
	return postJSON("/api/v1/plan", string(data))
}

func applyReq(file, content string) testRequest {
	data, _ := json.Marshal(httpapi.ApplyRequest{File: file, Content: content})
	return postJSON("/api/v1/apply", string(data))
}

// shopEdit returns shopRepo with old replaced by new (which must occur).
func shopEdit(old, new string) string {
	if !strings.Contains(shopRepo, old) {
		panic("shopEdit: " + old)
	}
	return strings.Replace(shopRepo, old, new, 1)
}

func badCases() []badCase {
	at := fmt.Sprintf(`"ts":%q`, ts(t0.Add(-time.Minute)))
	good := orderRec("bi-good", t0.Add(-time.Minute))
	orders := func(recs ...string) string {
		return `{"workspace_name":"shop","dry_run":false,"records":{"orders":[` + strings.Join(recs, ",") + `]}}`
	}
	records := `{"orders":[` + good + `]}`
	params := func(members string) string { return `{"params":{` + members + `}}` }
	svc := `"workspace_name":"shop","feature_service_name":"shop_fs"`
	jk := `"join_key_map":{"customer_id":"c1"}`
	rows := func(n int) string {
		return `"request_data":[` + strings.TrimSuffix(strings.Repeat(`{"join_key_map":{"customer_id":"c1"}},`, n), ",") + `]`
	}
	spineRow := fmt.Sprintf(`{"customer_id":"c1","ts":%q}`, ts(t0))
	q := url.Values{"workspace_name": {"shop"}, "feature_service_name": {"shop_fs"}}
	ghost := func(m *authMatrix) string { return m.ghostEditor }
	big := strings.Repeat(" ", badInputLimit)
	limit := depthMsg
	account := func(body string) testRequest { return postJSON("/api/v1/service-accounts", body) }
	assign := func(body string) testRequest { return postJSON("/api/v1/access-control/assign-role", body) }
	return []badCase{
		// POST /ingest: the envelope.
		{name: "ingest empty body", req: ingestReq(``), status: 400, typ: reqValidation, msg: "not valid JSON: unexpected end of input"},
		{name: "ingest not JSON", req: ingestReq(`workspace_name=shop`), status: 400, typ: reqValidation, msg: "not valid JSON: invalid character 'w' at start of value"},
		{name: "ingest not an object", req: ingestReq(`[` + orders(good) + `]`), status: 400, typ: reqValidation, msg: "must be a JSON object, not an array"},
		{name: "ingest unknown field", req: ingestReq(`{"workspace_name":"shop","dry_run":false,"records":` + records + `,"extra":1}`), status: 400, typ: reqValidation, msg: `unknown field "extra"`},
		{name: "ingest duplicate field", req: ingestReq(`{"workspace_name":"shop","dry_run":false,"dry_run":true,"records":` + records + `}`), status: 400, typ: reqValidation, msg: `duplicate object member name "dry_run"`},
		{name: "ingest missing workspace_name", req: ingestReq(`{"dry_run":false,"records":` + records + `}`), status: 400, typ: reqValidation, msg: "`workspace_name` is missing"},
		{name: "ingest missing dry_run", req: ingestReq(`{"workspace_name":"shop","records":` + records + `}`), status: 400, typ: reqValidation, msg: "`dry_run` is missing"},
		{name: "ingest missing records", req: ingestReq(`{"workspace_name":"shop","dry_run":false}`), status: 400, typ: reqValidation, msg: "`records` is missing"},
		{name: "ingest workspace_name a number", req: ingestReq(`{"workspace_name":7,"dry_run":false,"records":` + records + `}`), status: 400, typ: reqValidation, msg: "`workspace_name` must be a non-empty string"},
		{name: "ingest dry_run a string", req: ingestReq(`{"workspace_name":"shop","dry_run":"no","records":` + records + `}`), status: 400, typ: reqValidation, msg: "`dry_run` must be true or false, not a string"},
		{name: "ingest records a list", req: ingestReq(`{"workspace_name":"shop","dry_run":false,"records":[` + good + `]}`), status: 400, typ: reqValidation, msg: "`records` must be an object"},
		{name: "ingest source records not a list", req: ingestReq(`{"workspace_name":"shop","dry_run":false,"records":{"orders":` + good + `}}`), status: 400, typ: reqValidation, msg: `records of push source "orders" must be a list`},
		{name: "ingest element not wrapped", req: ingestReq(orders(good, `7`)), status: 400, typ: reqValidation, msg: `push source "orders" record 1 must be an object {"record": {...}}`},
		{name: "ingest wrapper unknown field", req: ingestReq(orders(`{"rec":{}}`)), status: 400, typ: reqValidation, msg: `push source "orders" record 0: unknown field "rec"`},
		{name: "ingest trailing data", req: ingestReq(orders(good) + ` {}`), status: 400, typ: reqValidation, msg: "data after the JSON object"},
		{name: "ingest invalid UTF-8", req: ingestReq(orders(good, rawRec("\"customer_id\":\"bi-\xff\"", at))), status: 400, typ: reqValidation, msg: `invalid UTF-8 within "/records/orders/1/record/customer_id"`},
		{name: "ingest duplicate column", req: ingestReq(orders(rawRec(`"customer_id":"bi-dup"`, at, `"amount":1`, `"amount":2`))), status: 400, typ: reqValidation, msg: `duplicate object member name "amount" within "/records/orders/0/record"`},
		{name: "ingest nesting too deep", req: ingestReq(orders(rawRec(`"customer_id":"bi-deep"`, at, `"note":`+deep(jsondec.MaxDepth)))), status: 400, typ: reqValidation, msg: limit},
		{name: "ingest body too large", req: ingestReq(orders(good) + big), status: 413, typ: reqTooLarge, msg: fmt.Sprintf("larger than the limit of %d bytes", badInputLimit)},
		{name: "ingest unknown workspace", req: ingestReq(`{"workspace_name":"ghost","dry_run":false,"records":` + records + `}`), authz: ghost, status: 404, typ: reqNotFound, msg: `workspace "ghost" not found`},
		{name: "ingest unknown source", req: ingestReq(`{"workspace_name":"shop","dry_run":false,"records":{"order":[` + good + `]}}`), status: 404, typ: reqNotFound, msg: `push source "order" not found in workspace "shop"`},
		{name: "ingest source without views", req: ingestReq(`{"workspace_name":"shop","dry_run":false,"records":{"orphan_source":[]}}`), status: 404, typ: reqNotFound, msg: `no feature view is subscribed to push source "orphan_source"`},
		// POST /ingest: records that do not fit the schema or the views.
		{name: "record unknown column", req: ingestReq(orders(good, rawRec(`"customer_id":"bi-x"`, at, `"amout":2`))), status: 400, typ: recordInvalid, msg: `unknown column "amout"`},
		{name: "record missing join key", req: ingestReq(orders(rawRec(at, `"amount":1`))), status: 400, typ: recordInvalid, msg: `join key "customer_id" is missing or null`},
		{name: "record missing timestamp", req: ingestReq(orders(rawRec(`"customer_id":"bi-x"`, `"amount":1`))), status: 400, typ: recordInvalid, msg: `timestamp field "ts" is missing or null`},
		{name: "record wrong type", req: ingestReq(orders(rawRec(`"customer_id":"bi-x"`, at, `"amount":"five"`))), status: 400, typ: recordInvalid, msg: `column "amount": expected Int64, got the string "five"`},
		{name: "record bad RFC 3339", req: ingestReq(orders(rawRec(`"customer_id":"bi-x"`, `"ts":"2024-05-01 11:59:00"`))), status: 400, typ: recordInvalid, msg: `column "ts": "2024-05-01 11:59:00" is not an RFC 3339 timestamp`},
		{name: "record non-integral Int64", req: ingestReq(orders(rawRec(`"customer_id":"bi-x"`, at, `"amount":1.5`))), status: 400, typ: recordInvalid, msg: `column "amount": 1.5 is not an integer`},
		{name: "record Int32 out of range", req: ingestReq(orders(rawRec(`"customer_id":"bi-x"`, at, `"qty":3000000000`))), status: 400, typ: recordInvalid, msg: `column "qty": 3000000000 is out of range for Int32`},
		{name: "record too far in the future", req: ingestReq(orders(orderRec("bi-x", t0.Add(time.Hour)))), status: 400, typ: recordInvalid, msg: "is more than 5m0s in the future (the allowed clock skew)"},
		{name: "record older than every TTL", req: ingestReq(orders(orderRec("bi-x", t0.Add(-8*24*time.Hour)))), status: 400, typ: recordInvalid, msg: `outside of the serving TTL of every feature view subscribed to source "orders"`},
		{name: "record not an object", req: ingestReq(orders(`{"record":[1]}`)), status: 400, typ: recordInvalid, msg: "record must be a JSON object, not an array"},
		{name: "record transform fails", req: ingestReq(`{"workspace_name":"shop","dry_run":false,"records":{"calcs":[` +
			rawRec(`"customer_id":"bi-x"`, at, `"a":1`, `"b":0`) + `]}}`), status: 400, typ: recordInvalid, msg: `transform column "rem" (a % b): runtime error: integer divide by zero`},

		// POST get-features.
		{name: "features empty body", req: featuresReq(``), status: 400, typ: grpcInvalid, msg: "unexpected end of input"},
		{name: "features not JSON", req: featuresReq(`params=1`), status: 400, typ: grpcInvalid, msg: "not valid JSON: invalid character 'p' at start of value"},
		{name: "features params missing", req: featuresReq(`{` + svc + `}`), status: 400, typ: grpcInvalid, msg: `unknown field "workspace_name" in the request body (expected "params")`},
		{name: "features params not an object", req: featuresReq(`{"params":[1]}`), status: 400, typ: grpcInvalid, msg: "params must be a JSON object"},
		{name: "features missing workspace_name", req: featuresReq(params(`"feature_service_name":"shop_fs",` + jk)), status: 400, typ: grpcInvalid, msg: "params.workspace_name is required"},
		{name: "features missing feature_service_name", req: featuresReq(params(`"workspace_name":"shop",` + jk)), status: 400, typ: grpcInvalid, msg: "params.feature_service_name is required"},
		{name: "features missing join_key_map", req: featuresReq(params(svc)), status: 400, typ: grpcInvalid, msg: "params.join_key_map is required"},
		{name: "features unknown parameter", req: featuresReq(params(svc + `,` + jk + `,"bogus":1`)), status: 400, typ: grpcInvalid, msg: `unknown parameter "bogus"`},
		{name: "features workspace_name a number", req: featuresReq(params(`"workspace_name":1,"feature_service_name":"shop_fs",` + jk)), status: 400, typ: grpcInvalid, msg: "params.workspace_name must be a string"},
		{name: "features unknown service", req: featuresReq(params(`"workspace_name":"shop","feature_service_name":"nope_fs",` + jk)), status: 404, typ: grpcNotFound, msg: `feature service "nope_fs" not found in workspace "shop"`},
		{name: "features unknown workspace", req: featuresReq(params(`"workspace_name":"ghost","feature_service_name":"shop_fs",` + jk)), authz: ghost, status: 404, typ: grpcNotFound, msg: `workspace "ghost" not found`},
		{name: "features missing join key", req: featuresReq(params(svc + `,"join_key_map":{}`)), status: 400, typ: grpcInvalid, msg: `join key "customer_id" is missing from join_key_map (service "shop_fs" needs: customer_id)`},
		{name: "features extra join key", req: featuresReq(params(svc + `,"join_key_map":{"customer_id":"c1","user_id":"u1"}`)), status: 400, typ: grpcInvalid, msg: `join_key_map has keys the service "shop_fs" does not use: user_id`},
		{name: "features null join key", req: featuresReq(params(svc + `,"join_key_map":{"customer_id":null}`)), status: 400, typ: grpcInvalid, msg: `params.join_key_map: join key "customer_id" is null`},
		{name: "features object join key", req: featuresReq(params(svc + `,"join_key_map":{"customer_id":{"id":1}}`)), status: 400, typ: grpcInvalid, msg: `join key "customer_id" must be a string or a number`},
		{name: "features bad as_of", req: featuresReq(params(svc + `,` + jk + `,"as_of":"yesterday"`)), status: 400, typ: grpcInvalid, msg: `params.as_of: "yesterday" is not an RFC 3339 timestamp`},
		{name: "features as_of in the future", req: featuresReq(params(svc + `,` + jk + fmt.Sprintf(`,"as_of":%q`, ts(t0.Add(time.Hour))))), status: 400, typ: grpcInvalid, msg: "as_of 2024-05-01T13:00:00Z is in the future"},
		{name: "features metadata option not a boolean", req: featuresReq(params(svc + `,` + jk + `,"metadata_options":{"include_names":"yes"}`)), status: 400, typ: grpcInvalid, msg: `metadata option "include_names" must be true or false`},
		{name: "features unknown metadata option", req: featuresReq(params(svc + `,` + jk + `,"metadata_options":{"include_everything":true}`)), status: 400, typ: grpcInvalid, msg: `unknown metadata option "include_everything"`},
		{name: "features request_data", req: featuresReq(params(svc + `,` + jk + `,` + rows(1))), status: 400, typ: grpcInvalid, msg: "params.request_data is for get-features-batch"},
		{name: "features duplicate member", req: featuresReq(params(svc + `,` + jk + `,"workspace_name":"ads"`)), status: 400, typ: grpcInvalid, msg: `duplicate object member name "workspace_name" within "/params"`},
		{name: "features invalid UTF-8", req: featuresReq(params(svc + ",\"join_key_map\":{\"customer_id\":\"c\xff\"}")), status: 400, typ: grpcInvalid, msg: `invalid UTF-8 within "/params/join_key_map/customer_id"`},
		{name: "features trailing data", req: featuresReq(params(svc+`,`+jk) + `]`), status: 400, typ: grpcInvalid, msg: "data after the JSON object"},
		{name: "features nesting too deep", req: featuresReq(params(svc + `,` + jk + `,"request_context_map":` + deep(jsondec.MaxDepth))), status: 400, typ: grpcInvalid, msg: limit},
		{name: "features body too large", req: featuresReq(params(svc+`,`+jk) + big), status: 413, typ: grpcInvalid, msg: fmt.Sprintf("larger than the limit of %d bytes", badInputLimit)},

		// POST get-features-batch.
		{name: "batch missing request_data", req: batchReq(params(svc)), status: 400, typ: grpcInvalid, msg: "params.request_data is required"},
		{name: "batch request_data not a list", req: batchReq(params(svc + `,"request_data":{}`)), status: 400, typ: grpcInvalid, msg: "params.request_data must be a list"},
		{name: "batch item unknown field", req: batchReq(params(svc + `,"request_data":[{"keys":{}}]`)), status: 400, typ: grpcInvalid, msg: `params.request_data[0]: unknown field "keys"`},
		{name: "batch item without join_key_map", req: batchReq(params(svc + `,"request_data":[{"join_key_map":{"customer_id":"c1"}},{}]`)), status: 400, typ: grpcInvalid, msg: "params.request_data[1]: join_key_map is required"},
		{name: "batch join_key_map outside request_data", req: batchReq(params(svc + `,` + jk + `,` + rows(1))), status: 400, typ: grpcInvalid, msg: "belongs inside request_data"},
		{name: "batch too many rows", req: batchReq(params(svc + `,` + rows(1001))), status: 400, typ: grpcInvalid, msg: "has 1001 items; at most 1000"},
		{name: "batch bad join key in a row", req: batchReq(params(svc + `,"request_data":[{"join_key_map":{"customer_id":"c1"}},{"join_key_map":{"customer_id":true}}]`)), status: 400, typ: grpcInvalid, msg: `params.request_data[1].join_key_map: join key "customer_id" must be a string or a number`},
		{name: "batch missing join key in a row", req: batchReq(params(svc + `,"request_data":[{"join_key_map":{"customer_id":"c1"}},{"join_key_map":{}}]`)), status: 400, typ: grpcInvalid, msg: `request_data[1]: join key "customer_id" is missing from join_key_map`},

		// POST get-features-for-events.
		{name: "events neither spine nor range", req: eventsReq(params(svc)), status: 400, typ: grpcInvalid, msg: "params.spine (a list of rows) or params.start_time and params.end_time"},
		{name: "events spine not a list", req: eventsReq(params(svc + `,"spine":{}`)), status: 400, typ: grpcInvalid, msg: "params.spine must be a list of row objects"},
		{name: "events spine row not an object", req: eventsReq(params(svc + `,"spine":[` + spineRow + `,7]`)), status: 400, typ: grpcInvalid, msg: "params.spine[1] must be a JSON object"},
		{name: "events spine bad timestamp", req: eventsReq(params(svc + `,"timestamp_key":"ts","spine":[` + spineRow + `,{"customer_id":"c1","ts":"noon"}]`)), status: 400, typ: grpcInvalid, msg: `params.spine[1]: column "ts": "noon" is not an RFC 3339 timestamp`},
		{name: "events spine missing join key", req: eventsReq(params(svc + `,"timestamp_key":"ts","spine":[{"ts":"` + ts(t0) + `"}]`)), status: 400, typ: grpcInvalid, msg: `the spine has no column "customer_id", a join key of feature service "shop_fs"`},
		{name: "events spine duplicate member", req: eventsReq(params(svc + `,"spine":[{"customer_id":"c1","customer_id":"c2"}]`)), status: 400, typ: grpcInvalid, msg: `duplicate object member name "customer_id" within "/params/spine/0"`},
		{name: "events spine invalid UTF-8", req: eventsReq(params(svc + ",\"spine\":[{\"customer_id\":\"c\xff\",\"ts\":\"" + ts(t0) + "\"}]")), status: 400, typ: grpcInvalid, msg: `invalid UTF-8 within "/params/spine/0/customer_id"`},
		{name: "events spine nesting too deep", req: eventsReq(params(svc + `,"spine":[{"customer_id":"c1","ts":"` + ts(t0) + `","doc":` + deep(jsondec.MaxDepth) + `}]`)), status: 400, typ: grpcInvalid, msg: limit},
		{name: "events trailing data", req: eventsReq(params(svc+`,"spine":[`+spineRow+`]`) + `x`), status: 400, typ: grpcInvalid, msg: "data after the JSON object"},
		{name: "events end before start", req: eventsReq(params(svc + fmt.Sprintf(`,"start_time":%q,"end_time":%q`, ts(t0), ts(t0.Add(-time.Hour))))), status: 400, typ: grpcInvalid, msg: "params.end_time (2024-05-01T11:00:00Z) must be after params.start_time (2024-05-01T12:00:00Z)"},
		{name: "events NDJSON malformed line", req: ndjsonReq(q, spineRow+"\n{\"customer_id\":\n"), status: 400, typ: grpcInvalid, msg: "line 2: invalid JSON: unexpected end of the line"},
		{name: "events NDJSON nesting too deep", req: ndjsonReq(q, `{"customer_id":"c1","ts":"`+ts(t0)+`","doc":`+deep(jsondec.MaxDepth)+"}\n"), status: 400, typ: grpcInvalid, msg: "line 1: invalid JSON: read error: " + depthMsg},
		{name: "events NDJSON unknown query parameter", req: ndjsonReq(url.Values{"workspace_name": {"shop"}, "feature_service_name": {"shop_fs"}, "spine": {"x"}}, spineRow+"\n"), status: 400, typ: grpcInvalid, msg: `unknown query parameter "spine"`},

		// GET a feature view.
		{name: "feature view unknown", req: testRequest{method: http.MethodGet, path: "/api/v1/workspaces/shop/feature-views/nope"}, status: 404, typ: grpcNotFound, msg: `feature view "nope" not found in workspace "shop"`},
		{name: "feature view unknown workspace", req: testRequest{method: http.MethodGet, path: "/api/v1/workspaces/ghost/feature-views/last_order"}, authz: ghost, status: 404, typ: grpcNotFound, msg: `workspace "ghost" not found`},

		// GET a feature view's ingest rate.
		{name: "ingest-rate minutes zero", req: get(rateOf("shop", "last_order", "minutes=0")), status: 400, typ: grpcInvalid, msg: `query parameter minutes="0" must be a whole number from 1 to 1440 (default 60)`},
		{name: "ingest-rate minutes over a day", req: get(rateOf("shop", "last_order", "minutes=1441")), status: 400, typ: grpcInvalid, msg: `query parameter minutes="1441" must be a whole number from 1 to 1440`},
		{name: "ingest-rate minutes negative", req: get(rateOf("shop", "last_order", "minutes=-5")), status: 400, typ: grpcInvalid, msg: `query parameter minutes="-5" must be a whole number`},
		{name: "ingest-rate minutes not a number", req: get(rateOf("shop", "last_order", "minutes=1h")), status: 400, typ: grpcInvalid, msg: `query parameter minutes="1h" must be a whole number`},
		{name: "ingest-rate minutes fractional", req: get(rateOf("shop", "last_order", "minutes=1.5")), status: 400, typ: grpcInvalid, msg: `query parameter minutes="1.5" must be a whole number`},
		{name: "ingest-rate minutes empty", req: get(rateOf("shop", "last_order", "minutes=")), status: 400, typ: grpcInvalid, msg: `query parameter minutes="" must be a whole number`},
		{name: "ingest-rate minutes twice", req: get(rateOf("shop", "last_order", "minutes=5&minutes=10")), status: 400, typ: grpcInvalid, msg: "query parameter minutes is given 2 times; give it once"},
		{name: "ingest-rate unknown query parameter", req: get(rateOf("shop", "last_order", "minute=5")), status: 400, typ: grpcInvalid, msg: `unknown query parameter(s) "minute" (known: minutes)`},
		{name: "ingest-rate unknown view", req: get(rateOf("shop", "nope", "")), status: 404, typ: grpcNotFound, msg: `feature view "nope" not found in workspace "shop"`},
		{name: "ingest-rate unknown workspace", req: get(rateOf("ghost", "last_order", "minutes=5")), authz: ghost, status: 404, typ: grpcNotFound, msg: `workspace "ghost" not found`},

		// POST plan and apply: bad repo files and bad bodies.
		{name: "repo YAML syntax error", req: planReq("shop.yaml", shopEdit("    ttl: 2d\n", "    ttl: [2d\n")), status: 400, typ: grpcInvalid, msg: "shop.yaml:39: invalid YAML: "},
		{name: "repo unknown field", req: planReq("shop.yaml", shopEdit("    ttl: 2d\n", "    ttl: 2d\n    tll: 2d\n")), status: 400, typ: grpcInvalid, msg: `shop.yaml:40: feature view "recent_order": unknown key "tll" (did you mean "ttl"?)`},
		{name: "repo duplicate view names", req: planReq("shop.yaml", shopEdit("  - name: recent_order\n", "  - name: last_order\n")), status: 400, typ: grpcInvalid, msg: `shop.yaml:35: feature view "last_order": duplicate feature view name (first defined at line 25)`},
		{name: "repo bad aggregation", req: planReq("shop.yaml", shopEdit("      - attribute: {name: rem}\n", "      - aggregate: {input: rem, function: cnt, window: 1h}\n")), status: 400, typ: grpcInvalid, msg: `shop.yaml:61: feature view "calc_fv": aggregate 1: unknown function "cnt" (did you mean "count"?)`},
		{name: "repo bad window", req: planReq("shop.yaml", shopEdit("      - attribute: {name: rem}\n", "      - aggregate: {input: rem, function: count, window: 1x}\n")), status: 400, typ: grpcInvalid, msg: `shop.yaml:61: feature view "calc_fv": aggregate 1: window: "1x" is neither a duration nor lifetime`},
		{name: "repo unknown source", req: planReq("shop.yaml", shopEdit("    source: calcs\n", "    source: calc\n")), status: 400, typ: grpcInvalid, msg: `shop.yaml:52: feature view "calc_fv": unknown source "calc" (did you mean "calcs"?)`},
		{name: "repo bad transform", req: planReq("shop.yaml", shopEdit(`rem: "a % b"`, `rem: "a %% b"`)), status: 400, typ: grpcInvalid, msg: `shop.yaml:58: feature view "calc_fv": transform column "rem": cannot compile "a %% b"`},
		{name: "repo transform reads an unknown column", req: planReq("shop.yaml", shopEdit(`rem: "a % b"`, `rem: "a % c"`)), status: 400, typ: grpcInvalid, msg: `shop.yaml:58: feature view "calc_fv": transform column "rem": cannot compile "a % c": unknown column "c"`},
		{name: "repo empty", req: planReq("shop.yaml", ""), status: 400, typ: grpcInvalid, msg: "shop.yaml: the file is empty"},
		{name: "apply bad repo", req: applyReq("shop.yaml", shopEdit("    ttl: 2d\n", "    ttl: two days\n")), status: 400, typ: grpcInvalid, msg: `shop.yaml:39: feature view "recent_order": ttl: "two days" is not a duration`},
		{name: "plan body not JSON", req: postJSON("/api/v1/plan", `file: shop.yaml`), status: 400, typ: grpcInvalid, msg: "request body is not valid JSON: invalid character 'i' in literal false"},
		{name: "plan body not an object", req: postJSON("/api/v1/plan", `["shop.yaml"]`), status: 400, typ: grpcInvalid, msg: "request body must be a JSON object"},
		{name: "plan body unknown member", req: postJSON("/api/v1/plan", `{"file":"shop.yaml","contents":"x"}`), status: 400, typ: grpcInvalid, msg: `unknown field "contents" in the request body (expected file, content)`},
		{name: "plan body duplicate member", req: postJSON("/api/v1/plan", `{"file":"a.yaml","file":"b.yaml","content":"x"}`), status: 400, typ: grpcInvalid, msg: `duplicate object member name "file"`},
		{name: "plan body invalid UTF-8", req: postJSON("/api/v1/plan", "{\"file\":\"shop.yaml\",\"content\":\"workspace: sh\xffop\"}"), status: 400, typ: grpcInvalid, msg: `invalid UTF-8 within "/content"`},
		{name: "plan body trailing data", req: postJSON("/api/v1/plan", `{"file":"shop.yaml","content":"x"}{}`), status: 400, typ: grpcInvalid, msg: "data after the JSON object"},
		{name: "plan body nesting too deep", req: postJSON("/api/v1/plan", `{"file":`+deep(jsondec.MaxDepth+1)+`}`), status: 400, typ: grpcInvalid, msg: limit},
		{name: "apply body too large", req: postJSON("/api/v1/apply", `{"file":"shop.yaml","content":"x"}`+big), status: 413, typ: grpcInvalid, msg: fmt.Sprintf("larger than the limit of %d bytes", badInputLimit)},
		{name: "apply body content a number", req: postJSON("/api/v1/apply", `{"file":"shop.yaml","content":7}`), status: 400, typ: grpcInvalid, msg: `field "content" of the request body must be a string, not a number`},

		// Service accounts and roles.
		{name: "account empty name", req: account(`{"name":"  "}`), status: 400, typ: grpcInvalid, msg: "the name is empty"},
		{name: "account name too long", req: account(`{"name":"` + strings.Repeat("n", 129) + `"}`), status: 400, typ: grpcInvalid, msg: "at most 128"},
		{name: "account control characters", req: account(`{"name":"a\u0007b"}`), status: 400, typ: grpcInvalid, msg: "control characters"},
		{name: "account unknown member", req: account(`{"name":"x","role":"owner"}`), status: 400, typ: grpcInvalid, msg: `unknown field "role" in the request body (expected name, description)`},
		{name: "account name a number", req: account(`{"name":7}`), status: 400, typ: grpcInvalid, msg: `field "name" of the request body must be a string, not a number`},
		{name: "account empty body", req: account(``), status: 400, typ: grpcInvalid, msg: "unexpected end of input"},
		{name: "account body trailing data", req: account(`{"name":"x"} {"name":"y"}`), status: 400, typ: grpcInvalid, msg: "data after the JSON object"},
		{name: "account body duplicate member", req: account(`{"name":"x","name":"y"}`), status: 400, typ: grpcInvalid, msg: `duplicate object member name "name"`},
		{name: "account body invalid UTF-8", req: account("{\"name\":\"x\xff\"}"), status: 400, typ: grpcInvalid, msg: `invalid UTF-8 within "/name"`},
		{name: "assign-role bad role", req: assign(`{"service_account":"0123456789abcdef","workspace":"shop","role":"boss"}`), status: 400, typ: grpcInvalid, msg: `invalid role "boss": want viewer, editor or owner`},
		{name: "assign-role missing workspace", req: assign(`{"service_account":"0123456789abcdef","role":"viewer"}`), status: 400, typ: grpcInvalid, msg: "workspace is required"},
		{name: "assign-role missing account", req: assign(`{"workspace":"shop","role":"viewer"}`), status: 400, typ: grpcInvalid, msg: "service_account is required"},
		{name: "assign-role unknown account", req: assign(`{"service_account":"0123456789abcdef","workspace":"shop","role":"viewer"}`), status: 404, typ: grpcNotFound, msg: `"0123456789abcdef": it does not exist`},
		{name: "assign-role malformed account ID", req: assign(`{"service_account":"bob","workspace":"shop","role":"viewer"}`), status: 404, typ: grpcNotFound, msg: `no such service account "bob": IDs are 16 lowercase hex characters`},
		{name: "assign-role unknown member", req: assign(`{"service_account":"0123456789abcdef","workspace":"shop","role":"viewer","expires":"never"}`), status: 400, typ: grpcInvalid, msg: `unknown field "expires" in the request body (expected service_account, workspace, role)`},
		{name: "delete unknown account", req: testRequest{method: http.MethodDelete, path: "/api/v1/service-accounts/0123456789abcdef"}, status: 404, typ: grpcNotFound, msg: `"0123456789abcdef" not found`},

		// Jobs and materializations.
		{name: "jobs unknown query parameter", req: get("/api/v1/workspaces/shop/jobs?stat=RUNNING"), status: 400, typ: grpcInvalid, msg: `unknown query parameter(s) "stat" (known: feature_view, type, state, limit)`},
		{name: "jobs unknown type", req: get("/api/v1/workspaces/shop/jobs?type=backfil"), status: 400, typ: grpcInvalid, msg: `unknown job type "backfil"`},
		{name: "jobs unknown state", req: get("/api/v1/workspaces/shop/jobs?state=running"), status: 400, typ: grpcInvalid, msg: `unknown job state "running"; use PENDING, RUNNING`},
		{name: "jobs limit zero", req: get("/api/v1/workspaces/shop/jobs?limit=0"), status: 400, typ: grpcInvalid, msg: `limit "0" must be a whole number from 1 to 1000`},
		{name: "jobs limit not a number", req: get("/api/v1/workspaces/shop/jobs?limit=ten"), status: 400, typ: grpcInvalid, msg: `limit "ten" must be a whole number`},
		{name: "jobs of an unknown workspace", req: get("/api/v1/workspaces/ghost/jobs"), authz: ghost, status: 404, typ: grpcNotFound, msg: `workspace "ghost" not found`},
		{name: "job unknown", req: get("/api/v1/workspaces/shop/jobs/job_nope"), status: 404, typ: grpcNotFound, msg: `job "job_nope" not found in workspace "shop"`},
		{name: "job wait not a duration", req: get("/api/v1/workspaces/shop/jobs/job_nope?wait=forever"), status: 400, typ: grpcInvalid, msg: `wait "forever" must be a duration from 0s to`},
		{name: "job wait too long", req: get("/api/v1/workspaces/shop/jobs/job_nope?wait=1h"), status: 400, typ: grpcInvalid, msg: `wait "1h" must be a duration`},
		{name: "job unknown query parameter", req: get("/api/v1/workspaces/shop/jobs/job_nope?timeout=5s"), status: 400, typ: grpcInvalid, msg: `unknown query parameter(s) "timeout" (known: wait)`},
		{name: "cancel unknown job", req: postJSON("/api/v1/workspaces/shop/jobs/job_nope/cancel", ""), status: 404, typ: grpcNotFound, msg: `job "job_nope" not found`},
		{name: "delete-keys unknown view", req: deleteKeys("nope", `{"keys":[{"customer_id":"c1"}]}`), status: 404, typ: grpcNotFound, msg: `feature view "nope" not found in workspace "shop"`},
		{name: "delete-keys missing join key", req: deleteKeys("last_order", `{"keys":[{"customer_id":"c1"},{"customer":"c2"}]}`), status: 400, typ: grpcInvalid, msg: `keys[1]: join key "customer_id" of feature view "last_order" is missing`},
		{name: "delete-keys unknown join key", req: deleteKeys("last_order", `{"keys":[{"customer_id":"c1","x":1}]}`), status: 400, typ: grpcInvalid, msg: `keys[0]: "x" is not a join key of feature view "last_order"`},
		{name: "delete-keys null key", req: deleteKeys("last_order", `{"keys":[{"customer_id":null}]}`), status: 400, typ: grpcInvalid, msg: `keys[0]: join key "customer_id": is null`},
		{name: "delete-keys too many", req: deleteKeys("last_order", tooManyKeys()), status: 400, typ: grpcInvalid, msg: "10001 keys given; one request may delete at most 10000"},
		{name: "delete-keys offline only", req: deleteKeys("last_order", `{"keys":[{"customer_id":"c1"}],"online":false,"offline":true}`), status: 400, typ: grpcInvalid, msg: "offline: true with online: false is not allowed"},
		{name: "delete-keys no keys", req: deleteKeys("last_order", `{"keys":[]}`), status: 400, typ: grpcInvalid, msg: "keys is empty"},
		{name: "delete-keys keys not a list", req: deleteKeys("last_order", `{"keys":{"customer_id":"c1"}}`), status: 400, typ: grpcInvalid, msg: `keys`},
		{name: "delete-keys unknown member", req: deleteKeys("last_order", `{"keys":[{"customer_id":"c1"}],"hard":true}`), status: 400, typ: grpcInvalid, msg: `unknown field "hard"`},
		{name: "materialize unknown view", req: materialize("nope", `{"start_time":"2026-01-01T00:00:00Z","end_time":"2026-01-02T00:00:00Z"}`), status: 404, typ: grpcNotFound, msg: `feature view "nope" not found in workspace "shop"`},
		{name: "materialize end before start", req: materialize("last_order", `{"start_time":"2026-01-02T00:00:00Z","end_time":"2026-01-01T00:00:00Z"}`), status: 400, typ: grpcInvalid, msg: "start_time 2026-01-02T00:00:00Z must be before end_time 2026-01-01T00:00:00Z"},
		{name: "materialize without times", req: materialize("last_order", `{}`), status: 400, typ: grpcInvalid, msg: "start_time and end_time are required"},
		{name: "materialize time not RFC 3339", req: materialize("last_order", `{"start_time":"yesterday","end_time":"2026-01-01T00:00:00Z"}`), status: 400, typ: grpcInvalid, msg: `field "start_time" of the request body must be an RFC 3339 time`},
		{name: "materialize unknown member", req: materialize("last_order", `{"start_time":"2026-01-01T00:00:00Z","end_time":"2026-01-02T00:00:00Z","overwrite_all":true}`), status: 400, typ: grpcInvalid, msg: `unknown field "overwrite_all"`},
		{name: "materialize neither online nor offline", req: materialize("last_order", `{"start_time":"2026-01-01T00:00:00Z","end_time":"2026-01-02T00:00:00Z","online":false,"offline":false}`), status: 400, typ: grpcInvalid, msg: "online and offline are both false"},
		{name: "materialize a view without batch files", req: materialize("last_order", `{"start_time":"2026-01-01T00:00:00Z","end_time":"2026-01-02T00:00:00Z"}`), status: 400, typ: grpcInvalid, msg: `reads source "orders", which has no batch files to materialize`},

		// Run a feature view.
		{name: "run body not JSON", req: runReq("last_order", `{"start_time":`), status: 400, typ: grpcInvalid, msg: "request body is not valid JSON"},
		{name: "run unknown member", req: runReq("last_order", runBody("full", `,"level":"full"`)), status: 400, typ: grpcInvalid, msg: `unknown field "level"`},
		{name: "run unknown level", req: runReq("last_order", runBody("tiles", "")), status: 400, typ: grpcInvalid, msg: `aggregation_level "tiles" is unknown: use disabled, partial or full`},
		{name: "run without level", req: runReq("last_order", `{"start_time":"2024-05-01T00:00:00Z","end_time":"2024-05-02T00:00:00Z"}`), status: 400, typ: grpcInvalid, msg: `aggregation_level "" is unknown`},
		{name: "run end equals start", req: runReq("last_order", `{"start_time":"2024-05-01T00:00:00Z","end_time":"2024-05-01T00:00:00Z","aggregation_level":"full"}`), status: 400, typ: grpcInvalid, msg: "end_time 2024-05-01T00:00:00Z must be after start_time 2024-05-01T00:00:00Z"},
		{name: "run without start", req: runReq("last_order", `{"end_time":"2024-05-01T00:00:00Z","aggregation_level":"full"}`), status: 400, typ: grpcInvalid, msg: "start_time is required"},
		{name: "run time not RFC 3339", req: runReq("last_order", `{"start_time":"yesterday","end_time":"2024-05-01T00:00:00Z","aggregation_level":"full"}`), status: 400, typ: grpcInvalid, msg: `field "start_time" of the request body must be an RFC 3339 time`},
		{name: "run unknown view", req: runReq("nope", runBody("full", "")), status: 404, typ: grpcNotFound, msg: `feature view "nope" not found in workspace "shop"`},
		{name: "run unknown mock source", req: runReq("last_order", runBody("full", `,"mock_sources":{"calcs":[]}`)), status: 400, typ: grpcInvalid, msg: `mock_sources names "calcs", which is not the source of feature view "last_order": its source is "orders"`},
		{name: "run mock row of the wrong type", req: runReq("last_order", runBody("full", `,"mock_sources":{"orders":[{"customer_id":"c1","ts":"2024-05-01T01:00:00Z"},{"customer_id":"c1","ts":"2024-05-01T01:00:00Z","amount":[1]}]}`)), status: 400, typ: grpcInvalid, msg: `mock_sources "orders": row 1: column "amount": expected Int64, got an array`},
		{name: "run mock row without its join key", req: runReq("last_order", runBody("disabled", `,"mock_sources":{"orders":[{"ts":"2024-05-01T01:00:00Z","amount":1}]}`)), status: 400, typ: grpcInvalid, msg: `row 0: feature view "last_order": join key "customer_id" is missing or null`},
		// Output streams (workspace os of streamRepo; TestBadInputCatalogue
		// applies it). 410, an offset the log no longer retains, needs a
		// truncated log, which this node's workspaces (they keep their
		// records offline) never have: TestOutputStreamGone checks it.
		{name: "output-stream from not an offset", req: get(osStream("latest", "from=12")), status: 400, typ: grpcInvalid, msg: `query parameter from: offset "12" is not valid: it has 2 characters, not 24`},
		{name: "output-stream from upper-case hex", req: get(osStream("latest", "from=00000000000000010000000A")), status: 400, typ: grpcInvalid, msg: "character 24 is not a lower-case hex digit"},
		{name: "output-stream from entry zero", req: get(osStream("latest", "from=000000000000000000000000")), status: 400, typ: grpcInvalid, msg: "log positions start at entry 1"},
		{name: "output-stream from empty", req: get(osStream("latest", "from=")), status: 400, typ: grpcInvalid, msg: `offset "" is not valid: it has 0 characters`},
		{name: "output-stream from twice", req: get(osStream("latest", "from=earliest&from=latest")), status: 400, typ: grpcInvalid, msg: "query parameter from is given 2 times"},
		{name: "output-stream unknown query parameter", req: get(osStream("latest", "offset=earliest")), status: 400, typ: grpcInvalid, msg: `unknown query parameter(s) "offset" (known: from)`},
		{name: "output-stream malformed Last-Event-ID", req: testRequest{method: http.MethodGet, path: osStream("latest", "from=earliest"), header: map[string]string{"Last-Event-ID": "latest"}},
			status: 400, typ: grpcInvalid, msg: `header Last-Event-ID: offset "latest" is not valid`},
		{name: "output-stream unknown workspace", req: get("/api/v1/workspaces/ghost/feature-views/latest/output-stream"), authz: ghost, status: 404, typ: grpcNotFound, msg: `workspace "ghost" not found`},
		{name: "output-stream unknown view", req: get(osStream("nope", "")), status: 404, typ: grpcNotFound, msg: `feature view "nope" not found in workspace "os"`},
		{name: "output-stream view without output_stream", req: get(osStream("quiet", "from=earliest")), status: 404, typ: grpcNotFound, msg: `feature view "quiet" in workspace "os" has no output stream: declare output_stream:`},
		{name: "run mock row not an object", req: runReq("last_order", runBody("full", `,"mock_sources":{"orders":[7]}`)), status: 400, typ: grpcInvalid, msg: `field "mock_sources/orders/0" of the request body must be a map, not a number`},
	}
}

// runReq posts body to the run endpoint of view in workspace shop.
func runReq(view, body string) testRequest {
	return postJSON("/api/v1/workspaces/shop/feature-views/"+view+"/run", body)
}

// runBody is a run body over 2024-05-01 at level with the extra members.
func runBody(level, extra string) string {
	return `{"start_time":"2024-05-01T00:00:00Z","end_time":"2024-05-02T00:00:00Z","aggregation_level":"` + level + `"` + extra + `}`
}

func get(path string) testRequest { return testRequest{method: http.MethodGet, path: path} }

// rateOf is the path of a view's ingest rate with a query.
func rateOf(ws, view, query string) string {
	return "/api/v1/workspaces/" + ws + "/feature-views/" + view + "/ingest-rate?" + query
}

// osStream is the path of an output stream of workspace os (streamRepo).
func osStream(view, query string) string {
	return "/api/v1/workspaces/os/feature-views/" + view + "/output-stream?" + query
}

func deleteKeys(view, body string) testRequest {
	return postJSON("/api/v1/workspaces/shop/feature-views/"+view+"/delete-keys", body)
}

// tooManyKeys is a delete-keys body with one key more than allowed.
func tooManyKeys() string {
	var b strings.Builder
	b.WriteString(`{"keys":[`)
	for i := range 10001 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{}`) // the count is checked first; short, to stay within the test body limit
	}
	b.WriteString(`]}`)
	return b.String()
}

func materialize(view, body string) testRequest {
	return postJSON("/api/v1/workspaces/shop/feature-views/"+view+"/materialization-jobs", body)
}

// requireBadInput asserts r is the case's error and returns its message
// (the messages of every record error, for recordErrors).
func requireBadInput(t *testing.T, c badCase, r testReply) string {
	t.Helper()
	switch c.typ {
	case reqValidation, reqNotFound, reqTooLarge:
		return requireRequestError(t, r.status, r.body, c.status, c.typ)
	case recordInvalid:
		errs := requireRecordErrors(t, r.status, r.body, "shop")
		var msgs []string
		for _, e := range errs {
			msgs = append(msgs, e.ErrorMessage)
		}
		return strings.Join(msgs, "\n")
	}
	requireServingError(t, r.status, r.body, c.status, grpcCodes[c.typ])
	var e struct{ Message string }
	require.NoError(t, json.Unmarshal(r.body, &e))
	return e.Message
}

func TestBadInputCatalogue(t *testing.T) {
	m := &authMatrix{node: newNode(t, httpapi.Options{MaxBodyBytes: badInputLimit})}
	_, err := m.db.ApplyWait(context.Background(), "os.yaml", []byte(streamRepo))
	require.NoError(t, err)
	m.admin = m.account("admin", map[string]auth.Role{"shop": auth.Owner, "ads": auth.Owner, "os": auth.Owner})
	cases := badCases()
	require.GreaterOrEqual(t, len(cases), 60)
	names := map[string]bool{}
	for _, c := range cases {
		require.False(t, names[c.name], "duplicate case %q", c.name)
		names[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			authz := bearer(m.admin)
			if c.authz != nil {
				authz = bearer(c.authz(m))
			}
			before := m.state()
			r := m.send(c.req, authz)
			msg := requireBadInput(t, c, r)
			t.Logf("%d %s", r.status, msg)
			assert.Contains(t, msg, c.msg)
			if c.msg == depthMsg || strings.HasSuffix(c.msg, depthMsg) {
				assert.Regexp(t, regexp.QuoteMeta(depthMsg)+`\d+`+regexp.QuoteMeta(depthLimitMsg), msg)
			}
			m.requireUnchanged(t, before, c.name)
		})
	}
	t.Logf("%d bad requests", len(cases))
}
