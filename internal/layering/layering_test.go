// Package layering holds the test that keeps featurelog's package
// dependencies pointing one way: the concept packages below the engine,
// the engine below its interfaces (httpapi, kafkasink), and those below
// the CLI and the benchmarks; the Go client beside them all, importing
// none.
package layering

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const mod = "github.com/featurelog/featurelog"

// deps lists the featurelog packages pkg depends on (not its tests').
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", mod+"/"+pkg).CombinedOutput()
	require.NoError(t, err, "go list %s: %s", pkg, out)
	var ours []string
	for _, p := range strings.Fields(string(out)) {
		if p != mod+"/"+pkg && strings.HasPrefix(p, mod+"/") {
			ours = append(ours, strings.TrimPrefix(p, mod+"/"))
		}
	}
	return ours
}

func TestLayering(t *testing.T) {
	above := func(pkgs ...string) func(string) bool {
		return func(p string) bool {
			for _, a := range pkgs {
				if p == a || strings.HasPrefix(p, a+"/") {
					return true
				}
			}
			return false
		}
	}
	engineAndUp := above("engine", "cluster", "httpapi", "client", "kafkasink", "cmd", "bench")
	for _, c := range []struct {
		pkgs      []string
		forbidden func(string) bool
		what      string
	}{
		{[]string{"schema", "historical", "tabread", "tabular", "repo", "auth", "vfs", "vfs/errorfs", "wal", "tiles", "compaction",
			"internal/record", "internal/batchsrc", "internal/jsondec", "internal/dirlock", "internal/atomicfile", "internal/suggest", "internal/console", "internal/clicks"},
			engineAndUp, "the engine or what is built on it"},
		{[]string{"engine"}, above("cluster", "httpapi", "client", "kafkasink", "cmd", "bench"), "its interfaces"},
		{[]string{"cluster"}, above("httpapi", "client", "kafkasink", "cmd", "bench"), "the interfaces that serve it"},
		{[]string{"httpapi", "kafkasink"}, above("client", "cmd", "bench"), "the CLI, the benchmarks or the client"},
		{[]string{"client"}, func(string) bool { return true }, "any featurelog package (it is standard library only)"},
	} {
		for _, pkg := range c.pkgs {
			for _, d := range deps(t, pkg) {
				assert.False(t, c.forbidden(d), "%s depends on %s: it must not depend on %s", pkg, d, c.what)
			}
		}
	}
}

// TestOneJSONStack: featurelog's packages encode and decode JSON with
// go-json-experiment (its v2 API, or its v1 API where encoding/json's
// semantics are wanted), not also with encoding/json; only the client,
// which must stay standard library only, uses encoding/json.
func TestOneJSONStack(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, mod+"/...").CombinedOutput()
	require.NoError(t, err, "go list: %s", out)
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] == mod+"/client" {
			continue
		}
		for _, imp := range f[1:] {
			assert.NotEqual(t, "encoding/json", imp, "%s imports encoding/json; use github.com/go-json-experiment/json (or its v1 API)", f[0])
		}
	}
}
