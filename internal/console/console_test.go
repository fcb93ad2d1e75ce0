package console_test

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/internal/console"
)

// TestFilesSelfContained: the console needs no build step and no other
// host: every module it imports is embedded, and no file loads anything
// from elsewhere, holds an inline script or style attribute (which the
// Content-Security-Policy would refuse), or puts the API key in a URL.
func TestFilesSelfContained(t *testing.T) {
	files := console.FS()
	importRE := regexp.MustCompile(`(?m)^import .* from '([^']+)';|^import '([^']+)';`)
	srcRE := regexp.MustCompile(`(?:src|href)="([^"#]+)"`)
	seen := 0
	err := fs.WalkDir(files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(files, path)
		require.NoError(t, err)
		text := string(b)
		seen++
		// The SVG namespace is a name, not a place the page loads from.
		outside := regexp.MustCompile(`https?://`).FindString(strings.ReplaceAll(text, "http://www.w3.org/2000/svg", ""))
		assert.Empty(t, outside, "%s: no other host (the network may be closed; the CSP refuses them)", path)
		assert.NotContains(t, text, "eval(", path)
		switch {
		case strings.HasSuffix(path, ".js"):
			for _, m := range importRE.FindAllStringSubmatch(text, -1) {
				target := strings.TrimPrefix(m[1]+m[2], "./")
				_, err := fs.Stat(files, target)
				assert.NoError(t, err, "%s imports %s, which is not embedded", path, target)
			}
			assert.False(t, regexp.MustCompile(`[?&](api_?key|key)=`).MatchString(text), "%s: the API key never goes in a URL", path)
		case strings.HasSuffix(path, ".html"):
			assert.False(t, regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`).MatchString(text), "%s: no inline script", path)
			assert.NotContains(t, text, "style=", "%s: no inline style", path)
			for _, m := range srcRE.FindAllStringSubmatch(text, -1) {
				if strings.HasPrefix(m[1], "data:") || strings.HasPrefix(m[1], "../api/") {
					continue
				}
				_, err := fs.Stat(files, m[1])
				assert.NoError(t, err, "%s refers to %s, which is not embedded", path, m[1])
			}
		}
		return nil
	})
	require.NoError(t, err)
	assert.Greater(t, seen, 5)
}
