package httpapi

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/schema"
)

// historicalParams are the params of get-features-for-events (SPEC §5),
// from a JSON body or, for an NDJSON spine, from the query string. Both
// Tecton spellings are accepted (canon).
type historicalParams struct {
	workspace    string
	service      string
	timestampKey string
	fromSource   bool
	// Spine mode: the JSON body's spine (nil for NDJSON, whose rows
	// stream from the body).
	spine    *jsonSpine
	hasSpine bool
	// Range mode.
	start, end  time.Time
	hasStart    bool
	hasEnd      bool
	entities    []map[string]any
	hasEntities bool
	// minPositions (cluster mode) are Kafka positions ingest returned:
	// each partition the join reads waits until its owner applied those
	// of the partition. A single node has applied its writes already.
	minPositions []engine.Position
}

func (p *historicalParams) rangeMode() bool { return p.hasStart || p.hasEnd }

// decodeHistorical parses a JSON body {"params": {...}}.
func decodeHistorical(body []byte) (*historicalParams, error) {
	p := &historicalParams{}
	if err := decodeParamsBody(body, p.field); err != nil {
		return nil, err
	}
	return p, p.check()
}

func (p *historicalParams) field(d *jsontext.Decoder, name string) error {
	var err error
	where := "params." + name
	switch canon(name) {
	case "workspacename":
		p.workspace, err = readString(d, where)
	case "featureservicename":
		p.service, err = readString(d, where)
	case "timestampkey":
		p.timestampKey, err = readString(d, where)
	case "fromsource":
		p.fromSource, err = readBool(d, where)
	case "spine":
		p.hasSpine = true
		p.spine, err = readJSONSpine(d, where)
	case "starttime":
		p.hasStart = true
		p.start, err = readTime(d, where)
	case "endtime":
		p.hasEnd = true
		p.end, err = readTime(d, where)
	case "entities":
		p.hasEntities = true
		p.entities, err = readEntities(d, where)
	case "minpositions":
		p.minPositions, err = readMinPositions(d)
	default:
		err = paramError("unknown parameter %q (expected workspace_name, feature_service_name, timestamp_key, from_source, spine, start_time, end_time, entities, min_positions)", name)
	}
	return err
}

// check refuses parameter sets that name no mode or two.
func (p *historicalParams) check() error {
	switch {
	case p.workspace == "":
		return paramError("params.workspace_name is required")
	case p.service == "":
		return paramError("params.feature_service_name is required")
	case p.hasSpine && p.rangeMode():
		return paramError("give either params.spine (spine mode) or params.start_time and params.end_time (range mode), not both")
	case !p.hasSpine && !p.rangeMode():
		return paramError("params.spine (a list of rows) or params.start_time and params.end_time (range mode) is required")
	case p.hasSpine && p.hasEntities:
		return paramError("params.entities belongs to range mode, with start_time and end_time; a spine names its keys in its rows")
	case p.rangeMode() && !p.hasStart:
		return paramError("params.start_time is required with params.end_time")
	case p.rangeMode() && !p.hasEnd:
		return paramError("params.end_time is required with params.start_time")
	case p.rangeMode() && !p.end.After(p.start):
		return paramError("params.end_time (%s) must be after params.start_time (%s)", p.end.Format(time.RFC3339Nano), p.start.Format(time.RFC3339Nano))
	case p.rangeMode() && p.timestampKey != "":
		return paramError("params.timestamp_key names a spine column; range mode has no spine")
	}
	return nil
}

// queryHistorical reads the params of an NDJSON request from the query
// string: workspace_name, feature_service_name, timestamp_key and
// from_source, in either spelling.
func queryHistorical(q url.Values) (*historicalParams, error) {
	p := &historicalParams{hasSpine: true}
	for name, vals := range q {
		if len(vals) != 1 {
			return nil, paramError("query parameter %q is given %d times; give it once", name, len(vals))
		}
		v := vals[0]
		switch canon(name) {
		case "workspacename":
			p.workspace = v
		case "featureservicename":
			p.service = v
		case "timestampkey":
			p.timestampKey = v
		case "fromsource":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, paramError("query parameter %s=%q must be true or false", name, v)
			}
			p.fromSource = b
		case "minpositions":
			ps, err := queryPositions(name, v)
			if err != nil {
				return nil, err
			}
			p.minPositions = ps
		default:
			return nil, paramError("unknown query parameter %q (an NDJSON spine takes workspace_name, feature_service_name, timestamp_key, from_source and min_positions; range mode takes a JSON body)", name)
		}
	}
	return p, p.check()
}

func readBool(d *jsontext.Decoder, where string) (bool, error) {
	tok, err := d.ReadToken()
	if err != nil {
		return false, jsonError(err)
	}
	if k := tok.Kind(); k != 't' && k != 'f' {
		return false, paramError("%s must be true or false", where)
	}
	return tok.Bool(), nil
}

func readTime(d *jsontext.Decoder, where string) (time.Time, error) {
	s, err := readString(d, where)
	if err != nil {
		return time.Time{}, err
	}
	t, err := schema.ParseTimestamp(s)
	if err != nil {
		return time.Time{}, paramError("%s: %v", where, err)
	}
	return t, nil
}

// readEntities reads range mode's list of join-key maps.
func readEntities(d *jsontext.Decoder, where string) ([]map[string]any, error) {
	tok, err := d.ReadToken()
	if err != nil {
		return nil, jsonError(err)
	}
	if tok.Kind() != '[' {
		return nil, paramError("%s must be a list of join-key objects, like [{\"user_id\": \"u1\"}]", where)
	}
	out := []map[string]any{}
	for i := 0; d.PeekKind() != ']'; i++ {
		jk, err := readJoinKeys(d, fmt.Sprintf("%s[%d]", where, i))
		if err != nil {
			return nil, err
		}
		out = append(out, jk)
	}
	if _, err := d.ReadToken(); err != nil {
		return nil, jsonError(err)
	}
	return out, nil
}

// queryPositions reads min_positions from a query string: partition:offset
// pairs separated by commas ("3:17,4:20").
func queryPositions(name, v string) ([]engine.Position, error) {
	var out []engine.Position
	for f := range strings.SplitSeq(v, ",") {
		ps, os, ok := strings.Cut(f, ":")
		p, perr := strconv.ParseInt(ps, 10, 32)
		o, oerr := strconv.ParseInt(os, 10, 64)
		if !ok || perr != nil || oerr != nil || p < 0 || o < 0 {
			return nil, paramError("query parameter %s=%q must list partition:offset pairs, separated by commas, as ingest returns them (like 3:17,4:20)", name, v)
		}
		out = append(out, engine.Position{Partition: int32(p), Offset: o})
	}
	return out, nil
}
