package kafkasink_test

import (
	"fmt"
	"log"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/kafkasink"
)

// Start publishes the output streams of every view with
// output_stream.kafka; Status reports each sink.
func ExampleStart() {
	db, err := engine.Open(engine.Options{Dir: "featurelog-data"})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	m, err := kafkasink.Start(db, kafkasink.Options{Brokers: []string{"127.0.0.1:9092"}})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close() // before db.Close: a batch in flight may still be acknowledged
	for _, s := range m.Status() {
		fmt.Println(s.ID, s.State, s.Lag, s.LastError)
	}
}
