package httpapi

import (
	"net/http"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/engine"
)

// DeleteKeysRequest is the body of POST
// .../feature-views/{name}/delete-keys (SPEC §6). Online defaults to true
// and Offline to true.
type DeleteKeysRequest struct {
	// Keys are the entity keys, each with every join key of the view.
	// Numbers stay their literal text until the key's type is known, so
	// an int64 key is exact.
	Keys    []map[string]jsontext.Value `json:"keys"`
	Online  *bool                       `json:"online,omitempty"`
	Offline *bool                       `json:"offline,omitempty"`
}

// deleteKeys starts a deletion job: 202 and the job.
func (s *Server) deleteKeys(w http.ResponseWriter, r *http.Request) {
	var req DeleteKeysRequest
	ws, ok := s.jobsCaller(w, r, auth.Owner, "delete keys", &req)
	if !ok {
		return
	}
	dr := engine.DeleteKeysRequest{Online: true, Offline: true, Keys: make([]map[string]any, len(req.Keys))}
	if req.Online != nil {
		dr.Online = *req.Online
	}
	if req.Offline != nil {
		dr.Offline = *req.Offline
	}
	for i, k := range req.Keys {
		dr.Keys[i] = make(map[string]any, len(k))
		for name, raw := range k {
			dr.Keys[i][name] = engineValue(raw)
		}
	}
	if s.opts.Cluster != nil {
		s.clusterDeleteKeys(w, r, ws, r.PathValue("name"), dr)
		return
	}
	j, err := s.db.DeleteKeys(ws, r.PathValue("name"), dr)
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	writeJSONValue(w, http.StatusAccepted, j)
}
