package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"
)

// Server says which server an HTTP benchmark runs against and how to start
// it. Each run starts a fresh server process and stops it at the end, so
// benchmarks do not see each other's data or connections.
type Server struct {
	// Command is the argv prefix of a program that calls ServeMain with
	// the arguments that follow it, e.g. {"/path/featurelog", "bench",
	// "server"}. Required.
	Command []string
	// Trivial selects the baseline server instead of featurelog.
	Trivial bool
	// ResponseSize is the trivial server's response size in bytes: the
	// size of the featurelog response it stands in for (the
	// Result.ResponseBytes of the featurelog run). Required when Trivial.
	ResponseSize int
	// TempDir is where featurelog's data directory is created (and
	// removed afterwards). Default os.TempDir().
	TempDir string
	// DataDir, if set, is a closed data directory prepared by the caller
	// (BuildAggHistory) that featurelog serves as is, replaying its log
	// on open, instead of a fresh one with the ads repo. It is left in
	// place.
	DataDir string
	// BackfillWorkers sets engine.Options.BackfillWorkers of the DataDir
	// server (0: the default).
	BackfillWorkers int
	// CPUProfile, if set, is the file the server process writes its CPU
	// profile to (go tool pprof reads it with the server's binary).
	CPUProfile string
}

// Validate reports a configuration that cannot start.
func (s *Server) Validate() error {
	switch {
	case len(s.Command) == 0:
		return errors.New("bench: Server.Command is required: the argv prefix of a program that calls bench.ServeMain")
	case s.Trivial && s.ResponseSize <= 0:
		return errors.New("bench: Server.ResponseSize is required for the trivial server")
	}
	return nil
}

// label names the server in result names.
func (s *Server) label() string {
	if s.Trivial {
		return modeTrivial
	}
	return modeFeaturelog
}

// process is a running server process.
type process struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *tailBuffer
	dir    string // featurelog data directory, removed by stop
	addr   string // host:port it listens on
	done   chan error
}

// start launches the server s describes and waits until it listens.
func (s *Server) start() (*process, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	args := append([]string(nil), s.Command[1:]...)
	p := &process{stderr: &tailBuffer{max: 8 << 10}, done: make(chan error, 1)}
	switch {
	case s.Trivial:
		args = append(args, "--mode", modeTrivial, "--response-size", strconv.Itoa(s.ResponseSize))
	case s.DataDir != "":
		args = append(args, "--mode", modeFeaturelog, "--data", s.DataDir, "--preloaded", "--backfill-workers", strconv.Itoa(s.BackfillWorkers))
	default:
		dir, err := os.MkdirTemp(s.TempDir, "featurelog-bench-")
		if err != nil {
			return nil, err
		}
		p.dir = dir
		args = append(args, "--mode", modeFeaturelog, "--data", dir)
	}
	if s.CPUProfile != "" {
		args = append(args, "--cpuprofile", s.CPUProfile)
	}
	p.cmd = exec.Command(s.Command[0], args...)
	p.cmd.Stderr = p.stderr
	if err := p.launch(); err != nil {
		p.stop()
		return nil, fmt.Errorf("bench: starting the %s server (%s): %w%s", s.label(), s.Command[0], err, p.stderr.note())
	}
	return p, nil
}

func (p *process) launch() error {
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		return err
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := p.cmd.Start(); err != nil {
		return err
	}
	go func() { p.done <- p.cmd.Wait() }()
	addrc := make(chan error, 1)
	go func() {
		a, err := readAddr(stdout)
		p.addr = a
		addrc <- err
		io.Copy(io.Discard, stdout)
	}()
	select {
	case err := <-addrc:
		return err
	case <-time.After(30 * time.Second):
		return errors.New("no address printed within 30s")
	}
}

// url returns the URL of path on the server.
func (p *process) url(path string) string { return "http://" + p.addr + path }

// stop asks the server to exit by closing its stdin, kills it (by its own
// pid) if it has not exited within 10s, and removes its data directory.
func (p *process) stop() error {
	var err error
	if p.cmd != nil && p.cmd.Process != nil {
		if p.stdin != nil {
			p.stdin.Close()
		}
		select {
		case err = <-p.done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			err = <-p.done
		}
	}
	if p.dir != "" {
		os.RemoveAll(p.dir)
	}
	if err != nil {
		return fmt.Errorf("bench: server exited: %w%s", err, p.stderr.note())
	}
	return nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

// note returns "; server stderr: ..." or "".
func (t *tailBuffer) note() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := bytes.TrimSpace(t.b)
	if len(s) == 0 {
		return ""
	}
	return "; server stderr: " + string(s)
}
