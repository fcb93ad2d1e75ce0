package engine

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/featurelog/featurelog/internal/record"
	"github.com/featurelog/featurelog/schema"
)

// Cluster mode (SPEC §10) splits ingest in two halves around Kafka. The
// node a request reaches validates it (PrepareIngest) and produces one
// log entry per partition its records hash to; the node owning a
// partition applies the entries it consumes (ApplyEntry), storing each
// entry's Kafka position in the same log append as its records. The
// position is therefore exactly as durable as what it applied: after a
// crash the node resumes from AppliedPosition and applies every record
// once, whatever Kafka's committed group offsets say. ApplyEntries applies
// a run of a partition's entries so, each its own log entry, with one
// fsync for the run (position_batch.go).

// Position is a record of a Kafka partition: its partition and offset.
type Position = record.Position

// PartitionEntry is one partition's share of a prepared ingest request:
// a log entry (docs/format/record.md, kind 1) to produce to Partition.
type PartitionEntry struct {
	Partition int32
	Payload   []byte
	Records   int // records in Payload
}

// positionState is the last position applied; guarded by DB.posMu, which
// ApplyEntry holds from its check to its update so that one position is
// never applied twice.
type positionState struct {
	loaded bool // pos and ok hold the log's last positioned entry
	pos    Position
	ok     bool
}

// PrepareIngest validates an ingest body exactly as IngestJSON does,
// writing nothing, and splits its records by partition: the partition of
// a record is partition(key, n) of its entity key (the bytes its views
// key it by). Every view of a source must then have the same join keys,
// so that a source's record has one key; a source whose views differ is
// refused, naming them. The response is the one the owners' ApplyEntry
// will reproduce, since they validate with the same ingest time. A dry
// run returns the response and no entries.
func (db *DB) PrepareIngest(body []byte, authorize Authorizer, n int, partition func(key []byte, n int) int) (*IngestResponse, []PartitionEntry, error) {
	if n <= 0 {
		return nil, nil, errorf(CodeInvalidArgument, "engine: PrepareIngest needs a positive partition count, not %d", n)
	}
	env, err := decodeEnvelope(body)
	if err != nil {
		return nil, nil, err
	}
	if authorize != nil {
		if err := authorize(env.workspace); err != nil {
			return nil, nil, err
		}
	}
	db.ingestMu.RLock()
	defer db.ingestMu.RUnlock()
	if db.closed.Load() {
		return nil, nil, ErrClosed
	}
	ws, err := db.cat.Load().workspace(env.workspace)
	if err != nil {
		return nil, nil, err
	}
	b := &batch{ws: ws, dryRun: true}
	if err := decodeRecords(env.records, b); err != nil {
		return nil, nil, err
	}
	now := db.opts.Now()
	b.at = now
	resp, err := db.commit(b)
	if err != nil || env.dryRun {
		return resp, nil, err
	}
	entries, err := splitByPartition(b, now.UnixNano(), n, partition)
	return resp, entries, err
}

// splitByPartition encodes b's rows as one log entry per partition, in
// partition order.
func splitByPartition(b *batch, at int64, n int, partition func(key []byte, n int) int) ([]PartitionEntry, error) {
	parts := map[int32]*record.Entry{}
	counts := map[int32]int{}
	var scratch []byte
	for si := range b.sections {
		s := &b.sections[si]
		keyIdx, err := partitionKey(s.src)
		if err != nil {
			return nil, err
		}
		for r := 0; r < s.n; r++ {
			var key string
			key, scratch = entityKey(s.row(r), keyIdx, scratch)
			p := int32(partition([]byte(key), n))
			if p < 0 || int(p) >= n {
				return nil, fmt.Errorf("engine: the partitioner gave partition %d of %d", p, n)
			}
			e := parts[p]
			if e == nil {
				e = &record.Entry{Workspace: b.ws.name, IngestTime: at}
				parts[p] = e
			}
			if len(e.Sections) == 0 || e.Sections[len(e.Sections)-1].Source != s.src.def.Name {
				e.Sections = append(e.Sections, record.Section{Source: s.src.def.Name, Columns: s.src.def.Schema})
			}
			sec := &e.Sections[len(e.Sections)-1]
			sec.Rows = append(sec.Rows, s.row(r)...)
			counts[p]++
		}
	}
	out := make([]PartitionEntry, 0, len(parts))
	for p, e := range parts {
		out = append(out, PartitionEntry{Partition: p, Payload: record.AppendEntry(nil, e), Records: counts[p]})
	}
	slices.SortFunc(out, func(a, b PartitionEntry) int { return int(a.Partition - b.Partition) })
	return out, nil
}

// partitionKey returns the source-column positions of the join keys that
// every view of src keys its records by, or an error naming two views
// that disagree.
func partitionKey(src *sourceRT) ([]int, error) {
	if len(src.views) == 0 {
		return nil, errorf(CodeInvalidArgument, "source %q has no feature view, so its records have no entity key to partition by", src.def.Name)
	}
	first := src.views[0]
	for _, v := range src.views[1:] {
		if !slices.Equal(v.keyIdx, first.keyIdx) {
			return nil, errorf(CodeInvalidArgument, "in cluster mode every feature view of a source must have the same join keys, "+
				"which partition its records: source %q has %q keyed by (%s) and %q keyed by (%s)",
				src.def.Name, first.def.Name, joinKeyNames(first), v.def.Name, joinKeyNames(v))
		}
	}
	return first.keyIdx, nil
}

// CheckPartitionable reports the first source of any workspace whose
// views do not share their join keys, which cluster mode cannot
// partition (see PrepareIngest), or the first feature service whose
// views do not, whose vector would live on several partitions; nil when
// every source and service can be.
func (db *DB) CheckPartitionable() error {
	cat := db.cat.Load()
	for _, name := range cat.names() {
		ws := cat.workspaces[name]
		for _, srcName := range slices.Sorted(maps.Keys(ws.sources)) {
			if src := ws.sources[srcName]; len(src.views) > 0 {
				if _, err := partitionKey(src); err != nil {
					return fmt.Errorf("workspace %q: %w", name, err)
				}
			}
		}
		for _, svcName := range slices.Sorted(maps.Keys(ws.services)) {
			fs := ws.services[svcName].features
			for _, f := range fs {
				if a, b := fs[0].view, f.view; !slices.Equal(a.def.JoinKeys, b.def.JoinKeys) {
					return errorf(CodeInvalidArgument, "workspace %q: in cluster mode every feature view of a feature service must have the same join keys, "+
						"which place its vector on one partition: service %q has %q keyed by (%s) and %q keyed by (%s)",
						name, svcName, a.def.Name, joinKeyNames(a), b.def.Name, joinKeyNames(b))
				}
			}
		}
	}
	return nil
}

// ServiceKey returns the entity key that get-features for service reads
// with joinKeys: the key its records are partitioned by (PrepareIngest).
// It checks the join keys as GetFeatures does.
func (db *DB) ServiceKey(workspace, service string, joinKeys map[string]any) ([]byte, error) {
	svc, err := db.service(workspace, service)
	if err != nil {
		return nil, err
	}
	if err := svc.checkJoinKeys(joinKeys); err != nil {
		return nil, err
	}
	if len(svc.features) == 0 {
		return nil, errorf(CodeInvalidArgument, "feature service %q serves no feature", service)
	}
	key, _, err := svc.features[0].view.keyFromMap(joinKeys, nil)
	return []byte(key), err
}

// ApplyEntry applies a log entry produced by PrepareIngest and consumed
// from Kafka at pos: it validates the entry's records as of the entry's
// ingest time (so it accepts what the producing node accepted), logs
// them with pos in one fsynced append, and applies them. An entry at or
// before AppliedPosition of the same partition was applied already: it
// is skipped, and ApplyEntry returns (nil, nil). An entry that no longer
// validates (the node's repo differs from the producer's) is refused and
// nothing is written: the caller must stop consuming the partition
// until the repos agree, or it would lose the record.
func (db *DB) ApplyEntry(payload []byte, pos Position) (*IngestResponse, error) {
	if pos.Partition < 0 || pos.Offset < 0 {
		return nil, errorf(CodeInvalidArgument, "engine: negative Kafka position %+v", pos)
	}
	var e record.Entry
	if err := record.Decode(payload, &e); err != nil {
		return nil, errorf(CodeInvalidArgument, "partition %d offset %d is not a featurelog entry: %v", pos.Partition, pos.Offset, err)
	}
	if e.Positioned || e.IdempotencyKey != "" {
		return nil, errorf(CodeInvalidArgument, "partition %d offset %d holds a kind %d entry; only kind 1 entries are produced (key entries go to ApplyKeyEntry)", pos.Partition, pos.Offset, e.Kind())
	}
	return db.applyPositioned(&e, pos, nil)
}

// applyPositioned applies e at pos unless pos was applied, with key when
// it is a key entry.
func (db *DB) applyPositioned(e *record.Entry, pos Position, key *appliedKey) (*IngestResponse, error) {
	if pos.Partition < 0 || pos.Offset < 0 {
		return nil, errorf(CodeInvalidArgument, "engine: negative Kafka position %+v", pos)
	}
	db.posMu.Lock()
	defer db.posMu.Unlock()
	last, ok, err := db.appliedPositionLocked()
	if err != nil {
		return nil, err
	}
	if ok && last.Partition != pos.Partition {
		return nil, errorf(CodeInvalidArgument, "this log applies partition %d, not partition %d", last.Partition, pos.Partition)
	}
	if ok && pos.Offset <= last.Offset {
		return nil, nil
	}
	resp, err := db.applyEntry(e, pos, key)
	if err != nil {
		return nil, fmt.Errorf("applying partition %d offset %d: %w", pos.Partition, pos.Offset, err)
	}
	db.pos = positionState{loaded: true, pos: pos, ok: true}
	return resp, nil
}

func (db *DB) applyEntry(e *record.Entry, pos Position, key *appliedKey) (*IngestResponse, error) {
	db.ingestMu.RLock()
	defer db.ingestMu.RUnlock()
	if db.closed.Load() {
		return nil, ErrClosed
	}
	b, err := db.entryBatch(e, pos, key)
	if err != nil {
		return nil, err
	}
	return noLongerValid(db.commit(b))
}

// entryBatch is the batch that applies e at pos, validated and logged as
// of e's ingest time. The caller holds ingestMu.
func (db *DB) entryBatch(e *record.Entry, pos Position, key *appliedKey) (*batch, error) {
	ws, err := db.cat.Load().workspace(e.Workspace)
	if err != nil {
		return nil, err
	}
	b := &batch{ws: ws, at: time.Unix(0, e.IngestTime), pos: &pos, key: key}
	var rb rowBuilder
	for i := range e.Sections {
		sec := &e.Sections[i]
		src, err := lookupSource(ws, sec.Source)
		if err != nil {
			return nil, err
		}
		rb.reset(src, sec.Columns)
		s := batchSection{src: src, n: sec.NumRows()}
		if rb.identity {
			s.rows = sec.Rows
		} else {
			s.rows = make([]schema.Value, 0, s.n*len(src.def.Schema))
			for r := 0; r < s.n; r++ {
				s.rows = append(s.rows, rb.row(sec.Row(r))...)
			}
		}
		b.sections = append(b.sections, s)
	}
	return b, nil
}

// noLongerValid says of record errors that the entry no longer validates
// on this node.
func noLongerValid[T any](v T, err error) (T, error) {
	var re *RecordErrors
	if errors.As(err, &re) {
		var zero T
		return zero, &Error{Code: CodeInvalidArgument, Msg: "the entry's records no longer validate on this node (is its repo the producer's?): " + re.Error(), Err: err}
	}
	return v, err
}

// ApplyAt runs fn once for a request consumed from Kafka at pos that
// starts work rather than adding records (a job of cluster mode), then
// logs pos in an entry of no records: a position at or before
// AppliedPosition is skipped (false, nil), as ApplyEntry skips it. fn
// must be idempotent by itself: if the node stops after fn and before the
// position is logged, fn runs again for the same request (DeleteKeys with
// a JobID is). workspace names the entry's workspace.
func (db *DB) ApplyAt(pos Position, workspace string, fn func() error) (bool, error) {
	if pos.Partition < 0 || pos.Offset < 0 {
		return false, errorf(CodeInvalidArgument, "engine: negative Kafka position %+v", pos)
	}
	db.posMu.Lock()
	defer db.posMu.Unlock()
	last, ok, err := db.appliedPositionLocked()
	if err != nil {
		return false, err
	}
	if ok && last.Partition != pos.Partition {
		return false, errorf(CodeInvalidArgument, "this log applies partition %d, not partition %d", last.Partition, pos.Partition)
	}
	if ok && pos.Offset <= last.Offset {
		return false, nil
	}
	if err := fn(); err != nil {
		return false, err
	}
	if err := db.logPosition(workspace, pos); err != nil {
		return false, err
	}
	db.pos = positionState{loaded: true, pos: pos, ok: true}
	return true, nil
}

// logPosition logs pos in an entry of workspace with no records.
func (db *DB) logPosition(workspace string, pos Position) error {
	db.ingestMu.RLock()
	defer db.ingestMu.RUnlock()
	if db.closed.Load() {
		return ErrClosed
	}
	ws, err := db.cat.Load().workspace(workspace)
	if err != nil {
		return err
	}
	_, err = db.commit(&batch{ws: ws, at: db.opts.Now(), pos: &pos})
	return err
}

// SplitDeleteKeys checks a delete_keys request as DeleteKeys does and
// returns its keys in canonical form (integers as decimal strings, which
// DeleteKeys accepts and JSON carries exactly) and their positions in
// req.Keys by partition of their entity key (the key PrepareIngest
// partitions the view's records by).
func (db *DB) SplitDeleteKeys(workspace, view string, req DeleteKeysRequest, n int, partition func(key []byte, n int) int) (
	byPartition map[int32][]int, canonical []map[string]any, err error) {
	db.applyMu.Lock()
	defer db.applyMu.Unlock()
	v, err := db.jobView(workspace, view)
	if err != nil {
		return nil, nil, err
	}
	if canonical, err = checkDeleteRequest(v, req); err != nil {
		return nil, nil, err
	}
	byPartition = map[int32][]int{}
	var scratch []byte
	for i, k := range req.Keys {
		var key string
		key, scratch, err = v.keyFromMap(k, scratch)
		if err != nil {
			return nil, nil, errorf(CodeInvalidArgument, "keys[%d]: %v", i, err)
		}
		p := int32(partition([]byte(key), n))
		byPartition[p] = append(byPartition[p], i)
	}
	return byPartition, canonical, nil
}

// AppliedPosition returns the position of the last entry ApplyEntry
// applied, read back from the log after a restart; ok is false when the
// log holds no applied entry.
func (db *DB) AppliedPosition() (pos Position, ok bool, err error) {
	db.posMu.Lock()
	defer db.posMu.Unlock()
	return db.appliedPositionLocked()
}

func (db *DB) appliedPositionLocked() (Position, bool, error) {
	if db.pos.loaded {
		return db.pos.pos, db.pos.ok, nil
	}
	st, err := db.lastPosition()
	if err != nil {
		return Position{}, false, err
	}
	db.pos = st
	return st.pos, st.ok, nil
}

// lastPosition finds the log's last positioned entry: the last entry
// when the node only ever applied Kafka (the common case, one read), or
// else by one scan of the whole log.
func (db *DB) lastPosition() (positionState, error) {
	st := positionState{loaded: true}
	last := db.log.LastSeq()
	if last == 0 || last < db.log.FirstSeq() {
		return st, nil
	}
	var e record.Entry
	scan := func(seq uint64, payload []byte) error {
		if err := record.DecodeHeader(payload, &e); err != nil {
			return fmt.Errorf("engine: log entry %d: %w", seq, err)
		}
		if e.Positioned {
			st.pos, st.ok = e.Position, true
		}
		return nil
	}
	if err := db.log.Replay(last, scan); err != nil || st.ok {
		return st, err
	}
	return st, db.log.Replay(db.log.FirstSeq(), scan)
}
