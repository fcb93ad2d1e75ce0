package httpapi_test

// The lines of streamed answers, checked as they pass (contract_test.go):
// an output stream's NDJSON lines and server-sent events carry
// OutputRecord objects of api/openapi.yaml, with heartbeats between them;
// historical and run answers carry one JSON object per line. Any of them
// may end with one error object of the ServingError schema, and nothing
// may follow it.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/pb33f/libopenapi-validator/schema_validation"
	"github.com/pb33f/libopenapi/datamodel/high/base"
)

// maxCheckedLine bounds a line the checker holds; longer lines pass
// unchecked.
const maxCheckedLine = 4 << 20

// lineChecker checks a streamed answer line by line.
type lineChecker struct {
	c        *contract
	sse      bool   // server-sent events, not NDJSON
	records  bool   // an output stream: lines are OutputRecords
	partial  []byte // the line being received
	skipping bool   // the line being received is too long to check
	ended    bool   // an error object was sent: nothing may follow
	event    sseFields
	lines    int
	problems []string
	sv       schema_validation.SchemaValidator // made on first use; one per stream
}

// sseFields is the server-sent event being received.
type sseFields struct {
	id, name string
	data     []byte
	has      bool
}

func (lc *lineChecker) write(p []byte) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			lc.add(p)
			return
		}
		lc.add(p[:i])
		if !lc.skipping {
			lc.line(lc.partial)
		}
		lc.partial, lc.skipping = lc.partial[:0], false
		p = p[i+1:]
	}
}

func (lc *lineChecker) add(p []byte) {
	if len(lc.partial)+len(p) > maxCheckedLine {
		lc.skipping = true
		return
	}
	lc.partial = append(lc.partial, p...)
}

// finish checks what the answer ended with.
func (lc *lineChecker) finish() {
	if len(lc.partial) > 0 && !lc.skipping {
		lc.problemf("the answer's last line has no newline: %.80q", lc.partial)
	}
	if lc.sse && lc.event.has {
		lc.problemf("the last server-sent event has no empty line after it")
	}
}

func (lc *lineChecker) problemf(format string, args ...any) {
	if len(lc.problems) < 5 {
		lc.problems = append(lc.problems, fmt.Sprintf("stream line %d: ", lc.lines)+fmt.Sprintf(format, args...))
	}
}

func (lc *lineChecker) line(l []byte) {
	lc.lines++
	if lc.sse {
		lc.sseLine(string(l))
		return
	}
	if len(l) == 0 {
		if !lc.records {
			lc.problemf("an empty line (heartbeats are an output stream's)")
		}
		return
	}
	lc.object(l, "")
}

// object checks one JSON object of the stream: a row, a record, or the
// error that ends the stream. id, for an SSE record, must be its offset.
func (lc *lineChecker) object(l []byte, id string) {
	if lc.ended {
		lc.problemf("%.80q follows the error that ended the stream", l)
		return
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(l, &m); err != nil {
		lc.problemf("not a JSON object: %v: %.80q", err, l)
		return
	}
	if _, isErr := m["code"]; isErr {
		lc.ended = true
		lc.schema("ServingError", l)
		return
	}
	if !lc.records {
		return // a row: its members are the spine's and the features'
	}
	lc.schema("OutputRecord", l)
	if off := string(m["offset"]); lc.sse && off != fmt.Sprintf("%q", id) {
		lc.problemf("the event's id %q is not its record's offset %s", id, off)
	}
}

func (lc *lineChecker) schema(name string, l []byte) {
	s := lc.c.schema(name)
	if s == nil {
		lc.problemf("components/schemas/%s is not in the document", name)
		return
	}
	if lc.sv == nil {
		lc.sv = schema_validation.NewSchemaValidator()
	}
	validating.Lock()
	ok, errs := lc.sv.ValidateSchemaBytes(s, l)
	validating.Unlock()
	if !ok {
		for _, p := range describe(name, errs) {
			lc.problemf("%s: %.200s", p, l)
		}
	}
}

// sseLine takes one line of server-sent events: "id: ", "event: ",
// "data: " fields, ": heartbeat" comments, and the empty line that ends
// an event.
func (lc *lineChecker) sseLine(l string) {
	switch {
	case l == "":
		if lc.event.has {
			lc.endEvent()
		}
		lc.event = sseFields{}
	case strings.HasPrefix(l, ":"):
		if lc.event.has {
			lc.problemf("a comment inside an event")
		}
	case strings.HasPrefix(l, "id: "):
		lc.event.id, lc.event.has = l[4:], true
	case strings.HasPrefix(l, "event: "):
		lc.event.name, lc.event.has = l[7:], true
	case strings.HasPrefix(l, "data: "):
		lc.event.data, lc.event.has = append(lc.event.data, l[6:]...), true
	default:
		lc.problemf("not a server-sent event field: %.80q", l)
	}
}

func (lc *lineChecker) endEvent() {
	e := lc.event
	switch e.name {
	case "record":
		if e.id == "" {
			lc.problemf("a record event without an id")
		}
		lc.object(e.data, e.id)
	case "error":
		if !bytes.Contains(e.data, []byte(`"code"`)) {
			lc.problemf("an error event whose data is no error object: %.80q", e.data)
		}
		lc.object(e.data, "")
	default:
		lc.problemf("an event named %q (want record or error)", e.name)
	}
}

// schema returns a schema of components/schemas.
func (c *contract) schema(name string) *base.Schema {
	p := c.model.Components.Schemas.GetOrZero(name)
	if p == nil {
		return nil
	}
	return p.Schema()
}
