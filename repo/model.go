package repo

import (
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/featurelog/featurelog/schema"
)

// Repo is one parsed and fully validated feature repository file: the
// definitions of one workspace. Every slice is in file order. A *Repo is
// immutable once Parse returns it; the engine shares it between goroutines.
type Repo struct {
	File            string // the file name used in error messages
	Workspace       string
	Entities        []*Entity
	Sources         []*Source
	FeatureViews    []*FeatureView
	FeatureServices []*FeatureService
}

// Entity names the join keys that identify one kind of thing.
type Entity struct {
	Name        string
	Description string
	JoinKeys    []string // source column names; types come from each view's source
	Line        int      // line of the entity in the file
}

// Source is a push source: a schema records must match, and where its
// offline log lives.
type Source struct {
	Name        string
	Description string
	Schema      []schema.Column // in declared order; names unique
	LogOffline  bool            // push.log_offline (default true)
	Batch       *BatchConfig    // nil when absent
	Line        int
}

// Column returns the schema column called name.
func (s *Source) Column(name string) (schema.Column, bool) {
	for _, c := range s.Schema {
		if c.Name == name {
			return c, true
		}
	}
	return schema.Column{}, false
}

// BatchConfig is a source's optional self-managed offline log.
type BatchConfig struct {
	URI            string
	Format         string // parquet, csv or jsonl
	TimestampField string
}

// FeatureView derives features from one source, keyed by its entities.
type FeatureView struct {
	Name                string
	Source              string          // the source's name
	Entities            []string        // entity names, in declared order
	JoinKeys            []schema.Column // the entities' join keys in order, typed from the source schema
	TimestampField      string          // a Timestamp column of the source
	Online              bool            // default true
	Offline             bool            // default true
	FeatureStartTime    time.Time       // zero when unset
	BatchSchedule       time.Duration   // zero when unset
	TTL                 time.Duration   // zero when unset: aggregate views then use their largest window, attribute views never expire
	Description         string
	Owner               string
	Tags                map[string]string
	Transform           *Transform    // nil when the view has no transform
	AggregationInterval time.Duration // zero means continuous
	Features            []*Feature    // all attributes or all aggregates
	OutputStream        *OutputStream // nil when absent
	Line                int

	src *Source // the resolved source, set by Parse; Columns reads its schema
}

// Aggregate reports whether the view's features are aggregates.
func (v *FeatureView) Aggregate() bool {
	return len(v.Features) > 0 && v.Features[0].Kind == AggregateFeature
}

// FeatureKind tells attribute features from aggregates.
type FeatureKind uint8

// The feature kinds.
const (
	AttributeFeature FeatureKind = iota + 1
	AggregateFeature
)

// Feature is one declared feature of a view, with its resolved name and types.
type Feature struct {
	Name       string // resolved: `name:` or the SPEC §1 default
	Kind       FeatureKind
	Input      string      // attribute: the column served; aggregate: the input column
	InputType  schema.Type // type of Input (a source or transform column)
	Type       schema.Type // the served type
	Function   string      // aggregate function name (SPEC §3), empty for attributes
	N          int         // last_n, first_n, last_distinct_n, first_distinct_n
	Percentile float64     // approx_percentile
	Precision  int         // approx_count_distinct (4..16, default 8), approx_percentile (default 100)
	Window     Window      // aggregates only
	Line       int
}

// Window is an aggregate's time window: [end − Offset − Size, end − Offset),
// or from the view's start when Lifetime is set.
type Window struct {
	Size     time.Duration // zero when Lifetime
	Offset   time.Duration
	Lifetime bool
}

// Transform is a view's row-level transformation: new columns computed in
// order, then an optional filter.
type Transform struct {
	Columns []*TransformColumn
	Filter  *Expr // nil when absent
}

// TransformColumn is one computed column.
type TransformColumn struct {
	Name string
	Expr *Expr
	Type schema.Type // inferred at apply time
}

// Expr is one compiled expr-lang expression.
type Expr struct {
	Source  string      // the expression text as written
	Program *vm.Program // compiled and type-checked against the view's columns
	Inputs  []string    // the columns it reads; when any is null the result is null
}

// OutputStream is a view's output stream declaration (SPEC §7).
type OutputStream struct {
	IncludeFeatures bool
	Kafka           *KafkaSink // nil when the stream has no Kafka sink
}

// KafkaSink is an output stream's Kafka sink (SPEC §7).
type KafkaSink struct {
	Brokers     []string // bootstrap brokers; may be empty when serve --kafka-brokers gives them
	Topic       string
	ExactlyOnce bool          // produce in transactions that also commit the sink's progress
	MaxLag      time.Duration // lag past which /readyz reports the sink (default DefaultMaxLag)
	Line        int
}

// FeatureService is a named, ordered list of features served together.
type FeatureService struct {
	Name                 string
	Description          string
	OnlineServingEnabled bool // default true
	Features             []ServiceFeature
	Line                 int
}

// ServiceFeature is one feature of a service, expanded from the file's
// whole-view and subset entries, in declared order.
type ServiceFeature struct {
	View    string
	Feature string
}
