// Package docgolden reads the examples of the format pages in docs/format
// for the golden tests that pin them: the page's example is the golden
// data, so the page and the code cannot drift apart unnoticed.
//
// A page marks an example with an HTML comment on the line before its
// fenced block (invisible when the page is rendered):
//
//	<!-- golden: manifest -->
//	```json
//	{ ... }
//	```
//
// A test reads it with Block (the text, for JSON files) or Hex (the bytes
// of a hex dump: on each line, the hex byte pairs before the first run of
// two spaces; what follows is a comment for the reader):
//
//	want := docgolden.Block(t, "manifest.md", "manifest")
//	got := docgolden.Hex(t, "attributes.md", "three-versions")
//
// Fields checks that a page documents every JSON field of a type, so that a
// field added to the code without a line in the page fails a test even
// when the example omits it (omitempty).
//
// Only tests import this package.
package docgolden

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Page returns the text of docs/format/<name>, found from the working
// directory (a package directory of the module) upwards.
func Page(t testing.TB, name string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("docgolden: no go.mod above the working directory")
		}
		dir = parent
	}
	data, err := os.ReadFile(filepath.Join(dir, "docs", "format", name))
	if err != nil {
		t.Fatalf("docgolden: %v", err)
	}
	return string(data)
}

// Block returns the content of the fenced block marked golden: example
// in docs/format/<page>, without the fences, its lines ending in "\n".
func Block(t testing.TB, page, example string) string {
	t.Helper()
	lines := strings.Split(Page(t, page), "\n")
	marker := "<!-- golden: " + example + " -->"
	for i, l := range lines {
		if strings.TrimSpace(l) != marker {
			continue
		}
		if i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], "```") {
			t.Fatalf("docgolden: %s: %s is not followed by a fenced block", page, marker)
		}
		var b strings.Builder
		for _, l := range lines[i+2:] {
			if strings.HasPrefix(l, "```") {
				return b.String()
			}
			b.WriteString(l + "\n")
		}
		t.Fatalf("docgolden: %s: the block after %s is not closed", page, marker)
	}
	t.Fatalf("docgolden: %s has no %s", page, marker)
	return ""
}

// Hex returns the bytes of the hex dump marked golden: example in
// docs/format/<page>.
func Hex(t testing.TB, page, example string) []byte {
	t.Helper()
	var out []byte
	for _, l := range strings.Split(Block(t, page, example), "\n") {
		if i := strings.Index(l, "  "); i >= 0 {
			l = l[:i]
		}
		for _, f := range strings.Fields(l) {
			b, err := hex.DecodeString(f)
			if err != nil || len(b) != 1 {
				t.Fatalf("docgolden: %s, example %s: %q is not a hex byte (put two spaces before a comment)", page, example, f)
			}
			out = append(out, b[0])
		}
	}
	return out
}

// Fields fails t for every JSON field name of typ (and of the structs it
// holds, through pointers, slices and maps) that docs/format/<page> does
// not mention in code spans: `name`, `parent.name`, `sets[].name`.
func Fields(t testing.TB, page string, typ reflect.Type) {
	t.Helper()
	documented := codeWords(Page(t, page))
	for _, name := range JSONNames(typ) {
		if !documented[name] {
			t.Errorf("docgolden: %s does not document the JSON field %q of %v", page, name, typ)
		}
	}
}

// JSONNames returns the JSON field names of typ and of the structs it
// holds, each once, in the order met.
func JSONNames(typ reflect.Type) []string {
	var names []string
	seen := map[string]bool{}
	visited := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || visited[t] || t.PkgPath() == "time" {
			return
		}
		visited[t] = true
		for f := range t.Fields() {
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if !seen[name] {
				seen[name] = true
				names = append(names, name)
			}
			walk(f.Type)
		}
	}
	walk(typ)
	return names
}

// codeWords returns the words (letters, digits and _) of text's code
// spans.
func codeWords(text string) map[string]bool {
	words := map[string]bool{}
	parts := strings.Split(text, "`")
	for i := 1; i < len(parts); i += 2 {
		for _, w := range strings.FieldsFunc(parts[i], func(r rune) bool {
			return !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
		}) {
			words[w] = true
		}
	}
	return words
}
