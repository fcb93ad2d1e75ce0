// Package clicks generates ingest requests of the ads example
// (examples/ads/features.yaml) for tests: clicks of users u0..u(users-1)
// out of event-time order, a quarter of them on three hot users, so the
// workloads the cluster tests compare with a single node are skewed and
// late, as users' are.
//
//	body := clicks.Body(rand.New(rand.NewPCG(1, 2)), time.Now(), 20, 50)
package clicks

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Body is an ingest body (SPEC §2) of n clicks with timestamps uniform
// over the 47 hours before now (within the example's 1-day windows and
// 7-day TTL for most of them), clicked 0 or 1.
func Body(r *rand.Rand, now time.Time, n, users int) []byte {
	var b strings.Builder
	b.WriteString(`{"workspace_name": "ads", "dry_run": false, "records": {"impressions_event_source": [`)
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		user := r.IntN(users)
		if r.IntN(4) == 0 {
			user = r.IntN(min(3, users)) // a few hot keys
		}
		ts := now.Add(-time.Duration(r.Int64N(int64(47 * time.Hour)))).UTC()
		fmt.Fprintf(&b, `{"record": {"user_id": "u%d", "timestamp": %q, "clicked": %d}}`, user, ts.Format(time.RFC3339Nano), r.IntN(2))
	}
	b.WriteString("]}}")
	return []byte(b.String())
}
