// Package console is featurelog's web console: static files (plain HTML,
// CSS and ES modules, no build step) embedded in the binary, and the
// http.Handler that serves them under /ui/. httpapi mounts it; `featurelog
// serve` then shows it at http://127.0.0.1:8080/ui/.
//
// The files hold no data. Everything the console shows comes from calls
// the page makes to the public HTTP API (api/openapi.yaml), with the
// user's API key in an Authorization header; the key is kept in the tab's
// sessionStorage and never put in a URL. So the handler needs no key and
// knows no engine: it only serves files.
//
//	mux.Handle("GET /ui/", console.Handler())
//	mux.Handle("GET /ui", console.Redirect())
//
// Headers: every answer carries a Content-Security-Policy that allows
// scripts, styles and connections to this origin only (no inline script,
// no eval, no other host), X-Content-Type-Options: nosniff, and
// Referrer-Policy: no-referrer. Files are revalidated on each load
// (Cache-Control: no-cache) against a strong ETag, the hash of their
// content, so an upgraded binary's files are never mixed with an older
// cached copy, and an unchanged file costs a 304.
//
// docs/console.md describes the pages and the decisions behind them.
package console

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"strings"
)

// Prefix is the URL path the console is served under.
const Prefix = "/ui/"

// ContentSecurityPolicy is sent with every file: scripts, styles, images
// and API calls from this origin only; no inline script or style
// attribute, no eval, no framing.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

//go:embed static
var files embed.FS

// static is the embedded tree rooted at static/.
var static = func() fs.FS {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic("BUG: console: " + err.Error())
	}
	return sub
}()

// etags holds each file's strong ETag, computed once from its content.
var etags = func() map[string]string {
	m := map[string]string{}
	err := fs.WalkDir(static, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(static, path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		m[path] = `"` + hex.EncodeToString(sum[:12]) + `"`
		return nil
	})
	if err != nil {
		panic("BUG: console: " + err.Error())
	}
	return m
}()

// FS returns the console's files (index.html, the modules, the style
// sheet), for tests and for callers that serve them their own way.
func FS() fs.FS { return static }

// Handler serves the console's files for requests under Prefix
// (GET and HEAD; the mux's pattern decides), index.html for Prefix
// itself, and 404 for anything else.
func Handler() http.Handler {
	files := http.FileServerFS(static)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		name, ok := strings.CutPrefix(r.URL.Path, Prefix)
		if !ok {
			http.NotFound(w, r)
			return
		}
		if name == "" {
			name = "index.html"
		}
		tag, ok := etags[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", tag) // http.ServeContent answers If-None-Match with 304
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/" + name
		if name == "index.html" {
			// FileServer redirects /index.html to ./; serve it by its
			// directory instead.
			r2.URL.Path = "/"
		}
		files.ServeHTTP(w, r2)
	})
}

// Redirect sends a request for the prefix without its slash (/ui) to
// Prefix.
func Redirect() http.Handler {
	return http.RedirectHandler(Prefix, http.StatusMovedPermanently)
}
