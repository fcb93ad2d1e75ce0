// Package browsertest drives the web console (package console) in
// headless Chromium through the DevTools protocol (chromedp), for the
// tests that check its pages in a real browser: internal/console's, and
// cmd/featurelog's against a `featurelog serve` child process.
//
//	path := browsertest.Chromium(t) // skips without a browser; fails with CI=true
//	b := browsertest.New(t, path)
//	tab := b.NewTab(t, "http://127.0.0.1:8080", true) // a node with auth: the first page shows a 401
//	tab.UseKey(key)
//	tab.Open("#/jobs/ads")
//	n := browsertest.Eval[int](tab, `document.querySelectorAll('button.cancel').length`)
//	tab.Screenshot("jobs")
//	tab.Log.Check(t, "jobs") // console errors, exceptions, unexpected refusals
//
// Only tests import it.
package browsertest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// Chromium finds the browser, or skips (fails with CI=true).
func Chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("FEATURELOG_CHROMIUM"), "chromium", "chromium-browser"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no chromium on the PATH: the console's browser tests need headless Chromium " +
		"(Debian: apt-get install -y chromium; or set FEATURELOG_CHROMIUM to a Chromium binary)"
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true but " + msg + "; .ci/run installs it before go test, so that step failed")
	}
	t.Skip("SKIP: " + msg)
	return ""
}

// PageLog collects what a tab reports that a working page must not:
// console errors, uncaught exceptions, error log entries, and answers
// >= 400 or failed loads, except the refusals a step expects.
type PageLog struct {
	mu       sync.Mutex
	problems []string
	expected []Refusal
	urls     map[string]string // request id → URL
}

// Refusal is an answer a step expects: a URL containing Part, answered
// status (0: any).
type Refusal struct {
	Part   string
	Status int64 // 0: any
}

func newPageLog(expected ...Refusal) *PageLog {
	return &PageLog{expected: expected, urls: map[string]string{}}
}

func (l *PageLog) expectedLocked(url string, status int64) bool {
	return slices.ContainsFunc(l.expected, func(r Refusal) bool {
		return url != "" && strings.Contains(url, r.Part) && (r.Status == 0 || r.Status == status)
	})
}

func (l *PageLog) listen(ev any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch e := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeAssert {
			var args []string
			for _, a := range e.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			l.problems = append(l.problems, "console."+string(e.Type)+": "+strings.Join(args, " "))
		}
	case *runtime.EventExceptionThrown:
		l.problems = append(l.problems, (&chromedp.ExceptionError{ExceptionDetails: e.ExceptionDetails}).Error())
	case *cdplog.EventEntryAdded:
		// Chrome logs each answer >= 400 ("... status of 404 (Not
		// Found)"); the answer itself is judged below.
		var status int64
		if _, rest, ok := strings.Cut(e.Entry.Text, "status of "); ok {
			fmt.Sscan(rest, &status)
		}
		if e.Entry.Level == cdplog.EntryLevelError && !l.expectedLocked(e.Entry.URL, status) {
			l.problems = append(l.problems, fmt.Sprintf("browser log (%s): %s %s", e.Entry.Source, e.Entry.Text, e.Entry.URL))
		}
	case *network.EventRequestWillBeSent:
		l.urls[string(e.RequestID)] = e.Request.URL
	case *network.EventResponseReceived:
		if e.Response.Status >= 400 && !l.expectedLocked(e.Response.URL, e.Response.Status) {
			l.problems = append(l.problems, fmt.Sprintf("HTTP %d from %s", e.Response.Status, e.Response.URL))
		}
	case *network.EventLoadingFailed:
		// A fetch the page aborts (the stream it stops on leaving) is
		// Canceled; anything else is a failure.
		if url := l.urls[string(e.RequestID)]; !e.Canceled {
			l.problems = append(l.problems, fmt.Sprintf("loading failed: %s %s", e.ErrorText, url))
		}
	}
}

// Expect adds a refusal the page may meet.
func (l *PageLog) Expect(r Refusal) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expected = append(l.expected, r)
}

// Forget drops an expectation.
func (l *PageLog) Forget(r Refusal) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expected = slices.DeleteFunc(l.expected, func(x Refusal) bool { return x == r })
}

// Check fails t with the problems seen since the last check.
func (l *PageLog) Check(t *testing.T, where string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.problems {
		t.Errorf("%s: %s", where, p)
	}
	l.problems = nil
}

// RoleProbe is the jobs page's role probe, whose 404 (owner, or no
// auth) or 403 (not owner) the page expects.
var RoleProbe = Refusal{Part: "/jobs/job_console_role_probe/cancel"}

// Unauthenticated is the first page's call on a node with auth before a
// key was entered: the page shows the 401 and asks for a key.
var Unauthenticated = Refusal{Part: "/api/v1/workspaces", Status: 401}

// Tab is one browser tab (its own sessionStorage) on a base URL.
type Tab struct {
	// T is the test that a failing step fails; a subtest sets its own.
	T *testing.T
	// Log holds what the tab's pages reported.
	Log  *PageLog
	ctx  context.Context
	base string
	dir  string // screenshots
}

// NewTab opens the console on base. auth says the node needs a key,
// which the tab has not yet: the first page then shows a 401.
func (b *Browser) NewTab(t *testing.T, base string, auth bool, expected ...Refusal) *Tab {
	t.Helper()
	expected = append(expected, RoleProbe)
	if auth {
		expected = append(expected, Unauthenticated)
	}
	l := newPageLog(expected...)
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithListener(l.listen))
	t.Cleanup(cancel)
	require.NoError(t, chromedp.Do(ctx), "opening a tab") // the tab lives as long as ctx
	tb := &Tab{T: t, ctx: ctx, Log: l, base: base, dir: b.shots}
	tb.Do(chromedp.Navigate(base + "/ui/"))
	tb.WaitReady("workspaces")
	return tb
}

// Do runs chromedp actions in the tab (30 s at most).
func (tb *Tab) Do(actions ...chromedp.Action[chromedp.Void]) {
	tb.T.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	require.NoError(tb.T, chromedp.Do(ctx, actions...))
}

// Eval evaluates a JavaScript expression and decodes its value into T.
func Eval[T any](tb *Tab, expr string) T {
	tb.T.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	require.NoError(tb.T, err, "evaluating %s", expr)
	return v
}

// WaitFor polls a JavaScript predicate until it is true.
func (tb *Tab) WaitFor(what, predicate string) {
	tb.T.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](predicate, chromedp.WithPollingInterval(50*time.Millisecond)))
	require.NoError(tb.T, err, "waiting for %s (%s); the page shows:\n%s", what, predicate, tb.Text())
}

// Text is the page's text as shown (innerText of its main element).
func (tb *Tab) Text() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('page').innerText`))
	return s
}

// WaitReady waits until the page named (workspaces, view, lookup, jobs,
// stream) has rendered: app.js marks body data-ready once its calls
// have answered.
func (tb *Tab) WaitReady(page string) {
	tb.T.Helper()
	tb.WaitFor("page "+page+" rendered", fmt.Sprintf(`document.body.dataset.page === %q && document.body.dataset.ready === 'true'`, page))
}

// Open shows a console route (#/...) and waits until it has rendered.
func (tb *Tab) Open(hash string) {
	tb.T.Helper()
	page := strings.SplitN(strings.TrimPrefix(hash, "#/"), "/", 2)[0]
	page, _, _ = strings.Cut(page, "?")
	Eval[chromedp.Void](tb, fmt.Sprintf(`document.body.dataset.ready = 'false'; location.hash = %q; undefined`, hash))
	tb.WaitReady(page)
}

// UseKey types an API key into the header's form, as a user would.
func (tb *Tab) UseKey(key string) {
	tb.T.Helper()
	Eval[chromedp.Void](tb, `document.body.dataset.ready = 'false'; undefined`)
	tb.Do(chromedp.SendKeys(chromedp.ID("key-input"), key), chromedp.Click(chromedp.ID("key-save")))
	tb.WaitFor("the key saved", `document.getElementById('key-status').textContent === 'key set for this tab' && document.body.dataset.ready === 'true'`)
	tb.Log.Forget(Unauthenticated) // with a key, a 401 is a failure
}

// Screenshot writes the whole page as NAME.png to the screenshots
// directory.
func (tb *Tab) Screenshot(name string) {
	tb.T.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(tb.T, err)
	require.NoError(tb.T, os.WriteFile(filepath.Join(tb.dir, name+".png"), png, 0o644))
}

// Browser is one headless Chromium, for all the tabs of a test.
type Browser struct {
	ctx   context.Context
	shots string
}

// New starts the Chromium at path, headless, with a fresh profile and
// no background networking (the network may be closed), for the rest of
// t. Screenshots go to $FEATURELOG_TEST_OUT/console, or to
// featurelog-console-screenshots in the temporary directory; New logs
// which.
func New(t *testing.T, path string) *Browser {
	t.Helper()
	profile, err := os.MkdirTemp("", "featurelog-console-chromium-")
	require.NoError(t, err)
	shots := filepath.Join(os.TempDir(), "featurelog-console-screenshots")
	if out := os.Getenv("FEATURELOG_TEST_OUT"); out != "" {
		shots = filepath.Join(out, "console")
	}
	require.NoError(t, os.MkdirAll(shots, 0o755))
	t.Logf("screenshots of the console's pages: %s", shots)
	var stderr bytes.Buffer
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(profile),
		chromedp.NoSandbox, // root in CI containers
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(&stderr),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
		// Chromium's children may still write in the profile for a
		// moment after it stops.
		for range 50 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	// The first Run starts the browser, which lives as long as the
	// context it gets: so that one has no timeout.
	require.NoError(t, chromedp.Do(bctx), "starting %s: %s", path, stderr.String())
	return &Browser{ctx: bctx, shots: shots}
}

// VectorRow is a row of the lookup page's vector table, as ReadVector
// reads it: JSON is the value as the API encoded it, Effective the
// effective time as the API wrote it.
type VectorRow struct {
	Name, Type, JSON, Effective, Status string
}

// ReadVector is the JavaScript that reads the lookup page's vector as
// []VectorRow (with Eval).
const ReadVector = `[...document.querySelectorAll('#vector tbody tr')].map((tr) => ({
  Name: tr.dataset.feature, Type: tr.querySelector('td.type').textContent,
  JSON: tr.querySelector('td.value').dataset.json, Effective: tr.querySelector('td.effective').dataset.time,
  Status: tr.querySelector('td.status').textContent }))`
