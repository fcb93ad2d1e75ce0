package jsondec

import (
	"io"
	"testing"

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
