package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/featurelog/featurelog/client"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/internal/dirlock"
	"github.com/featurelog/featurelog/tabular"
)

// runFlags are the flags of `featurelog run` (SPEC §6, "run").
type runFlags struct {
	t                      target
	workspace, view, level string
	start, end, mock       string
}

func runViewCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run --view V --start T1 --end T2 --level disabled|partial|full [--mock rows.(csv|jsonl|parquet)] [--workspace W]",
		Short: "Compute a feature view over a time range, for debugging; nothing is written",
		Long: `Run computes a feature view over the events of [--start, --end) of its source
(the offline log and the batch files), or over the rows of --mock, and prints
the result as NDJSON: with --level disabled the transformed rows, with partial
one row per key and tile (_tile_start, _tile_end, the partial aggregates),
with full each key's features as of --end. Nothing is written.`,
		Example: "  featurelog run --view user_click_counts --start 2024-05-01T00:00:00Z --end 2024-05-02T00:00:00Z --level full\n" +
			"  featurelog run --view user_click_counts --start 2024-05-01T00:00:00Z --end 2024-05-02T00:00:00Z --level partial --mock clicks.csv",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runView(cmd, &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.workspace, "workspace", "", "workspace of the view (default: the data directory's only workspace; required with --server)")
	fl.StringVar(&f.view, "view", "", "feature view to run (required)")
	fl.StringVar(&f.start, "start", "", "start of the range (RFC 3339, required)")
	fl.StringVar(&f.end, "end", "", "end of the range, exclusive (RFC 3339, required)")
	fl.StringVar(&f.level, "level", "", "aggregation level: disabled, partial or full (required)")
	fl.StringVar(&f.mock, "mock", "", "rows of the view's source to run on instead of its data: .csv, .jsonl, .ndjson or .parquet")
	f.t.flags(cmd)
	cmd.Flags().Lookup("api-key").Usage = "a viewer's API key for --server (default $FEATURELOG_API_KEY)"
	return cmd
}

// query checks the flags and returns the request they make; the mock
// rows, if any, are read but not yet keyed by the view's source.
func (f *runFlags) query() (client.RunRequest, []map[string]any, error) {
	q := client.RunRequest{AggregationLevel: f.level}
	if f.view == "" {
		return q, nil, errors.New("--view V is required: the feature view to run")
	}
	switch engine.RunLevel(f.level) {
	case engine.RunDisabled, engine.RunPartial, engine.RunFull:
	default:
		return q, nil, fmt.Errorf("--level %q: use disabled, partial or full", f.level)
	}
	var err error
	if q.StartTime, err = parseFlagTime("--start", f.start, ""); err != nil {
		return q, nil, err
	}
	if q.EndTime, err = parseFlagTime("--end", f.end, ""); err != nil {
		return q, nil, err
	}
	if !q.EndTime.After(q.StartTime) {
		return q, nil, fmt.Errorf("--end %s must be after --start %s", f.end, f.start)
	}
	if f.mock == "" {
		return q, nil, nil
	}
	rows, err := readMockRows(f.mock)
	return q, rows, err
}

// readMockRows reads the rows of a mock file; null cells are left out.
func readMockRows(path string) ([]map[string]any, error) {
	rows, _, err := readTableRows("--mock", path, func(v any) (any, bool) { return v, v != nil })
	return rows, err
}

func runView(cmd *cobra.Command, f *runFlags) error {
	q, mock, err := f.query()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(commandContext(cmd), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := f.t.client()
	if err != nil {
		return err
	}
	if c != nil {
		return remoteRun(ctx, c, f, q, mock, cmd.OutOrStdout())
	}
	return localRun(ctx, f, q, mock, cmd.OutOrStdout())
}

// remoteRun runs the view on a node; mock rows are sent as JSON under the
// view's source, which the node names.
func remoteRun(ctx context.Context, c *client.Client, f *runFlags, q client.RunRequest, mock []map[string]any, out io.Writer) error {
	if f.workspace == "" {
		return errors.New("--workspace is required with --server")
	}
	if mock != nil {
		fv, err := c.FeatureView(ctx, f.workspace, f.view)
		if err != nil {
			return err
		}
		q.MockSources = map[string][]map[string]any{fv.Source: mock}
	}
	rows, err := c.Run(ctx, f.workspace, f.view, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	var buf []byte
	for row, err := range rows.All() {
		if err != nil {
			return err
		}
		buf = append(append(buf[:0], row.Line...), '\n')
		if _, err := out.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

// localRun runs the view on the data directory, writing NDJSON with the
// encodings of the HTTP API.
func localRun(ctx context.Context, f *runFlags, q client.RunRequest, mock []map[string]any, out io.Writer) error {
	db, err := engine.Open(engine.Options{Dir: f.t.data, Holder: "featurelog run", Logger: slog.New(slog.DiscardHandler)})
	if errors.Is(err, dirlock.ErrLocked) {
		return fmt.Errorf("%w\n(to run on a running node, pass --server URL with an API key of a viewer of the workspace)", err)
	}
	if err != nil {
		return err
	}
	defer db.Close()
	ws, err := onlyWorkspace(db, f.workspace, f.t.data)
	if err != nil {
		return err
	}
	req := &engine.RunRequest{Start: q.StartTime, End: q.EndTime, Level: engine.RunLevel(q.AggregationLevel)}
	if mock != nil {
		sum, err := db.FeatureViewSummary(ws, f.view)
		if err != nil {
			return err
		}
		req.MockSources = map[string][]map[string]any{sum.Source: mock}
	}
	w, err := tabular.CreateWriter("run.jsonl", out)
	if err != nil {
		return err
	}
	if err := db.Run(ctx, ws, f.view, req, w); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// onlyWorkspace returns ws, or when empty the data directory's only
// workspace.
func onlyWorkspace(db *engine.DB, ws, data string) (string, error) {
	if ws != "" {
		return ws, nil
	}
	names := db.Workspaces()
	if len(names) != 1 {
		return "", fmt.Errorf("--workspace is required: the data directory %s holds %d workspaces (%s)", data, len(names), strings.Join(names, ", "))
	}
	return names[0], nil
}
