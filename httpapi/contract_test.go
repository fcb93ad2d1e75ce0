package httpapi_test

// The contract: every exchange the package's tests make with a node is
// checked against api/openapi.yaml, and every (path, method, status) the
// document lists must be exercised by them.
//
// The tests' node constructors (newNode, newLiveNode, ...) wrap their
// server's handler with validated. For each exchange it checks, failing
// the test with the route, the status and the violation:
//   - the route is in the document, or the router refused it (404, 405);
//   - the status is listed for the route, with the content type and
//     headers the document gives it, and a JSON body matching its schema;
//     a streamed answer (NDJSON, server-sent events) is checked line by
//     line as it passes (contract_stream_test.go): output records against
//     OutputRecord, rows as JSON objects, a last error against
//     ServingError;
//   - a request the document calls invalid (body schema, parameters) was
//     not answered 2xx: the document may not be stricter than the node.
//     A request the document allows may still be refused (a bad record,
//     an unknown view): those are the 4xx the tests are made of.
//   - a 2xx of an operation that needs a key, on a node with auth on,
//     came with an Authorization header of the documented form.
//
// After the whole package ran, TestMain (main_test.go) calls
// checkCoverage: every (path, method, status) of the document must have
// been seen, except those listed in notCovered with the reason, and an
// entry of notCovered that was seen fails too, so that the list stays
// exact.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	valerrors "github.com/pb33f/libopenapi-validator/errors"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"

	"github.com/featurelog/featurelog/api"
)

// notCovered lists the (route, status) pairs of the document that no test
// of this package provokes yet, each with why. checkCoverage fails when a
// pair outside this list is not seen, and when a pair in it is.
var notCovered = map[string]string{
	"POST /api/v1/apply 503": "Kafka not committing a repo file in cluster mode: the produce below it is ingest's, whose refusal cluster/node_test.go's broker restart exercises; over HTTP it would wait out the 10 s produce timeout",
	"POST /api/v1/workspaces/{ws}/feature-views/{name}/delete-keys 503":          "as apply's 503: Kafka not committing the deletion's transaction (cluster mode); a deletion Kafka committed is answered 202 even while an owner cannot be reached, its share PENDING",
	"POST /api/v1/workspaces/{ws}/feature-views/{name}/materialization-jobs 503": "as delete-keys' 503 (Kafka not committing the request, or a partition without an owner when the jobs are gathered for the overlap check, which TestClusterDeleteKeysAndJobs provokes on the jobs routes)",
	"POST /api/v1/service-accounts 503":                                          "Kafka not committing an account change (cluster mode): the produce below it is ingest's, whose refusal cluster/node_test.go's broker restart exercises",
	"DELETE /api/v1/service-accounts/{id} 503":                                   "as POST /api/v1/service-accounts 503",
	"POST /api/v1/access-control/assign-role 503":                                "as POST /api/v1/service-accounts 503",
	"POST /internal/v1/workspaces/{ws}/partition-jobs 401":                       "the cluster tests run with --no-auth (accounts are per node: DESIGN.md); the route authenticates as GET .../jobs, whose 401 the auth matrix checks",
	"POST /internal/v1/workspaces/{ws}/partition-jobs 403":                       "as its 401: the route requires the viewer role as GET .../jobs does, whose 403 the auth matrix checks",
	"POST /internal/v1/workspaces/{ws}/partition-views 401":                      "as partition-jobs' 401: the cluster tests run with --no-auth; the route authenticates as GET .../feature-views/{name}, whose 401 the auth matrix checks",
	"POST /internal/v1/workspaces/{ws}/partition-views 403":                      "as its 401: the route requires the viewer role as GET .../feature-views/{name} does, whose 403 the auth matrix checks",
	"POST /ingest 500": "an ingest failure other than the log's (which answers 503): it needs a fault inside the engine past the log, which no file-system fault of these tests reaches",
}

// contract is the parsed document, its validator and what was seen.
type contract struct {
	model  *v3.Document
	v      validator.Validator
	noBody validator.Validator // v without request body validation, for streamed request bodies
	routes *http.ServeMux      // the document's routes, to name a request's route as Go's router does

	mu   sync.Mutex
	seen map[string]int // "METHOD /path/{template} status" → exchanges
	late []string       // violations found after their test had ended
}

var theContract = sync.OnceValues(loadContract)

func loadContract() (*contract, error) {
	doc, err := libopenapi.NewDocument(api.OpenAPI())
	if err != nil {
		return nil, fmt.Errorf("api/openapi.yaml: %w", err)
	}
	m, err := doc.BuildV3Model()
	if err != nil {
		return nil, fmt.Errorf("api/openapi.yaml: building the model: %w", err)
	}
	c := &contract{model: &m.Model, routes: http.NewServeMux(), seen: map[string]int{}}
	// Security is checked by authOK: the tests send missing and malformed
	// keys on purpose, and --no-auth nodes need none.
	c.v = validator.NewValidatorFromV3Model(c.model, config.WithoutSecurityValidation())
	c.noBody = validator.NewValidatorFromV3Model(c.model, config.WithoutSecurityValidation(), config.WithoutRequestBodyValidation())
	for _, op := range c.operations() {
		c.routes.Handle(op.method+" "+op.path, http.NotFoundHandler())
	}
	return c, nil
}

// docOperation is one operation of the document.
type docOperation struct {
	method, path string
	op           *v3.Operation
}

func (c *contract) operations() []docOperation {
	var ops []docOperation
	for path, item := range c.model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			ops = append(ops, docOperation{strings.ToUpper(method), path, op})
		}
	}
	return ops
}

// pairs returns every "METHOD path status" the document lists.
func (c *contract) pairs() []string {
	var out []string
	for _, o := range c.operations() {
		for code := range o.op.Responses.Codes.KeysFromOldest() {
			out = append(out, o.method+" "+o.path+" "+code)
		}
	}
	sort.Strings(out)
	return out
}

// route returns the document's pattern for r ("POST /api/v1/.../{name}"),
// or "" if the document has none.
func (c *contract) route(r *http.Request) string {
	_, pattern := c.routes.Handler(r)
	return pattern
}

// operation returns the operation of a pattern from route.
func (c *contract) operation(pattern string) *v3.Operation {
	method, path, _ := strings.Cut(pattern, " ")
	if method == http.MethodHead {
		method = http.MethodGet
	}
	for _, o := range c.operations() {
		if o.method == method && o.path == path {
			return o.op
		}
	}
	return nil
}

// reporter fails one test with the violations of its node's exchanges;
// those found after the test ended are left for TestMain.
type reporter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (rep *reporter) fail(c *contract, msg string) {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	if !rep.done {
		rep.t.Errorf("%s", msg)
		return
	}
	c.mu.Lock()
	c.late = append(c.late, rep.t.Name()+": "+msg)
	c.mu.Unlock()
}

// validated wraps a node's handler so that each exchange is checked
// against the document. noAuth says the node serves without keys.
func validated(t testing.TB, h http.Handler, noAuth bool) http.Handler {
	t.Helper()
	c, err := theContract()
	if err != nil {
		t.Fatal(err)
	}
	rep := &reporter{t: t}
	t.Cleanup(func() {
		rep.mu.Lock()
		rep.done = true
		rep.mu.Unlock()
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := &teeBody{ReadCloser: r.Body}
		r.Body = body
		rec := &exchange{ResponseWriter: w, c: c, records: strings.HasSuffix(c.route(r), "/output-stream")}
		h.ServeHTTP(rec, r)
		if msg := c.check(r, body, rec, noAuth); msg != "" {
			rep.fail(c, msg)
		}
	})
}

// Bounds of what the wrapper keeps of a request or response body to
// validate: larger bodies are passed through and not checked.
const (
	maxCheckedRequest  = 4 << 20
	maxCheckedResponse = 8 << 20
)

// teeBody keeps what the handler reads of a request body.
type teeBody struct {
	io.ReadCloser
	buf       bytes.Buffer
	eof       bool // the handler read the body to its end
	truncated bool // more than maxCheckedRequest was read
}

func (b *teeBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if b.buf.Len()+n <= maxCheckedRequest {
		b.buf.Write(p[:n])
	} else {
		b.truncated = true
	}
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// exchange records the status, headers and (unless streamed) the body of
// a response while passing them through. Unwrap lets
// http.ResponseController reach the connection (flushes, deadlines, full
// duplex).
type exchange struct {
	http.ResponseWriter
	c         *contract
	records   bool // the route is an output stream, whose lines are OutputRecords
	status    int
	header    http.Header // as sent with the status line
	body      bytes.Buffer
	truncated bool
	lines     *lineChecker // a streamed answer's lines, checked as they pass
}

func (e *exchange) WriteHeader(code int) {
	if e.status == 0 {
		e.status = code
		e.header = e.ResponseWriter.Header().Clone()
		if code == http.StatusOK && streamed(e.header) {
			e.lines = &lineChecker{c: e.c, sse: strings.HasPrefix(e.header.Get("Content-Type"), "text/event-stream"), records: e.records}
		}
	}
	e.ResponseWriter.WriteHeader(code)
}

func (e *exchange) Write(p []byte) (int, error) {
	if e.status == 0 {
		e.WriteHeader(http.StatusOK)
	}
	if e.lines != nil {
		e.lines.write(p)
	} else if !streamed(e.header) {
		if e.body.Len()+len(p) <= maxCheckedResponse {
			e.body.Write(p)
		} else {
			e.truncated = true
		}
	}
	return e.ResponseWriter.Write(p)
}

func (e *exchange) Unwrap() http.ResponseWriter { return e.ResponseWriter }

// streamed reports whether a response streams (its body is not kept).
func streamed(h http.Header) bool {
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	return mt == "application/x-ndjson" || mt == "text/event-stream"
}

// check returns the exchange's violations, or "".
func (c *contract) check(r *http.Request, body *teeBody, e *exchange, noAuth bool) string {
	if e.status == 0 {
		if r.Context().Err() != nil {
			return "" // the client left before any answer
		}
		e.status, e.header = http.StatusOK, e.ResponseWriter.Header().Clone()
	}
	pattern := c.route(r)
	where := fmt.Sprintf("%s %s → %d", r.Method, r.URL.Path, e.status)
	if pattern == "" {
		if e.status == http.StatusNotFound || e.status == http.StatusMethodNotAllowed {
			return "" // the router's refusal of a route the node does not serve
		}
		return fmt.Sprintf("openapi: %s: the node serves a route api/openapi.yaml does not list", where)
	}
	where = fmt.Sprintf("%s (route %s)", where, pattern)
	c.note(pattern, e.status)
	var problems []string
	if !e.truncated {
		problems = append(problems, c.checkResponse(r, e)...)
	}
	if e.status/100 == 2 {
		problems = append(problems, c.checkAccepted(r, body, pattern, noAuth)...)
	}
	if e.lines != nil {
		if r.Context().Err() == nil {
			e.lines.finish() // a client that left may have cut a line
		}
		problems = append(problems, e.lines.problems...)
	}
	if len(problems) == 0 {
		return ""
	}
	return fmt.Sprintf("openapi: %s violates api/openapi.yaml:\n\t%s", where, strings.Join(problems, "\n\t"))
}

func (c *contract) note(pattern string, status int) {
	method, path, _ := strings.Cut(pattern, " ")
	if method == http.MethodHead {
		method = http.MethodGet
	}
	c.mu.Lock()
	c.seen[method+" "+path+" "+strconv.Itoa(status)]++
	c.mu.Unlock()
}

// validating serializes the validator's calls: validating renders the
// shared document model's schemas, and rendering writes to them
// (libopenapi's DynamicValue), so two streams validated at once race.
var validating sync.Mutex

// checkResponse validates the status, headers and body of a response.
func (c *contract) checkResponse(r *http.Request, e *exchange) []string {
	req := r.Clone(context.Background())
	req.Body = http.NoBody
	resp := &http.Response{StatusCode: e.status, Header: e.header, Body: io.NopCloser(bytes.NewReader(e.body.Bytes())), Request: req}
	validating.Lock()
	_, errs := c.v.ValidateHttpResponse(req, resp)
	validating.Unlock()
	return describe("response", errs)
}

// authHeader is the documented Authorization header; the scheme's case
// does not matter (auth.ParseAuthorization).
var authHeader = regexp.MustCompile(`(?i)^(Tecton-key|Bearer) +\S+$`)

// checkAccepted checks that the document allows a request the node
// accepted, and that it carried a key if the operation needs one.
func (c *contract) checkAccepted(r *http.Request, body *teeBody, pattern string, noAuth bool) []string {
	var problems []string
	if op := c.operation(pattern); !noAuth && needsKey(c.model, op) && !authHeader.MatchString(r.Header.Get("Authorization")) {
		problems = append(problems, fmt.Sprintf("request: answered %s without an Authorization header of the form `Tecton-key <key>` or `Bearer <key>` (%q)", pattern, r.Header.Get("Authorization")))
	}
	if body.truncated || (!body.eof && body.buf.Len() > 0) {
		return problems // the body was not read whole: nothing to validate
	}
	req := r.Clone(context.Background())
	req.Body = io.NopCloser(bytes.NewReader(body.buf.Bytes()))
	req.ContentLength = int64(body.buf.Len())
	v := c.v
	switch mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); {
	case mt == "application/x-ndjson" || mt == "application/ndjson" || mt == "application/jsonl":
		// A streamed spine: its lines are checked by the node, one by
		// one; the validator would decode it as one JSON value.
		req.Header.Set("Content-Type", "application/x-ndjson")
		v = c.noBody
	case req.ContentLength > 0:
		// The node reads any other body as JSON, whatever its
		// Content-Type (the document's info says so).
		req.Header.Set("Content-Type", "application/json")
	}
	validating.Lock()
	_, errs := v.ValidateHttpRequestSync(req)
	validating.Unlock()
	for _, p := range describe("request", errs) {
		problems = append(problems, p+" (yet the node accepted it: the document is stricter than the code)")
	}
	return problems
}

// needsKey reports whether an operation requires the API key.
func needsKey(doc *v3.Document, op *v3.Operation) bool {
	if op == nil {
		return false
	}
	if op.Security != nil {
		return len(op.Security) > 0
	}
	return len(doc.Security) > 0
}

// describe turns validation errors into lines.
func describe(what string, errs []*valerrors.ValidationError) []string {
	var out []string
	for _, err := range errs {
		line := what + ": " + err.Message
		if err.Reason != "" && err.Reason != err.Message {
			line += ": " + err.Reason
		}
		for _, s := range err.SchemaValidationErrors {
			loc := s.FieldPath
			if loc == "" {
				loc = strings.Join(s.InstancePath, "/")
			}
			line += fmt.Sprintf("\n\t\tat %q: %s (%s)", loc, s.Reason, s.KeywordLocation)
		}
		out = append(out, line)
	}
	return out
}

// checkCoverage is called by TestMain after a run of the whole package:
// it returns an error naming every (path, method, status) of the
// document not seen and not in notCovered, every entry of notCovered
// that was seen, and the violations found after their tests had ended.
func checkCoverage() (summary string, err error) {
	c, err := theContract()
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var missing, stale []string
	pairs := c.pairs()
	seen := 0
	for _, p := range pairs {
		_, exempt := notCovered[p]
		switch {
		case c.seen[p] > 0 && exempt:
			stale = append(stale, p)
			seen++
		case c.seen[p] > 0:
			seen++
		case !exempt:
			missing = append(missing, p)
		}
	}
	for p := range notCovered {
		if !contains(pairs, p) {
			stale = append(stale, p+" (not in the document)")
		}
	}
	exchanges := 0
	for _, n := range c.seen {
		exchanges += n
	}
	summary = fmt.Sprintf("openapi coverage: %d of %d (path, method, status) of api/openapi.yaml exercised, by %d validated exchanges; %d listed in notCovered",
		seen, len(pairs), exchanges, len(notCovered))
	var msgs []string
	if len(missing) > 0 {
		msgs = append(msgs, "not exercised by any test (add a test, or list it in notCovered in contract_test.go with the reason):\n\t"+strings.Join(missing, "\n\t"))
	}
	if len(stale) > 0 {
		sort.Strings(stale)
		msgs = append(msgs, "listed in notCovered but exercised or gone (remove it from the list):\n\t"+strings.Join(stale, "\n\t"))
	}
	if len(c.late) > 0 {
		msgs = append(msgs, "violations found after their test ended:\n\t"+strings.Join(c.late, "\n\t"))
	}
	if len(msgs) > 0 {
		return summary, errors.New(strings.Join(msgs, "\n"))
	}
	return summary, nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
