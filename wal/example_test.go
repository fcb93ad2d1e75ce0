package wal_test

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/featurelog/featurelog/wal"
)

func Example() {
	dir, err := os.MkdirTemp("", "wal-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	l, err := wal.Open(wal.Options{Dir: filepath.Join(dir, "wal")})
	if err != nil {
		log.Fatal(err) // a *wal.CorruptionError names the damaged file and offset
	}
	for _, event := range []string{"click", "view", "buy"} {
		if _, err := l.Append([]byte(event)); errors.Is(err, wal.ErrFailed) {
			log.Fatal(err) // durability unknown: restart the node
		}
	}
	err = l.Replay(2, func(seq uint64, payload []byte) error {
		fmt.Printf("%d %s\n", seq, payload)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("first", l.FirstSeq(), "last", l.LastSeq())
	if err := l.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// 2 view
	// 3 buy
	// first 1 last 3
}
