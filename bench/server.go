package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
)

// The two servers an HTTP benchmark can run against, each in a process of
// its own (see ServeMain).
const (
	modeFeaturelog = "featurelog"
	modeTrivial    = "trivial"
)

// addrPrefix starts the line a server process prints on stdout once it
// listens: "ADDR 127.0.0.1:40123".
const addrPrefix = "ADDR "

// ServeMain is the body of the server processes the HTTP benchmarks start:
// a program re-executes itself with args (built by the benchmark) and
// calls ServeMain with them. It serves until its stdin reaches EOF (the
// benchmark closes it, or died) or it gets SIGINT/SIGTERM.
//
//	--mode featurelog --data DIR   engine + httpapi with --no-auth, fsync on, the ads repo applied
//	  --preloaded                      DIR was prepared by the caller (BuildAggHistory): open it
//	                                   as is, replaying its log, and apply nothing
//	  --backfill-workers N             engine.Options.BackfillWorkers of a preloaded DIR
//	--mode trivial --response-size N   reads each body, answers N fixed bytes
//	--mode cluster --data DIR --brokers B --partitions P --node-id ID [--session-timeout D]
//	                                   a cluster node on the ads repo, advertising --addr
//	                                   (cluster-failover kills it)
//	--cpuprofile FILE                  profiles the server until it exits
//
// Both listen on --addr (default 127.0.0.1:0, loopback only) and print
// "ADDR host:port" on stdout when ready.
func ServeMain(args []string) error {
	fs := flag.NewFlagSet("featurelog bench server", flag.ContinueOnError)
	mode := fs.String("mode", modeTrivial, "featurelog or trivial")
	addr := fs.String("addr", "127.0.0.1:0", "listen address (loopback only)")
	data := fs.String("data", "", "data directory (featurelog mode)")
	size := fs.Int("response-size", 0, "response size in bytes (trivial mode)")
	preloaded := fs.Bool("preloaded", false, "serve the prepared data directory as is (featurelog mode)")
	workers := fs.Int("backfill-workers", 0, "engine.Options.BackfillWorkers (0: the default)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the server to this file")
	brokers := fs.String("brokers", "", "Kafka brokers, comma-separated (cluster mode)")
	partitions := fs.Int("partitions", 0, "the topic's partition count (cluster mode)")
	nodeID := fs.String("node-id", "", "the node's id (cluster mode)")
	session := fs.Duration("session-timeout", 0, "the node's Kafka session timeout, 0 for the client's default (cluster mode)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuprofile != "" {
		stop, err := StartCPUProfile(*cpuprofile)
		if err != nil {
			return err
		}
		defer stop()
	}
	if !httpapi.IsLoopback(*addr) {
		return fmt.Errorf("bench: server address %q is not loopback; benchmarks only target 127.0.0.1", *addr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { io.Copy(io.Discard, os.Stdin); cancel() }()
	ready := func(a net.Addr) { fmt.Fprintf(os.Stdout, "%s%s\n", addrPrefix, a) }
	switch *mode {
	case modeFeaturelog:
		return serveFeaturelog(ctx, *addr, *data, *preloaded, *workers, ready)
	case modeTrivial:
		return serveTrivial(ctx, *addr, *size, ready)
	case modeCluster:
		return serveCluster(ctx, *addr, *data, *brokers, *partitions, *nodeID, *session, ready)
	}
	return fmt.Errorf("bench: unknown server mode %q (want %s, %s or %s)", *mode, modeFeaturelog, modeTrivial, modeCluster)
}

func serveFeaturelog(ctx context.Context, addr, dir string, preloaded bool, workers int, ready func(net.Addr)) error {
	if dir == "" {
		return errors.New("bench: --data is required in featurelog mode")
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var db *engine.DB
	var err error
	if preloaded {
		db, err = openPreloaded(dir, false, workers, logger)
	} else {
		db, err = openAds(dir, false, logger)
	}
	if err != nil {
		return err
	}
	defer db.Close()
	srv, err := httpapi.New(db, httpapi.Options{Addr: addr, NoAuth: true, Logger: logger})
	if err != nil {
		return err
	}
	return srv.ListenAndServe(ctx, ready)
}

// openAds opens a DB in dir and applies the ads repo. noSync is for
// loading data whose durability does not matter to the measurement.
func openAds(dir string, noSync bool, logger *slog.Logger) (*engine.DB, error) {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	db, err := engine.Open(engine.Options{Dir: dir, NoSync: noSync, Logger: logger, Holder: "featurelog bench"})
	if err != nil {
		return nil, err
	}
	if _, err := db.ApplyWait(context.Background(), adsRepoName, adsRepo); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// openPreloaded opens a data directory prepared by the caller, whose
// catalog already holds what it serves.
func openPreloaded(dir string, noSync bool, backfillWorkers int, logger *slog.Logger) (*engine.DB, error) {
	return engine.Open(engine.Options{Dir: dir, NoSync: noSync, Logger: logger, Holder: "featurelog bench", BackfillWorkers: backfillWorkers})
}

// serveTrivial serves the baseline: a net/http handler that reads the
// body and writes a fixed response of size bytes, with the same headers
// and server timeouts as httpapi, so the difference to featurelog is the
// work featurelog does.
func serveTrivial(ctx context.Context, addr string, size int, ready func(net.Addr)) error {
	if size <= 0 {
		return errors.New("bench: --response-size must be positive in trivial mode")
	}
	resp := append([]byte(`{"ok":"`), bytes.Repeat([]byte{'x'}, max(size-9, 0))...)
	resp = append(resp, `"}`...)
	resp = resp[len(resp)-size:]
	length := strconv.Itoa(len(resp))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		hd := w.Header()
		hd.Set("Content-Type", "application/json")
		hd.Set("Content-Length", length)
		w.WriteHeader(http.StatusOK)
		w.Write(resp)
	})
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 1 << 20}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	ready(ln.Addr())
	go func() { <-ctx.Done(); hs.Close() }()
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// readAddr reads the child's stdout up to its ADDR line.
func readAddr(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if line := sc.Text(); len(line) > len(addrPrefix) && line[:len(addrPrefix)] == addrPrefix {
			return line[len(addrPrefix):], nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", io.ErrUnexpectedEOF
}

// StartCPUProfile profiles this process into the file path until stop is
// called.
func StartCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
