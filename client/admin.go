package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// ApplyResponse answers Plan and Apply.
type ApplyResponse struct {
	Workspace string   `json:"workspace"`
	Plan      string   `json:"plan"` // the human-readable plan
	Changed   bool     `json:"changed"`
	Rebuilt   []string `json:"rebuilt,omitempty"` // views rebuilt by backfill jobs
	// Jobs are the backfill jobs the apply started.
	Jobs []Job `json:"jobs,omitempty"`
}

type applyRequest struct {
	File    string `json:"file"`
	Content string `json:"content"`
}

// Plan asks the node what applying a repo file would change
// (POST /api/v1/plan). file names it in error messages; content is its
// YAML. Needs the owner role on the file's workspace.
func (c *Client) Plan(ctx context.Context, file string, content []byte) (*ApplyResponse, error) {
	return c.planOrApply(ctx, "plan", file, content)
}

// Apply applies a repo file on the node (POST /api/v1/apply).
func (c *Client) Apply(ctx context.Context, file string, content []byte) (*ApplyResponse, error) {
	return c.planOrApply(ctx, "apply", file, content)
}

func (c *Client) planOrApply(ctx context.Context, op, file string, content []byte) (*ApplyResponse, error) {
	var out ApplyResponse
	if err := c.call(ctx, http.MethodPost, apiPath(op), applyRequest{file, string(content)}, &out, nil); err != nil {
		return nil, err
	}
	return &out, nil
}

// ServiceAccount describes a service account.
type ServiceAccount struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	CreatedAt   time.Time         `json:"created_at"`
	Roles       map[string]string `json:"roles"` // workspace → viewer, editor or owner
	// APIKey is set only in CreateServiceAccount's answer: the node keeps
	// only its hash.
	APIKey string `json:"api_key,omitempty"`
}

// CreateServiceAccount creates a service account; the answer carries its
// API key, which is shown only this once (POST /api/v1/service-accounts).
func (c *Client) CreateServiceAccount(ctx context.Context, name, description string) (*ServiceAccount, error) {
	var out ServiceAccount
	in := struct {
		Name        string `json:"name"`
		Description string `json:"description"`
	}{name, description}
	if err := c.call(ctx, http.MethodPost, apiPath("service-accounts"), in, &out, nil); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListServiceAccounts lists the service accounts
// (GET /api/v1/service-accounts).
func (c *Client) ListServiceAccounts(ctx context.Context) ([]ServiceAccount, error) {
	var out []ServiceAccount
	if err := c.call(ctx, http.MethodGet, apiPath("service-accounts"), nil, &out, nil); err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteServiceAccount revokes a service account's key at once
// (DELETE /api/v1/service-accounts/{id}).
func (c *Client) DeleteServiceAccount(ctx context.Context, id string) error {
	return c.call(ctx, http.MethodDelete, apiPath("service-accounts", id), nil, nil, nil)
}

// AssignRole grants a role (viewer, editor or owner) on a workspace to a
// service account (POST /api/v1/access-control/assign-role).
func (c *Client) AssignRole(ctx context.Context, serviceAccount, workspace, role string) error {
	in := struct {
		ServiceAccount string `json:"service_account"`
		Workspace      string `json:"workspace"`
		Role           string `json:"role"`
	}{serviceAccount, workspace, role}
	return c.call(ctx, http.MethodPost, apiPath("access-control", "assign-role"), in, nil, nil)
}

// Health checks that the node's HTTP server is up (GET /healthz).
func (c *Client) Health(ctx context.Context) error {
	return c.call(ctx, http.MethodGet, "/healthz", nil, nil, nil)
}

// Readiness is the answer of GET /readyz.
type Readiness struct {
	Status string `json:"status"` // "ready" or "unavailable"
	// Degraded says what is failing on a node that still serves
	// (background checkpoints, ...).
	Degraded string `json:"degraded,omitempty"`
}

// Ready checks that the node can ingest and read (GET /readyz). A node
// that cannot answers an *Error with Status 503 whose Message says why.
func (c *Client) Ready(ctx context.Context) (*Readiness, error) {
	req, err := c.newRequest(ctx, http.MethodGet, "/readyz", nil, "")
	if err != nil {
		return nil, err
	}
	resp, err := c.send(c.hc, req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, readinessError(resp)
	}
	var out Readiness
	return &out, decodeBody(resp, &out)
}

// readinessError reads /readyz's 503 body, {"status", "error"}.
func readinessError(resp *http.Response) error {
	e := responseError(resp).(*Error)
	var b struct {
		Error string `json:"error"`
	}
	if decodeString(e.Message, &b) == nil && b.Error != "" {
		e.Message = b.Error
	}
	return e
}

// Metrics returns the node's Prometheus metrics in the text exposition
// format (GET /metrics).
func (c *Client) Metrics(ctx context.Context) ([]byte, error) {
	return c.getBytes(ctx, "/metrics", "the metrics")
}

// OpenAPI returns the node's OpenAPI 3.1 description of its routes, as
// YAML (GET /api/v1/openapi.yaml).
func (c *Client) OpenAPI(ctx context.Context) ([]byte, error) {
	return c.getBytes(ctx, "/api/v1/openapi.yaml", "the OpenAPI document")
}

// getBytes GETs path and returns the answer's body; what names it in
// errors.
func (c *Client) getBytes(ctx context.Context, path, what string) ([]byte, error) {
	req, err := c.newRequest(ctx, http.MethodGet, path, nil, "")
	if err != nil {
		return nil, err
	}
	resp, err := c.send(c.hc, req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, responseError(resp)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	return data, nil
}
