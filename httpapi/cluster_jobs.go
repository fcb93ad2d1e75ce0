package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-json-experiment/json"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/cluster"
	"github.com/featurelog/featurelog/engine"
)

// Jobs in cluster mode (SPEC §10: "the jobs API shows them per partition
// and as a whole"). Each partition's owner runs its share of a job; the
// node a request reaches asks every node that serves a partition for its
// shares (POST /internal/v1/workspaces/{ws}/partition-jobs), and answers
// each job as a whole, with its shares under "partitions". An answer
// needs every partition: while one has no owner it is 503.

// ClusterJob is a job as the whole cluster runs it: the fields of a
// single node's job, combined over its shares, and the shares.
type ClusterJob struct {
	engine.Job
	Partitions []ClusterJobShare `json:"partitions"`
}

// ClusterJobShare is one partition's share of a job.
type ClusterJobShare struct {
	Partition int32              `json:"partition"`
	Node      string             `json:"node"`
	State     engine.JobState    `json:"state"`
	Progress  engine.JobProgress `json:"progress"`
	Result    *engine.JobResult  `json:"result"`
	Error     *string            `json:"error"`
}

// partitionJobsRequest asks a node for its shares of a workspace's jobs.
type partitionJobsRequest struct {
	ID          string `json:"id,omitempty"`
	FeatureView string `json:"feature_view,omitempty"`
	Type        string `json:"type,omitempty"`
}

// partitionJobsResponse is a node's shares, and the partitions it served.
type partitionJobsResponse struct {
	Node    string                 `json:"node"`
	Serving []int32                `json:"serving"`
	Jobs    []cluster.PartitionJob `json:"jobs"`
}

// clusterRoutes registers the routes between the nodes of a cluster; a
// single node has none. Their callers need the roles of the public route
// they serve (partition-jobs: a viewer, as listing jobs).
func (s *Server) clusterRoutes() {
	if s.opts.Cluster != nil {
		s.handle("POST /internal/v1/workspaces/{ws}/partition-jobs", "partition_jobs", s.partitionJobs)
		s.handle("POST /internal/v1/workspaces/{ws}/partition-views", "partition_views", s.partitionViews)
	}
}

// partitionJobs answers another node's gather: this node's shares.
func (s *Server) partitionJobs(w http.ResponseWriter, r *http.Request) {
	var req partitionJobsRequest
	ws, ok := s.jobsCaller(w, r, auth.Viewer, "read jobs", &req)
	if !ok {
		return
	}
	f := engine.JobFilter{FeatureView: req.FeatureView, Type: engine.JobType(req.Type)}
	if _, err := s.db.Jobs(ws, f); err != nil { // the catalog checks the workspace and the filter
		s.writeEngineError(w, err)
		return
	}
	jobs, served, err := s.opts.Cluster.LocalJobs(ws, req.ID, f)
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	writeJSONValue(w, http.StatusOK, partitionJobsResponse{Node: s.opts.Cluster.ID(), Serving: served, Jobs: jobs})
}

// gatherJobs collects the shares of every partition (gather), and
// the node that serves each partition.
func (s *Server) gatherJobs(r *http.Request, ws string, req partitionJobsRequest) ([]cluster.PartitionJob, map[int32]string, error) {
	f := engine.JobFilter{FeatureView: req.FeatureView, Type: engine.JobType(req.Type)}
	return gather(s, r, "/internal/v1/workspaces/"+ws+"/partition-jobs", req,
		func() (string, []int32, []cluster.PartitionJob, error) {
			jobs, served, err := s.opts.Cluster.LocalJobs(ws, req.ID, f)
			return s.opts.Cluster.ID(), served, jobs, err
		},
		func(b []byte) (string, []int32, []cluster.PartitionJob, error) {
			var a partitionJobsResponse
			err := json.Unmarshal(b, &a)
			return a.Node, a.Serving, a.Jobs, err
		},
		func(j cluster.PartitionJob) int32 { return j.Partition })
}

// combineJobs makes each job whole from its shares, newest first. A job
// requested through the cluster lists its partitions: a partition whose
// owner has not started its share yet shows PENDING.
func combineJobs(shares []cluster.PartitionJob, owners map[int32]string) []ClusterJob {
	byID := map[string][]cluster.PartitionJob{}
	for _, sh := range shares {
		byID[sh.Job.ID] = append(byID[sh.Job.ID], sh)
	}
	out := make([]ClusterJob, 0, len(byID))
	for _, group := range byID {
		out = append(out, combineJob(group, owners))
	}
	slices.SortFunc(out, func(a, b ClusterJob) int { return strings.Compare(b.ID, a.ID) })
	return out
}

func combineJob(group []cluster.PartitionJob, owners map[int32]string) ClusterJob {
	slices.SortFunc(group, func(a, b cluster.PartitionJob) int { return int(a.Partition - b.Partition) })
	first := group[0].Job
	cj := ClusterJob{Job: first}
	cj.Params.Keys, cj.Params.KeyIndexes, cj.Params.LogSeq, cj.Params.KeyCount = nil, nil, nil, 0
	cj.Result, cj.Error, cj.StartedAt, cj.FinishedAt, cj.Runs = nil, nil, nil, nil, 0
	have := map[int32]bool{}
	var (
		states   []engine.JobState
		result   engine.JobResult
		notFound []int
		views    []string
	)
	for _, sh := range group {
		j := sh.Job
		have[sh.Partition] = true
		cj.Partitions = append(cj.Partitions, ClusterJobShare{Partition: sh.Partition, Node: sh.Node, State: j.State,
			Progress: j.Progress, Result: j.Result, Error: j.Error})
		states = append(states, j.State)
		cj.Params.KeyCount += j.Params.KeyCount
		cj.Runs = max(cj.Runs, j.Runs)
		if j.CreatedAt.Before(cj.CreatedAt) {
			cj.CreatedAt = j.CreatedAt
		}
		if j.StartedAt != nil && (cj.StartedAt == nil || j.StartedAt.Before(*cj.StartedAt)) {
			cj.StartedAt = j.StartedAt
		}
		if j.FinishedAt != nil && (cj.FinishedAt == nil || j.FinishedAt.After(*cj.FinishedAt)) {
			cj.FinishedAt = j.FinishedAt
		}
		if j.Error != nil && cj.Error == nil {
			msg := fmt.Sprintf("partition %d: %s", sh.Partition, *j.Error)
			cj.Error = &msg
		}
		if r := j.Result; r != nil {
			result.LogRecords += r.LogRecords
			result.BatchRows += r.BatchRows
			result.BatchDuplicates += r.BatchDuplicates
			result.Segments += r.Segments
			result.KeysFound += r.KeysFound
			result.RecordsErased += r.RecordsErased
			result.LogSegmentsRewritten += r.LogSegmentsRewritten
			result.SegmentsRewritten += r.SegmentsRewritten
			for _, i := range r.KeysNotFound {
				if i >= 0 && i < len(j.Params.KeyIndexes) {
					i = j.Params.KeyIndexes[i]
				}
				notFound = append(notFound, i)
			}
			for _, v := range r.FeatureViews {
				if !slices.Contains(views, v) {
					views = append(views, v)
				}
			}
		}
	}
	for _, p := range first.Params.Partitions {
		if !have[p] {
			cj.Partitions = append(cj.Partitions, ClusterJobShare{Partition: p, Node: owners[p], State: engine.JobPending,
				Progress: engine.JobProgress{Unit: first.Progress.Unit}})
			states = append(states, engine.JobPending)
		}
	}
	slices.SortFunc(cj.Partitions, func(a, b ClusterJobShare) int { return int(a.Partition - b.Partition) })
	cj.State = combineStates(states)
	done := 0
	for _, st := range states {
		if st.Final() {
			done++
		}
	}
	cj.Progress = engine.JobProgress{Done: int64(done), Total: int64(len(states)), Unit: "partitions"}
	if cj.State == engine.JobSuccess {
		slices.Sort(notFound)
		slices.Sort(views)
		result.KeysNotFound, result.FeatureViews = notFound, views
		cj.Result = &result
	} else {
		cj.FinishedAt = nil
	}
	return cj
}

// combineStates is a job's state from its shares': final once every share
// is (FAILED if one failed, else CANCELLED if one was cancelled, else
// SUCCESS); else RUNNING once one started or ended, else
// MANUAL_CANCELLATION_REQUESTED if one is, else PENDING.
func combineStates(states []engine.JobState) engine.JobState {
	final, started, cancelling := true, false, false
	for _, st := range states {
		final = final && st.Final()
		started = started || st == engine.JobRunning || st.Final()
		cancelling = cancelling || st == engine.JobCancelRequested
	}
	switch {
	case final && slices.Contains(states, engine.JobFailed):
		return engine.JobFailed
	case final && slices.Contains(states, engine.JobCancelled):
		return engine.JobCancelled
	case final:
		return engine.JobSuccess
	case started:
		return engine.JobRunning
	case cancelling:
		return engine.JobCancelRequested
	}
	return engine.JobPending
}

// clusterJob gathers and combines the job with id; ok is false when no
// partition has it.
func (s *Server) clusterJob(r *http.Request, ws, id string) (ClusterJob, bool, error) {
	shares, owners, err := s.gatherJobs(r, ws, partitionJobsRequest{ID: id})
	if err != nil || len(shares) == 0 {
		return ClusterJob{}, false, err
	}
	return combineJob(shares, owners), true, nil
}

// writeJobNotFound answers 404 for a job no partition has, with the
// single node's message (the catalog holds no job).
func (s *Server) writeJobNotFound(w http.ResponseWriter, ws, id string) {
	_, err := s.db.Job(ws, id)
	if err == nil {
		err = fmt.Errorf("job %s not found", id)
	}
	s.writeEngineError(w, err)
}

func (s *Server) clusterListJobs(w http.ResponseWriter, r *http.Request, ws string, f engine.JobFilter) {
	// The catalog checks the filter and the workspace as a single node
	// does; it holds no job.
	if _, err := s.db.Jobs(ws, f); err != nil {
		s.writeEngineError(w, err)
		return
	}
	shares, owners, err := s.gatherJobs(r, ws, partitionJobsRequest{FeatureView: f.FeatureView, Type: string(f.Type)})
	if err != nil {
		writeUnavailable(w, err)
		return
	}
	jobs := combineJobs(shares, owners)
	if f.State != "" {
		jobs = slices.DeleteFunc(jobs, func(j ClusterJob) bool { return j.State != f.State })
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	jobs = jobs[:min(len(jobs), limit)]
	writeJSONValue(w, http.StatusOK, map[string]any{"jobs": jobs})
}

// clusterGetJob answers a job, waiting up to wait for it to end.
func (s *Server) clusterGetJob(w http.ResponseWriter, r *http.Request, ws, id string, wait time.Duration) {
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	for {
		j, ok, err := s.clusterJob(r, ws, id)
		switch {
		case err != nil:
			writeUnavailable(w, err)
			return
		case !ok:
			s.writeJobNotFound(w, ws, id)
			return
		}
		if j.State.Final() || wait <= 0 {
			writeJSONValue(w, http.StatusOK, j)
			return
		}
		select {
		case <-ctx.Done():
			writeJSONValue(w, http.StatusOK, j)
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// clusterCancelJob requests the cancellation of every share of a job
// through Kafka, and answers the job once each owner applied it (or
// after MinPositionsWait).
func (s *Server) clusterCancelJob(w http.ResponseWriter, r *http.Request, ws, id string) {
	j, ok, err := s.clusterJob(r, ws, id)
	switch {
	case err != nil:
		writeUnavailable(w, err)
		return
	case !ok:
		s.writeJobNotFound(w, ws, id)
		return
	case j.State.Final():
		s.writeEngineError(w, &engine.JobConflict{Job: j.Job, Msg: fmt.Sprintf("job %s already ended %s; cancelling it changes nothing", id, j.State)})
		return
	}
	parts := make([]int32, len(j.Partitions))
	for i, sh := range j.Partitions {
		parts[i] = sh.Partition
	}
	if err := s.opts.Cluster.CancelJob(r.Context(), ws, id, parts); err != nil {
		writeUnavailable(w, err)
		return
	}
	deadline := time.Now().Add(MinPositionsWait)
	for {
		settled := true
		for _, sh := range j.Partitions {
			settled = settled && sh.State != engine.JobPending && (sh.State != engine.JobRunning || j.Type == engine.JobDeletion)
		}
		if settled || time.Now().After(deadline) {
			writeJSONValue(w, http.StatusOK, j)
			return
		}
		time.Sleep(20 * time.Millisecond)
		if j, _, err = s.clusterJob(r, ws, id); err != nil {
			writeUnavailable(w, err)
			return
		}
	}
}

// clusterMaterialize requests a materialization of every partition
// through Kafka, once the jobs of the whole cluster allow it as a single
// node's would (no job of the workspace running; no overlap with a
// successful materialization of the view's version unless overwrite),
// and answers the job once every partition started its share (or after
// MinPositionsWait).
func (s *Server) clusterMaterialize(w http.ResponseWriter, r *http.Request, ws, view string, req engine.MaterializeRequest) {
	if err := s.db.CheckMaterialize(ws, view, req); err != nil {
		s.writeEngineError(w, err)
		return
	}
	shares, owners, err := s.gatherJobs(r, ws, partitionJobsRequest{})
	if err != nil {
		writeUnavailable(w, err)
		return
	}
	version := 0
	if sum, err := s.db.FeatureViewSummary(ws, view); err == nil {
		version = sum.Version
	}
	var jobs []engine.Job // the cluster's, each as a whole, newest first
	for _, j := range combineJobs(shares, owners) {
		jobs = append(jobs, j.Job)
	}
	if c := engine.MaterializeConflict(ws, view, version, req, jobs); c != nil {
		s.writeEngineError(w, c)
		return
	}
	id, parts, err := s.opts.Cluster.Materialize(r.Context(), ws, view, req)
	if err != nil {
		s.writeClusterError(w, err)
		return
	}
	s.answerStarted(w, r, http.StatusCreated, ws, id, parts, engine.Job{ID: id, Type: engine.JobMaterialization, Workspace: ws, FeatureView: view,
		Version: version, State: engine.JobPending, CreatedAt: time.Now().UTC(),
		Params: engine.JobParams{StartTime: &req.Start, EndTime: &req.End, Online: &req.Online, Offline: &req.Offline, Overwrite: &req.Overwrite, Partitions: parts}})
}

// answerStarted answers a job requested through Kafka once every
// partition it runs on started its share, or after MinPositionsWait with
// what is known then (pending: the job as requested, its shares PENDING).
func (s *Server) answerStarted(w http.ResponseWriter, r *http.Request, status int, ws, id string, parts []int32, pending engine.Job) {
	deadline := time.Now().Add(MinPositionsWait)
	for {
		shares, owners, err := s.gatherJobs(r, ws, partitionJobsRequest{ID: id})
		if err == nil && (len(shares) == len(parts) || (time.Now().After(deadline) && len(shares) > 0)) {
			writeJSONValue(w, status, combineJob(shares, owners))
			return
		}
		if time.Now().After(deadline) {
			// Kafka committed the request: every owner runs its share.
			cj := ClusterJob{Job: pending}
			cj.Progress = engine.JobProgress{Total: int64(len(parts)), Unit: "partitions"}
			for _, p := range parts {
				cj.Partitions = append(cj.Partitions, ClusterJobShare{Partition: p, Node: owners[p], State: engine.JobPending})
			}
			writeJSONValue(w, status, cj)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// clusterDeleteKeys requests a deletion through Kafka and answers the
// job once every partition it runs on started its share (or after
// MinPositionsWait, the shares not yet started showing PENDING).
func (s *Server) clusterDeleteKeys(w http.ResponseWriter, r *http.Request, ws, view string, req engine.DeleteKeysRequest) {
	id, parts, err := s.opts.Cluster.DeleteKeys(r.Context(), ws, view, req)
	if err != nil {
		s.writeClusterError(w, err)
		return
	}
	s.answerStarted(w, r, http.StatusAccepted, ws, id, parts, engine.Job{ID: id, Type: engine.JobDeletion, Workspace: ws, FeatureView: view,
		State: engine.JobPending, CreatedAt: time.Now().UTC(),
		Params: engine.JobParams{KeyCount: len(req.Keys), Online: &req.Online, Offline: &req.Offline, Partitions: parts}})
}
