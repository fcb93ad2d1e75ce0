package bench

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"time"
)

// client is the load generator's HTTP client, shared by all workers of a
// run: keep-alive connections, at least one idle connection kept per
// worker so no request pays for a dial, no compression, no proxy.
type client struct {
	hc  *http.Client
	buf [][]byte // per-worker response buffers
}

func newClient(workers int) *client {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        0, // no global limit
		MaxIdleConnsPerHost: workers + 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
		WriteBufferSize:     64 << 10,
		ReadBufferSize:      64 << 10,
	}
	c := &client{hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}, buf: make([][]byte, workers)}
	for i := range c.buf {
		c.buf[i] = make([]byte, 0, 4096)
	}
	return c
}

// post sends body to url and reads the whole response; any status but 200
// is an error. The response body is returned in the worker's buffer,
// valid until its next post.
func (c *client) post(worker int, url string, body []byte) ([]byte, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b := bytes.NewBuffer(c.buf[worker][:0])
	_, err = b.ReadFrom(resp.Body)
	c.buf[worker] = b.Bytes()
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s: %.300s", url, resp.Status, b.Bytes())
	}
	return b.Bytes(), nil
}

func (c *client) close() { c.hc.CloseIdleConnections() }
