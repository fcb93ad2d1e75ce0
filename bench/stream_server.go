package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
	"github.com/featurelog/featurelog/kafkasink"
)

// StreamServeMain is the body of the stream benchmark's nodes (`featurelog
// bench stream-server`): it opens a data directory RunStream prepared
// (its repo applied), with fsync on, serves it over HTTP without auth on
// loopback, and runs the Kafka sinks the repo declares, as `featurelog
// serve` does (--kafka-brokers replacing their brokers). It serves until
// its stdin reaches EOF or it gets SIGINT/SIGTERM, and prints "ADDR
// host:port" on stdout once it listens.
//
//	--data DIR               the data directory (required)
//	--kafka-brokers H:P,...  the brokers of the repo's Kafka sinks
//	--cpuprofile FILE        profile the node until it exits
//	--memprofile FILE        write its heap profile when it stops serving
func StreamServeMain(args []string) (err error) {
	fs := flag.NewFlagSet("featurelog bench stream-server", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (loopback only)")
	data := fs.String("data", "", "data directory prepared by the benchmark")
	brokers := fs.String("kafka-brokers", "", "comma-separated Kafka brokers of the repo's sinks")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the node to this file")
	memprofile := fs.String("memprofile", "", "write a heap profile of the node to this file when it stops")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *data == "" {
		return errors.New("bench: stream-server: --data is required")
	}
	if !httpapi.IsLoopback(*addr) {
		return fmt.Errorf("bench: server address %q is not loopback; benchmarks only target 127.0.0.1", *addr)
	}
	if *cpuprofile != "" {
		stop, err := StartCPUProfile(*cpuprofile)
		if err != nil {
			return err
		}
		defer stop()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { io.Copy(io.Discard, os.Stdin); cancel() }()

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	db, err := engine.Open(engine.Options{Dir: *data, Logger: logger, Holder: "featurelog bench stream-server"})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	var kafkaBrokers []string
	if *brokers != "" {
		kafkaBrokers = strings.Split(*brokers, ",")
	}
	sinks, err := kafkasink.Start(db, kafkasink.Options{Brokers: kafkaBrokers, Logger: logger})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, sinks.Close()) }() // before db.Close: a batch in flight may still be acknowledged
	srv, err := httpapi.New(db, httpapi.Options{Addr: *addr, NoAuth: true, Logger: logger, Sinks: sinks})
	if err != nil {
		return err
	}
	err = srv.ListenAndServe(ctx, func(a net.Addr) { fmt.Fprintf(os.Stdout, "%s%s\n", addrPrefix, a) })
	if *memprofile != "" {
		err = errors.Join(err, writeHeapProfile(*memprofile))
	}
	return err
}

// writeHeapProfile writes the heap profile after a GC: what the node
// holds (in use) and what it allocated since it started.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	return errors.Join(pprof.WriteHeapProfile(f), f.Close())
}

// startNode starts a StreamServeMain process over dir (removed when it
// stops), with Kafka sinks to brokers when there are any.
func (c *StreamConfig) startNode(dir string, brokers []string, profile string) (*process, error) {
	args := append([]string(nil), c.Command[1:]...)
	args = append(args, "--data", dir)
	if len(brokers) > 0 {
		args = append(args, "--kafka-brokers", strings.Join(brokers, ","))
	}
	if profile != "" {
		args = append(args, "--cpuprofile", profile+".prof", "--memprofile", profile+".heap")
	}
	p := &process{stderr: &tailBuffer{max: 8 << 10}, done: make(chan error, 1), dir: dir}
	p.cmd = exec.Command(c.Command[0], args...)
	p.cmd.Stderr = p.stderr
	if err := p.launch(); err != nil {
		p.stop()
		return nil, fmt.Errorf("bench: starting the stream node (%s): %w%s", c.Command[0], err, p.stderr.note())
	}
	return p, nil
}
