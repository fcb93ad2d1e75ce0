package engine

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/featurelog/featurelog/internal/jsondec"
	"github.com/featurelog/featurelog/schema"
)

// IngestJSON ingests one Stream Ingest API request body (SPEC §2). The
// body is decoded token by token straight into typed rows: duplicate
// names, invalid UTF-8 and trailing data are rejected, and every invalid
// record is reported. authorize is called with the workspace before
// anything else is looked up.
func (db *DB) IngestJSON(body []byte, authorize Authorizer) (*IngestResponse, error) {
	return db.IngestJSONWithKey(body, "", authorize)
}

// IngestJSONWithKey is IngestJSON with an Idempotency-Key (SPEC §2); an
// empty key is none. A request whose key was used in its workspace by a
// request that wrote, less than Options.IdempotencyWindow ago (across
// restarts), is answered with that request's response, marked Replayed,
// and writes nothing, whatever its body. Concurrent requests with one key
// write at most once. A key whose first request failed or wrote nothing
// is not remembered; dry runs ignore keys. The key must be 1 to
// MaxIdempotencyKeyLen bytes of printable ASCII.
func (db *DB) IngestJSONWithKey(body []byte, key string, authorize Authorizer) (*IngestResponse, error) {
	if key != "" {
		if err := checkIdempotencyKey(key); err != nil {
			return nil, err
		}
	}
	env, err := decodeEnvelope(body)
	if err != nil {
		return nil, err
	}
	if authorize != nil {
		if err := authorize(env.workspace); err != nil {
			return nil, err
		}
	}
	return db.ingestOnce(env.workspace, key, env.dryRun, func(tk *idemTicket) (*IngestResponse, error) {
		return db.ingestEnvelope(env, tk)
	})
}

// ingestEnvelope decodes the records of env and commits them.
func (db *DB) ingestEnvelope(env *envelope, tk *idemTicket) (*IngestResponse, error) {
	db.ingestMu.RLock()
	defer db.ingestMu.RUnlock()
	if db.closed.Load() {
		return nil, ErrClosed
	}
	ws, err := db.cat.Load().workspace(env.workspace)
	if err != nil {
		return nil, err
	}
	b := &batch{ws: ws, dryRun: env.dryRun, idem: tk}
	defer b.recycleRows()
	if err := decodeRecords(env.records, b); err != nil {
		return nil, err
	}
	return db.commit(b)
}

// rowsPool holds the row buffers of decoded JSON requests. Nothing keeps
// a request's rows once it is answered: views project each row into
// memory of their own (viewRT.served), and the log entry is encoded
// before the commit returns. A load of 1000-record requests allocated
// and grew a fresh buffer per request (the growth alone 3.5% of a 5M
// event load's CPU), and the garbage was the collector's to scan.
var rowsPool sync.Pool

// maxPooledRows bounds the buffers kept for reuse (values).
const maxPooledRows = 1 << 16

// takeRows returns an empty row buffer, reused when one is free.
func takeRows() []schema.Value {
	if p, _ := rowsPool.Get().(*[]schema.Value); p != nil {
		return (*p)[:0]
	}
	return nil
}

// recycleRows hands b's row buffers back for reuse, cleared so that
// they keep no string of the request alive.
func (b *batch) recycleRows() {
	for i := range b.sections {
		rows := b.sections[i].rows
		b.sections[i].rows = nil
		if cap(rows) == 0 || cap(rows) > maxPooledRows {
			continue
		}
		clear(rows)
		rowsPool.Put(&rows)
	}
}

// envelope is the top level of an ingest body; records stays raw until the
// workspace is known, since fields may come in any order.
type envelope struct {
	workspace string
	dryRun    bool
	records   jsontext.Value
}

func badRequest(format string, args ...any) *Error {
	return errorf(CodeInvalidArgument, format, args...)
}

func syntaxError(err error) *Error {
	var de *jsondec.DepthError
	if errors.As(err, &de) {
		return badRequest("request body is refused: %v", de)
	}
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		return badRequest("request body is not valid JSON: unexpected end of input")
	}
	return badRequest("request body is not valid JSON: %s", strings.TrimPrefix(err.Error(), "jsontext: "))
}

func decodeEnvelope(body []byte) (*envelope, error) {
	d := jsondec.Get(body)
	defer jsondec.Put(d)
	tok, err := d.ReadToken()
	if err != nil {
		return nil, syntaxError(err)
	}
	if tok.Kind() != '{' {
		return nil, badRequest("request body must be a JSON object, not %s", jsondec.KindName(tok.Kind()))
	}
	env := &envelope{}
	seen := map[string]bool{}
	for d.PeekKind() != '}' {
		name, err := d.ReadToken()
		if err != nil {
			return nil, syntaxError(err)
		}
		if err := env.field(d.Decoder, body, name.String(), seen); err != nil {
			return nil, err
		}
	}
	if _, err := d.ReadToken(); err != nil {
		return nil, syntaxError(err)
	}
	if _, err := d.ReadToken(); err != io.EOF {
		return nil, badRequest("request body has data after the JSON object")
	}
	for _, f := range []string{"workspace_name", "dry_run", "records"} {
		if !seen[f] {
			return nil, badRequest("Required field `%s` is missing in the request", f)
		}
	}
	return env, nil
}

func (env *envelope) field(d *jsontext.Decoder, body []byte, name string, seen map[string]bool) error {
	seen[name] = true
	switch name {
	case "workspace_name":
		tok, err := d.ReadToken()
		if err != nil {
			return syntaxError(err)
		}
		if tok.Kind() != '"' || tok.String() == "" {
			return badRequest("field `workspace_name` must be a non-empty string")
		}
		env.workspace = tok.String()
	case "dry_run":
		tok, err := d.ReadToken()
		if err != nil {
			return syntaxError(err)
		}
		if k := tok.Kind(); k != 't' && k != 'f' {
			return badRequest("field `dry_run` must be true or false, not %s", jsondec.KindName(k))
		}
		env.dryRun = tok.Bool()
	case "records":
		if d.PeekKind() != '{' {
			return badRequest("field `records` must be an object mapping push source names to lists of records")
		}
		v, err := d.ReadValue()
		if err != nil {
			return syntaxError(err)
		}
		// The value's bytes are the body's at [end−len, end): slice the
		// body rather than copy the decoder's buffer.
		end := int(d.InputOffset())
		env.records = jsontext.Value(body[end-len(v) : end])
	default:
		return badRequest("unknown field %q in the request (expected workspace_name, dry_run and records)", name)
	}
	return nil
}

// decodeRecords decodes the records object into b's sections.
func decodeRecords(raw jsontext.Value, b *batch) error {
	d := jsondec.GetPart(raw) // raw is part of the body decodeEnvelope read
	defer jsondec.Put(d)
	if _, err := d.ReadToken(); err != nil { // '{'
		return syntaxError(err)
	}
	for d.PeekKind() != '}' {
		name, err := d.ReadToken()
		if err != nil {
			return syntaxError(err)
		}
		src, err := lookupSource(b.ws, name.String())
		if err != nil {
			return err
		}
		if err := decodeSourceRecords(d.Decoder, src, b); err != nil {
			return err
		}
	}
	return nil
}

func lookupSource(ws *workspace, name string) (*sourceRT, error) {
	src := ws.sources[name]
	if src == nil {
		return nil, errorf(CodeNotFound, "push source %q not found in workspace %q", name, ws.name)
	}
	if len(src.views) == 0 {
		return nil, errorf(CodeNotFound, "no feature view is subscribed to push source %q in workspace %q", name, ws.name)
	}
	return src, nil
}

func decodeSourceRecords(d *jsontext.Decoder, src *sourceRT, b *batch) error {
	if d.PeekKind() != '[' {
		return badRequest("records of push source %q must be a list of {\"record\": {...}} objects", src.def.Name)
	}
	d.ReadToken()
	s := batchSection{src: src, rows: takeRows()}
	w := len(src.def.Schema)
	for d.PeekKind() != ']' {
		s.rows = append(s.rows, make([]schema.Value, w)...)
		s.bad = append(s.bad, false)
		if err := decodeWrapped(d, &s, b); err != nil {
			return err
		}
		s.n++
	}
	if _, err := d.ReadToken(); err != nil {
		return syntaxError(err)
	}
	b.sections = append(b.sections, s)
	return nil
}

// decodeWrapped decodes one {"record": {...}} element.
func decodeWrapped(d *jsontext.Decoder, s *batchSection, b *batch) error {
	where := func() string { return fmt.Sprintf("push source %q record %d", s.src.def.Name, s.n) }
	tok, err := d.ReadToken()
	if err != nil {
		return syntaxError(err)
	}
	if tok.Kind() != '{' {
		return badRequest("%s must be an object {\"record\": {...}}, not %s", where(), jsondec.KindName(tok.Kind()))
	}
	found := false
	for d.PeekKind() != '}' {
		name, err := d.ReadToken()
		if err != nil {
			return syntaxError(err)
		}
		if name.String() != "record" {
			return badRequest("%s: unknown field %q (expected \"record\")", where(), name.String())
		}
		found = true
		if err := decodeRecord(d, s, b); err != nil {
			return err
		}
	}
	d.ReadToken()
	if !found {
		return badRequest("%s: field \"record\" is missing", where())
	}
	return nil
}

// decodeRecord decodes one record object into row s.n. Schema violations
// become record errors and decoding goes on; syntax errors stop it.
func decodeRecord(d *jsontext.Decoder, s *batchSection, b *batch) error {
	src := s.src
	if d.PeekKind() != '{' {
		b.recordError("", src.def.Name, s.n, "record must be a JSON object, not %s", jsondec.KindName(d.PeekKind()))
		s.bad[s.n] = true
		return skip(d)
	}
	d.ReadToken()
	row := s.row(s.n)
	for d.PeekKind() != '}' {
		name, err := d.ReadToken()
		if err != nil {
			return syntaxError(err)
		}
		col, ok := src.colIndex[name.String()]
		if !ok {
			b.recordError("", src.def.Name, s.n, "unknown column %q%s", name.String(), didYouMean(name.String(), src))
			s.bad[s.n] = true
			if err := skip(d); err != nil {
				return err
			}
			continue
		}
		c := src.def.Schema[col]
		v, msg, err := decodeValue(d, c.Type)
		if err != nil {
			return syntaxError(err)
		}
		if msg != "" {
			b.recordError("", src.def.Name, s.n, "column %q: %s", c.Name, msg)
			s.bad[s.n] = true
			continue
		}
		row[col] = v
	}
	d.ReadToken()
	return nil
}

func skip(d *jsontext.Decoder) error {
	if err := d.SkipValue(); err != nil {
		return syntaxError(err)
	}
	return nil
}

// decodeValue reads one JSON value as type t. A value of the wrong type is
// skipped and reported in msg; err is a syntax error.
func decodeValue(d *jsontext.Decoder, t schema.Type) (v schema.Value, msg string, err error) {
	k := d.PeekKind()
	if k == 'n' {
		_, err = d.ReadToken()
		return schema.Value{}, "", err
	}
	if t.Kind == schema.Array {
		return decodeArray(d, t.Elem)
	}
	if k == '{' || k == '[' {
		return v, fmt.Sprintf("expected %v, got %s", t, jsondec.KindName(k)), d.SkipValue()
	}
	tok, err := d.ReadToken()
	if err != nil {
		return v, "", err
	}
	v, msg = scalarFromToken(tok, t.Kind)
	return v, msg, nil
}

func decodeArray(d *jsontext.Decoder, elem schema.Kind) (schema.Value, string, error) {
	if k := d.PeekKind(); k != '[' {
		return schema.Value{}, fmt.Sprintf("expected Array(%v), got %s", elem, jsondec.KindName(k)), d.SkipValue()
	}
	d.ReadToken()
	var out []schema.Value
	msg := ""
	for i := 0; d.PeekKind() != ']'; i++ {
		k := d.PeekKind()
		if k == '{' || k == '[' || k == 'n' {
			if msg == "" {
				msg = fmt.Sprintf("array element %d: expected %v, got %s", i, elem, jsondec.KindName(k))
			}
			if err := d.SkipValue(); err != nil {
				return schema.Value{}, "", err
			}
			continue
		}
		tok, err := d.ReadToken()
		if err != nil {
			return schema.Value{}, "", err
		}
		v, m := scalarFromToken(tok, elem)
		if m != "" && msg == "" {
			msg = fmt.Sprintf("array element %d: %s", i, m)
		}
		out = append(out, v)
	}
	if _, err := d.ReadToken(); err != nil {
		return schema.Value{}, "", err
	}
	if msg != "" {
		return schema.Value{}, msg, nil
	}
	return schema.ArrayVal(out), "", nil
}

// scalarFromToken converts a scalar token to kind k, or says why not.
func scalarFromToken(tok jsontext.Token, k schema.Kind) (schema.Value, string) {
	tk := tok.Kind()
	switch {
	case k == schema.String && tk == '"':
		return schema.Str(tok.String()), ""
	case k == schema.Bool && (tk == 't' || tk == 'f'):
		return schema.BoolVal(tok.Bool()), ""
	case k == schema.Timestamp && tk == '"':
		t, err := schema.ParseTimestamp(tok.String())
		if err != nil {
			return schema.Value{}, err.Error()
		}
		return schema.Time(t), ""
	case k.Integral() && (tk == '0' || tk == '"'):
		return intFromToken(tok, k)
	case (k == schema.Float64 || k == schema.Float32) && tk == '0':
		f, err := tok.Float()
		if err != nil {
			return schema.Value{}, fmt.Sprintf("%s is out of range for %v", tok.String(), k)
		}
		v, err := schema.FloatOfKind(f, k)
		if err != nil {
			return schema.Value{}, err.Error()
		}
		return v, ""
	}
	return schema.Value{}, fmt.Sprintf("expected %v, got %s", k, tokenDesc(tok))
}

// intFromToken accepts integral JSON numbers (1, -3, 1e3, 2.0) and, as
// Tecton encodes int64, decimal strings ("123").
func intFromToken(tok jsontext.Token, k schema.Kind) (schema.Value, string) {
	text := tok.String()
	if tok.Kind() == '"' {
		i, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return schema.Value{}, fmt.Sprintf("expected %v, got the string %q", k, text)
		}
		return intOfKind(i, k)
	}
	i, err := tok.Int()
	if err == nil {
		return intOfKind(i, k)
	}
	if errors.Is(err, strconv.ErrRange) {
		return schema.Value{}, fmt.Sprintf("%s is out of range for %v", text, k)
	}
	f, ferr := strconv.ParseFloat(text, 64)
	if ferr != nil || f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return schema.Value{}, fmt.Sprintf("%s is not an integer; %v needs a whole number", text, k)
	}
	return intOfKind(int64(f), k)
}

func intOfKind(i int64, k schema.Kind) (schema.Value, string) {
	v, err := schema.IntOfKind(i, k)
	if err != nil {
		return v, err.Error()
	}
	return v, ""
}

func tokenDesc(tok jsontext.Token) string {
	switch tok.Kind() {
	case '"':
		s := tok.String()
		if len(s) > 40 {
			s = s[:40] + "…"
		}
		return fmt.Sprintf("the string %q", s)
	case '0':
		return "the number " + tok.String()
	}
	return jsondec.KindName(tok.Kind())
}
