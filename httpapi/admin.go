package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/go-json-experiment/json/v1"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/internal/jsondec"
)

// The admin API is what the CLI's --server mode calls. Bodies are small
// JSON objects decoded strictly (decodeAdmin); errors use the serving
// API's shape.

// ApplyRequest is the body of POST /api/v1/plan and /api/v1/apply.
type ApplyRequest struct {
	File    string `json:"file"`    // the file name, for error messages
	Content string `json:"content"` // the repo file's YAML
}

// ApplyResponse answers plan and apply.
type ApplyResponse struct {
	Workspace string   `json:"workspace"`
	Plan      string   `json:"plan"` // human-readable plan
	Changed   bool     `json:"changed"`
	Rebuilt   []string `json:"rebuilt,omitempty"`
	// Jobs are the backfill jobs the apply started (SPEC §6).
	Jobs []engine.Job `json:"jobs,omitempty"`
}

// AccountRequest creates a service account.
type AccountRequest struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// AccountResponse describes a service account; APIKey only on creation.
type AccountResponse struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	CreatedAt   time.Time         `json:"created_at"`
	Roles       map[string]string `json:"roles"`
	APIKey      string            `json:"api_key,omitempty"`
}

// AssignRoleRequest grants a role on a workspace.
type AssignRoleRequest struct {
	ServiceAccount string `json:"service_account"`
	Workspace      string `json:"workspace"`
	Role           string `json:"role"`
}

func (s *Server) admin(w http.ResponseWriter, r *http.Request, into any) (caller, bool) {
	if into == nil {
		c, err := s.authenticate(r)
		if err != nil {
			writeServingError(w, http.StatusUnauthorized, grpcUnauthenticated, err.Error())
		}
		return c, err == nil
	}
	buf := bodyPool.Get().(*[]byte)
	defer putBody(buf)
	c, body, ok := s.authBody(w, r, buf)
	if !ok {
		return c, false
	}
	if err := decodeAdmin(body, into); err != nil {
		s.writeEngineError(w, err)
		return c, false
	}
	return c, true
}

// authBody authenticates a request of the serving and admin shape and
// reads its body into buf, writing the error response itself (401, 413,
// 400) when it cannot.
func (s *Server) authBody(w http.ResponseWriter, r *http.Request, buf *[]byte) (caller, []byte, bool) {
	c, err := s.authenticate(r)
	if err != nil {
		writeServingError(w, http.StatusUnauthorized, grpcUnauthenticated, err.Error())
		return c, nil, false
	}
	body, tooLarge, err := s.readAll(w, r, buf)
	switch {
	case tooLarge:
		writeServingError(w, http.StatusRequestEntityTooLarge, grpcInvalidArgument,
			fmt.Sprintf("request body is larger than the limit of %d bytes", s.opts.MaxBodyBytes))
		return c, nil, false
	case err != nil:
		writeServingError(w, http.StatusBadRequest, grpcInvalidArgument, "reading the request body failed: "+err.Error())
		return c, nil, false
	}
	return c, body, true
}

// decodeAdmin decodes an admin body strictly: one JSON object, member
// names matched exactly, no unknown or duplicate members, valid UTF-8,
// nesting within jsondec.MaxDepth, nothing after the object.
func decodeAdmin(body []byte, into any) error {
	d := jsondec.Get(body)
	defer jsondec.Put(d)
	if k := d.PeekKind(); k != '{' {
		if _, err := d.ReadToken(); err != nil {
			return jsonError(err)
		}
		return paramError("request body must be a JSON object")
	}
	if err := jsonv2.UnmarshalDecode(d.Decoder, into, jsonv2.RejectUnknownMembers(true)); err != nil {
		return adminBodyError(err, into)
	}
	if _, err := d.ReadToken(); err != io.EOF {
		return paramError("request body has data after the JSON object")
	}
	return nil
}

func forbidden(w http.ResponseWriter, msg string) {
	writeServingError(w, http.StatusForbidden, grpcPermissionDenied, msg)
}

func writeJSONValue(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		writeServingError(w, http.StatusInternalServerError, grpcInternal, err.Error())
		return
	}
	writeJSONBytes(w, status, data)
}

func (s *Server) plan(w http.ResponseWriter, r *http.Request)  { s.planOrApply(w, r, false) }
func (s *Server) apply(w http.ResponseWriter, r *http.Request) { s.planOrApply(w, r, true) }

// planOrApply needs the owner role on the workspace the file declares,
// which is known only after parsing: plan first, check, then apply. A key
// that owns no workspace is refused before its file is even parsed, so
// that only owners learn how the node judges a file.
func (s *Server) planOrApply(w http.ResponseWriter, r *http.Request, apply bool) {
	var req ApplyRequest
	c, ok := s.admin(w, r, &req)
	if !ok {
		return
	}
	if !c.noAuth && !c.principal.IsOwnerSomewhere() {
		forbidden(w, "planning and applying a repo file need the owner role on its workspace; this key owns no workspace")
		return
	}
	plan, err := s.db.Plan(req.File, []byte(req.Content))
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	if !c.allowed(plan.Workspace, auth.Owner) {
		forbidden(w, fmt.Sprintf("applying needs the owner role on workspace %q", plan.Workspace))
		return
	}
	resp := ApplyResponse{Workspace: plan.Workspace, Plan: plan.String(), Changed: !plan.Empty()}
	if apply {
		applyFn := s.db.Apply
		if s.opts.Cluster != nil { // to every node, through Kafka
			applyFn = func(name string, content []byte) (*engine.ApplyResult, error) {
				return s.opts.Cluster.Apply(r.Context(), name, content)
			}
		}
		res, err := applyFn(req.File, []byte(req.Content))
		if err != nil {
			s.writeClusterError(w, err)
			return
		}
		resp.Plan, resp.Changed, resp.Rebuilt, resp.Jobs = res.Plan.String(), !res.Plan.Empty(), res.Rebuilt, res.Jobs
	}
	writeJSONValue(w, http.StatusOK, resp)
}

func accountResponse(a auth.Account, key string) AccountResponse {
	roles := map[string]string{}
	for ws, r := range a.Roles {
		roles[ws] = r.String()
	}
	return AccountResponse{ID: a.ID, Name: a.Name, Description: a.Description, CreatedAt: a.CreatedAt, Roles: roles, APIKey: key}
}

// createAccount needs the owner role on some workspace: an account grants
// nothing until an owner assigns it a role.
func (s *Server) createAccount(w http.ResponseWriter, r *http.Request) {
	var req AccountRequest
	c, ok := s.admin(w, r, &req)
	if !ok {
		return
	}
	if !c.noAuth && !c.principal.IsOwnerSomewhere() {
		forbidden(w, "creating service accounts needs the owner role on at least one workspace")
		return
	}
	create := s.db.Accounts().CreateAccount
	if s.opts.Cluster != nil { // on every node, through Kafka
		create = func(name, description string) (string, auth.Account, error) {
			return s.opts.Cluster.CreateAccount(r.Context(), name, description)
		}
	}
	key, acct, err := create(req.Name, req.Description)
	if err != nil {
		s.writeAccountError(w, err)
		return
	}
	writeJSONValue(w, http.StatusOK, accountResponse(acct, key))
}

func (s *Server) listAccounts(w http.ResponseWriter, r *http.Request) {
	c, ok := s.admin(w, r, nil)
	if !ok {
		return
	}
	if !c.noAuth && !c.principal.IsOwnerSomewhere() {
		forbidden(w, "listing service accounts needs the owner role on at least one workspace")
		return
	}
	out := []AccountResponse{}
	for _, a := range s.db.Accounts().Accounts() {
		out = append(out, accountResponse(a, ""))
	}
	writeJSONValue(w, http.StatusOK, out)
}

// deleteAccount needs the owner role on every workspace the account holds
// a role in (or on some workspace, for an account with no roles).
func (s *Server) deleteAccount(w http.ResponseWriter, r *http.Request) {
	c, ok := s.admin(w, r, nil)
	if !ok {
		return
	}
	id := r.PathValue("id")
	acct, found := s.db.Accounts().Account(id)
	if !found {
		writeServingError(w, http.StatusNotFound, grpcNotFound, fmt.Sprintf("service account %q not found", id))
		return
	}
	if ws, ok := c.ownsAll(acct); !ok {
		forbidden(w, fmt.Sprintf("deleting service account %q needs the owner role on workspace %q", id, ws))
		return
	}
	del := s.db.Accounts().DeleteAccount
	if s.opts.Cluster != nil {
		del = func(id string) error { return s.opts.Cluster.DeleteAccount(r.Context(), id) }
	}
	if err := del(id); err != nil {
		s.writeAccountError(w, err)
		return
	}
	writeJSONValue(w, http.StatusOK, map[string]string{"deleted": id})
}

// writeAccountError answers a failed account store call: 404 for an
// unknown account, 400 for invalid input, 500 for a store that could not
// be written.
func (s *Server) writeAccountError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, auth.ErrNoSuchAccount):
		writeServingError(w, http.StatusNotFound, grpcNotFound, err.Error())
	case errors.Is(err, auth.ErrInvalidName), errors.Is(err, auth.ErrInvalidDescription),
		errors.Is(err, auth.ErrInvalidWorkspace), errors.Is(err, auth.ErrInvalidRole):
		writeServingError(w, http.StatusBadRequest, grpcInvalidArgument, err.Error())
	default:
		s.writeClusterError(w, err)
	}
}

func (c caller) ownsAll(a auth.Account) (string, bool) {
	if c.noAuth {
		return "", true
	}
	if len(a.Roles) == 0 {
		return "any", c.principal.IsOwnerSomewhere()
	}
	wss := make([]string, 0, len(a.Roles))
	for ws := range a.Roles {
		wss = append(wss, ws)
	}
	sort.Strings(wss)
	for _, ws := range wss {
		if !c.principal.Allowed(ws, auth.Owner) {
			return ws, false
		}
	}
	return "", true
}

func (s *Server) assignRole(w http.ResponseWriter, r *http.Request) {
	var req AssignRoleRequest
	c, ok := s.admin(w, r, &req)
	if !ok {
		return
	}
	role, err := checkAssignRole(&req)
	if err != nil {
		s.writeAccountError(w, err)
		return
	}
	if !c.allowed(req.Workspace, auth.Owner) {
		forbidden(w, fmt.Sprintf("assigning roles on workspace %q needs the owner role there", req.Workspace))
		return
	}
	assign := s.db.Accounts().AssignRole
	if s.opts.Cluster != nil {
		assign = func(id, workspace string, role auth.Role) error {
			return s.opts.Cluster.AssignRole(r.Context(), id, workspace, role)
		}
	}
	if err := assign(req.ServiceAccount, req.Workspace, role); err != nil {
		s.writeAccountError(w, err)
		return
	}
	writeJSONValue(w, http.StatusOK, map[string]string{"status": "Successfully updated role."})
}

// checkAssignRole validates what needs no state, before permissions are
// checked: the role and the presence of every field.
func checkAssignRole(req *AssignRoleRequest) (auth.Role, error) {
	switch {
	case req.ServiceAccount == "":
		return 0, paramError("service_account is required: the ID printed by \"featurelog service-account create\"")
	case req.Workspace == "":
		return 0, paramError("workspace is required")
	}
	return auth.ParseRole(req.Role)
}

// adminBodyError says what is wrong with an admin body, in the body's
// terms (its member names and JSON kinds, not Go types).
func adminBodyError(err error, into any) error {
	var sem *jsonv2.SemanticError
	if !errors.As(err, &sem) {
		return jsonError(err) // syntax, end of input, nesting
	}
	field := strings.TrimPrefix(string(sem.JSONPointer), "/")
	switch {
	case errors.Is(sem.Err, jsonv2.ErrUnknownName):
		return paramError("unknown field %q in the request body (expected %s)", field, strings.Join(memberNames(into), ", "))
	case field != "" && sem.GoType == reflect.TypeFor[time.Time]():
		return paramError("field %q of the request body must be an RFC 3339 time such as \"2026-01-02T15:04:05Z\"", field)
	case field != "" && sem.GoType != nil:
		return paramError("field %q of the request body must be a %s, not %s", field, sem.GoType.Kind(), jsondec.KindName(sem.JSONKind))
	}
	return paramError("bad request body: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// memberNames lists the JSON member names of the struct v points to.
func memberNames(v any) []string {
	t := reflect.TypeOf(v).Elem()
	var names []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		names = append(names, name)
	}
	return names
}

// featureView serves GET /api/v1/workspaces/{ws}/feature-views/{name}.
func (s *Server) featureView(w http.ResponseWriter, r *http.Request) {
	ws, ok := s.viewerOf(w, r, "read feature views")
	if !ok {
		return
	}
	sum, err := s.db.FeatureViewSummary(ws, r.PathValue("name"))
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	if s.opts.Cluster != nil {
		if err := s.clusterSummaries(r, ws, sum.Name, []*engine.Summary{sum}); err != nil { // the partitions' figures, combined (cluster_views.go)
			writeUnavailable(w, err)
			return
		}
	}
	writeJSONValue(w, http.StatusOK, summaryJSON(sum))
}

// optTime spells a time that may be unset: null when zero.
func optTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func summaryJSON(s *engine.Summary) map[string]any {
	opt := optTime
	dur := func(d time.Duration) any {
		if d == 0 {
			return nil
		}
		return engine.FormatDuration(d)
	}
	return map[string]any{
		"name": s.Name, "description": s.Description, "owner": s.Owner, "source": s.Source, "tags": s.Tags,
		"entities": s.Entities, "join_keys": s.JoinKeys, "features": s.Features,
		"timestamp_field": s.TimestampField, "aggregation_interval": s.AggregationInterval,
		"ttl": dur(s.TTL), "batch_schedule": dur(s.BatchSchedule), "feature_start_time": opt(s.FeatureStartTime),
		"created_at": opt(s.CreatedAt), "version": s.Version, "online": s.Online, "offline": s.Offline,
		"online_record_count": s.OnlineRecords, "offline_record_count": s.OfflineRecords,
		"freshness": opt(s.Freshness), "entity_keys_online": s.Keys,
		"serving_version": s.ServingVersion, "job": jobRef(s.Job),
		"transformation": transformJSON(s.Transform), "feature_definitions": featureDefsJSON(s.FeatureDefinitions),
		"versions": versionsJSON(s.Versions), "storage": storageJSON(s.Storage),
	}
}

func jobRef(id string) any {
	if id == "" {
		return nil
	}
	return id
}
