package cluster

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/engine"
)

// Accounts. A node authenticates a request against the account store of
// its catalog, and a forwarded request carries the caller's key to the
// owner, so every node must know every key. Service accounts created,
// given roles or deleted through any node go, as account records
// (auth.NewAccountRecord: the account and its key's hash, never the key),
// to the compacted topic <Topic>.accounts keyed by account id (a deletion
// is a tombstone); every node puts them into its store in the topic's
// order, and reads the topic to its end before it serves (syncRepo). The
// answer waits until this node applied the change. Accounts a node's
// store holds from before (the CLI against its data directory) stay
// local to it.

// accountsTopic names the topic of account records.
func accountsTopic(topic string) string { return topic + ".accounts" }

// acctApplyHeader carries the id of the change that produced an account
// record, for its waiter.
const acctApplyHeader = "featurelog-account-apply"

// accountChange is an account record read before the catalog opened.
type accountChange struct {
	id     string
	record []byte // nil: deleted
}

// applyAccount applies one record of the accounts topic to the catalog's
// store.
func (n *Node) applyAccount(id string, record []byte) error {
	store := n.catalog.Accounts()
	if record == nil {
		return store.Remove(id)
	}
	_, err := store.Put(record)
	return err
}

// followAccount applies a record read after the sync and answers its
// waiter.
func (n *Node) followAccount(r *kgo.Record) {
	err := n.applyAccount(string(r.Key), r.Value)
	if err != nil {
		n.cfg.Logger.Error("cluster: applying an account record failed; this node's accounts differ from the cluster's",
			"account", string(r.Key), "offset", r.Offset, "err", err)
	}
	id, _ := header(r, acctApplyHeader)
	n.repo.mu.Lock()
	w := n.repo.waiters[id]
	delete(n.repo.waiters, id)
	n.repo.mu.Unlock()
	if w != nil {
		w <- applied{err: err}
	}
}

// CreateAccount creates a service account on every node (no roles yet)
// and returns its API key, once this node applied it.
func (n *Node) CreateAccount(ctx context.Context, name, description string) (string, auth.Account, error) {
	key, acct, rec, err := auth.NewAccountRecord(name, description)
	if err != nil {
		return "", auth.Account{}, err
	}
	if err := n.changeAccount(ctx, acct.ID, rec); err != nil {
		return "", auth.Account{}, err
	}
	return key, acct, nil
}

// AssignRole gives account id the role in workspace on every node. It
// first reads every account change made before (through any node), so
// that an account just created elsewhere is found and the roles it
// builds on are the latest.
func (n *Node) AssignRole(ctx context.Context, id, workspace string, role auth.Role) error {
	if err := n.syncAccounts(ctx); err != nil {
		return err
	}
	rec, err := n.catalog.Accounts().RecordWithRole(id, workspace, role)
	if err != nil {
		return err
	}
	return n.changeAccount(ctx, id, rec)
}

// DeleteAccount deletes account id on every node: its key is refused by
// this node once DeleteAccount returns, and by the others as they read
// the deletion.
func (n *Node) DeleteAccount(ctx context.Context, id string) error {
	if err := n.syncAccounts(ctx); err != nil {
		return err
	}
	if _, ok := n.catalog.Accounts().Account(id); !ok {
		return fmt.Errorf("%w %q: it does not exist or was deleted", auth.ErrNoSuchAccount, id)
	}
	return n.changeAccount(ctx, id, nil)
}

// syncAccounts waits until this node applied every account change
// Kafka committed before it: it writes a sync record of its own to the
// accounts topic and waits to read it back.
func (n *Node) syncAccounts(ctx context.Context) error {
	nonce := n.cfg.NodeID + "/" + randomID()
	_, err := n.await(ctx, nonce, &kgo.Record{Topic: accountsTopic(n.cfg.Topic), Key: []byte("sync/" + n.cfg.NodeID), Value: []byte(nonce),
		Headers: []kgo.RecordHeader{{Key: repoSyncHeader, Value: []byte(nonce)}}})
	return err
}

// await produces rec and waits until this node's reader of the repo and
// accounts topics answered the waiter named id, returning its answer.
func (n *Node) await(ctx context.Context, id string, rec *kgo.Record) (*engine.ApplyResult, error) {
	w := make(chan applied, 1)
	n.repo.mu.Lock()
	n.repo.waiters[id] = w
	n.repo.mu.Unlock()
	defer func() {
		n.repo.mu.Lock()
		delete(n.repo.waiters, id)
		n.repo.mu.Unlock()
	}()
	if err := n.produce(ctx, []*kgo.Record{rec}); err != nil {
		return nil, err
	}
	select {
	case a := <-w:
		return a.res, a.err
	case <-ctx.Done():
		return nil, fmt.Errorf("cluster: the change was written to Kafka and every node applies it, but this node has not yet: %w", ctx.Err())
	}
}

// changeAccount produces an account record (nil: a deletion) and waits
// until this node applied it.
func (n *Node) changeAccount(ctx context.Context, id string, record []byte) error {
	change := randomID()
	_, err := n.await(ctx, change, &kgo.Record{Topic: accountsTopic(n.cfg.Topic), Key: []byte(id), Value: record,
		Headers: []kgo.RecordHeader{{Key: acctApplyHeader, Value: []byte(change)}}})
	return err
}
