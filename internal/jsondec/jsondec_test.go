package jsondec

import (
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReuseReadsEachBodyFromItsStart(t *testing.T) {
	for _, body := range []string{`{"a":1}`, `[true]`, `"x"`} {
		d := Get([]byte(body))
		v, err := d.ReadValue()
		require.NoError(t, err)
		assert.Equal(t, body, string(v))
		_, err = d.ReadToken()
		assert.Equal(t, io.EOF, err)
		Put(d)
	}
}

func TestRejectsDuplicateNamesAndBadUTF8(t *testing.T) {
	for _, body := range []string{`{"a":1,"a":2}`, "{\"a\":\"\xff\"}"} {
		d := Get([]byte(body))
		_, err := d.ReadValue()
		assert.Error(t, err, body)
		Put(d)
	}
}

func nested(depth int) string {
	return strings.Repeat(`{"a":[`, depth/2) + strings.Repeat(`{"a":`, depth%2) + `1` +
		strings.Repeat(`}`, depth%2) + strings.Repeat(`]}`, depth/2)
}

func TestDepthLimit(t *testing.T) {
	for _, depth := range []int{0, 1, 2, MaxDepth - 1, MaxDepth} {
		body := nested(depth)
		d := Get([]byte(body))
		v, err := d.ReadValue()
		require.NoError(t, err, "depth %d", depth)
		assert.Equal(t, body, string(v))
		Put(d)
	}
	for _, depth := range []int{MaxDepth + 1, MaxDepth + 2, 10001} {
		body := nested(depth)
		d := Get([]byte(body))
		_, err := d.ReadToken()
		require.ErrorIs(t, err, ErrTooDeep, "depth %d", depth)
		var de *DepthError
		require.ErrorAs(t, err, &de)
		assert.Equal(t, MaxDepth, de.Limit)
		assert.Contains(t, "{[", string(body[de.Offset]), "offset %d points at a bracket", de.Offset)
		assert.Contains(t, err.Error(), fmt.Sprintf("depth %d", MaxDepth+1))
		assert.Contains(t, err.Error(), fmt.Sprintf("limit of %d", MaxDepth))
		Put(d)
		// The pooled decoder is usable again for a shallow body.
		d = Get([]byte(`[1]`))
		_, err = d.ReadValue()
		require.NoError(t, err)
		Put(d)
	}
}

// TestTooDeepAgreesWithDepth checks the scanner against a model: the
// maximum depth the jsontext decoder itself reports while reading.
func TestTooDeepAgreesWithDepth(t *testing.T) {
	bodies := []string{
		`{}`, `[]`, `"[[[["`, `{"[[[[":"]]]]"}`, `["\"[[[", [[1]]]`, `["\\", [[1]]]`, `["\\\"[[", [1]]`,
		`{"a":[{"b":[{"c":[]}]}]}`, `[[],[[]],[[[]]]]`, "[\"\u00e9[\", {\"x\": [\"]]]]\"]}]",
	}
	for _, body := range bodies {
		want := maxDepth(t, body)
		for limit := 0; limit <= want+1; limit++ {
			off := TooDeep([]byte(body), limit)
			if want <= limit {
				assert.Equal(t, -1, off, "%s limit %d", body, limit)
			} else {
				require.GreaterOrEqual(t, off, 0, "%s limit %d", body, limit)
				assert.Contains(t, "{[", string(body[off]), "%s limit %d", body, limit)
			}
		}
	}
}

func maxDepth(t *testing.T, body string) int {
	d := jsontext.NewDecoder(strings.NewReader(body))
	best := 0
	for {
		_, err := d.ReadToken()
		if err == io.EOF {
			return best
		}
		require.NoError(t, err, body)
		best = max(best, d.StackDepth())
	}
}

// TestErrorPointerNamesTheMember: an error inside a value read whole
// names the members on its path. Through a bytes.Reader, jsontext named
// "/records/2024-05/1/..." here (bytes of a later chunk).
func TestErrorPointerNamesTheMember(t *testing.T) {
	body := []byte("{\"workspace_name\":\"shop\",\"dry_run\":false,\"records\":{\"orders\":[" +
		"{\"record\":{\"customer_id\":\"c1\",\"ts\":\"2024-05-01T11:59:00Z\",\"amount\":5}}," +
		"{\"record\":{\"customer_id\":\"c\xff\",\"ts\":\"2024-05-01T11:59:00Z\"}}]}}")
	orig := string(body)
	d := Get(body)
	defer Put(d)
	_, err := d.ReadToken()
	require.NoError(t, err)
	for d.PeekKind() != '}' {
		name, err := d.ReadToken()
		require.NoError(t, err)
		if name.String() != "records" {
			require.NoError(t, d.SkipValue())
			continue
		}
		_, err = d.ReadValue()
		require.Error(t, err)
		assert.Contains(t, err.Error(), `"/records/orders/1/record/customer_id"`)
		break
	}
	assert.Equal(t, orig, string(body), "the decoder must not write to the body")
}
