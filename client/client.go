package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultTimeout bounds a whole call that does not stream (everything but
// GetFeaturesForEvents, Run and the output streams, which ctx alone
// bounds) when New is given no *http.Client.
const DefaultTimeout = 60 * time.Second

// Client calls one featurelog node. It is safe for concurrent use.
type Client struct {
	base      string       // the node's URL without a trailing slash
	apiKey    string       // sent as "Authorization: Tecton-key KEY" when not empty
	hc        *http.Client // every call; streaming calls use a copy without Timeout
	userAgent string       // the User-Agent header
}

// Options configures a Client. The zero Options is valid: no API key, a
// client with DefaultTimeout, the default user agent.
type Options struct {
	// APIKey is the service account key sent with every call. Empty: the
	// node must run with --no-auth.
	APIKey string
	// HTTPClient carries every call (its transport, TLS and proxy
	// settings). Its Timeout applies to calls that do not stream;
	// streaming calls run with Timeout 0, bounded by their context.
	// Default: an *http.Client with DefaultTimeout.
	HTTPClient *http.Client
	// UserAgent is the User-Agent header. Default "featurelog-go-client".
	UserAgent string
}

// EnsureDefaults fills in unset fields.
func (o *Options) EnsureDefaults() {
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: DefaultTimeout}
	}
	if o.UserAgent == "" {
		o.UserAgent = "featurelog-go-client"
	}
}

// Validate reports options that cannot work: a key or user agent that
// cannot travel in an HTTP header.
func (o *Options) Validate() error {
	for name, v := range map[string]string{"APIKey": o.APIKey, "UserAgent": o.UserAgent} {
		if strings.ContainsAny(v, "\r\n\x00") {
			return fmt.Errorf("client: Options.%s holds a line break or NUL, which cannot be sent in a header", name)
		}
	}
	return nil
}

// New returns a Client of the node at baseURL (such as
// "http://127.0.0.1:8080"). It fails when baseURL is not an absolute
// http or https URL, or when opts do not validate.
func New(baseURL string, opts Options) (*Client, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("client: the node URL %q is not a URL: %w", baseURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: the node URL %q must be absolute, http or https, such as http://127.0.0.1:8080", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("client: the node URL %q must have no query or fragment", baseURL)
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), apiKey: opts.APIKey, hc: opts.HTTPClient, userAgent: opts.UserAgent}, nil
}

// BaseURL returns the node's URL as New was given it, without a trailing
// slash.
func (c *Client) BaseURL() string { return c.base }

// path joins escaped path segments under /api/v1.
func apiPath(segments ...string) string {
	var b strings.Builder
	b.WriteString("/api/v1")
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

// newRequest builds a request to path with the client's headers.
func (c *Client) newRequest(ctx context.Context, method, path string, body io.Reader, contentType string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Tecton-key "+c.apiKey)
	}
	req.Header.Set("User-Agent", c.userAgent)
	return req, nil
}

// send sends req with hc, wrapping a transport error with the node's URL.
func (c *Client) send(hc *http.Client, req *http.Request) (*http.Response, error) {
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("calling %s: %w", c.base, err)
	}
	return resp, nil
}

// streaming returns the client's *http.Client without its Timeout: a
// streamed answer lasts as long as it takes, and ctx cancels it.
func (c *Client) streaming() *http.Client {
	hc := *c.hc
	hc.Timeout = 0
	return &hc
}

// call sends in (when not nil) as JSON and decodes a 2xx answer into out
// (when not nil); any other status is an *Error.
func (c *Client) call(ctx context.Context, method, path string, in, out any, header http.Header) error {
	var body io.Reader
	ct := ""
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("client: encoding the request: %w", err)
		}
		body, ct = bytes.NewReader(data), "application/json"
	}
	req, err := c.newRequest(ctx, method, path, body, ct)
	if err != nil {
		return err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.send(c.hc, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return responseError(resp)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("reading the answer of %s %s: %w", method, path, err)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("client: the answer of %s %s is not what the API defines: %w", method, path, err)
	}
	return nil
}

// decodeBody decodes a JSON answer into out.
func decodeBody(resp *http.Response, out any) error {
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("reading the answer of %s: %w", resp.Request.URL.Path, err)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("client: the answer of %s is not what the API defines: %w", resp.Request.URL.Path, err)
	}
	return nil
}

func decodeString(s string, out any) error { return json.Unmarshal([]byte(s), out) }
