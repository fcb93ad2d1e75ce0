package kafkasink

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkSinkThroughput measures how fast one sink publishes a backlog
// (records ingested before its Manager starts) to a kfake broker in this
// process, with the default Options: the most ingest the sink keeps up
// with. Run it once per case:
//
//	go test ./kafkasink -run '^$' -bench SinkThroughput -benchtime 1x
func BenchmarkSinkThroughput(b *testing.B) {
	const n = 200_000
	for _, c := range []struct {
		name, view  string
		exactlyOnce bool
	}{
		{"attribute", "latest", false},
		{"aggregate", "sums", false},
		{"attribute-exactly-once", "latest", true},
	} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				br := newBroker(b, false)
				db := openDB(b, b.TempDir(), nil, nil)
				topic := uniqueTopic("bench")
				spec := sinkSpec{brokers: br.addrs, topic: topic, exactlyOnce: c.exactlyOnce}
				latest, sums := spec, sinkSpec{}
				if c.view == "sums" {
					latest, sums = sums, latest
				}
				apply(b, db, testRepo(latest, sums, true))
				rng := rand.New(rand.NewPCG(1, 2))
				ingest(b, rng, db, events(rng, 1, n, 10_000, time.Now()), 1000)
				stream, end := readStream(b, db, c.view)
				recs := len(stream)
				o := Options{Logger: testLogger()}
				b.StartTimer()
				began := time.Now()
				m, err := Start(db, o)
				require.NoError(b, err)
				waitCursor(b, db, sinkID(c.view, topic), end, 5*time.Minute)
				took := time.Since(began)
				b.StopTimer()
				closing := time.Now()
				require.NoError(b, m.Close())
				b.ReportMetric(float64(recs)/took.Seconds(), "records/s")
				require.NoError(b, db.Close())
				b.Logf("%s: %d records in %s: %.0f records/s; Close took %s", c.name, recs, took.Round(time.Millisecond), float64(recs)/took.Seconds(), time.Since(closing).Round(time.Millisecond))
			}
		})
	}
}
