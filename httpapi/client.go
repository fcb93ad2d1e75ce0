package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/featurelog/featurelog/engine"
)

// Client calls a running node's admin API, for the CLI's --server mode.
type Client struct {
	BaseURL string // e.g. http://127.0.0.1:8080
	APIKey  string // an owner's key; empty when the node runs with --no-auth
	HTTP    *http.Client
}

// NewClient returns a Client with a 60s timeout.
func NewClient(baseURL, apiKey string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), APIKey: apiKey, HTTP: &http.Client{Timeout: 60 * time.Second}}
}

// Plan asks the node what applying the file would change.
func (c *Client) Plan(file string, content []byte) (*ApplyResponse, error) {
	var out ApplyResponse
	return &out, c.call("POST", "/api/v1/plan", ApplyRequest{File: file, Content: string(content)}, &out)
}

// Apply applies the file on the node.
func (c *Client) Apply(file string, content []byte) (*ApplyResponse, error) {
	var out ApplyResponse
	return &out, c.call("POST", "/api/v1/apply", ApplyRequest{File: file, Content: string(content)}, &out)
}

// CreateAccount creates a service account; the response carries its key.
func (c *Client) CreateAccount(name, description string) (*AccountResponse, error) {
	var out AccountResponse
	return &out, c.call("POST", "/api/v1/service-accounts", AccountRequest{Name: name, Description: description}, &out)
}

// DeleteAccount revokes a service account's key at once.
func (c *Client) DeleteAccount(id string) error {
	return c.call("DELETE", "/api/v1/service-accounts/"+id, nil, nil)
}

// ListAccounts lists the service accounts.
func (c *Client) ListAccounts() ([]AccountResponse, error) {
	var out []AccountResponse
	return out, c.call("GET", "/api/v1/service-accounts", nil, &out)
}

// AssignRole grants role on workspace to a service account.
func (c *Client) AssignRole(account, workspace, role string) error {
	return c.call("POST", "/api/v1/access-control/assign-role", AssignRoleRequest{ServiceAccount: account, Workspace: workspace, Role: role}, nil)
}

// Jobs lists a workspace's jobs, newest first; filter fields left empty
// match all.
func (c *Client) Jobs(workspace string, f engine.JobFilter) ([]engine.Job, error) {
	q := url.Values{}
	for k, v := range map[string]string{"feature_view": f.FeatureView, "type": string(f.Type), "state": string(f.State)} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	path := "/api/v1/workspaces/" + url.PathEscape(workspace) + "/jobs"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out JobsResponse
	return out.Jobs, c.call("GET", path, nil, &out)
}

// Job returns one job; with wait > 0 the node answers when the job ends
// or the wait is over.
func (c *Client) Job(workspace, id string, wait time.Duration) (engine.Job, error) {
	path := "/api/v1/workspaces/" + url.PathEscape(workspace) + "/jobs/" + url.PathEscape(id)
	if wait > 0 {
		path += "?wait=" + wait.String()
	}
	var out engine.Job
	return out, c.call("GET", path, nil, &out)
}

// CancelJob cancels a job.
func (c *Client) CancelJob(workspace, id string) (engine.Job, error) {
	var out engine.Job
	return out, c.call("POST", "/api/v1/workspaces/"+url.PathEscape(workspace)+"/jobs/"+url.PathEscape(id)+"/cancel", nil, &out)
}

// DeleteKeys starts a deletion job (SPEC §6 delete_keys).
func (c *Client) DeleteKeys(workspace, view string, req DeleteKeysRequest) (engine.Job, error) {
	var j engine.Job
	return j, c.call("POST", "/api/v1/workspaces/"+url.PathEscape(workspace)+"/feature-views/"+url.PathEscape(view)+"/delete-keys", req, &j)
}

// Materialize starts a materialization job.
func (c *Client) Materialize(workspace, view string, req MaterializationRequest) (engine.Job, error) {
	var out engine.Job
	return out, c.call("POST", "/api/v1/workspaces/"+url.PathEscape(workspace)+"/feature-views/"+url.PathEscape(view)+"/materialization-jobs", req, &out)
}

func (c *Client) call(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, c.BaseURL+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.APIKey != "" {
		req.Header.Set("Authorization", "Tecton-key "+c.APIKey)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("calling %s: %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct{ Message string }
		if json.Unmarshal(data, &e) == nil && e.Message != "" {
			return fmt.Errorf("%s (HTTP %d)", e.Message, resp.StatusCode)
		}
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(data)))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}
