package engine

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-json-experiment/json/v1"

	"github.com/oklog/ulid/v2"

	"github.com/featurelog/featurelog/internal/atomicfile"
)

// JobType is the kind of work a job does (SPEC §6).
type JobType string

// The job types.
const (
	JobBackfill        JobType = "backfill"
	JobMaterialization JobType = "materialization"
	JobDeletion        JobType = "deletion"
)

// JobState is where a job is in its life (SPEC §6).
type JobState string

// The job states. SUCCESS, FAILED and CANCELLED are final.
const (
	JobPending         JobState = "PENDING"
	JobRunning         JobState = "RUNNING"
	JobSuccess         JobState = "SUCCESS"
	JobFailed          JobState = "FAILED"
	JobCancelRequested JobState = "MANUAL_CANCELLATION_REQUESTED"
	JobCancelled       JobState = "CANCELLED"
)

// Final reports whether s is a final state.
func (s JobState) Final() bool { return s == JobSuccess || s == JobFailed || s == JobCancelled }

// JobProgress says how far a job is: Done of Total Units (Total 0 while
// unknown).
type JobProgress struct {
	Done  int64  `json:"done"`
	Total int64  `json:"total"`
	Unit  string `json:"unit"`
}

// JobParams are what a job was started with.
type JobParams struct {
	// Apply is shared by the backfill jobs one apply started: they
	// succeed, fail or are cancelled together (DESIGN.md).
	Apply string `json:"apply,omitempty"`
	// BatchEnd is set on a backfill of a view whose source has batch
	// files: it loads the batch rows with event time before it (the
	// time of the apply), the view's history.
	BatchEnd *time.Time `json:"batch_end,omitempty"`
	// Materialization: the event-time range [StartTime, EndTime) and the
	// flags of SPEC §6.
	StartTime *time.Time `json:"start_time,omitempty"`
	EndTime   *time.Time `json:"end_time,omitempty"`
	Online    *bool      `json:"online,omitempty"`
	Offline   *bool      `json:"offline,omitempty"`
	Overwrite *bool      `json:"overwrite,omitempty"`
	// Deletion: the keys (each join key's value; integers as strings),
	// kept only until the job ends (then only their count stays), and
	// the log's last entry when it was requested: records logged after
	// it are kept.
	Keys     []map[string]any `json:"keys,omitempty"`
	KeyCount int              `json:"key_count,omitempty"`
	LogSeq   *uint64          `json:"log_seq,omitempty"`
	// Cluster mode: the partitions a job requested through any node runs
	// on (each runs its share, with the same id), and for a deletion the
	// positions in the whole request of this partition's keys.
	Partitions []int32 `json:"partitions,omitempty"`
	KeyIndexes []int   `json:"key_indexes,omitempty"`
}

// JobResult is what a successful job did.
type JobResult struct {
	LogRecords      int64 `json:"log_records"`      // log records the view took (after its filter and start time)
	BatchRows       int64 `json:"batch_rows"`       // batch rows the view took
	BatchDuplicates int64 `json:"batch_duplicates"` // batch rows skipped as copies of logged records
	Segments        int   `json:"segments"`         // segments written
	// Deletion: how many of the request's keys had records, the
	// positions in the request of those that had none, the views whose
	// state changed, and what was rewritten.
	KeysFound            int      `json:"keys_found,omitempty"`
	KeysNotFound         []int    `json:"keys_not_found,omitempty"`
	FeatureViews         []string `json:"feature_views,omitempty"`
	RecordsErased        int64    `json:"records_erased,omitempty"`
	LogSegmentsRewritten int      `json:"log_segments_rewritten,omitempty"`
	SegmentsRewritten    int      `json:"segments_rewritten,omitempty"`
}

// Job is one job (SPEC §6). The JSON form is the HTTP API's.
type Job struct {
	ID          string        `json:"id"`
	Type        JobType       `json:"type"`
	Workspace   string        `json:"workspace"`
	FeatureView string        `json:"feature_view"`
	Version     int           `json:"version"`
	State       JobState      `json:"state"`
	CreatedAt   time.Time     `json:"created_at"`
	StartedAt   *time.Time    `json:"started_at"`
	FinishedAt  *time.Time    `json:"finished_at"`
	Progress    JobProgress   `json:"progress"`
	Params      JobParams     `json:"params"`
	Result      *JobResult    `json:"result"`
	Error       *string       `json:"error"`
	Runs        int           `json:"runs,omitempty"` // how many times it started (more than 1 after a restart)
	done        chan struct{} // closed at a final state
}

// JobFilter selects jobs for Jobs; zero fields match all.
type JobFilter struct {
	FeatureView string
	Type        JobType
	State       JobState
	Limit       int // default 100
}

// jobTable holds every job of the data directory, persisted one file per
// job under jobs/, written atomically at every change of state
// (docs/format/jobs.md).
type jobTable struct {
	dir  string
	mu   sync.Mutex
	jobs map[string]*Job
	// running is the cancel function of the job group being run.
	running map[string]context.CancelFunc
}

func jobsDir(dir string) string { return filepath.Join(dir, "jobs") }

func loadJobs(dir string) (*jobTable, error) {
	t := &jobTable{dir: jobsDir(dir), jobs: map[string]*Job{}, running: map[string]context.CancelFunc{}}
	if err := os.MkdirAll(t.dir, 0o755); err != nil {
		return nil, err
	}
	paths, err := filepath.Glob(filepath.Join(t.dir, "job_*.json"))
	if err != nil {
		return nil, err
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		j := &Job{}
		if err := json.Unmarshal(data, j); err != nil {
			return nil, fmt.Errorf("engine: job file %s is damaged: %w", p, err)
		}
		j.done = make(chan struct{})
		if j.State.Final() {
			close(j.done)
		}
		t.jobs[j.ID] = j
	}
	return t, nil
}

// newJobID returns a job id: "job_" and a ULID, so ids sort by creation.
// NewJobID returns a new job id for a job created at now: "job_" and a
// ULID, so ids sort by creation time.
func NewJobID(now time.Time) string { return newJobID(now) }

func newJobID(now time.Time) string {
	return "job_" + ulid.MustNew(ulid.Timestamp(now), rand.Reader).String()
}

// create records a new PENDING job.
func (t *jobTable) create(j *Job) error {
	j.State, j.done = JobPending, make(chan struct{})
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.saveLocked(j); err != nil {
		return err
	}
	t.jobs[j.ID] = j
	return nil
}

// jobKind is a job's type and state, what featurelog_jobs counts by.
type jobKind struct {
	typ   JobType
	state JobState
}

// countByState counts the jobs of each type and state.
func (t *jobTable) countByState() map[jobKind]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := map[jobKind]int{}
	for _, j := range t.jobs {
		n[jobKind{j.Type, j.State}]++
	}
	return n
}

// update changes a job under the table's lock and persists it; a job
// reaching a final state wakes its waiters.
func (t *jobTable) update(id string, fn func(j *Job)) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	j := t.jobs[id]
	if j == nil {
		return fmt.Errorf("BUG: engine: no job %s", id)
	}
	was := j.State
	fn(j)
	if err := t.saveLocked(j); err != nil {
		return err
	}
	if j.State.Final() && !was.Final() {
		close(j.done)
	}
	return nil
}

// progress updates a job's progress in memory only: a restarted job starts
// over, so it is not worth a file write.
func (t *jobTable) progress(id string, p JobProgress) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if j := t.jobs[id]; j != nil {
		j.Progress = p
	}
}

func (t *jobTable) saveLocked(j *Job) error {
	data, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(t.dir, j.ID+".json"), data, 0o644)
}

// get returns a copy of a job.
func (t *jobTable) get(id string) (Job, <-chan struct{}, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	j := t.jobs[id]
	if j == nil {
		return Job{}, nil, false
	}
	return *j, j.done, true
}

// list returns copies of the jobs that match, newest first.
func (t *jobTable) list(match func(*Job) bool) []Job {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Job
	for _, j := range t.jobs {
		if match(j) {
			out = append(out, *j)
		}
	}
	slices.SortFunc(out, func(a, b Job) int { return strings.Compare(b.ID, a.ID) })
	return out
}

// Jobs lists a workspace's jobs, newest first (SPEC §6).
func (db *DB) Jobs(workspace string, f JobFilter) ([]Job, error) {
	if db.closed.Load() {
		return nil, ErrClosed
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	if f.Type != "" && f.Type != JobBackfill && f.Type != JobMaterialization && f.Type != JobDeletion {
		return nil, errorf(CodeInvalidArgument, "unknown job type %q; use backfill, materialization or deletion", f.Type)
	}
	switch f.State {
	case "", JobPending, JobRunning, JobSuccess, JobFailed, JobCancelRequested, JobCancelled:
	default:
		return nil, errorf(CodeInvalidArgument, "unknown job state %q; use PENDING, RUNNING, SUCCESS, FAILED, MANUAL_CANCELLATION_REQUESTED or CANCELLED", f.State)
	}
	if _, err := db.cat.Load().workspace(workspace); err != nil && len(db.jobs.list(func(j *Job) bool { return j.Workspace == workspace })) == 0 {
		return nil, err
	}
	out := db.jobs.list(func(j *Job) bool {
		return j.Workspace == workspace && (f.FeatureView == "" || j.FeatureView == f.FeatureView) &&
			(f.Type == "" || j.Type == f.Type) && (f.State == "" || j.State == f.State)
	})
	if len(out) > f.Limit {
		out = out[:f.Limit]
	}
	if out == nil {
		out = []Job{}
	}
	return out, nil
}

// Workspaces returns the names of the applied workspaces, sorted.
func (db *DB) Workspaces() []string { return db.cat.Load().names() }

// Job returns one job of a workspace.
func (db *DB) Job(workspace, id string) (Job, error) {
	if db.closed.Load() {
		return Job{}, ErrClosed
	}
	j, _, ok := db.jobs.get(id)
	if !ok || j.Workspace != workspace {
		return Job{}, errorf(CodeNotFound, "job %q not found in workspace %q", id, workspace)
	}
	return j, nil
}

// WaitJob waits until a job reaches a final state or ctx is done, and
// returns the job as it then is (ctx's end is not an error: the job is
// returned in its current state).
func (db *DB) WaitJob(ctx context.Context, workspace, id string) (Job, error) {
	if db.closed.Load() {
		return Job{}, ErrClosed
	}
	j, done, ok := db.jobs.get(id)
	if !ok || j.Workspace != workspace {
		return Job{}, errorf(CodeNotFound, "job %q not found in workspace %q", id, workspace)
	}
	select {
	case <-done:
	case <-ctx.Done():
	case <-db.maintStop:
		return j, ErrClosed
	}
	return db.Job(workspace, id)
}

// WaitJobs waits for every job to reach a final state and returns an
// error naming the first that did not succeed.
func (db *DB) WaitJobs(ctx context.Context, jobs []Job) error {
	for _, j := range jobs {
		got, err := db.WaitJob(ctx, j.Workspace, j.ID)
		if err != nil {
			return err
		}
		if !got.State.Final() {
			return ctx.Err()
		}
		if got.State != JobSuccess {
			msg := ""
			if got.Error != nil {
				msg = ": " + *got.Error
			}
			return fmt.Errorf("engine: %s job %s of %s ended %s%s", got.Type, got.ID, got.FeatureView, got.State, msg)
		}
	}
	return nil
}

// CancelJob cancels a PENDING or RUNNING job: it stops, and everything is
// as it was before it (SPEC §6). Cancelling a finished job is refused
// with CodeConflict; its effects stay. The returned job is in
// MANUAL_CANCELLATION_REQUESTED or CANCELLED.
func (db *DB) CancelJob(workspace, id string) (Job, error) {
	j, err := db.Job(workspace, id)
	if err != nil {
		return j, err
	}
	if j.State.Final() || j.State == JobCancelRequested {
		if j.State.Final() {
			return j, &JobConflict{Job: j, Msg: fmt.Sprintf("job %s already ended %s; cancelling it changes nothing", id, j.State)}
		}
		return j, nil
	}
	if j.Type == JobDeletion && j.State == JobRunning {
		return j, &JobConflict{Job: j, Msg: fmt.Sprintf("deletion job %s is running and cannot be undone: what it erased is gone; it runs to its end", id)}
	}
	if err := db.jobs.update(id, func(j *Job) { j.State = JobCancelRequested }); err != nil {
		return j, err
	}
	db.jobs.mu.Lock()
	group := groupOf(db.jobs.jobs[id])
	cancel := db.jobs.running[group]
	db.jobs.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	db.runner.wake()
	return db.Job(workspace, id)
}

// JobConflict is the error of a request that conflicts with a job: a
// finished job cancelled, an overlapping materialization, an apply while
// a backfill runs. Job is the job in the way.
type JobConflict struct {
	Job Job
	Msg string
}

func (e *JobConflict) Error() string { return e.Msg }

// groupOf names the unit a job runs, fails and is cancelled in: the
// apply that started it, or itself.
func groupOf(j *Job) string {
	if j.Params.Apply != "" {
		return j.Params.Apply
	}
	return j.ID
}

// errCancelled ends a job whose cancellation was requested.
var errCancelled = errors.New("cancelled")
