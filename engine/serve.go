package engine

import (
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/featurelog/featurelog/repo"
	"github.com/featurelog/featurelog/schema"
	"github.com/featurelog/featurelog/tiles"
)

// Status is a served feature's status (SPEC §3).
type Status string

// The statuses.
const (
	Present     Status = "PRESENT"
	MissingData Status = "MISSING_DATA"
)

// GetFeaturesRequest asks for one feature vector of a service.
type GetFeaturesRequest struct {
	Workspace string
	Service   string
	// JoinKeys maps every join key of the service's views to a value:
	// string, integer, or Number (a JSON number literal).
	JoinKeys map[string]any
	// AsOf reads the vector as of a past time; zero means now.
	AsOf time.Time
}

// FeatureValue is one served feature.
type FeatureValue struct {
	Name          string // <view>.<feature>
	Type          schema.Type
	Value         schema.Value // null when missing
	EffectiveTime time.Time    // zero when missing
	Status        Status
}

// FeatureVector is a service's features in declared order.
type FeatureVector struct {
	Features []FeatureValue
}

// ServiceFeatures lists the names and types a service serves, in order.
func (db *DB) ServiceFeatures(workspace, service string) ([]FeatureValue, error) {
	svc, err := db.service(workspace, service)
	if err != nil {
		return nil, err
	}
	out := make([]FeatureValue, len(svc.features))
	for i, f := range svc.features {
		out[i] = FeatureValue{Name: f.name, Type: f.view.def.Features[f.idx].Type}
	}
	return out, nil
}

// service returns a feature service that serves reads: online serving
// enabled, and every view's first version built.
func (db *DB) service(workspace, name string) (*serviceRT, error) {
	svc, err := db.lookupService(workspace, name)
	if err != nil {
		return nil, err
	}
	if !svc.def.OnlineServingEnabled {
		return nil, errorf(CodeInvalidArgument, "feature service %q has online_serving_enabled: false", name)
	}
	if svc.unavailable != nil {
		return nil, svc.unavailable
	}
	return svc, nil
}

// lookupService returns a feature service of the applied catalog,
// whether or not it serves.
func (db *DB) lookupService(workspace, name string) (*serviceRT, error) {
	if db.closed.Load() {
		return nil, ErrClosed
	}
	ws, err := db.cat.Load().workspace(workspace)
	if err != nil {
		return nil, err
	}
	svc := ws.services[name]
	if svc == nil {
		return nil, errorf(CodeNotFound, "feature service %q not found in workspace %q", name, workspace)
	}
	return svc, nil
}

// GetFeatures reads the latest feature vector for one set of join keys.
func (db *DB) GetFeatures(req *GetFeaturesRequest) (*FeatureVector, error) {
	db.reads.enter()
	defer db.reads.leave()
	svc, err := db.service(req.Workspace, req.Service)
	if err != nil {
		return nil, err
	}
	t, err := db.readTime(req.AsOf)
	if err != nil {
		return nil, err
	}
	out := &FeatureVector{Features: make([]FeatureValue, len(svc.features))}
	return out, svc.read(req.JoinKeys, t, out.Features)
}

// GetFeaturesBatch reads one vector per join-key map, in order, all at the
// same read time.
func (db *DB) GetFeaturesBatch(workspace, service string, joinKeys []map[string]any, asOf time.Time) ([]FeatureVector, error) {
	db.reads.enter()
	defer db.reads.leave()
	svc, err := db.service(workspace, service)
	if err != nil {
		return nil, err
	}
	t, err := db.readTime(asOf)
	if err != nil {
		return nil, err
	}
	out := make([]FeatureVector, len(joinKeys))
	return out, readBatch(svc, joinKeys, t, out)
}

// minParallelBatch is the batch size from which reads are spread over the
// cores: below it, starting goroutines costs more than it saves.
const minParallelBatch = 32

// readBatch reads every row of a batch, in parallel chunks when it is
// large. The first error (by row order) wins.
func readBatch(svc *serviceRT, joinKeys []map[string]any, t time.Time, out []FeatureVector) error {
	n := len(joinKeys)
	workers := min(runtime.GOMAXPROCS(0), max(1, n/(minParallelBatch/2)))
	errs := make([]error, n)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				out[i].Features = make([]FeatureValue, len(svc.features))
				errs[i] = svc.read(joinKeys[i], t, out[i].Features)
			}
		}(w*n/workers, (w+1)*n/workers)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("request_data[%d]: %w", i, err)
		}
	}
	return nil
}

func (db *DB) readTime(asOf time.Time) (time.Time, error) {
	now := db.opts.Now()
	if asOf.IsZero() {
		return now, nil
	}
	if err := schema.CheckTimestamp(asOf); err != nil {
		return time.Time{}, errorf(CodeInvalidArgument, "as_of %v", err)
	}
	if asOf.After(now) {
		return time.Time{}, errorf(CodeInvalidArgument, "as_of %s is in the future (now is %s); as_of reads the past",
			asOf.UTC().Format(time.RFC3339Nano), now.UTC().Format(time.RFC3339Nano))
	}
	return asOf, nil
}

// read fills out with the vector for joinKeys at t.
func (s *serviceRT) read(joinKeys map[string]any, t time.Time, out []FeatureValue) error {
	if err := s.checkJoinKeys(joinKeys); err != nil {
		return err
	}
	tn := t.UnixNano()
	var scratch []byte
	for i := 0; i < len(s.features); {
		v := s.features[i].view
		key, sc, err := v.keyFromMap(joinKeys, scratch)
		if err != nil {
			return err
		}
		scratch = sc
		j := i
		for j < len(s.features) && s.features[j].view == v {
			j++
		}
		if v.data.spec != nil {
			if err := readAggregates(v, key, tn, s.features[i:j], out[i:j]); err != nil {
				return err
			}
		} else {
			ver, ok, err := v.data.latestBefore(v.data.hot.states, key, tn)
			if err != nil {
				return err
			}
			ok = ok && v.onlineAt(ver.ts, t)
			for k := i; k < j; k++ {
				out[k] = s.features[k].value(ver, ok)
			}
		}
		i = j
	}
	return nil
}

// readAggregates fills out with aggregate features of one view. They are
// always PRESENT; their effective time is the window's end.
func readAggregates(v *viewRT, key string, t int64, fs []servedFeature, out []FeatureValue) error {
	var buf [16]schema.Value
	vals := buf[:0]
	if n := len(v.def.Features); n > len(buf) {
		vals = make([]schema.Value, n)
	} else {
		vals = buf[:n]
	}
	if err := v.data.readTiles(v.data.hot.states, key, t, vals); err != nil {
		return err
	}
	for k, f := range fs {
		def := v.def.Features[f.idx]
		w := tiles.Window{Size: int64(def.Window.Size), Offset: int64(def.Window.Offset), Lifetime: def.Window.Lifetime}
		out[k] = FeatureValue{Name: f.name, Type: def.Type, Value: vals[f.idx], Status: Present,
			EffectiveTime: time.Unix(0, w.End(t, int64(v.def.AggregationInterval))).UTC()}
	}
	return nil
}

func (f servedFeature) value(ver version, ok bool) FeatureValue {
	fv := FeatureValue{Name: f.name, Type: f.view.def.Features[f.idx].Type, Status: MissingData}
	if ok {
		fv.Value, fv.EffectiveTime, fv.Status = ver.vals[f.idx], time.Unix(0, ver.ts).UTC(), Present
	}
	return fv
}

func (s *serviceRT) checkJoinKeys(joinKeys map[string]any) error {
	for _, k := range s.joinKeys {
		if _, ok := joinKeys[k]; !ok {
			return errorf(CodeInvalidArgument, "join key %q is missing from join_key_map (service %q needs: %s)", k, s.def.Name, strings.Join(s.joinKeys, ", "))
		}
	}
	if len(joinKeys) == len(s.joinKeys) {
		return nil
	}
	var extra []string
	for k := range joinKeys {
		if !contains(s.joinKeys, k) {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	return errorf(CodeInvalidArgument, "join_key_map has keys the service %q does not use: %s (it needs: %s)", s.def.Name, strings.Join(extra, ", "), strings.Join(s.joinKeys, ", "))
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

// keyFromMap builds the view's entity key from caller-given join keys.
func (v *viewRT) keyFromMap(joinKeys map[string]any, scratch []byte) (string, []byte, error) {
	if len(v.def.JoinKeys) == 1 && v.def.JoinKeys[0].Type.Kind == schema.String {
		if s, ok := joinKeys[v.def.JoinKeys[0].Name].(string); ok {
			return s, scratch, nil
		}
	}
	vals := make([]schema.Value, len(v.def.JoinKeys))
	for i, jk := range v.def.JoinKeys {
		val, err := joinKeyValue(joinKeys[jk.Name], jk.Type)
		if err != nil {
			return "", scratch, errorf(CodeInvalidArgument, "join key %q: %v", jk.Name, err)
		}
		vals[i] = val
	}
	if len(vals) == 1 && vals[0].Kind == schema.String {
		return vals[0].S, scratch, nil
	}
	scratch = appendKey(scratch[:0], vals)
	return string(scratch), scratch, nil
}

// Summary describes a feature view (SPEC §4).
type Summary struct {
	Name, Description, Owner string
	Source                   string // the source the view reads
	Tags                     map[string]string
	Entities                 []string
	JoinKeys                 []string
	Features                 []string
	TimestampField           string
	AggregationInterval      string // "continuous" or a duration
	TTL                      time.Duration
	BatchSchedule            time.Duration
	FeatureStartTime         time.Time
	CreatedAt                time.Time
	Version                  int
	Online, Offline          bool
	OnlineRecords            int64     // records applied online since the node opened
	OfflineRecords           int64     // records kept in the offline log since the node opened
	Freshness                time.Time // newest event time applied; zero if none
	Keys                     int       // entity keys held online
	// Job is the backfill or materialization job building this version
	// while it does not serve yet; empty when it serves.
	Job string
	// ServingVersion is the version that serves meanwhile (0: none).
	ServingVersion int

	// Transform is the view's row-level transformation as declared; nil
	// if none.
	Transform *TransformDefinition
	// FeatureDefinitions are the features as declared, in order.
	FeatureDefinitions []FeatureDefinition
	// Versions are the versions the catalog holds, oldest first
	// (viewRT.versions).
	Versions []VersionInfo
	// Storage is what the version that serves holds (while none serves
	// yet, the one being built): the per-view gauges of DB.Collector.
	Storage ViewStorage
}

// FeatureViewSummary returns a view's summary.
func (db *DB) FeatureViewSummary(workspace, name string) (*Summary, error) {
	v, err := db.lookupView(workspace, name)
	if err != nil {
		return nil, err
	}
	return v.summary(), nil
}

// lookupView returns a view of the applied catalog: its current version,
// which may be pending.
func (db *DB) lookupView(workspace, name string) (*viewRT, error) {
	if db.closed.Load() {
		return nil, ErrClosed
	}
	ws, err := db.cat.Load().workspace(workspace)
	if err != nil {
		return nil, err
	}
	v := ws.views[name]
	if v == nil {
		return nil, errorf(CodeNotFound, "feature view %q not found in workspace %q", name, workspace)
	}
	return v, nil
}

func (v *viewRT) summary() *Summary {
	d := v.def
	s := &Summary{Name: d.Name, Description: d.Description, Owner: d.Owner, Source: d.Source, Tags: d.Tags, Entities: d.Entities,
		TimestampField: d.TimestampField, TTL: v.ttl, BatchSchedule: d.BatchSchedule, FeatureStartTime: d.FeatureStartTime,
		CreatedAt: v.createdAt, Version: v.version, Online: d.Online, Offline: d.Offline,
		OnlineRecords: v.stats.online.Load(), OfflineRecords: v.stats.offline.Load(), AggregationInterval: "continuous"}
	for _, jk := range d.JoinKeys {
		s.JoinKeys = append(s.JoinKeys, jk.Name)
	}
	for _, f := range d.Features {
		s.Features = append(s.Features, f.Name)
	}
	s.Transform, s.FeatureDefinitions, s.Versions = transformDefinition(d), featureDefinitions(d), v.versions()
	if sv := v.serving(); sv != nil {
		s.Storage = sv.storage()
	} else {
		s.Storage = v.storage()
	}
	if d.AggregationInterval > 0 {
		s.AggregationInterval = repo.FormatDuration(d.AggregationInterval)
	}
	if n := v.stats.newest.Load(); n != 0 {
		s.Freshness = time.Unix(0, n).UTC()
	}
	s.Keys = v.data.memKeys()
	if v.pending != "" {
		s.Job = v.pending
		if p := v.prior; p != nil {
			s.ServingVersion = p.version
		}
	} else {
		s.ServingVersion = v.version
	}
	return s
}

// FormatDuration prints a duration in its largest whole unit (7d, 36h, 90m).
func FormatDuration(d time.Duration) string { return repo.FormatDuration(d) }
