package compaction

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/internal/docgolden"
)

// update regenerates the golden segments of the current format version
// (testdata/v2-*.seg), for a new version or codec only: the point of a
// golden file is that every later reader still reads the files of today.
// It never rewrites the files of an older version (testdata/v1.seg).
var update = flag.Bool("update", false, "rewrite the golden segments of the current format version in testdata")

// golden is a golden segment: written once by the writer of its time, read
// by every later one; they also seed the fuzz targets.
type golden struct {
	// path is the file, under testdata.
	path string
	// format is the version and codec the file states.
	format format
	// opts wrote the file; nil for a file of an older version, which no
	// writer of today can produce.
	opts *WriterOptions
	// footerDoc names the hex dump of the footer in docs/format/segment.md.
	footerDoc string
}

// goldens lists the golden segments, one per version and codec.
var goldens = []golden{
	{path: "testdata/v1.seg", format: format{version: 1, codec: CodecZstd}, footerDoc: "footer"},
	{path: "testdata/v2-zstd.seg", format: format{version: 2, codec: CodecZstd},
		opts: &WriterOptions{BlockSize: 128, Codec: CodecZstd}},
	{path: "testdata/v2-s2.seg", format: format{version: 2, codec: CodecS2},
		opts: &WriterOptions{BlockSize: 128, Codec: CodecS2}, footerDoc: "footer-v2-s2"},
}

// goldenEntries is the content of the golden segments: several blocks, an
// empty key, an empty value and a value bigger than a block.
func goldenEntries() []kv {
	entries := []kv{{[]byte{}, []byte("empty key")}, {[]byte("a"), []byte{}}}
	for i := range 20 {
		entries = append(entries, kv{[]byte(fmt.Sprintf("user:%03d", i)), []byte(fmt.Sprintf(`{"clicks":%d}`, i*i))})
	}
	return append(entries, kv{[]byte("zz"), bytes.Repeat([]byte("big"), 100)})
}

func TestGoldenSegment(t *testing.T) {
	for _, g := range goldens {
		t.Run(filepath.Base(g.path), func(t *testing.T) {
			if *update && g.opts != nil {
				writeSegmentAt(t, g.path, goldenEntries(), *g.opts)
			}
			r := openT(t, g.path)
			assert.Equal(t, testMeta, r.Meta())
			assert.Equal(t, g.format.codec, r.Codec())
			got, err := scan(r)
			require.NoError(t, err)
			requireSameEntries(t, goldenEntries(), got)
			for _, e := range goldenEntries() {
				v, ok, err := r.Get(e.key)
				require.NoError(t, err)
				require.True(t, ok)
				require.Equal(t, e.value, v)
			}
			assert.Greater(t, len(r.blocks), 3)

			// The header and footer bytes, spelled out as in
			// docs/format/segment.md.
			data, err := os.ReadFile(g.path)
			require.NoError(t, err)
			formatBytes := []byte{g.format.version, g.format.codecByte(), 0, 0}
			assert.Equal(t, append([]byte("FLSG"), formatBytes...), data[:headerSize])
			assert.Equal(t, formatBytes, data[len(data)-footerSize+ftVersion:][:4])
			assert.Equal(t, []byte("FLSG"), data[len(data)-4:])
			if g.footerDoc != "" {
				assert.Equal(t, docgolden.Hex(t, "segment.md", g.footerDoc), data[len(data)-footerSize:],
					"the footer example %s of docs/format/segment.md", g.footerDoc)
			}
		})
	}
	docgolden.Fields(t, "segment.md", reflect.TypeFor[Meta]())
}

// TestGoldenCodecBytes pins the codec byte values, part of the format.
func TestGoldenCodecBytes(t *testing.T) {
	assert.Equal(t, byte(1), byte(CodecZstd))
	assert.Equal(t, byte(2), byte(CodecS2))
	assert.Equal(t, byte(0), format{version: 1, codec: CodecZstd}.codecByte())
}
