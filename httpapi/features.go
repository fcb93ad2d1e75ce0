package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/schema"
)

// gRPC codes of the serving API's error bodies (SPEC §4).
const (
	grpcInvalidArgument    = 3
	grpcNotFound           = 5
	grpcFailedPrecondition = 9
	grpcPermissionDenied   = 7
	grpcResourceExhausted  = 8
	grpcUnimplemented      = 12
	grpcInternal           = 13
	grpcUnavailable        = 14
	grpcUnauthenticated    = 16
)

func writeServingError(w http.ResponseWriter, status, code int, msg string) {
	dst := append([]byte(`{"code":`), strconv.Itoa(code)...)
	dst = append(dst, `,"error":`...)
	dst = appendString(dst, msg)
	dst = append(dst, `,"message":`...)
	dst = appendString(dst, msg)
	dst = append(dst, '}')
	writeJSONBytes(w, status, dst)
}

func (s *Server) writeEngineError(w http.ResponseWriter, err error) {
	var jc *engine.JobConflict
	if errors.As(err, &jc) { // 409 with the job in the way (SPEC §6)
		writeJSONValue(w, http.StatusConflict, map[string]any{"code": grpcFailedPrecondition, "error": jc.Msg, "message": jc.Msg, "job": jc.Job})
		return
	}
	status, code := engineStatus(err)
	if status >= 500 {
		s.opts.Logger.Error("request failed", "err", err)
	}
	writeServingError(w, status, code, err.Error())
}

// engineStatus maps an engine error to an HTTP status and a gRPC code.
func engineStatus(err error) (status, code int) {
	status, code = http.StatusInternalServerError, grpcInternal
	switch engine.CodeOf(err) {
	case engine.CodeInvalidArgument:
		status, code = http.StatusBadRequest, grpcInvalidArgument
	case engine.CodeNotFound:
		status, code = http.StatusNotFound, grpcNotFound
	case engine.CodePermissionDenied:
		status, code = http.StatusForbidden, grpcPermissionDenied
	case engine.CodeResourceExhausted:
		status, code = http.StatusTooManyRequests, grpcResourceExhausted
	case engine.CodeUnimplemented:
		status, code = http.StatusNotImplemented, grpcUnimplemented
	case engine.CodeUnavailable:
		status, code = http.StatusServiceUnavailable, grpcUnavailable
	case engine.CodeGone:
		status, code = http.StatusGone, grpcOutOfRange
	}
	if errors.Is(err, engine.ErrClosed) {
		status, code = http.StatusServiceUnavailable, grpcUnavailable
	}
	return status, code
}

// servingRequest authenticates, reads and parses a serving request, and
// checks the viewer role. It writes the error response itself.
func (s *Server) servingRequest(w http.ResponseWriter, r *http.Request, batch bool) (*servingParams, bool) {
	c, err := s.authenticate(r)
	if err != nil {
		writeServingError(w, http.StatusUnauthorized, grpcUnauthenticated, err.Error())
		return nil, false
	}
	buf := bodyPool.Get().(*[]byte)
	defer putBody(buf)
	body, tooLarge, err := s.readAll(w, r, buf)
	switch {
	case tooLarge:
		writeServingError(w, http.StatusRequestEntityTooLarge, grpcInvalidArgument, fmt.Sprintf(
			"request body is larger than the limit of %d bytes; a batch takes at most %d rows", s.opts.MaxBodyBytes, maxBatchRows))
		return nil, false
	case err != nil:
		writeServingError(w, http.StatusBadRequest, grpcInvalidArgument, "reading the request body failed: "+err.Error())
		return nil, false
	}
	p, err := decodeServing(body, batch)
	if err != nil {
		s.writeEngineError(w, err)
		return nil, false
	}
	if err := c.require(auth.Viewer, "read features")(p.workspace); err != nil {
		s.writeEngineError(w, err)
		return nil, false
	}
	if s.opts.Cluster != nil {
		p.raw = bytes.Clone(body)
	}
	return p, true
}

// getFeatures serves POST /api/v1/feature-service/get-features.
func (s *Server) getFeatures(w http.ResponseWriter, r *http.Request) {
	p, ok := s.servingRequest(w, r, false)
	if !ok {
		return
	}
	db := s.db
	if s.opts.Cluster != nil {
		if db = s.routeRead(w, r, p, p.joinKeys); db == nil {
			return
		}
	}
	vec, err := db.GetFeatures(&engine.GetFeaturesRequest{Workspace: p.workspace, Service: p.service, JoinKeys: p.joinKeys, AsOf: p.asOf})
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	dst := make([]byte, 0, 512)
	dst = append(dst, `{"result":{"features":`...)
	dst = appendFeatureValues(dst, vec.Features)
	dst = append(dst, '}')
	if p.meta.any() {
		dst = append(dst, `,"metadata":{"features":[`...)
		for i, f := range vec.Features {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendFeatureMeta(dst, f, p.meta, true)
		}
		dst = append(dst, "]}"...)
	}
	writeJSONBytes(w, http.StatusOK, append(dst, '}'))
}

func appendFeatureValues(dst []byte, fs []engine.FeatureValue) []byte {
	dst = append(dst, '[')
	for i, f := range fs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = schema.AppendJSON(dst, f.Value)
	}
	return append(dst, ']')
}

// appendFeatureMeta appends one feature's metadata object; perRow adds the
// effective time and status (single reads).
func appendFeatureMeta(dst []byte, f engine.FeatureValue, m metadataOptions, perRow bool) []byte {
	dst = append(dst, '{')
	sep := false
	field := func(name string) {
		if sep {
			dst = append(dst, ',')
		}
		sep = true
		dst = append(dst, '"')
		dst = append(dst, name...)
		dst = append(dst, `":`...)
	}
	if m.names {
		field("name")
		dst = appendString(dst, f.Name)
	}
	if m.dataTypes {
		field("dataType")
		dst = appendDataType(dst, f.Type)
	}
	if perRow && m.effectiveTimes {
		field("effectiveTime")
		dst = appendEffective(dst, f)
	}
	if perRow && m.status {
		field("status")
		dst = appendString(dst, string(f.Status))
	}
	return append(dst, '}')
}

func appendEffective(dst []byte, f engine.FeatureValue) []byte {
	if f.EffectiveTime.IsZero() {
		return append(dst, "null"...)
	}
	return appendTime(dst, f.EffectiveTime)
}

// getFeaturesBatch serves POST /api/v1/feature-service/get-features-batch.
// Per-row statuses and effective times are lists in the metadata, one
// entry per request_data item.
func (s *Server) getFeaturesBatch(w http.ResponseWriter, r *http.Request) {
	p, ok := s.servingRequest(w, r, true)
	if !ok {
		return
	}
	if s.opts.Cluster != nil {
		s.clusterBatch(w, r, p)
		return
	}
	s.writeBatch(w, s.db, p)
}

// writeBatch answers a batch read from db.
func (s *Server) writeBatch(w http.ResponseWriter, db *engine.DB, p *servingParams) {
	vecs, err := db.GetFeaturesBatch(p.workspace, p.service, p.requestData, p.asOf)
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	dst := make([]byte, 0, 256*len(vecs)+256)
	dst = append(dst, `{"result":[`...)
	for i, v := range vecs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"features":`...)
		dst = appendFeatureValues(dst, v.Features)
		dst = append(dst, '}')
	}
	dst = append(dst, ']')
	if p.meta.any() {
		dst = s.appendBatchMeta(dst, p, vecs)
	}
	writeJSONBytes(w, http.StatusOK, append(dst, '}'))
}

func (s *Server) appendBatchMeta(dst []byte, p *servingParams, vecs []engine.FeatureVector) []byte {
	names, err := s.db.ServiceFeatures(p.workspace, p.service)
	if err != nil {
		return dst
	}
	dst = append(dst, `,"metadata":{"features":[`...)
	for j, f := range names {
		if j > 0 {
			dst = append(dst, ',')
		}
		obj := appendFeatureMeta(nil, f, p.meta, false)
		dst = append(dst, obj[:len(obj)-1]...)
		sep := len(obj) > 2
		if p.meta.effectiveTimes {
			dst = appendSep(dst, &sep, `"effectiveTime":[`)
			for i := range vecs {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = appendEffective(dst, vecs[i].Features[j])
			}
			dst = append(dst, ']')
		}
		if p.meta.status {
			dst = appendSep(dst, &sep, `"status":[`)
			for i := range vecs {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = appendString(dst, string(vecs[i].Features[j].Status))
			}
			dst = append(dst, ']')
		}
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
}

func appendSep(dst []byte, sep *bool, s string) []byte {
	if *sep {
		dst = append(dst, ',')
	}
	*sep = true
	return append(dst, s...)
}
