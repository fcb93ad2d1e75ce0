package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/go-json-experiment/json/v1"

	"github.com/spf13/cobra"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/compaction"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
	"github.com/featurelog/featurelog/internal/console"
	"github.com/featurelog/featurelog/kafkasink"
)

func serveCmd() *cobra.Command {
	var data, repoFile string
	var hopts httpapi.Options
	var eopts engine.Options
	var segmentCodec string
	var kafkaBrokers []string
	var logs logFlags
	var cf clusterFlags
	cmd := &cobra.Command{
		Use: "serve",
		Example: "  featurelog serve --data ./featurelog-data --repo examples/ads/features.yaml --no-auth\n  featurelog serve --addr 0.0.0.0:8080 --repo features.yaml --log-format json --flush-records 500000\n" +
			"  featurelog serve --cluster kafka --brokers 127.0.0.1:9092 --partitions 6 --node-id node-1 --addr 127.0.0.1:8081 --repo features.yaml --no-auth",
		Short: "Open the data directory, apply the repo file, and serve HTTP",
		Long: "Opens (or creates) the data directory, applies the repo file, and serves HTTP until SIGINT or SIGTERM.\n" +
			"On the signal it stops accepting connections, lets in-flight requests finish (up to\n" +
			"--shutdown-timeout; later ones have their connections closed, unacknowledged), closes the\n" +
			"log and releases the data directory; a second signal exits at once. Every acknowledged\n" +
			"record was fsynced before its 200, so neither path loses one.\n\n" +
			"A web console is served at /ui/ (and / redirects there): workspaces, views, a feature\n" +
			"lookup, jobs and output stream tails, over the same API, with the key you enter kept in\n" +
			"the browser tab's session (docs/console.md).\n\n" +
			"Views with output_stream.kafka publish to Kafka while the node serves (package kafkasink):\n" +
			"--kafka-brokers replaces every sink's brokers. A sink failing or lagging past its max_lag\n" +
			"makes /readyz answer 503; its metrics are featurelog_sink_* on /metrics.\n\n" +
			"Logs go to stderr, as text or (--log-format json) one JSON object per line and nothing\n" +
			"else: the line saying where it serves and a failure's message are then log records, and\n" +
			"the first service account a fresh node creates is printed on stdout as one JSON object\n" +
			"(its API key is never logged). --log-level debug adds a line per HTTP request.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := logs.newLogger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			// The process's default logger too: a library that logs
			// through slog.Default or the log package writes records,
			// not plain lines amid them.
			slog.SetDefault(logger)
			if eopts.SegmentCodec, err = compaction.ParseCodec(segmentCodec); err != nil {
				return fmt.Errorf("--segment-codec: %w", err)
			}
			if cf.mode != "" {
				ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
				defer stop()
				return serveCluster(ctx, serveIO{logger: logger, json: logs.json(), stdout: cmd.OutOrStdout(), stderr: cmd.ErrOrStderr()},
					data, repoFile, eopts, hopts, cf)
			}
			err = serve(serveIO{logger: logger, json: logs.json(), stdout: cmd.OutOrStdout(), stderr: cmd.ErrOrStderr()},
				data, repoFile, eopts, hopts, kafkaBrokers)
			if err != nil && logs.json() {
				logger.Error("featurelog serve failed", "err", err)
				return &loggedError{err}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&data, "data", "./featurelog-data", "data directory (created if absent; locked while open)")
	f.StringVar(&repoFile, "repo", "", "feature repo file to apply at start")
	f.StringVar(&hopts.Addr, "addr", "127.0.0.1:8080", "listen address")
	f.BoolVar(&hopts.NoAuth, "no-auth", false, "serve without API keys (loopback addresses only)")
	f.IntVar(&hopts.MaxInflightIngest, "max-inflight-ingest", 0, "ingest requests executing at once (0: 16 × GOMAXPROCS, at least 32)")
	f.IntVar(&hopts.MaxQueuedIngest, "max-queued-ingest", 0, "ingest requests waiting for a slot before 429 (0: 4 × --max-inflight-ingest)")
	f.DurationVar(&hopts.IngestQueueTimeout, "ingest-queue-timeout", 0, "longest wait for an ingest slot before 429 (0: 500ms)")
	f.DurationVar(&hopts.ShutdownTimeout, "shutdown-timeout", 0, "on SIGTERM, how long in-flight requests may finish (0: 30s)")
	f.Int64Var(&hopts.MaxBodyBytes, "max-body-bytes", 0, "largest request body, 413 beyond (0: 16 MiB)")
	// The engine options users tune (engine.Options); 0 takes the
	// engine's default, which the help names.
	f.DurationVar(&eopts.MaxClockSkew, "max-clock-skew", 0, "how far in the future an event time may lie before ingest refuses it (0: 5m)")
	f.IntVar(&eopts.FlushRecords, "flush-records", 0, "records a view's memtable takes before every memtable is flushed to segments (0: 1,000,000)")
	f.DurationVar(&eopts.FlushInterval, "flush-interval", 0, "flush memtables holding anything at least this often, bounding the log replayed on open (0: 10m)")
	f.IntVar(&eopts.CompactionFanIn, "compaction-fan-in", 0, "segments of one level a merge combines (0: 4)")
	f.IntVar(&eopts.HotTierBytes, "hot-tier-bytes", 0, "bytes of the hot tier of merged tile ranges (0: 64 MiB; -1 disables it)")
	f.Int64Var(&eopts.StateCacheBytes, "state-cache-bytes", 0, "bytes of the cache of key states decoded from segments (0: 256 MiB; -1 disables it)")
	f.IntVar(&eopts.BackfillWorkers, "backfill-workers", 0, "cores a backfill or materialization job keeps busy (0: GOMAXPROCS/2, at least 1)")
	f.IntVar(&eopts.BackfillRunRecords, "backfill-run-records", 0, "records a job's view holds in memory before writing a segment (0: 1,000,000)")
	f.DurationVar(&eopts.IdempotencyWindow, "idempotency-window", 0, "how long an Idempotency-Key is remembered (0: 24h)")
	f.IntVar(&eopts.IdempotencyMaxKeys, "idempotency-max-keys", 0, "Idempotency-Keys remembered at once; the oldest are forgotten past it (0: 1,048,576)")
	f.StringVar(&segmentCodec, "segment-codec", "s2", "compression of the blocks of the segments the node writes: s2 (decodes about 1.8x and encodes over 10x faster) or zstd (segments about 12% smaller); segments of either are read")
	f.IntVar(&eopts.SegmentSize, "log-segment-bytes", 0, "target size of the log's segment files (0: 64 MiB)")
	f.StringSliceVar(&kafkaBrokers, "kafka-brokers", nil, "Kafka brokers (host:port[,host:port]) for every output stream sink, replacing the repo's output_stream.kafka.brokers")
	f.StringVar(&logs.level, "log-level", "info", "least severe log level written: debug (adds an access log line per HTTP request), info, warn or error")
	f.StringVar(&logs.format, "log-format", "text", "log format on stderr: text or json (one JSON object per line, nothing else)")
	cf.add(cmd)
	return cmd
}

// serveIO is where serve writes: its logger, and for what is not a log
// record (the human lines of text mode, the first account's key) the
// command's streams.
type serveIO struct {
	logger         *slog.Logger
	json           bool // logs are JSON: no plain-text line on stderr
	stdout, stderr io.Writer
}

func serve(sio serveIO, data, repoFile string, eopts engine.Options, hopts httpapi.Options, kafkaBrokers []string) (err error) {
	logger := sio.logger
	hopts.Logger = logger
	hopts.EnsureDefaults()
	if err := hopts.Validate(); err != nil {
		return err
	}
	addr, noAuth := hopts.Addr, hopts.NoAuth
	eopts.Dir, eopts.Logger, eopts.Holder = data, logger, "featurelog serve --addr "+addr
	db, err := engine.Open(eopts)
	if err != nil {
		return err
	}
	defer func() {
		// Last, after the server drained: the memtables go to segments, so
		// that the next open (a restart, or `featurelog historical` on the
		// directory) replays nothing (a 20M-event load left 2.7M records in
		// memory, and the first join after it replayed them: 14.8 s against
		// 3.1 s). A failure loses nothing: the log keeps every record.
		if db.Healthy() == nil {
			start := time.Now()
			if ferr := db.Flush(); ferr != nil {
				logger.Warn("flushing the memtables at shutdown failed; the next open replays them from the log", "err", ferr)
			} else {
				logger.Info("flushed the memtables", "took", time.Since(start).Round(time.Millisecond))
			}
		}
		// Then the engine waits for ingests still inside it, closes the
		// log and releases the directory.
		if cerr := db.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("closing the data directory %s: %w", data, cerr))
		}
		logger.Info("closed", "data", data, "err", err)
	}()
	var ws string
	if repoFile != "" {
		content, err := readRepoFile(repoFile)
		if err != nil {
			return err
		}
		res, err := db.Apply(repoFile, content)
		if err != nil {
			return err
		}
		ws = res.Workspace
		logger.Info("repo applied", "file", repoFile, "workspace", ws, "changed", !res.Plan.Empty())
		for _, j := range res.Jobs {
			if !j.State.Final() {
				logger.Info("backfill job started; the view serves once it succeeds (featurelog jobs wait --server ...)",
					"job", j.ID, "feature_view", j.FeatureView, "version", j.Version)
			}
		}
	}
	if !noAuth {
		if err := bootstrapOwner(sio, db.Accounts(), ws); err != nil {
			return err
		}
	}
	sinks, err := kafkasink.Start(db, kafkasink.Options{Brokers: kafkaBrokers, Logger: logger})
	if err != nil {
		return err
	}
	defer func() {
		// Before the engine closes: a batch in flight may still be
		// acknowledged and its cursor saved.
		if cerr := sinks.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("stopping the Kafka sinks: %w", cerr))
		}
	}()
	hopts.Sinks = sinks
	srv, err := httpapi.New(db, hopts)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second signal takes its default action: exit at once
		logger.Info("shutting down: draining in-flight requests", "timeout", hopts.ShutdownTimeout.String())
	}()
	err = srv.ListenAndServe(ctx, func(a net.Addr) {
		logger.Info("serving", "addr", a.String(), "auth", !noAuth, "console", "http://"+a.String()+console.Prefix)
		if !sio.json {
			fmt.Fprintf(sio.stderr, "featurelog: serving on http://%s\nfeaturelog: web console at http://%s%s\n", a, a, console.Prefix)
		}
	})
	logger.Info("stopped serving", "err", err)
	return err
}

// bootstrapOwner creates a first owner account when auth is on and none
// exists, so a fresh node is usable; its key is printed once: on stderr
// as text, or with JSON logs on stdout as one JSON object, never as a log
// record.
// accountMaker is where bootstrapOwner creates the first account: a
// node's store, or in cluster mode every node's (clusterAccounts).
type accountMaker interface {
	Accounts() []auth.Account
	CreateAccount(name, description string) (string, auth.Account, error)
	AssignRole(id, workspace string, role auth.Role) error
}

func bootstrapOwner(sio serveIO, store accountMaker, ws string) error {
	if len(store.Accounts()) > 0 || ws == "" {
		return nil
	}
	key, acct, err := store.CreateAccount("bootstrap-owner", "created by featurelog serve on an empty data directory")
	if err != nil {
		return err
	}
	if err := store.AssignRole(acct.ID, ws, auth.Owner); err != nil {
		return err
	}
	sio.logger.Info("created the first service account; its API key is printed once", "service_account_id", acct.ID, "workspace", ws)
	if sio.json {
		return json.NewEncoder(sio.stdout).Encode(map[string]string{"api_key": key, "service_account_id": acct.ID, "workspace": ws,
			"note": "the first service account, owner of the workspace; save this API key: it is not shown again"})
	}
	fmt.Fprintf(sio.stderr, "featurelog: created the first service account (owner of workspace %q).\nSave this API Key - you will not be able to get it again.\nAPI Key: %s\nService Account ID: %s\n%s\n",
		ws, key, acct.ID, strings.Repeat("-", 40))
	return nil
}
