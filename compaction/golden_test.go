package compaction

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/internal/docgolden"
)

// update regenerates testdata/v1.seg. Only do it for a new format version
// (as v2.seg, keeping v1.seg): the point of the golden file is that every
// later reader still reads the files of today.
var update = flag.Bool("update", false, "rewrite the golden segment in testdata")

// goldenPath is a version-1 segment, written once by the writer of the
// time; it also seeds the fuzz targets.
const goldenPath = "testdata/v1.seg"

// goldenEntries is the content of the golden segment: several blocks, an
// empty key, an empty value and a value bigger than a block.
func goldenEntries() []kv {
	entries := []kv{{[]byte{}, []byte("empty key")}, {[]byte("a"), []byte{}}}
	for i := range 20 {
		entries = append(entries, kv{[]byte(fmt.Sprintf("user:%03d", i)), []byte(fmt.Sprintf(`{"clicks":%d}`, i*i))})
	}
	return append(entries, kv{[]byte("zz"), bytes.Repeat([]byte("big"), 100)})
}

func TestGoldenSegment(t *testing.T) {
	if *update {
		writeSegmentAt(t, goldenPath, goldenEntries(), WriterOptions{BlockSize: 128})
	}
	r := openT(t, goldenPath)
	assert.Equal(t, testMeta, r.Meta())
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

	// The header and footer bytes, spelled out as in docs/format/segment.md.
	data, err := os.ReadFile(goldenPath)
	require.NoError(t, err)
	assert.Equal(t, []byte("FLSG\x01\x00\x00\x00"), data[:headerSize])
	assert.Equal(t, []byte("\x01\x00\x00\x00"), data[len(data)-footerSize+ftVersion:][:4])
	assert.Equal(t, []byte("FLSG"), data[len(data)-4:])
	assert.Equal(t, docgolden.Hex(t, "segment.md", "footer"), data[len(data)-footerSize:], "the footer example of docs/format/segment.md")
	docgolden.Fields(t, "segment.md", reflect.TypeFor[Meta]())
}
