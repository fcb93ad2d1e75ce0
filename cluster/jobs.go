package cluster

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/featurelog/featurelog/engine"
)

// Jobs (SPEC §10: "jobs run on every node for its partitions"). A job
// that changes state — a deletion, or the cancellation of a job — is
// requested through any node as one Kafka record per partition it runs
// on, produced in one transaction to the request topic, so that it is
// ordered with the records: a deletion erases exactly the records before
// it in its partition, on whichever node owns the partition now or later
// (a node that takes the partition over replays the records, then the
// deletion). The owner starts the job with the request's id as it
// consumes it and logs the request's offset after it (engine.ApplyAt):
// each partition starts it once, whatever the restarts.

// jobHeader marks a job request; its value is the request's type.
const jobHeader = "featurelog-job"

// Job request types.
const (
	jobDeletion        = "deletion"
	jobMaterialization = "materialization"
	jobCancel          = "cancel"
)

// jobRequest is one partition's share of a job requested through any
// node. Part of the request topic's format (docs/format/kafka.md).
type jobRequest struct {
	ID          string           `json:"id"`
	Type        string           `json:"type"`
	Workspace   string           `json:"workspace"`
	FeatureView string           `json:"feature_view,omitempty"`
	Keys        []map[string]any `json:"keys,omitempty"`
	KeyIndexes  []int            `json:"key_indexes,omitempty"`
	Online      bool             `json:"online,omitzero"`
	Offline     bool             `json:"offline,omitzero"`
	Start       *time.Time       `json:"start_time,omitempty"`
	End         *time.Time       `json:"end_time,omitempty"`
	Overwrite   bool             `json:"overwrite,omitzero"`
	Partitions  []int32          `json:"partitions"`
}

// DeleteKeys requests a deletion (SPEC §6 delete_keys) of view's keys:
// the request is checked against the catalog as a single node checks it,
// then each partition holding some of the keys gets its share, all in one
// Kafka transaction. It returns the job's id and partitions once Kafka
// committed it; each owner then runs its share under that id.
func (n *Node) DeleteKeys(ctx context.Context, workspace, view string, req engine.DeleteKeysRequest) (string, []int32, error) {
	split, canonical, err := n.catalog.SplitDeleteKeys(workspace, view, req, n.cfg.Partitions, PartitionOf)
	if err != nil {
		return "", nil, err
	}
	id := engine.NewJobID(time.Now())
	parts := slices.Sorted(maps.Keys(split))
	recs := make([]*kgo.Record, 0, len(parts))
	for _, p := range parts {
		jr := jobRequest{ID: id, Type: jobDeletion, Workspace: workspace, FeatureView: view, KeyIndexes: split[p],
			Online: req.Online, Offline: req.Offline, Partitions: parts}
		for _, i := range split[p] {
			jr.Keys = append(jr.Keys, canonical[i])
		}
		rec, err := jobRecord(p, &jr)
		if err != nil {
			return "", nil, err
		}
		recs = append(recs, rec)
	}
	if err := n.produce(ctx, recs); err != nil {
		return "", nil, err
	}
	return id, parts, nil
}

// Materialize requests a materialization (SPEC §6) of view on every
// partition, each loading the batch rows of its own keys: the request is
// checked against the catalog, then produced to every partition in one
// Kafka transaction. It returns the job's id and partitions once Kafka
// committed it. Overlaps with earlier materializations and running jobs
// are the caller's to check (they are the partitions' state).
func (n *Node) Materialize(ctx context.Context, workspace, view string, req engine.MaterializeRequest) (string, []int32, error) {
	if err := n.catalog.CheckMaterialize(workspace, view, req); err != nil {
		return "", nil, err
	}
	id := engine.NewJobID(time.Now())
	parts := make([]int32, n.cfg.Partitions)
	for p := range parts {
		parts[p] = int32(p)
	}
	start, end := req.Start.UTC(), req.End.UTC()
	recs := make([]*kgo.Record, 0, len(parts))
	for _, p := range parts {
		rec, err := jobRecord(p, &jobRequest{ID: id, Type: jobMaterialization, Workspace: workspace, FeatureView: view,
			Online: req.Online, Offline: req.Offline, Start: &start, End: &end, Overwrite: req.Overwrite, Partitions: parts})
		if err != nil {
			return "", nil, err
		}
		recs = append(recs, rec)
	}
	if err := n.produce(ctx, recs); err != nil {
		return "", nil, err
	}
	return id, parts, nil
}

// CancelJob requests the cancellation of job id on each of partitions, in
// one Kafka transaction. Each owner cancels its share as a single node
// does (a share that ended, or a deletion that is running, stays as it
// is).
func (n *Node) CancelJob(ctx context.Context, workspace, id string, partitions []int32) error {
	recs := make([]*kgo.Record, 0, len(partitions))
	for _, p := range partitions {
		if p < 0 || int(p) >= n.cfg.Partitions {
			continue
		}
		rec, err := jobRecord(p, &jobRequest{ID: id, Type: jobCancel, Workspace: workspace, Partitions: partitions})
		if err != nil {
			return err
		}
		recs = append(recs, rec)
	}
	if len(recs) == 0 {
		return nil
	}
	return n.produce(ctx, recs)
}

func jobRecord(p int32, jr *jobRequest) (*kgo.Record, error) {
	b, err := json.Marshal(jr)
	if err != nil {
		return nil, err
	}
	return &kgo.Record{Partition: p, Value: b, Headers: []kgo.RecordHeader{{Key: jobHeader, Value: []byte(jr.Type)}}}, nil
}

// applyJob starts the job a request consumed from partition r.Partition
// asks for, once. A request this partition can never apply (its view was
// removed since, an unknown type) is logged and passed over; any other
// error is returned, and the request is read again.
func (n *Node) applyJob(db *engine.DB, r *kgo.Record) error {
	var jr jobRequest
	if err := json.Unmarshal(r.Value, &jr); err != nil || jr.ID == "" || jr.Workspace == "" {
		n.cfg.Logger.Error("cluster: passing over a malformed job request", "partition", r.Partition, "offset", r.Offset, "err", err)
		return nil
	}
	pos := engine.Position{Partition: r.Partition, Offset: r.Offset}
	_, err := db.ApplyAt(pos, jr.Workspace, func() error {
		var err error
		switch jr.Type {
		case jobDeletion:
			_, err = db.DeleteKeys(jr.Workspace, jr.FeatureView, engine.DeleteKeysRequest{Keys: jr.Keys, Online: jr.Online, Offline: jr.Offline,
				JobID: jr.ID, Partitions: jr.Partitions, KeyIndexes: jr.KeyIndexes})
		case jobMaterialization:
			if jr.Start == nil || jr.End == nil {
				n.cfg.Logger.Error("cluster: passing over a materialization request without its range", "partition", r.Partition, "offset", r.Offset)
				return nil
			}
			_, err = db.Materialize(jr.Workspace, jr.FeatureView, engine.MaterializeRequest{Start: *jr.Start, End: *jr.End,
				Online: jr.Online, Offline: jr.Offline, Overwrite: jr.Overwrite, JobID: jr.ID, Partitions: jr.Partitions})
			var conflict *engine.JobConflict
			if errors.As(err, &conflict) && conflict.Job.State.Final() {
				// An overlap the node that took the request could not see
				// (two requests at once): this share is refused for good.
				n.cfg.Logger.Error("cluster: a materialization overlaps an earlier one on this partition; passing over it",
					"job", jr.ID, "partition", r.Partition, "err", err)
				return nil
			}
			// A job of the workspace still running: read the request
			// again until it ended, as a single node would be asked again.
		case jobCancel:
			_, err = db.CancelJob(jr.Workspace, jr.ID)
			var conflict *engine.JobConflict
			if errors.As(err, &conflict) || engine.CodeOf(err) == engine.CodeNotFound {
				err = nil // ended, a running deletion, or never started here: nothing to cancel
			}
		default:
			n.cfg.Logger.Error("cluster: passing over a job request of an unknown type", "type", jr.Type, "partition", r.Partition, "offset", r.Offset)
		}
		if c := engine.CodeOf(err); c == engine.CodeInvalidArgument || c == engine.CodeNotFound {
			n.cfg.Logger.Error("cluster: a job request cannot be applied on this partition; passing over it",
				"job", jr.ID, "type", jr.Type, "partition", r.Partition, "offset", r.Offset, "err", err)
			return nil
		}
		return err
	})
	return err
}

// PartitionJob is one partition's share of a job, as its owner has it.
type PartitionJob struct {
	Partition int32      `json:"partition"`
	Node      string     `json:"node"`
	Job       engine.Job `json:"job"`
}

// LocalJobs returns the shares of the jobs of workspace on the partitions
// this node serves, caught up: the job with id when id is set, else those
// f selects (its State and Limit are ignored: a share's state is not the
// job's), with the partitions it served.
func (n *Node) LocalJobs(workspace, id string, f engine.JobFilter) ([]PartitionJob, []int32, error) {
	var (
		out    []PartitionJob
		served []int32
	)
	f.State, f.Limit = "", 1000
	for _, p := range n.Owned() {
		db, err := n.Owner(p)
		if err != nil {
			continue
		}
		served = append(served, p)
		var jobs []engine.Job
		if id != "" {
			j, err := db.Job(workspace, id)
			switch {
			case err == nil:
				jobs = []engine.Job{j}
			case engine.CodeOf(err) != engine.CodeNotFound:
				return nil, nil, err
			}
		} else if jobs, err = db.Jobs(workspace, f); err != nil && engine.CodeOf(err) != engine.CodeNotFound {
			return nil, nil, err
		}
		for _, j := range jobs {
			out = append(out, PartitionJob{Partition: p, Node: n.cfg.NodeID, Job: j})
		}
	}
	return out, served, nil
}
