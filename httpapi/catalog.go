package httpapi

import (
	"net/http"
	"strings"

	"github.com/go-json-experiment/json/v1"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/schema"
)

// Listing (SPEC §8), for viewers:
//
//	GET  /api/v1/workspaces                              {"workspaces": [{"name", "sources", "feature_views", "feature_services"}]}
//	GET  /api/v1/workspaces/{ws}/feature-views           {"feature_views": [<summary>, ...]}   (the summary of GET .../feature-views/{name})
//	GET  /api/v1/workspaces/{ws}/feature-views/{name}/ingest-rate   per-minute counts (views.go)
//	GET  /api/v1/workspaces/{ws}/feature-services        {"feature_services": [<service>, ...]}
//	GET  /api/v1/workspaces/{ws}/feature-services/{name} <service>
//	POST /api/v1/feature-service/metadata                Tecton's shape, below
//
// <service> is {"name", "description", "online_serving_enabled",
// "feature_views", "features": [{"name", "dataType"}], "join_keys":
// [{"name", "dataType"}], "unavailable": null or why it does not serve}.
//
// GET /api/v1/workspaces lists the workspaces the key holds a role on
// (every one without auth). The others need the viewer role on {ws}: a
// key without it is refused 403 whether or not the workspace exists, so
// that keys do not learn what other workspaces hold; a caller who may
// view it gets 404 for a workspace not applied, naming the known ones.

// listWorkspaces serves GET /api/v1/workspaces.
func (s *Server) listWorkspaces(w http.ResponseWriter, r *http.Request) {
	c, ok := s.admin(w, r, nil)
	if !ok {
		return
	}
	all, err := s.db.WorkspaceSummaries()
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	out := []map[string]any{}
	for _, ws := range all {
		if c.allowed(ws.Name, auth.Viewer) {
			out = append(out, map[string]any{"name": ws.Name, "sources": ws.Sources, "feature_views": ws.FeatureViews, "feature_services": ws.FeatureServices})
		}
	}
	writeJSONValue(w, http.StatusOK, map[string]any{"workspaces": out})
}

// viewerOf authenticates a listing request and checks the viewer role
// on {ws}, writing the error response itself.
func (s *Server) viewerOf(w http.ResponseWriter, r *http.Request, action string) (string, bool) {
	c, ok := s.admin(w, r, nil)
	if !ok {
		return "", false
	}
	ws := r.PathValue("ws")
	if err := c.require(auth.Viewer, action)(ws); err != nil {
		s.writeEngineError(w, err)
		return "", false
	}
	return ws, true
}

// listFeatureViews serves GET /api/v1/workspaces/{ws}/feature-views.
func (s *Server) listFeatureViews(w http.ResponseWriter, r *http.Request) {
	ws, ok := s.viewerOf(w, r, "read feature views")
	if !ok {
		return
	}
	sums, err := s.db.FeatureViewSummaries(ws)
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	if s.opts.Cluster != nil && len(sums) > 0 {
		if err := s.clusterSummaries(r, ws, "", sums); err != nil { // the partitions' figures, combined (cluster_views.go)
			writeUnavailable(w, err)
			return
		}
	}
	out := make([]map[string]any, len(sums))
	for i, sum := range sums {
		out[i] = summaryJSON(sum)
	}
	writeJSONValue(w, http.StatusOK, map[string]any{"feature_views": out})
}

// listFeatureServices serves GET /api/v1/workspaces/{ws}/feature-services.
func (s *Server) listFeatureServices(w http.ResponseWriter, r *http.Request) {
	ws, ok := s.viewerOf(w, r, "read feature services")
	if !ok {
		return
	}
	sums, err := s.db.FeatureServiceSummaries(ws)
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	out := make([]map[string]any, len(sums))
	for i := range sums {
		out[i] = serviceJSON(&sums[i])
	}
	writeJSONValue(w, http.StatusOK, map[string]any{"feature_services": out})
}

// featureService serves GET /api/v1/workspaces/{ws}/feature-services/{name}.
func (s *Server) featureService(w http.ResponseWriter, r *http.Request) {
	ws, ok := s.viewerOf(w, r, "read feature services")
	if !ok {
		return
	}
	sum, err := s.db.FeatureServiceSummary(ws, r.PathValue("name"))
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	writeJSONValue(w, http.StatusOK, serviceJSON(sum))
}

func serviceJSON(s *engine.ServiceSummary) map[string]any {
	features := make([]map[string]any, len(s.Features))
	for i, f := range s.Features {
		features[i] = map[string]any{"name": f.Name, "dataType": dataTypeJSON(f.Type)}
	}
	views := s.FeatureViews
	if views == nil {
		views = []string{}
	}
	var unavailable any
	if s.Unavailable != "" {
		unavailable = s.Unavailable
	}
	return map[string]any{"name": s.Name, "description": s.Description, "online_serving_enabled": s.OnlineServingEnabled,
		"feature_views": views, "features": features, "join_keys": columnsJSON(s.JoinKeys), "unavailable": unavailable}
}

func columnsJSON(cols []schema.Column) []map[string]any {
	out := make([]map[string]any, len(cols))
	for i, c := range cols {
		out[i] = map[string]any{"name": c.Name, "dataType": dataTypeJSON(c.Type)}
	}
	return out
}

func dataTypeJSON(t schema.Type) json.RawMessage { return appendDataType(nil, t) }

// serviceMetadata serves Tecton's POST /api/v1/feature-service/metadata:
// {"params": {"workspace_name", "feature_service_name"}} (either
// spelling) →
//
//	{"featureServiceType": "DEFAULT",
//	 "inputJoinKeys": [{"name": "user_id", "dataType": {"type": "string"}}],
//	 "inputRequestContextKeys": [],
//	 "featureValues": [{"name": "click_events_fv.clicked", "dataType": {"type": "int64"}, "featureViewName": "click_events_fv"}]}
func (s *Server) serviceMetadata(w http.ResponseWriter, r *http.Request) {
	buf := bodyPool.Get().(*[]byte)
	defer putBody(buf)
	c, body, ok := s.authBody(w, r, buf)
	if !ok {
		return
	}
	var ws, svc string
	err := decodeParamsBody(body, func(d *jsontext.Decoder, name string) error {
		var err error
		switch canon(name) {
		case "workspacename":
			ws, err = readString(d, "params."+name)
		case "featureservicename":
			svc, err = readString(d, "params."+name)
		default:
			err = paramError("unknown parameter %q (expected workspace_name, feature_service_name)", name)
		}
		return err
	})
	switch {
	case err != nil:
	case ws == "":
		err = paramError("params.workspace_name is required")
	case svc == "":
		err = paramError("params.feature_service_name is required")
	default:
		err = c.require(auth.Viewer, "read feature services")(ws)
	}
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	sum, err := s.db.FeatureServiceSummary(ws, svc)
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	values := make([]map[string]any, len(sum.Features))
	for i, f := range sum.Features {
		view, _, _ := strings.Cut(f.Name, ".")
		values[i] = map[string]any{"name": f.Name, "dataType": dataTypeJSON(f.Type), "featureViewName": view}
	}
	writeJSONValue(w, http.StatusOK, map[string]any{"featureServiceType": "DEFAULT", "inputJoinKeys": columnsJSON(sum.JoinKeys),
		"inputRequestContextKeys": []any{}, "featureValues": values})
}
