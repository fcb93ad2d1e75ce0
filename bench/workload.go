package bench

import (
	_ "embed"
	"strconv"
	"time"

	"github.com/featurelog/featurelog/engine"
)

// The workload: the ads example of SPEC §2 and §4. ads.yaml is a copy of
// examples/ads/features.yaml (a test keeps them equal), embedded so the
// benchmarks run from any directory.
const (
	adsWorkspace = "ads"
	adsSource    = "impressions_event_source"
	adsService   = "ad_ctr_feature_service" // serves the attribute view click_events_fv
	adsRepoName  = "features.yaml"
)

//go:embed ads.yaml
var adsRepo []byte

// Paths of the endpoints under test.
const (
	ingestPath      = "/ingest"
	getFeaturesPath = "/api/v1/feature-service/get-features"
)

// appendIngestBody appends a Stream Ingest API body with n records. Record
// j has user_id prefix+(first+j), the timestamp ts and clicked j%2.
func appendIngestBody(dst []byte, prefix string, first, n int, ts time.Time) []byte {
	dst = append(dst, `{"workspace_name":"ads","dry_run":false,"records":{"impressions_event_source":[`...)
	var stamp [40]byte
	st := ts.UTC().AppendFormat(stamp[:0], time.RFC3339Nano)
	for j := range n {
		if j > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"record":{"timestamp":"`...)
		dst = append(dst, st...)
		dst = append(dst, `","user_id":"`...)
		dst = append(dst, prefix...)
		dst = strconv.AppendInt(dst, int64(first+j), 10)
		dst = append(dst, `","clicked":`...)
		dst = strconv.AppendInt(dst, int64(j%2), 10)
		dst = append(dst, "}}"...)
	}
	return append(dst, "]}}"...)
}

// appendGetFeaturesBody appends a get-features body for user key.
func appendGetFeaturesBody(dst []byte, key string) []byte {
	dst = append(dst, `{"params":{"workspace_name":"ads","feature_service_name":"ad_ctr_feature_service","join_key_map":{"user_id":"`...)
	dst = append(dst, key...)
	return append(dst, `"}}}`...)
}

// userKey names the i-th preloaded user.
func userKey(i int) string { return userPrefix + strconv.Itoa(i) }

// userPrefix prefixes the names of preloaded users.
const userPrefix = "user-"

// ingestRequest returns an engine.Ingest request of n records for users
// prefix+first.. with timestamp ts.
func ingestRequest(prefix string, first, n int, ts time.Time) *engine.IngestRequest {
	recs := make([]map[string]any, n)
	for j := range recs {
		recs[j] = map[string]any{"user_id": prefix + strconv.Itoa(first+j), "timestamp": ts, "clicked": int64(j % 2)}
	}
	return &engine.IngestRequest{Workspace: adsWorkspace, Records: map[string][]map[string]any{adsSource: recs}}
}

// rng is a xorshift64* generator: cheap, and one per worker needs no lock.
type rng uint64

func newRNG(seed int) rng { return rng(uint64(seed)*0x9E3779B97F4A7C15 | 1) }

func (r *rng) intn(n int) int {
	x := uint64(*r)
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	*r = rng(x)
	return int(((x * 0x2545F4914F6CDD1D) >> 1) % uint64(n))
}
