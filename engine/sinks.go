package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/go-json-experiment/json/v1"

	"github.com/featurelog/featurelog/internal/atomicfile"
)

// Output stream sinks (SPEC §7). A sink publishes a view's output stream
// somewhere else (Kafka, package kafkasink). The engine keeps each sink's
// durable cursor, the offset of the next record to publish, in the file
// SINKS, and keeps the log from that offset on: truncation never passes a
// cursor (truncate.go). A sink's cursor starts when the apply that
// declares it is staged, at the first record appended after it, so no
// record acknowledged after the apply can be missed, whenever the sink
// first runs; an apply that removes the sink drops its cursor.

// sinksFileName is the file of the sinks' cursors in the data directory.
const sinksFileName = "SINKS"

// SinkConfig is one declared sink: a view's output_stream.kafka.
type SinkConfig struct {
	// ID names the sink and its cursor: workspace/view/kafka:topic. A
	// sink whose topic changes is a new sink.
	ID          string
	Workspace   string
	View        string
	Brokers     []string // from the repo file; may be empty (serve --kafka-brokers)
	Topic       string
	ExactlyOnce bool
	MaxLag      time.Duration
}

// sinkCursors holds the sinks' cursors, as saved in SINKS.
type sinkCursors struct {
	path string
	mu   sync.Mutex
	// next maps a sink ID to the offset of the next record it publishes;
	// guarded by mu. The file always holds what next holds.
	next map[string]StreamOffset
}

// sinksFile is the JSON of SINKS: part of the on-disk format
// (docs/format/sinks.md).
type sinksFile struct {
	Cursors map[string]string `json:"cursors"` // sink ID → wire offset of the next record to publish
}

func loadSinkCursors(dir string) (*sinkCursors, error) {
	c := &sinkCursors{path: filepath.Join(dir, sinksFileName), next: map[string]StreamOffset{}}
	data, err := os.ReadFile(c.path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, err
	}
	var f sinksFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("engine: %s is damaged: %w", c.path, err)
	}
	for id, s := range f.Cursors {
		off, err := ParseStreamOffset(s)
		if err != nil {
			return nil, fmt.Errorf("engine: %s is damaged: sink %s: %w", c.path, id, err)
		}
		c.next[id] = off
	}
	return c, nil
}

// saveLocked writes SINKS durably. The caller holds c.mu.
func (c *sinkCursors) saveLocked() error {
	f := sinksFile{Cursors: make(map[string]string, len(c.next))}
	for id, off := range c.next {
		f.Cursors[id] = off.String()
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(c.path, append(data, '\n'), 0o644)
}

// minSeq returns the smallest seq a cursor still needs, or 0 when there
// is no cursor.
func (c *sinkCursors) minSeq() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var m uint64
	for _, off := range c.next {
		if m == 0 || off.Seq < m {
			m = off.Seq
		}
	}
	return m
}

// sinksOf lists the sinks ws declares.
func sinksOf(ws *workspace) []SinkConfig {
	var out []SinkConfig
	for _, v := range ws.order {
		os := v.def.OutputStream
		if os == nil || os.Kafka == nil {
			continue
		}
		k := os.Kafka
		out = append(out, SinkConfig{ID: ws.name + "/" + v.def.Name + "/kafka:" + k.Topic, Workspace: ws.name, View: v.def.Name,
			Brokers: slices.Clone(k.Brokers), Topic: k.Topic, ExactlyOnce: k.ExactlyOnce, MaxLag: k.MaxLag})
	}
	return out
}

// stageSinks gives the sinks ws declares that have no cursor one at next,
// and drops the cursors of the workspace's sinks it no longer declares.
// Called while ingest is paused, before ws is installed.
func (c *sinkCursors) stageSinks(ws *workspace, next StreamOffset) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	want := map[string]bool{}
	changed := false
	for _, s := range sinksOf(ws) {
		want[s.ID] = true
		if _, ok := c.next[s.ID]; !ok {
			c.next[s.ID], changed = next, true
		}
	}
	prefix := ws.name + "/"
	for id := range c.next {
		if len(id) > len(prefix) && id[:len(prefix)] == prefix && !want[id] {
			delete(c.next, id)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return c.saveLocked()
}

// reconcile, on open, drops the cursors of sinks cat does not declare
// (an apply that crashed between saving SINKS and its workspace) and
// starts a cursor at next for a declared sink without one.
func (c *sinkCursors) reconcile(cat *catalog, next StreamOffset) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	want := map[string]bool{}
	changed := false
	for _, name := range cat.names() {
		for _, s := range sinksOf(cat.workspaces[name]) {
			want[s.ID] = true
			if _, ok := c.next[s.ID]; !ok {
				c.next[s.ID], changed = next, true
			}
		}
	}
	for id := range c.next {
		if !want[id] {
			delete(c.next, id)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return c.saveLocked()
}

// Sinks lists the sinks the applied repos declare, sorted by ID.
func (db *DB) Sinks() []SinkConfig {
	cat := db.cat.Load()
	var out []SinkConfig
	for _, name := range cat.names() {
		out = append(out, sinksOf(cat.workspaces[name])...)
	}
	return out
}

// SinkCursor returns the offset of the next record sink id publishes: its
// durable cursor. It is CodeNotFound for a sink no applied repo declares.
func (db *DB) SinkCursor(id string) (StreamOffset, error) {
	db.sinks.mu.Lock()
	defer db.sinks.mu.Unlock()
	off, ok := db.sinks.next[id]
	if !ok {
		return StreamOffset{}, errorf(CodeNotFound, "sink %q is not declared by any applied feature repo", id)
	}
	return off, nil
}

// SaveSinkCursor durably moves sink id's cursor to next, the offset of the
// next record it publishes: call it only once every record before next
// is acknowledged by the sink's destination. A cursor never moves back;
// a next before the saved one is ignored. The log before the smallest
// cursor may then be truncated.
func (db *DB) SaveSinkCursor(id string, next StreamOffset) error {
	db.sinks.mu.Lock()
	defer db.sinks.mu.Unlock()
	cur, ok := db.sinks.next[id]
	if !ok {
		return errorf(CodeNotFound, "sink %q is not declared by any applied feature repo", id)
	}
	if !cur.Less(next) {
		return nil
	}
	db.sinks.next[id] = next
	if err := db.sinks.saveLocked(); err != nil {
		db.sinks.next[id] = cur
		return fmt.Errorf("engine: saving the cursor of sink %s: %w", id, err)
	}
	return nil
}
