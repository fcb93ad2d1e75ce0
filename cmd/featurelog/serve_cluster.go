package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/cluster"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
)

// clusterFlags are serve's cluster-mode flags (SPEC §10).
type clusterFlags struct {
	mode       string   // "" or "kafka"
	brokers    []string // Kafka bootstrap brokers
	topic      string
	partitions int
	nodeID     string
	advertise  string // this node's URL for the others
	session    time.Duration
}

func (c *clusterFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&c.mode, "cluster", "", "run as a node of a cluster: kafka (needs --brokers, --partitions, --node-id; see SPEC §10)")
	f.StringSliceVar(&c.brokers, "brokers", nil, "cluster mode: Kafka bootstrap brokers (host:port[,host:port])")
	f.StringVar(&c.topic, "topic", "featurelog", "cluster mode: the Kafka topic every node produces to and consumes")
	f.IntVar(&c.partitions, "partitions", 0, "cluster mode: the topic's partition count, the same on every node")
	f.StringVar(&c.nodeID, "node-id", "", "cluster mode: this node's id, unique in the cluster")
	f.StringVar(&c.advertise, "advertise", "", "cluster mode: this node's URL for the other nodes (default http://ADDR)")
	f.DurationVar(&c.session, "session-timeout", 10*time.Second, "cluster mode: how long the group waits for a silent node before moving its partitions "+
		"(10s keeps a crashed node's partitions served again within 60s for millions of records per partition: docs/cluster.md; 0: Kafka's 45s)")
}

// validate checks the flags of cluster mode, naming the one to fix.
func (c *clusterFlags) validate(addr, repoFile string) error {
	switch {
	case c.mode != "kafka":
		return fmt.Errorf("--cluster %q: the only cluster mode is kafka", c.mode)
	case len(c.brokers) == 0:
		return errors.New("--cluster kafka needs --brokers host:port[,host:port]")
	case c.partitions <= 0:
		return errors.New("--cluster kafka needs --partitions N (the topic's partition count, the same on every node)")
	case c.nodeID == "":
		return errors.New("--cluster kafka needs --node-id, unique in the cluster")
	case repoFile == "":
		return errors.New("--cluster kafka needs --repo: every node serves the same repo file")
	}
	if c.advertise == "" {
		host, port, err := net.SplitHostPort(addr)
		if err != nil || port == "0" || host == "" || net.ParseIP(host).IsUnspecified() {
			return fmt.Errorf("--cluster kafka needs --advertise URL when --addr %s names no reachable host and port", addr)
		}
		c.advertise = "http://" + addr
	}
	return nil
}

// serveCluster runs one cluster node until ctx ends.
func serveCluster(ctx context.Context, sio serveIO, data, repoFile string, eopts engine.Options, hopts httpapi.Options, cf clusterFlags) (err error) {
	logger := sio.logger
	hopts.Logger = logger
	hopts.EnsureDefaults()
	if err := hopts.Validate(); err != nil {
		return err
	}
	if err := cf.validate(hopts.Addr, repoFile); err != nil {
		return err
	}
	content, err := readRepoFile(repoFile)
	if err != nil {
		return err
	}
	eopts.Logger, eopts.Holder = logger, "featurelog serve --cluster kafka --addr "+hopts.Addr
	node, err := cluster.Open(ctx, cluster.Config{Brokers: cf.brokers, Topic: cf.topic, Partitions: cf.partitions, NodeID: cf.nodeID,
		Advertise: cf.advertise, SessionTimeout: cf.session, Dir: data, Repo: content, RepoName: filepath.Base(repoFile), Engine: eopts, Logger: logger})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := node.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("closing the cluster node: %w", cerr))
		}
		logger.Info("closed", "data", data, "err", err)
	}()
	if !hopts.NoAuth {
		sums, err := node.Catalog().WorkspaceSummaries()
		if err != nil || len(sums) == 0 {
			return fmt.Errorf("the repo applied no workspace: %v", err)
		}
		if err := bootstrapOwner(sio, clusterAccounts{ctx, node}, sums[0].Name); err != nil {
			return err
		}
	}
	hopts.Cluster = node
	srv, err := httpapi.New(node.Catalog(), hopts)
	if err != nil {
		return err
	}
	return srv.ListenAndServe(ctx, func(a net.Addr) {
		logger.Info("serving in cluster mode", "addr", a.String(), "node", cf.nodeID, "advertise", cf.advertise, "auth", !hopts.NoAuth)
		if !sio.json {
			fmt.Fprintf(sio.stderr, "featurelog: serving on http://%s (node %s of the cluster on topic %s, %d partitions)\n", a, cf.nodeID, cf.topic, cf.partitions)
		}
	})
}

// devClusterCmd starts an in-process Kafka (kfake) and a cluster of nodes
// on loopback, for trying cluster mode on one machine.
func devClusterCmd() *cobra.Command {
	var nodes, partitions, basePort int
	var data, repoFile, kafkaAddr string
	var logs logFlags
	cmd := &cobra.Command{
		Use:     "dev-cluster",
		Example: "  featurelog dev-cluster --repo examples/ads/features.yaml\n  featurelog dev-cluster --nodes 3 --partitions 12 --base-port 8081 --data ./featurelog-dev",
		Short:   "Run a local cluster: an in-process Kafka (kfake) and N nodes on loopback, without auth",
		Long: "Starts franz-go's in-process Kafka (kfake, which keeps its log in memory: it is for trying\n" +
			"cluster mode, not for production) and N featurelog nodes in cluster mode on 127.0.0.1,\n" +
			"ports --base-port, --base-port+1, ..., each with its data directory under --data, serving\n" +
			"--repo without auth. Any node answers any request. Stops on SIGINT or SIGTERM.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := logs.newLogger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if nodes < 1 || nodes > 64 {
				return fmt.Errorf("--nodes %d: give 1 to 64", nodes)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			kf, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.ListenFn(func(network, _ string) (net.Listener, error) {
				return net.Listen(network, kafkaAddr)
			}))
			if err != nil {
				return fmt.Errorf("starting the in-process Kafka on %s: %w", kafkaAddr, err)
			}
			defer kf.Close()
			fmt.Fprintf(cmd.ErrOrStderr(), "featurelog: in-process Kafka (kfake) on %s\n", kf.ListenAddrs()[0])
			sio := serveIO{logger: logger, json: logs.json(), stdout: cmd.OutOrStdout(), stderr: cmd.ErrOrStderr()}
			errs := make([]error, nodes)
			var wg sync.WaitGroup
			for i := range nodes {
				wg.Add(1)
				go func() {
					defer wg.Done()
					id := "node-" + strconv.Itoa(i+1)
					addr := "127.0.0.1:" + strconv.Itoa(basePort+i)
					errs[i] = serveCluster(ctx, sio, filepath.Join(data, id), repoFile, engine.Options{},
						httpapi.Options{Addr: addr, NoAuth: true},
						clusterFlags{mode: "kafka", brokers: kf.ListenAddrs(), topic: "featurelog", partitions: partitions, nodeID: id, session: 10 * time.Second})
					if errs[i] != nil {
						stop() // one node failing stops the others
					}
				}()
			}
			wg.Wait()
			return errors.Join(errs...)
		},
	}
	f := cmd.Flags()
	f.IntVar(&nodes, "nodes", 3, "nodes to run")
	f.IntVar(&partitions, "partitions", 6, "partitions of the topic")
	f.IntVar(&basePort, "base-port", 8081, "the first node's HTTP port; the others follow")
	f.StringVar(&data, "data", "./featurelog-dev", "directory of the nodes' data directories")
	f.StringVar(&repoFile, "repo", "examples/ads/features.yaml", "feature repo file every node serves")
	f.StringVar(&kafkaAddr, "kafka-addr", "127.0.0.1:9092", "listen address of the in-process Kafka")
	f.StringVar(&logs.level, "log-level", "info", "least severe log level written: debug, info, warn or error")
	f.StringVar(&logs.format, "log-format", "text", "log format on stderr: text or json")
	return cmd
}

// clusterAccounts makes accounts on every node of the cluster.
type clusterAccounts struct {
	ctx  context.Context
	node *cluster.Node
}

func (c clusterAccounts) Accounts() []auth.Account { return c.node.Catalog().Accounts().Accounts() }

func (c clusterAccounts) CreateAccount(name, description string) (string, auth.Account, error) {
	return c.node.CreateAccount(c.ctx, name, description)
}

func (c clusterAccounts) AssignRole(id, workspace string, role auth.Role) error {
	return c.node.AssignRole(c.ctx, id, workspace, role)
}
