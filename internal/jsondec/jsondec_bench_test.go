package jsondec

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkTooDeep measures the depth pre-scan on an ingest body of 10,000
// records (~1 MB), which takes the slow path (many brackets).
func BenchmarkTooDeep(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"workspace_name":"ads","dry_run":false,"records":{"impressions_event_source":[`)
	for i := range 10000 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"record":{"timestamp":"2023-01-02T00:25:06Z","user_id":"C%07d","clicked":1,"note":"a \"quoted\" word"}}`, i)
	}
	sb.WriteString(`]}}`)
	body := []byte(sb.String())
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if TooDeep(body, MaxDepth) >= 0 {
			b.Fatal("too deep")
		}
	}
}
