package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/go-json-experiment/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/repo"
)

// Applies (SPEC §10: "applies run on every node for its partitions"). A
// repo file applied through any node is produced to the compacted topic
// <Topic>.repo, keyed by its workspace, and every node applies it, in the
// topic's order, to its catalog and to every partition it owns; a
// partition opened later is opened with the workspaces' latest files. The
// topic is thus the cluster's repo: the --repo file a node starts with
// defines its workspace only until an apply through the API replaces it.
//
// A node reads the topic to its end before it opens anything (it produces
// a sync record and reads until its own comes back), so that a restart
// applies only each workspace's latest file: applying the start file and
// then the topic's would give every view a new version at each restart.

// Headers of the repo topic's records.
const (
	repoSyncHeader  = "featurelog-repo-sync"  // a node's sync record: no file; its value is the node's nonce
	repoApplyHeader = "featurelog-repo-apply" // the id of the apply that produced the file, for its waiter
)

// repoTopic names the topic of applied repo files.
func repoTopic(topic string) string { return topic + ".repo" }

// repoFile is one applied file, the value of a repo topic record. Part of
// the repo topic's format (docs/format/kafka.md).
type repoFile struct {
	Workspace string `json:"workspace"`
	Name      string `json:"name"`
	Content   string `json:"content"`
}

// applied is the outcome of one apply on this node's catalog, for the
// request that produced it.
type applied struct {
	res *engine.ApplyResult
	err error
}

// repoState is the node's view of the cluster's repo.
type repoState struct {
	mu    sync.Mutex
	files map[string]repoFile // by workspace: the latest file of each; guarded by mu
	// inTopic marks the workspaces whose file in files was read from the
	// topic (not only this node's --repo); guarded by mu.
	inTopic map[string]bool
	// waiters are the applies this node produced, by id, waiting for
	// their file to be applied here; guarded by mu.
	waiters map[string]chan applied
}

// startFiles returns the files a node starts with: its configured repo,
// whose workspace it names.
func startFiles(cfg *Config) (map[string]repoFile, error) {
	r, err := repo.Parse(cfg.RepoName, cfg.Repo)
	if err != nil {
		return nil, fmt.Errorf("cluster: %s: %w", cfg.RepoName, err)
	}
	return map[string]repoFile{r.Workspace: {Workspace: r.Workspace, Name: cfg.RepoName, Content: string(cfg.Repo)}}, nil
}

// syncRepo reads the repo topic up to a sync record of its own, so that
// n.repo.files holds every file applied before the node started.
// The same read covers the accounts topic (accounts.go), whose records
// it keeps in n.acctPending until the catalog opens.
func (n *Node) syncRepo(ctx context.Context) error {
	nonce := n.cfg.NodeID + "/" + randomID()
	topics := []string{repoTopic(n.cfg.Topic), accountsTopic(n.cfg.Topic)}
	recs := make([]*kgo.Record, len(topics))
	for i, t := range topics {
		recs[i] = &kgo.Record{Topic: t, Key: []byte("sync/" + n.cfg.NodeID), Value: []byte(nonce),
			Headers: []kgo.RecordHeader{{Key: repoSyncHeader, Value: []byte(nonce)}}}
	}
	if err := n.produce(ctx, recs); err != nil {
		return fmt.Errorf("cluster: reading the applied repo files and accounts: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, internalProduceTimeout)
	defer cancel()
	seen := map[string]bool{}
	for {
		fs := n.repoCl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("cluster: reading the applied repo files and accounts (topics %s): %w", strings.Join(topics, ", "), err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if v, ok := header(r, repoSyncHeader); ok {
				seen[r.Topic] = seen[r.Topic] || v == nonce
				return
			}
			if r.Topic == accountsTopic(n.cfg.Topic) {
				n.acctPending = append(n.acctPending, accountChange{id: string(r.Key), record: r.Value})
				return
			}
			if f, ok := n.decodeRepoFile(r); ok {
				n.repo.mu.Lock()
				n.repo.files[f.Workspace], n.repo.inTopic[f.Workspace] = f, true
				n.repo.mu.Unlock()
			}
		})
		if seen[topics[0]] && seen[topics[1]] {
			return nil
		}
	}
}

// publishStartFiles makes this node's --repo file the cluster's
// definition of its workspace when the topic has none (the first node of
// a cluster), so that nodes started with different files agree: the
// topic's file wins, whatever each node's --repo. It warns when the
// topic's file differs from --repo.
func (n *Node) publishStartFiles(ctx context.Context, start map[string]repoFile) error {
	var recs []*kgo.Record
	n.repo.mu.Lock()
	for ws, f := range start {
		switch {
		case !n.repo.inTopic[ws]:
			b, err := json.Marshal(f)
			if err != nil {
				n.repo.mu.Unlock()
				return err
			}
			recs = append(recs, &kgo.Record{Topic: repoTopic(n.cfg.Topic), Key: []byte("repo/" + ws), Value: b})
		case n.repo.files[ws].Content != f.Content:
			n.cfg.Logger.Warn("cluster: the cluster's definition of the workspace (applied through the API or by the node that started it) "+
				"replaces this node's --repo file; apply a change with featurelog apply", "workspace", ws, "file", f.Name)
		}
	}
	n.repo.mu.Unlock()
	if len(recs) == 0 {
		return nil
	}
	if err := n.produce(ctx, recs); err != nil {
		return fmt.Errorf("cluster: writing the --repo file to topic %s: %w", repoTopic(n.cfg.Topic), err)
	}
	return nil
}

// applyPendingAccounts applies the account records syncRepo read, once
// the catalog is open.
func (n *Node) applyPendingAccounts() error {
	for _, c := range n.acctPending {
		if err := n.applyAccount(c.id, c.record); err != nil {
			return fmt.Errorf("cluster: applying account %s from topic %s: %w", c.id, accountsTopic(n.cfg.Topic), err)
		}
	}
	n.acctPending = nil
	return nil
}

func (n *Node) decodeRepoFile(r *kgo.Record) (repoFile, bool) {
	var f repoFile
	if err := json.Unmarshal(r.Value, &f); err != nil || f.Workspace == "" || f.Name == "" {
		n.cfg.Logger.Error("cluster: ignoring a malformed record of the repo topic", "topic", r.Topic, "offset", r.Offset, "err", err)
		return f, false
	}
	return f, true
}

// followRepo applies every file produced to the repo topic after the
// node's sync, until ctx ends.
func (n *Node) followRepo(ctx context.Context) {
	for {
		fs := n.repoCl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		fs.EachRecord(func(r *kgo.Record) {
			if v, ok := header(r, repoSyncHeader); ok {
				n.repo.mu.Lock()
				w := n.repo.waiters[v]
				delete(n.repo.waiters, v)
				n.repo.mu.Unlock()
				if w != nil { // a sync of this node's (syncAccounts)
					w <- applied{}
				}
				return
			}
			if r.Topic == accountsTopic(n.cfg.Topic) {
				n.followAccount(r)
				return
			}
			f, ok := n.decodeRepoFile(r)
			if !ok {
				return
			}
			id, _ := header(r, repoApplyHeader)
			n.applyFile(ctx, f, func(a applied) {
				n.repo.mu.Lock()
				w := n.repo.waiters[id]
				delete(n.repo.waiters, id)
				n.repo.mu.Unlock()
				if w != nil {
					w <- a
				}
			})
		})
	}
}

// applyFile applies f to the catalog, calls done with its result, then
// queues its apply to every partition this node owns, each waiting for
// its backfills (a partition refuses an apply while one runs, and must
// see every apply in the topic's order).
func (n *Node) applyFile(ctx context.Context, f repoFile, done func(applied)) {
	n.repo.mu.Lock()
	n.repo.files[f.Workspace], n.repo.inTopic[f.Workspace] = f, true
	n.mu.RLock()
	parts := make(map[int32]*engine.DB, len(n.parts))
	for p, pt := range n.parts {
		parts[p] = pt.db
	}
	n.mu.RUnlock()
	n.repo.mu.Unlock()
	res, err := n.catalog.ApplyWait(ctx, f.Name, []byte(f.Content))
	if err != nil {
		n.cfg.Logger.Error("cluster: applying a repo file to the catalog failed; this node validates ingest with its previous definition",
			"file", f.Name, "workspace", f.Workspace, "err", err)
	}
	if res != nil {
		res.Jobs = nil // the catalog's backfills read no records; the partitions' run on their owners
	}
	done(applied{res, err})
	// The partitions' applies wait for their backfills, which can take
	// long: they run on partApplies' worker, in the topic's order, so that
	// the reader goes on with account changes and later files.
	work := func() {
		var wg sync.WaitGroup
		for p, db := range parts {
			wg.Go(func() {
				if _, err := db.ApplyWait(ctx, f.Name, []byte(f.Content)); err != nil && !errors.Is(err, engine.ErrClosed) && ctx.Err() == nil {
					n.cfg.Logger.Error("cluster: applying a repo file to a partition failed", "partition", p, "file", f.Name, "err", err)
				}
			})
		}
		wg.Wait()
	}
	select {
	case n.partApplies <- work:
	case <-ctx.Done():
	}
}

// applyPartitions runs the partitions' applies in order until ctx ends.
func (n *Node) applyPartitions(ctx context.Context) {
	for {
		select {
		case work := <-n.partApplies:
			work()
		case <-ctx.Done():
			return
		}
	}
}

// Plan returns what applying a repo file would change, judged by this
// node's catalog.
func (n *Node) Plan(name string, content []byte) (*repo.Plan, error) {
	return n.catalog.Plan(name, content)
}

// Apply applies a repo file on every node: it is checked against this
// node's catalog, produced to the repo topic (acks=all), and applied here
// in the topic's order; the answer is this node's catalog's. Every other
// node applies it as it reads it, and each owner to its partitions,
// whose backfills run there. A file that changes nothing is not produced.
func (n *Node) Apply(ctx context.Context, name string, content []byte) (*engine.ApplyResult, error) {
	plan, err := n.catalog.Plan(name, content)
	if err != nil {
		return nil, err
	}
	n.repo.mu.Lock()
	known := n.repo.inTopic[plan.Workspace] && n.repo.files[plan.Workspace].Content == string(content)
	n.repo.mu.Unlock()
	if plan.Empty() && known { // the cluster's file already: nothing to tell the nodes
		return &engine.ApplyResult{Workspace: plan.Workspace, Plan: plan}, nil
	}
	b, err := json.Marshal(repoFile{Workspace: plan.Workspace, Name: name, Content: string(content)})
	if err != nil {
		return nil, err
	}
	id := randomID()
	return n.await(ctx, id, &kgo.Record{Topic: repoTopic(n.cfg.Topic), Key: []byte("repo/" + plan.Workspace), Value: b,
		Headers: []kgo.RecordHeader{{Key: repoApplyHeader, Value: []byte(id)}}})
}

// applyRepo applies the latest file of every workspace to db, which
// opened; the caller holds repo.mu.
func (n *Node) applyRepo(db *engine.DB) error {
	for _, ws := range slices.Sorted(maps.Keys(n.repo.files)) {
		f := n.repo.files[ws]
		if _, err := db.ApplyWait(context.Background(), f.Name, []byte(f.Content)); err != nil {
			return fmt.Errorf("applying %s (workspace %s): %w", f.Name, ws, err)
		}
	}
	return nil
}

func header(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}
