package httpapi

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Sinks is what the node reports of its output stream sinks (SPEC §7):
// their metrics on /metrics and their readiness on /readyz.
// *kafkasink.Manager implements it; httpapi names only this interface, so
// it links no Kafka client.
type Sinks interface {
	prometheus.Collector
	// NotReady describes, one sentence each, every sink that is failing
	// or lagging past its max_lag, naming the sink, its lag and its last
	// error; it is empty when every sink is well.
	NotReady() []string
}

// registerSinks adds the sinks' metrics to the node's registry.
func (s *Server) registerSinks() {
	if s.opts.Sinks != nil {
		s.metrics.reg.MustRegister(s.opts.Sinks)
	}
}

// sinksUnready answers /readyz with 503 when a sink is failing or lagging
// past its max_lag, and reports whether it did:
//
//	{"status":"unavailable","error":"1 output stream sink not ready: sink ...","sinks":["sink ..."]}
func (s *Server) sinksUnready(w http.ResponseWriter) bool {
	if s.opts.Sinks == nil {
		return false
	}
	problems := s.opts.Sinks.NotReady()
	if len(problems) == 0 {
		return false
	}
	noun := "sinks"
	if len(problems) == 1 {
		noun = "sink"
	}
	body := appendObject(nil, "status", "unavailable", "error",
		strconv.Itoa(len(problems))+" output stream "+noun+" not ready: "+strings.Join(problems, "; "))
	body = append(body[:len(body)-1], `,"sinks":[`...)
	for i, p := range problems {
		if i > 0 {
			body = append(body, ',')
		}
		body = appendString(body, p)
	}
	body = append(body, "]}"...)
	writeJSONBytes(w, http.StatusServiceUnavailable, body)
	return true
}
