package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/cluster"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/schema"
)

// TestRunMergeLateError: the merge of a run's partition answers writes
// their rows by key, and when an owner ends its answer with an error line
// after rows were sent, the answer ends with the standard late error line
// (code 14 for an unavailable owner, its own code otherwise), after the
// rows merged so far: never a silently partial answer.
func TestRunMergeLateError(t *testing.T) {
	s := &Server{opts: Options{Logger: slog.New(slog.DiscardHandler), MaxBodyBytes: 1 << 20}}
	remote := func(node, body string) *rangeStream {
		resp := &http.Response{Body: io.NopCloser(strings.NewReader(body))}
		return s.remoteRows(resp, &partGroup{route: cluster.Route{Node: node}}, 2, func() {})
	}
	cols := []engine.HistoricalColumn{{Name: "user_id", Type: schema.ScalarType(schema.String)}, {Name: "n", Type: schema.ScalarType(schema.Int64)}}
	key := func(row []byte) (string, error) {
		vals, err := lineMembers(row)
		if err != nil {
			return "", err
		}
		return string(vals[0]), nil
	}
	for _, c := range []struct {
		name, last, want string
	}{
		{"unavailable", `{"code":14,"error":"closed","message":"closed"}`, `{"code":14,"error":"node n2: closed; retry","message":"node n2: closed; retry"}`},
		{"internal", `{"code":13,"error":"boom","message":"boom"}`, `{"code":13,"error":"boom","message":"boom"}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := remote("n1", "{\"user_id\":\"a\",\"n\":1}\n{\"user_id\":\"c\",\"n\":3}\n{\"user_id\":\"e\",\"n\":5}\n")
			b := remote("n2", "{\"user_id\":\"b\",\"n\":2}\n{\"user_id\":\"d\",\"n\":4}\n"+c.last+"\n")
			rec := httptest.NewRecorder()
			st := &stream{w: rec, rc: http.NewResponseController(rec)}
			st.Begin(cols)
			st.last = time.Time{} // flush at once: the answer has begun
			m := &rangeMerge{st: st}
			err := m.byKey([]*rangeStream{a, b}, key)
			require.Error(t, err)
			st.finish(context.Background(), s, err)
			assert.Equal(t, http.StatusOK, rec.Code)
			assert.Equal(t, "{\"user_id\":\"a\",\"n\":1}\n{\"user_id\":\"b\",\"n\":2}\n{\"user_id\":\"c\",\"n\":3}\n{\"user_id\":\"d\",\"n\":4}\n"+c.want+"\n", rec.Body.String())
		})
	}
	// Without an error, every row, by key.
	a := remote("n1", "{\"user_id\":\"a\",\"n\":1}\n{\"user_id\":\"a\",\"n\":2}\n{\"user_id\":\"d\",\"n\":3}\n")
	b := remote("n2", "{\"user_id\":\"b\",\"n\":4}\n{\"user_id\":\"c\",\"n\":5}\n{\"user_id\":\"c\",\"n\":6}\n")
	rec := httptest.NewRecorder()
	st := &stream{w: rec, rc: http.NewResponseController(rec)}
	st.Begin(cols)
	m := &rangeMerge{st: st}
	require.NoError(t, m.byKey([]*rangeStream{a, b}, key))
	st.finish(context.Background(), s, nil)
	assert.Equal(t, "{\"user_id\":\"a\",\"n\":1}\n{\"user_id\":\"a\",\"n\":2}\n{\"user_id\":\"b\",\"n\":4}\n{\"user_id\":\"c\",\"n\":5}\n{\"user_id\":\"c\",\"n\":6}\n{\"user_id\":\"d\",\"n\":3}\n", rec.Body.String())
}
