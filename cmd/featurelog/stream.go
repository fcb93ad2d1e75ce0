package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/featurelog/featurelog/client"
	"github.com/featurelog/featurelog/engine"
)

// errStreamDone ends a stream the command has printed enough of.
var errStreamDone = errors.New("stream done")

func outputStreamCmd() *cobra.Command {
	var t target
	var ws, view, from string
	var limit int
	var idle time.Duration
	cmd := &cobra.Command{
		Use:   "output-stream --view V [--from earliest|latest|OFFSET]",
		Short: "Print a feature view's output stream (SPEC §7) as NDJSON",
		Long: "Prints the records of a view's output stream, one JSON object per line, from --from (inclusive):\n" +
			"earliest (the first retained record), latest (records appended from now on), or the offset of a\n" +
			"record. On --data it prints what the log holds and exits; on --server it follows the stream,\n" +
			"reconnecting and resuming after the last record printed, until --limit records, --idle without a\n" +
			"record, or Ctrl-C. Resume later with --from set to the next record's offset.",
		Example: "  featurelog output-stream --view user_click_counts --from earliest --data ./featurelog-data\n" +
			"  featurelog output-stream --workspace ads --view user_click_counts --server http://127.0.0.1:8080 --from latest",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if view == "" {
				return errors.New("--view is required: the feature view whose output stream to print")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			w := bufio.NewWriter(cmd.OutOrStdout())
			defer w.Flush()
			p := &streamPrinter{w: w, limit: limit}
			c, err := t.client()
			if err != nil {
				return err
			}
			if c != nil {
				if ws == "" {
					return errors.New("--workspace is required with --server")
				}
				err = remoteStream(ctx, p, idle, func(ctx context.Context) iter.Seq2[client.StreamRecord, error] {
					return c.OutputStream(ctx, ws, view, client.StreamOptions{From: from})
				})
			} else {
				err = t.localStream(ctx, p, ws, view, from)
			}
			if errors.Is(err, errStreamDone) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return nil
			}
			return err
		},
	}
	t.flags(cmd)
	f := cmd.Flags()
	f.StringVar(&ws, "workspace", "", "workspace of the view (default: the data directory's only one)")
	f.StringVar(&view, "view", "", "feature view whose stream to print")
	f.StringVar(&from, "from", "earliest", "where to start: earliest, latest, or a record's offset (inclusive)")
	f.IntVar(&limit, "limit", 0, "stop after this many records (0: no limit)")
	f.DurationVar(&idle, "idle", 0, "with --server, stop after this long without a record (0: follow until Ctrl-C)")
	return cmd
}

// streamPrinter prints records, one per line, up to a limit.
type streamPrinter struct {
	w     *bufio.Writer
	limit int
	n     int
}

func (p *streamPrinter) print(rec []byte) error {
	if _, err := p.w.Write(append(rec, '\n')); err != nil {
		return err
	}
	p.n++
	if p.limit > 0 && p.n >= p.limit {
		return errStreamDone
	}
	return nil
}

// remoteStream follows a node's stream, stopping after idle without a
// record when idle is set.
func remoteStream(ctx context.Context, p *streamPrinter, idle time.Duration,
	follow func(context.Context) iter.Seq2[client.StreamRecord, error]) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var timer *time.Timer
	if idle > 0 {
		timer = time.AfterFunc(idle, cancel)
		defer timer.Stop()
	}
	for rec, err := range follow(ctx) {
		if err != nil {
			return err
		}
		if timer != nil {
			timer.Reset(idle)
		}
		if err := p.print(rec.JSON); err != nil {
			return err
		}
		if err := p.w.Flush(); err != nil { // a follower wants each record as it comes
			return err
		}
	}
	return nil
}

// localStream prints the stream of a data directory from from to the
// log's end.
func (t *target) localStream(ctx context.Context, p *streamPrinter, ws, view, from string) error {
	api, err := t.jobs("featurelog output-stream", &ws)
	if err != nil {
		return err
	}
	db := api.(localJobs).db
	defer db.Close()
	start, err := streamStart(from)
	if err != nil {
		return err
	}
	s, err := db.OpenOutputStream(ws, view, start)
	if err != nil {
		return err
	}
	defer s.Close()
	var buf []engine.OutputRecord
	var line []byte
	for {
		buf, err = s.Next(ctx, buf, 1024, 100*time.Millisecond)
		if err != nil {
			return err
		}
		if len(buf) == 0 {
			return nil // caught up: nothing else can write to a data directory this process holds
		}
		for i := range buf {
			line = buf[i].AppendJSON(line[:0])
			if err := p.print(line); err != nil {
				return err
			}
		}
	}
}

// streamStart parses --from.
func streamStart(from string) (engine.StreamStart, error) {
	switch from {
	case "", "earliest":
		return engine.StreamStart{Kind: engine.StartEarliest}, nil
	case "latest":
		return engine.StreamStart{Kind: engine.StartLatest}, nil
	}
	off, err := engine.ParseStreamOffset(from)
	if err != nil {
		return engine.StreamStart{}, fmt.Errorf("--from: %w", err)
	}
	return engine.StreamStart{Kind: engine.StartAt, Offset: off}, nil
}
