package cluster

import (
	"reflect"
	"testing"

	"github.com/go-json-experiment/json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/featurelog/featurelog/internal/docgolden"
)

// TestClaimFormatGolden: a claim of the members topic encodes as
// docs/format/kafka.md shows, decodes back, and every field is documented.
func TestClaimFormatGolden(t *testing.T) {
	want := docgolden.Block(t, "kafka.md", "claim")
	c := claim{Node: "node-1", URL: "http://127.0.0.1:8081", Generation: 4, Serving: []int32{0, 3}}
	got, err := json.Marshal(c)
	require.NoError(t, err)
	assert.Equal(t, want, string(got)+"\n")
	var back claim
	require.NoError(t, json.Unmarshal([]byte(want), &back))
	assert.Equal(t, c, back)
	docgolden.Fields(t, "kafka.md", reflect.TypeOf(claim{}))
}

// TestRepoFileFormatGolden: an applied file of the repo topic encodes as
// docs/format/kafka.md shows, decodes back, and every field is documented.
func TestRepoFileFormatGolden(t *testing.T) {
	want := docgolden.Block(t, "kafka.md", "repo-file")
	f := repoFile{Workspace: "ads", Name: "features.yaml", Content: "workspace: ads\n"}
	got, err := json.Marshal(f)
	require.NoError(t, err)
	assert.Equal(t, want, string(got)+"\n")
	var back repoFile
	require.NoError(t, json.Unmarshal([]byte(want), &back))
	assert.Equal(t, f, back)
	docgolden.Fields(t, "kafka.md", reflect.TypeOf(repoFile{}))
}

// TestJobRequestFormatGolden: a job request of the request topic encodes
// as docs/format/kafka.md shows, decodes back, and every field is
// documented.
func TestJobRequestFormatGolden(t *testing.T) {
	want := docgolden.Block(t, "kafka.md", "job-request")
	jr := jobRequest{ID: "job_01KC0Z4JQ8XQ3V8J5T6S0W2E9M", Type: jobDeletion, Workspace: "ads", FeatureView: "click_events_fv",
		Keys: []map[string]any{{"user_id": "u4"}}, KeyIndexes: []int{1}, Online: true, Offline: true, Partitions: []int32{0, 3}}
	got, err := json.Marshal(jr)
	require.NoError(t, err)
	assert.Equal(t, want, string(got)+"\n")
	var back jobRequest
	require.NoError(t, json.Unmarshal([]byte(want), &back))
	assert.Equal(t, jr, back)
	docgolden.Fields(t, "kafka.md", reflect.TypeOf(jobRequest{}))
}
