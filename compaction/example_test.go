package compaction_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/featurelog/featurelog/compaction"
)

func Example() {
	dir, err := os.MkdirTemp("", "compaction-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// Two segments of the same view: an older one and a newer flush.
	write := func(name string, entries ...string) *compaction.Reader {
		w, err := compaction.Create(filepath.Join(dir, name),
			compaction.Meta{Kind: "attributes", Workspace: "ws", View: "users"}, compaction.WriterOptions{})
		if err != nil {
			log.Fatal(err)
		}
		defer w.Abort() // no-op once Finish succeeded
		for i := 0; i < len(entries); i += 2 {
			if err := w.Add([]byte(entries[i]), []byte(entries[i+1])); err != nil {
				log.Fatal(err) // compaction.ErrKeyOrder if keys do not increase
			}
		}
		info, err := w.Finish()
		if err != nil {
			log.Fatal(err)
		}
		r, err := compaction.Open(info.Path) // a *CorruptionError if damaged
		if err != nil {
			log.Fatal(err)
		}
		return r
	}
	older := write("000001.seg", "alice", "v1", "bob", "v1")
	newer := write("000002.seg", "bob", "v2", "carol", "v2")

	h := compaction.NewHandle(older) // the owner's reference
	if h.Acquire() {                 // a reader's reference
		v, ok, err := h.Reader().Get([]byte("alice"))
		fmt.Printf("alice: %s %v %v\n", v, ok, err)
		h.Release()
	}

	m := compaction.NewMergeIterator([]*compaction.Iterator{older.NewIterator(), newer.NewIterator()})
	for m.Next() {
		vals := m.Values()
		fmt.Printf("%s: older=%q newer=%q\n", m.Key(), vals[0], vals[1])
	}
	if err := m.Err(); err != nil {
		log.Fatal(err)
	}

	h.Obsolete() // replaced by a merged segment: delete it with the last reference
	h.Release()
	_, err = os.Stat(older.Path())
	fmt.Println("older removed:", os.IsNotExist(err), "handle error:", h.Err())
	newer.Close()
	// Output:
	// alice: v1 true <nil>
	// alice: older="v1" newer=""
	// bob: older="v1" newer="v2"
	// carol: older="" newer="v2"
	// older removed: true handle error: <nil>
}
