package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Membership: which node serves which partition, and at what URL. Every
// node announces a claim, the partitions it serves (caught up) and its
// advertised URL, to the compacted topic <Topic>.members, keyed by node
// id: when a partition starts serving, when partitions are revoked, and
// empty when it closes. Every node reads that topic from its start, and
// a partition's owner is the node whose claim of it has the highest group
// generation: a node that takes a partition over claims it in a later
// generation than the node it took it from, whose stale claim (a crashed
// node cannot withdraw it) thus loses. A stale claim can only send a read
// to a node that no longer serves the partition, which refuses it (503):
// no read is ever answered by a node that does not own its key.

// internalProduceTimeout bounds the produce of a claim or of barriers:
// with Kafka unreachable they fail (and are logged) rather than block
// a rebalance or Close.
const internalProduceTimeout = 10 * time.Second

// claim is one node's announcement. Part of the members topic's format.
type claim struct {
	Node       string  `json:"node"`
	URL        string  `json:"url"`
	Generation int32   `json:"generation"`
	Serving    []int32 `json:"serving"`
}

// membersTopic names the topic of claims.
func membersTopic(topic string) string { return topic + ".members" }

// members holds the latest claim of every node.
type members struct {
	mu     sync.RWMutex
	claims map[string]claim // by node id; guarded by mu
}

// announce produces the node's current claim. Announcements are
// serialized: partitions that catch up together announce from parallel
// goroutines, and a claim snapshotted earlier but produced later would
// leave a stale claim last in the topic, hiding a partition the node
// serves until its next announcement.
func (n *Node) announce(ctx context.Context) {
	n.announceMu.Lock()
	defer n.announceMu.Unlock()
	_, gen := n.cons.GroupMetadata()
	c := claim{Node: n.cfg.NodeID, URL: n.cfg.Advertise, Generation: gen}
	n.mu.RLock()
	for p, pt := range n.parts {
		select {
		case <-pt.ready:
			c.Serving = append(c.Serving, p)
		default:
		}
	}
	n.mu.RUnlock()
	slices.Sort(c.Serving)
	n.produceClaim(ctx, c)
}

func (n *Node) produceClaim(ctx context.Context, c claim) {
	ctx, cancel := context.WithTimeout(ctx, internalProduceTimeout)
	defer cancel()
	b, err := json.Marshal(c)
	if err == nil {
		err = n.produce(ctx, []*kgo.Record{{Topic: membersTopic(n.cfg.Topic), Key: []byte(c.Node), Value: b}})
	}
	if err != nil {
		n.cfg.Logger.Warn("cluster: announcing the partitions this node serves failed; other nodes forward to it later", "err", err)
	}
}

// followMembers reads the members topic into n.members until ctx ends.
func (n *Node) followMembers(ctx context.Context, cl *kgo.Client) {
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		fs.EachRecord(func(r *kgo.Record) {
			var c claim
			if err := json.Unmarshal(r.Value, &c); err != nil || c.Node == "" {
				n.cfg.Logger.Warn("cluster: ignoring a malformed claim", "offset", r.Offset, "err", err)
				return
			}
			n.members.mu.Lock()
			n.members.claims[c.Node] = c
			n.members.mu.Unlock()
		})
	}
}

// Route says where partition p is served: by this node (Self), by the
// node at URL, or by no node known now (neither: answer 503).
type Route struct {
	Self bool
	Node string
	URL  string
}

// ErrNoOwner is returned for a partition no node serves now: it is being
// rebalanced, or its owner failed and was not replaced yet.
var ErrNoOwner = errors.New("cluster: no node serves the partition now")

// RouteOf returns where partition p is served.
func (n *Node) RouteOf(p int32) (Route, error) {
	if _, err := n.Owner(p); err == nil {
		return Route{Self: true, Node: n.cfg.NodeID, URL: n.cfg.Advertise}, nil
	}
	n.members.mu.RLock()
	defer n.members.mu.RUnlock()
	best, found := claim{Generation: -1}, false
	for _, c := range n.members.claims {
		if c.Node != n.cfg.NodeID && c.Generation > best.Generation && slices.Contains(c.Serving, p) {
			best, found = c, true
		}
	}
	if !found || best.URL == "" {
		return Route{}, fmt.Errorf("%w (partition %d)", ErrNoOwner, p)
	}
	return Route{Node: best.Node, URL: best.URL}, nil
}
