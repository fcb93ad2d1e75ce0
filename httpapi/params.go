package httpapi

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/internal/jsondec"
	"github.com/featurelog/featurelog/schema"
)

// servingParams are the params of get-features and get-features-batch.
// Both Tecton spellings are accepted (workspace_name and workspaceName):
// names are compared with underscores removed and case folded.
type servingParams struct {
	workspace   string
	service     string
	joinKeys    map[string]any
	requestData []map[string]any
	hasRequest  bool
	meta        metadataOptions
	asOf        time.Time
	// minPositions are the Kafka positions the read must see (cluster
	// mode); raw is the request body, kept in cluster mode to forward it.
	minPositions []engine.Position
	raw          []byte
}

type metadataOptions struct {
	names, dataTypes, effectiveTimes, status bool
}

func (m metadataOptions) any() bool { return m.names || m.dataTypes || m.effectiveTimes || m.status }

// canon folds a parameter name: "join_key_map" and "joinKeyMap" are one.
func canon(name string) string {
	return strings.ToLower(strings.ReplaceAll(name, "_", ""))
}

// paramError is a 400 with gRPC code 3 (INVALID_ARGUMENT).
func paramError(format string, args ...any) error {
	return &engine.Error{Code: engine.CodeInvalidArgument, Msg: fmt.Sprintf(format, args...)}
}

func jsonError(err error) error {
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return paramError("request body is not valid JSON: unexpected end of input")
	}
	var de *jsondec.DepthError
	if errors.As(err, &de) {
		return paramError("request body is refused: %v", de)
	}
	return paramError("request body is not valid JSON: %s", strings.TrimPrefix(err.Error(), "jsontext: "))
}

// decodeServing parses {"params": {...}}. batch selects which of
// join_key_map and request_data is required.
func decodeServing(body []byte, batch bool) (*servingParams, error) {
	p := &servingParams{}
	if err := decodeParamsBody(body, p.field); err != nil {
		return nil, err
	}
	return p, p.check(batch)
}

// decodeParamsBody walks a body of the form {"params": {...}} and hands
// each member of params to field; anything else in the body is an error.
func decodeParamsBody(body []byte, field func(d *jsontext.Decoder, name string) error) error {
	pd := jsondec.Get(body)
	defer jsondec.Put(pd)
	d := pd.Decoder
	found := false
	err := readObject(d, "request body", func(name string) error {
		if name != "params" {
			return paramError("unknown field %q in the request body (expected \"params\")", name)
		}
		found = true
		return readObject(d, "params", func(name string) error { return field(d, name) })
	})
	if err != nil {
		return err
	}
	if _, err := d.ReadToken(); err != io.EOF {
		return paramError("request body has data after the JSON object")
	}
	if !found {
		return paramError("request body must be {\"params\": {...}}")
	}
	return nil
}

func (p *servingParams) check(batch bool) error {
	switch {
	case p.workspace == "":
		return paramError("params.workspace_name is required")
	case p.service == "":
		return paramError("params.feature_service_name is required")
	case batch && !p.hasRequest:
		return paramError("params.request_data is required: a list of {\"join_key_map\": {...}}")
	case batch && p.joinKeys != nil:
		return paramError("params.join_key_map belongs inside request_data items in a batch request")
	case !batch && p.joinKeys == nil:
		return paramError("params.join_key_map is required")
	case !batch && p.hasRequest:
		return paramError("params.request_data is for get-features-batch; use join_key_map here")
	case len(p.requestData) > maxBatchRows:
		return paramError("params.request_data has %d items; at most %d per request", len(p.requestData), maxBatchRows)
	}
	return nil
}

const maxBatchRows = 1000

func (p *servingParams) field(d *jsontext.Decoder, name string) error {
	var err error
	switch canon(name) {
	case "workspacename":
		p.workspace, err = readString(d, "params."+name)
	case "featureservicename":
		p.service, err = readString(d, "params."+name)
	case "joinkeymap":
		p.joinKeys, err = readJoinKeys(d, "params."+name)
	case "requestdata":
		p.hasRequest = true
		p.requestData, err = readRequestData(d)
	case "metadataoptions":
		err = p.meta.read(d)
	case "asof":
		err = p.readAsOf(d, name)
	case "minpositions":
		p.minPositions, err = readMinPositions(d)
	case "allowpartialresults", "requestcontextmap":
		err = d.SkipValue() // accepted for compatibility; nothing here needs them
	default:
		err = paramError("unknown parameter %q (expected workspace_name, feature_service_name, join_key_map, request_data, metadata_options, as_of, min_positions)", name)
	}
	return err
}

func (p *servingParams) readAsOf(d *jsontext.Decoder, name string) error {
	s, err := readString(d, "params."+name)
	if err != nil {
		return err
	}
	t, err := schema.ParseTimestamp(s)
	if err != nil {
		return paramError("params.%s: %v", name, err)
	}
	p.asOf = t
	return nil
}

func (m *metadataOptions) read(d *jsontext.Decoder) error {
	return readObject(d, "params.metadata_options", func(name string) error {
		var dst *bool
		switch canon(name) {
		case "includenames":
			dst = &m.names
		case "includedatatypes":
			dst = &m.dataTypes
		case "includeeffectivetimes":
			dst = &m.effectiveTimes
		case "includeservingstatus":
			dst = &m.status
		case "includesloinfo":
			return d.SkipValue()
		default:
			return paramError("unknown metadata option %q (expected include_names, include_data_types, include_effective_times, include_serving_status)", name)
		}
		tok, err := d.ReadToken()
		if err != nil {
			return jsonError(err)
		}
		if k := tok.Kind(); k != 't' && k != 'f' {
			return paramError("metadata option %q must be true or false", name)
		}
		*dst = tok.Bool()
		return nil
	})
}

func readRequestData(d *jsontext.Decoder) ([]map[string]any, error) {
	tok, err := d.ReadToken()
	if err != nil {
		return nil, jsonError(err)
	}
	if tok.Kind() != '[' {
		return nil, paramError("params.request_data must be a list of {\"join_key_map\": {...}}")
	}
	out := []map[string]any{}
	for i := 0; d.PeekKind() != ']'; i++ {
		where := fmt.Sprintf("params.request_data[%d]", i)
		var jk map[string]any
		err := readObject(d, where, func(name string) error {
			if canon(name) != "joinkeymap" {
				return paramError("%s: unknown field %q (expected join_key_map)", where, name)
			}
			var err error
			jk, err = readJoinKeys(d, where+"."+name)
			return err
		})
		if err != nil {
			return nil, err
		}
		if jk == nil {
			return nil, paramError("%s: join_key_map is required", where)
		}
		out = append(out, jk)
	}
	d.ReadToken()
	return out, nil
}

// readJoinKeys reads a join_key_map: strings stay strings, numbers stay
// their literal text (engine.Number) until the key's type is known.
func readJoinKeys(d *jsontext.Decoder, where string) (map[string]any, error) {
	m := map[string]any{}
	err := readObject(d, where, func(name string) error {
		tok, err := d.ReadToken()
		if err != nil {
			return jsonError(err)
		}
		switch tok.Kind() {
		case '"':
			m[name] = tok.String()
		case '0':
			m[name] = engine.Number(tok.String())
		case 'n':
			return paramError("%s: join key %q is null; join keys must have a value", where, name)
		default:
			return paramError("%s: join key %q must be a string or a number", where, name)
		}
		return nil
	})
	return m, err
}

// readObject reads one JSON object, calling member for each name; member
// must consume the value.
func readObject(d *jsontext.Decoder, where string, member func(name string) error) error {
	tok, err := d.ReadToken()
	if err != nil {
		return jsonError(err)
	}
	if tok.Kind() != '{' {
		return paramError("%s must be a JSON object", where)
	}
	for d.PeekKind() != '}' {
		name, err := d.ReadToken()
		if err != nil {
			return jsonError(err)
		}
		if err := member(name.String()); err != nil {
			return err
		}
	}
	_, err = d.ReadToken()
	if err != nil {
		return jsonError(err)
	}
	return nil
}

func readString(d *jsontext.Decoder, where string) (string, error) {
	tok, err := d.ReadToken()
	if err != nil {
		return "", jsonError(err)
	}
	if tok.Kind() != '"' {
		return "", paramError("%s must be a string", where)
	}
	return tok.String(), nil
}
