package engine

import (
	"context"
	"testing"
	"time"
)

// BenchmarkOutputStreamCatchUp reads a continuous aggregate view's stream
// from earliest over 200k logged events of 5k keys, half of them flushed
// to segments: records/s of a catching-up consumer, in-process.
func BenchmarkOutputStreamCatchUp(b *testing.B) {
	for _, view := range []string{"latest", "sums"} {
		b.Run(view, func(b *testing.B) {
			db := osOpen(&testing.T{}, b.TempDir(), nil)
			defer db.Close()
			if _, err := db.ApplyWait(context.Background(), "os.yaml", []byte(osRepo)); err != nil {
				b.Fatal(err)
			}
			evs := osEvents(9, 200_000, 5000)
			osIngest(&testing.T{}, db, evs[:100_000], 1000)
			if err := db.Flush(); err != nil {
				b.Fatal(err)
			}
			osIngest(&testing.T{}, db, evs[100_000:], 1000)
			b.ResetTimer()
			n := 0
			for range b.N {
				s, err := db.OpenOutputStream("os", view, StreamStart{Kind: StartEarliest})
				if err != nil {
					b.Fatal(err)
				}
				var buf []OutputRecord
				for {
					buf, err = s.Next(context.Background(), buf, 1024, 10*time.Millisecond)
					if err != nil {
						b.Fatal(err)
					}
					if len(buf) == 0 {
						break
					}
					for i := range buf {
						_ = buf[i].AppendJSON(nil)
					}
					n += len(buf)
				}
				s.Close()
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
