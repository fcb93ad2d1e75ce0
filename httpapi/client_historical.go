package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/internal/jsondec"
	"github.com/featurelog/featurelog/schema"
	"github.com/featurelog/featurelog/tabread"
)

// HistoricalQuery is a historical request as the Client sends it.
type HistoricalQuery struct {
	Workspace, Service string
	TimestampKey       string // spine mode; empty: the spine's one timestamp column
	FromSource         bool
	// Range mode (used when the spine is nil): [Start, End) and optionally
	// the join-key maps to report.
	Start, End time.Time
	Entities   []map[string]any
}

// maxAnswerLine bounds one line of a historical answer the Client reads.
const maxAnswerLine = 64 << 20

// GetFeaturesForEvents posts an NDJSON spine (one JSON object per line)
// and copies the streamed NDJSON answer to out, line by line. An error the
// node reports after the answer started (its last line) is returned, and
// is not copied.
func (c *Client) GetFeaturesForEvents(ctx context.Context, workspace, service, timestampKey string, fromSource bool, spine io.Reader, out io.Writer) error {
	rows, err := c.OpenHistorical(ctx, HistoricalQuery{Workspace: workspace, Service: service, TimestampKey: timestampKey, FromSource: fromSource}, spine)
	if err != nil {
		return err
	}
	return rows.copyTo(out)
}

// GetFeaturesForRange asks for the intervals of [start, end) over which
// each key's features hold, and copies the streamed NDJSON answer to out.
func (c *Client) GetFeaturesForRange(ctx context.Context, workspace, service string, fromSource bool, start, end time.Time, entities []map[string]any, out io.Writer) error {
	rows, err := c.OpenHistorical(ctx, HistoricalQuery{Workspace: workspace, Service: service, FromSource: fromSource, Start: start, End: end, Entities: entities}, nil)
	if err != nil {
		return err
	}
	return rows.copyTo(out)
}

// OpenHistorical sends a historical request: spine mode with an NDJSON
// spine, which streams, or range mode when spine is nil. It returns once
// the answer's header arrived; read the rows with Next, then Close.
func (c *Client) OpenHistorical(ctx context.Context, q HistoricalQuery, spine io.Reader) (*HistoricalRows, error) {
	req, err := c.historicalRequest(ctx, q, spine)
	if err != nil {
		return nil, err
	}
	return c.openStream(req)
}

// openStream sends a request answered by a streamed NDJSON answer whose
// columns Featurelog-Columns lists (historical, run), with the API key.
func (c *Client) openStream(req *http.Request) (*HistoricalRows, error) {
	if c.APIKey != "" {
		req.Header.Set("Authorization", "Tecton-key "+c.APIKey)
	}
	hc := *c.HTTP
	hc.Timeout = 0 // the answer streams for as long as it takes; ctx cancels
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("calling %s: %w", c.BaseURL, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, responseError(resp)
	}
	cols, err := parseColumns(resp.Header.Get(ColumnsHeader))
	if err != nil {
		resp.Body.Close()
		return nil, fmt.Errorf("the node's answer has a bad %s header: %w", ColumnsHeader, err)
	}
	return &HistoricalRows{body: resp.Body, lr: tabread.NewLineReader(resp.Body, maxAnswerLine), cols: cols, nlead: leadColumns(cols)}, nil
}

// leadColumns counts the leading columns: up to _valid_to in range mode,
// else the spine's.
func leadColumns(cols []engine.HistoricalColumn) int {
	n := 0
	for i, c := range cols {
		if c.Spine {
			n = i + 1
		}
		if c.Name == "_valid_to" && !c.Spine {
			return i + 1
		}
	}
	return n
}

func (c *Client) historicalRequest(ctx context.Context, q HistoricalQuery, spine io.Reader) (*http.Request, error) {
	const path = "/api/v1/feature-service/get-features-for-events"
	var (
		req *http.Request
		err error
	)
	if spine != nil {
		v := url.Values{"workspace_name": {q.Workspace}, "feature_service_name": {q.Service}}
		if q.TimestampKey != "" {
			v.Set("timestamp_key", q.TimestampKey)
		}
		if q.FromSource {
			v.Set("from_source", "true")
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL+path+"?"+v.Encode(), spine)
		if err == nil {
			req.Header.Set("Content-Type", "application/x-ndjson")
		}
	} else {
		params := map[string]any{"workspace_name": q.Workspace, "feature_service_name": q.Service, "from_source": q.FromSource,
			"start_time": q.Start.UTC().Format(time.RFC3339Nano), "end_time": q.End.UTC().Format(time.RFC3339Nano)}
		if q.Entities != nil {
			params["entities"] = q.Entities
		}
		body, merr := json.Marshal(map[string]any{"params": params})
		if merr != nil {
			return nil, merr
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL+path, bytes.NewReader(body))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	if err != nil {
		return nil, err
	}
	return req, nil
}

// responseError turns a non-200 answer into an error carrying its message.
func responseError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var e struct{ Message string }
	if json.Unmarshal(data, &e) == nil && e.Message != "" {
		return fmt.Errorf("%s (HTTP %d)", e.Message, resp.StatusCode)
	}
	return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(data)))
}

// parseColumns reads the Featurelog-Columns header.
func parseColumns(h string) ([]engine.HistoricalColumn, error) {
	var raw []struct {
		Name     string `json:"name"`
		Spine    bool   `json:"spine"`
		DataType *struct {
			Type        string `json:"type"`
			ElementType *struct {
				Type string `json:"type"`
			} `json:"elementType"`
		} `json:"dataType"`
	}
	if err := json.Unmarshal([]byte(h), &raw); err != nil {
		return nil, err
	}
	cols := make([]engine.HistoricalColumn, len(raw))
	for i, r := range raw {
		cols[i] = engine.HistoricalColumn{Name: r.Name, Spine: r.Spine}
		if r.Spine {
			continue
		}
		if r.DataType == nil {
			return nil, fmt.Errorf("column %q has neither spine nor dataType", r.Name)
		}
		k, ok := kindOfDataType(r.DataType.Type)
		if !ok {
			return nil, fmt.Errorf("column %q has unknown data type %q", r.Name, r.DataType.Type)
		}
		cols[i].Type = schema.ScalarType(k)
		if k == schema.Array {
			if r.DataType.ElementType == nil {
				return nil, fmt.Errorf("array column %q has no elementType", r.Name)
			}
			elem, ok := kindOfDataType(r.DataType.ElementType.Type)
			if !ok || elem == schema.Array {
				return nil, fmt.Errorf("array column %q has unknown element type %q", r.Name, r.DataType.ElementType.Type)
			}
			cols[i].Type = schema.ArrayOf(elem)
		}
	}
	return cols, nil
}

// kindOfDataType inverts schema.Kind.DataType (int64 and float64 stand
// for the 32-bit kinds too).
func kindOfDataType(s string) (schema.Kind, bool) {
	for _, k := range []schema.Kind{schema.Int64, schema.Float64, schema.String, schema.Bool, schema.Timestamp, schema.Array} {
		if k.DataType() == s {
			return k, true
		}
	}
	return schema.Null, false
}

// HistoricalRows reads a streamed historical answer.
type HistoricalRows struct {
	body  io.ReadCloser
	lr    *tabread.LineReader
	cols  []engine.HistoricalColumn
	nlead int    // leading columns: the spine's, or range mode's join keys, _valid_from and _valid_to
	line  []byte // the last line read
}

// Columns returns the answer's columns.
func (h *HistoricalRows) Columns() []engine.HistoricalColumn { return h.cols }

// Line returns the raw NDJSON of the row Next returned last, valid until
// the next call to Next.
func (h *HistoricalRows) Line() []byte { return h.line }

// Next returns the next row as an engine sink receives it: spine values
// as their raw JSON (jsontext.Value), typed leading values (range mode's
// join keys, _valid_from, _valid_to) and features as schema.Value. At the
// end it returns io.EOF; an error line from the node is returned as an
// error.
func (h *HistoricalRows) Next() (lead []any, features []schema.Value, err error) {
	line, n, err := h.lr.Next()
	if err == io.EOF {
		return nil, nil, io.EOF
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading the node's answer: %w", err)
	}
	h.line = line
	vals := make([]any, 0, len(h.cols))
	names := make([]string, 0, len(h.cols))
	err = tabread.ReadObject(line, func(name string, raw jsontext.Value) error {
		names = append(names, name)
		vals = append(vals, raw.Clone())
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("the node's answer, line %d: %w", n, err)
	}
	if e := answerError(names, vals); e != nil {
		return nil, nil, e
	}
	return h.decode(n, names, vals)
}

// answerError recognizes the error line that ends a failed answer.
func answerError(names []string, vals []any) error {
	if len(names) != 3 || names[0] != "code" || names[1] != "error" || names[2] != "message" {
		return nil
	}
	var msg string
	if err := json.Unmarshal(vals[2].(jsontext.Value), &msg); err != nil {
		return nil
	}
	return fmt.Errorf("%s (the node stopped the answer with code %s)", msg, vals[0].(jsontext.Value))
}

func (h *HistoricalRows) decode(n int, names []string, vals []any) ([]any, []schema.Value, error) {
	if len(names) != len(h.cols) {
		return nil, nil, fmt.Errorf("the node's answer, line %d: %d members for %d columns", n, len(names), len(h.cols))
	}
	nlead := h.nlead
	lead := make([]any, nlead)
	features := make([]schema.Value, len(h.cols)-nlead)
	for i, c := range h.cols {
		if names[i] != c.Name {
			return nil, nil, fmt.Errorf("the node's answer, line %d: member %d is %q, expected %q", n, i+1, names[i], c.Name)
		}
		raw := vals[i].(jsontext.Value)
		if c.Spine {
			lead[i] = raw
			continue
		}
		v, err := DecodeValue(raw, c.Type)
		if err != nil {
			return nil, nil, fmt.Errorf("the node's answer, line %d, column %q: %w", n, c.Name, err)
		}
		if i < nlead {
			lead[i] = v
		} else {
			features[i-nlead] = v
		}
	}
	return lead, features, nil
}

// Close releases the answer; call it also after an error.
func (h *HistoricalRows) Close() error { return h.body.Close() }

func (h *HistoricalRows) copyTo(out io.Writer) error {
	defer h.Close()
	var buf []byte
	for {
		_, _, err := h.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		buf = append(append(buf[:0], h.line...), '\n') // h.line is the reader's buffer: do not append to it
		if _, err := out.Write(buf); err != nil {
			return err
		}
	}
}

// DecodeValue decodes a served value with the encodings of SPEC §4 (the
// inverse of the server's encoding): int64 from a string (or a number),
// floats from numbers or "NaN"/"Infinity"/"-Infinity", timestamps from
// RFC 3339 strings, arrays from JSON arrays, null.
func DecodeValue(raw jsontext.Value, t schema.Type) (schema.Value, error) {
	if raw.Kind() == 'n' {
		return schema.Value{}, nil
	}
	if t.Kind == schema.Array {
		return decodeArray(raw, t.Elem)
	}
	var s string
	if raw.Kind() == '"' {
		b, err := jsontext.AppendUnquote(nil, raw)
		if err != nil {
			return schema.Value{}, err
		}
		s = string(b)
	}
	switch t.Kind {
	case schema.String:
		if raw.Kind() == '"' {
			return schema.Str(s), nil
		}
	case schema.Int64, schema.Int32:
		if raw.Kind() == '0' {
			s = string(raw)
		}
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return schema.Value{Kind: t.Kind, I: i}, nil
		}
	case schema.Float64, schema.Float32:
		return decodeFloat(raw, s, t.Kind)
	case schema.Bool:
		if k := raw.Kind(); k == 't' || k == 'f' {
			return schema.BoolVal(k == 't'), nil
		}
	case schema.Timestamp:
		if ts, err := schema.ParseTimestamp(s); err == nil && raw.Kind() == '"' {
			return schema.Time(ts), nil
		}
	}
	return schema.Value{}, fmt.Errorf("%s is not a %s value", raw, t)
}

func decodeFloat(raw jsontext.Value, s string, k schema.Kind) (schema.Value, error) {
	switch {
	case raw.Kind() == '0':
		s = string(raw)
	case s == "NaN", s == "Infinity", s == "-Infinity": // strconv.ParseFloat reads these
	default:
		return schema.Value{}, fmt.Errorf("%s is not a number", raw)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return schema.Value{}, err
	}
	return schema.Value{Kind: k, F: f}, nil
}

func decodeArray(raw jsontext.Value, elem schema.Kind) (schema.Value, error) {
	d := jsondec.Get(raw)
	defer jsondec.Put(d)
	if tok, err := d.ReadToken(); err != nil || tok.Kind() != '[' {
		return schema.Value{}, fmt.Errorf("%s is not an array", raw)
	}
	out := []schema.Value{}
	for d.PeekKind() != ']' {
		v, err := d.ReadValue()
		if err != nil {
			return schema.Value{}, err
		}
		e, err := DecodeValue(v, schema.ScalarType(elem))
		if err != nil {
			return schema.Value{}, err
		}
		if e.IsNull() {
			return schema.Value{}, errors.New("an array element is null")
		}
		out = append(out, e)
	}
	return schema.ArrayVal(out), nil
}
