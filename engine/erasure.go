package engine

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/go-json-experiment/json/v1"

	"github.com/featurelog/featurelog/internal/atomicfile"
	"github.com/featurelog/featurelog/schema"
)

// Erasures. A deletion job (delete.go) erases a key's records physically
// from the log and the segments, but two places keep coming back to old
// records: the sources' batch files, which are the user's and are read by
// every later backfill, materialization and from_source join; and, for an
// online-only deletion, the log itself, which keeps the records for
// historical reads while replays and rebuilds of the view must skip them.
// The ERASURES file records what those reads must leave out, with the keys
// as salted digests so that no key's value is kept in it
// (docs/format/erasures.md).

// erasuresFileName is the file under the data directory; part of the
// on-disk format.
const erasuresFileName = "ERASURES"

// erasureFile is the JSON of the ERASURES file.
type erasureFile struct {
	// Salt is mixed into every digest, 16 random bytes in hex.
	Salt string        `json:"salt"`
	Sets []*erasureSet `json:"sets"`
}

// erasureSet is what one deletion job erased.
type erasureSet struct {
	Job       string `json:"job"`
	Workspace string `json:"workspace"`
	Source    string `json:"source"`
	// View is set for an online-only deletion: only that view's serving
	// state leaves the records out. Empty: every view of the source does
	// (the records are gone from the offline log).
	View string `json:"view,omitempty"`
	// Columns are the join-key columns of the source the keys are of.
	Columns []string `json:"columns"`
	// LogSeq is the log's last entry when the deletion was requested:
	// logged records after it are kept. Batch rows are always erased.
	LogSeq uint64 `json:"log_seq"`
	// Keys are the digests of the entity keys (digest), in hex.
	Keys []string `json:"keys"`
	// Found lists the positions in the request of the keys that had
	// records when the job first ran: a re-run, which finds them gone,
	// reports them all the same.
	Found []int `json:"found,omitempty"`
	// LogErased is set once an offline deletion has rewritten the log:
	// logged rows need no test any more, only batch rows do.
	LogErased bool `json:"log_erased,omitempty"`
	// set holds Keys decoded.
	set map[[digestLen]byte]struct{}
}

// digestLen is the length of a key digest: 128 bits of SHA-256, so that
// two keys of a data directory never share one.
const digestLen = 16

// erasures is the DB's loaded ERASURES file. mu guards f; readers take a
// snapshot of the sets (erasersFor), which are immutable once added.
type erasures struct {
	path string
	mu   sync.Mutex
	f    erasureFile
	salt []byte
}

func loadErasures(dir string) (*erasures, error) {
	e := &erasures{path: filepath.Join(dir, erasuresFileName)}
	data, err := os.ReadFile(e.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		e.salt = make([]byte, 16)
		rand.Read(e.salt)
		e.f.Salt = hex.EncodeToString(e.salt)
		return e, nil
	case err != nil:
		return nil, err
	}
	if err := json.Unmarshal(data, &e.f); err != nil {
		return nil, fmt.Errorf("engine: %s is damaged: %w", e.path, err)
	}
	if e.salt, err = hex.DecodeString(e.f.Salt); err != nil || len(e.salt) == 0 {
		return nil, fmt.Errorf("engine: %s is damaged: bad salt %q", e.path, e.f.Salt)
	}
	for _, s := range e.f.Sets {
		if err := s.decode(); err != nil {
			return nil, fmt.Errorf("engine: %s is damaged: job %s: %w", e.path, s.Job, err)
		}
	}
	return e, nil
}

func (s *erasureSet) decode() error {
	s.set = make(map[[digestLen]byte]struct{}, len(s.Keys))
	for _, k := range s.Keys {
		var d [digestLen]byte
		if n, err := hex.Decode(d[:], []byte(k)); err != nil || n != digestLen {
			return fmt.Errorf("bad key digest %q", k)
		}
		s.set[d] = struct{}{}
	}
	return nil
}

// digest returns the salted digest of an entity key.
func (e *erasures) digest(key string) [digestLen]byte {
	h := sha256.New()
	h.Write(e.salt)
	h.Write([]byte(key))
	var sum [sha256.Size]byte
	var d [digestLen]byte
	copy(d[:], h.Sum(sum[:0]))
	return d
}

// add records s (replacing a set of the same job, so a re-run job adds it
// once) and saves the file durably.
func (e *erasures) add(s *erasureSet) error {
	if err := s.decode(); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	sets := slices.DeleteFunc(slices.Clone(e.f.Sets), func(o *erasureSet) bool { return o.Job == s.Job })
	f := erasureFile{Salt: e.f.Salt, Sets: append(sets, s)}
	data, err := json.MarshalIndent(&f, "", " ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(e.path, data, 0o644); err != nil {
		return fmt.Errorf("engine: saving %s: %w", e.path, err)
	}
	e.f = f
	return nil
}

// logErased records, durably, that job's rows are gone from the log.
func (e *erasures) logErased(job string) error {
	s := e.setOf(job)
	if s == nil || s.LogErased {
		return nil
	}
	done := *s
	done.LogErased = true
	return e.add(&done)
}

// setOf returns the set job recorded, or nil.
func (e *erasures) setOf(job string) *erasureSet {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.f.Sets {
		if s.Job == job {
			return s
		}
	}
	return nil
}

// rowEraser tells whether a source row (in the source's current schema
// order) is erased for one view.
type rowEraser struct {
	e    *erasures
	sets []boundErasure
	kb   []byte
}

// boundErasure is an erasure set resolved against a source's schema.
type boundErasure struct {
	keyIdx []int
	logSeq uint64
	// batchOnly: the set's logged rows are gone from the log
	// (erasureSet.LogErased), so only batch rows are tested.
	batchOnly bool
	set       map[[digestLen]byte]struct{}
}

// eraserFor returns the rowEraser of view v, or nil when nothing erased
// applies to it: the sets of its source, and with online the online-only
// sets of its name (the serving state's replays and rebuilds; historical
// reads of the offline log leave online out).
func (e *erasures) eraserFor(ws string, v *viewRT, online bool) *rowEraser {
	e.mu.Lock()
	sets := e.f.Sets
	e.mu.Unlock()
	var out *rowEraser
	for _, s := range sets {
		if s.Workspace != ws || s.Source != v.src.def.Name || (s.View != "" && (!online || s.View != v.def.Name)) {
			continue
		}
		b := boundErasure{logSeq: s.LogSeq, batchOnly: s.LogErased, set: s.set}
		for _, c := range s.Columns {
			i, ok := v.src.colIndex[c]
			if !ok {
				b.keyIdx = nil // the source no longer has the column: no row can match
				break
			}
			b.keyIdx = append(b.keyIdx, i)
		}
		if b.keyIdx == nil {
			continue
		}
		if out == nil {
			out = &rowEraser{e: e}
		}
		out.sets = append(out.sets, b)
	}
	return out
}

// erased reports whether row, logged at seq (0: a batch row), is erased.
// Safe on a nil eraser. Not safe for concurrent use.
func (r *rowEraser) erased(row []schema.Value, seq uint64) bool {
	if r == nil {
		return false
	}
	for i := range r.sets {
		b := &r.sets[i]
		if seq > b.logSeq || (seq > 0 && b.batchOnly) {
			continue
		}
		var key string
		key, r.kb = entityKey(row, b.keyIdx, r.kb)
		if _, ok := b.set[r.e.digest(key)]; ok {
			return true
		}
	}
	return false
}

// clone returns a copy for another goroutine.
func (r *rowEraser) clone() *rowEraser {
	if r == nil {
		return nil
	}
	return &rowEraser{e: r.e, sets: r.sets}
}

// onlineErased returns, for view v, a test of whether an entity key had
// an online-only deletion (its serving state lacks records the offline
// log keeps), or nil when none did.
func (e *erasures) onlineErased(ws string, v *viewRT) func(key string) bool {
	e.mu.Lock()
	sets := e.f.Sets
	e.mu.Unlock()
	var mine []*erasureSet
	for _, s := range sets {
		if s.Workspace == ws && s.Source == v.src.def.Name && s.View == v.def.Name {
			mine = append(mine, s)
		}
	}
	if mine == nil {
		return nil
	}
	return func(key string) bool {
		d := e.digest(key)
		for _, s := range mine {
			if _, ok := s.set[d]; ok {
				return true
			}
		}
		return false
	}
}
