package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/featurelog/featurelog/cluster"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
)

// modeCluster is the server mode of a cluster node in a process of its
// own (ServeMain), which cluster-failover kills.
const modeCluster = "cluster"

// serveCluster runs a cluster node as startClusterNode does (fsync on,
// Kafka client defaults as featurelog serve --cluster kafka uses them,
// the ads repo), with sessionTimeout (0: the Kafka client's default,
// 45s), advertising addr.
func serveCluster(ctx context.Context, addr, dir, brokers string, partitions int, id string, sessionTimeout time.Duration, ready func(net.Addr)) error {
	if dir == "" || brokers == "" || id == "" || partitions <= 0 {
		return errors.New("bench: cluster mode needs --data, --brokers, --node-id and --partitions")
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	n, err := cluster.Open(ctx, cluster.Config{Brokers: strings.Split(brokers, ","), Topic: clusterTopic, Partitions: partitions, NodeID: id,
		Advertise: "http://" + addr, SessionTimeout: sessionTimeout, Dir: dir, Repo: adsRepo, RepoName: adsRepoName, Logger: logger,
		Engine: engine.Options{Logger: logger}})
	if err != nil {
		return err
	}
	defer n.Close()
	srv, err := httpapi.New(n.Catalog(), httpapi.Options{Addr: addr, NoAuth: true, Logger: logger, Cluster: n})
	if err != nil {
		return err
	}
	return srv.ListenAndServe(ctx, ready)
}

// ClusterFailoverConfig configures RunClusterFailover.
type ClusterFailoverConfig struct {
	TempDir string
	// Command starts the node that is killed, in a process of its own
	// (see Server.Command: a program that calls ServeMain). Required.
	Command []string
	// SessionTimeout is the killed node's Kafka session timeout: how long
	// the group waits for it before moving its partitions. 0 is the
	// Kafka client's default (45s), as featurelog serve --cluster kafka
	// --session-timeout 0 (its own default is 10s).
	SessionTimeout time.Duration
	// Partitions, Records, BatchSize and ReadPause are as in
	// ClusterRebalanceConfig (defaults 12, 60,000, 100, 2ms).
	Partitions, Records, BatchSize int
	ReadPause                      time.Duration
}

// ClusterFailoverResult is what RunClusterFailover measured.
type ClusterFailoverResult struct {
	Partitions            int
	Records, KafkaRecords int
	SessionTimeout        time.Duration // as configured (0: the client's default)
	// Kill runs from the SIGKILL of the third node until every partition
	// was served again and routed by the two survivors; Change is 0.
	Kill RebalancePhase
}

// RunClusterFailover measures SPEC §10's "served again within 60 s of its
// failure" for a crash: three nodes on kfake (two in this process, the
// third a process of its own) serve Partitions partitions holding
// Records records; one reader per partition reads one of its keys
// through the first node, back to back; then the third node is killed
// with SIGKILL, so it never leaves the group: the group notices only when
// its session times out, then the survivors take its partitions and
// replay them from the start (they never owned them).
func RunClusterFailover(cfg ClusterFailoverConfig) (ClusterFailoverResult, error) {
	rc := ClusterRebalanceConfig{Partitions: cfg.Partitions, Records: cfg.Records, BatchSize: cfg.BatchSize, ReadPause: cfg.ReadPause}
	rc.EnsureDefaults()
	if err := rc.Validate(); err != nil {
		return ClusterFailoverResult{}, err
	}
	if len(cfg.Command) == 0 {
		return ClusterFailoverResult{}, errors.New("bench: ClusterFailoverConfig.Command is required: the argv prefix of a program that calls bench.ServeMain")
	}
	out := ClusterFailoverResult{Partitions: rc.Partitions, Records: rc.Records, SessionTimeout: cfg.SessionTimeout}
	bc, err := newBenchCluster(cfg.TempDir, "failover", rc.Partitions)
	if err != nil {
		return out, err
	}
	defer bc.close()
	nodes, err := bc.startAll("n1", "n2")
	if err != nil {
		return out, err
	}
	victim, err := startClusterChild(cfg.Command, bc.kf.ListenAddrs(), rc.Partitions, "n3", filepath.Join(bc.dir, "n3"), cfg.SessionTimeout)
	if err != nil {
		return out, err
	}
	defer victim.kill()
	if err := waitServing(nodes, rc.Partitions, 3, 2*time.Minute, "n3"); err != nil {
		return out, err
	}
	tops, kr, err := loadUsersCluster(nodes[0].node, rc.Records, rc.BatchSize)
	if err != nil {
		return out, err
	}
	out.KafkaRecords = kr
	keys := make([]string, rc.Partitions)
	for i, found := 0, 0; i < rc.Records && found < rc.Partitions; i++ {
		p, err := keyPartition(nodes[0].node, userKey(i))
		if err != nil {
			return out, err
		}
		if keys[p] == "" {
			keys[p], found = userKey(i), found+1
		}
	}
	if slices.Contains(keys, "") {
		return out, errors.New("bench: some partition holds none of the loaded keys; load more records")
	}
	// The survivors' partitions applied, and the victim's served: each
	// reader served since its last refusal.
	ownTops := partitionTops{}
	moved := 0
	for p, top := range tops {
		if r, err := nodes[0].node.RouteOf(p); err == nil && r.Node == "n3" {
			moved++
		} else {
			ownTops[p] = top
		}
	}
	if err := waitApplied(nodes, ownTops, 10*time.Minute); err != nil {
		return out, err
	}
	rd := startReaders(nodes[0].url, keys, rc.ReadPause)
	defer rd.close()
	if err := rd.waitAllServed(10 * time.Minute); err != nil {
		return out, err
	}

	rd.reset()
	t0 := time.Now()
	if err := victim.kill(); err != nil {
		return out, err
	}
	if out.Kill, err = rd.phase(nodes, rc.Partitions, t0, 2, 10*time.Minute); err != nil {
		return out, err
	}
	out.Kill.Moved = moved
	return out, stopAll(nodes...)
}

// waitAllServed waits until every reader was served after its last
// refusal and at least once.
func (rd *readers) waitAllServed(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		rd.mu.Lock()
		ok := true
		for _, s := range rd.parts {
			ok = ok && s.served && (s.lastFail.IsZero() || !s.okAfter.IsZero())
		}
		rd.mu.Unlock()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: some partition was not served within %s", timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// clusterChild is a cluster node in a process of its own.
type clusterChild struct {
	cmd     *exec.Cmd
	stderr  *tailBuffer
	done    chan error
	once    sync.Once
	killErr error
}

// startClusterChild starts node id in a process of its own (ServeMain's
// cluster mode) and waits until it listens.
func startClusterChild(command, brokers []string, partitions int, id, dir string, sessionTimeout time.Duration) (*clusterChild, error) {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	args := append(slices.Clone(command[1:]), "--mode", modeCluster, "--addr", addr, "--data", dir,
		"--brokers", strings.Join(brokers, ","), "--partitions", strconv.Itoa(partitions), "--node-id", id,
		"--session-timeout", sessionTimeout.String())
	cmd := exec.Command(command[0], args...)
	c := &clusterChild{cmd: cmd, stderr: &tailBuffer{max: 8 << 10}, done: make(chan error, 1)}
	cmd.Stderr = c.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if _, err := cmd.StdinPipe(); err != nil { // EOF when this process dies: the child stops
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	addrc := make(chan error, 1)
	go func() {
		_, err := readAddr(stdout)
		addrc <- err
		io.Copy(io.Discard, stdout)
		c.done <- cmd.Wait()
	}()
	select {
	case err = <-addrc:
	case <-time.After(2 * time.Minute):
		err = errors.New("did not listen within 2m")
	}
	if err != nil {
		c.kill()
		return nil, fmt.Errorf("bench: cluster node %s in a process of its own: %w%s", id, err, childNote(c.stderr))
	}
	return c, nil
}

// kill sends SIGKILL (once, to the process it started, by its pid) and
// waits for the process to end.
func (c *clusterChild) kill() error {
	c.once.Do(func() {
		if err := c.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			c.killErr = err
			return
		}
		select {
		case <-c.done:
		case <-time.After(time.Minute):
			c.killErr = errors.New("bench: a killed node's process did not end within 1m")
		}
	})
	return c.killErr
}
