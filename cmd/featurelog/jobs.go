package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/go-json-experiment/json/v1"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/featurelog/featurelog/client"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/internal/dirlock"
)

// jobsAPI is what the jobs commands call: the data directory, or a node.
type jobsAPI interface {
	list(ws string, f engine.JobFilter) ([]engine.Job, error)
	get(ws, id string, wait time.Duration) (engine.Job, error)
	cancel(ws, id string) (engine.Job, error)
	materialize(ws, view string, req engine.MaterializeRequest) (engine.Job, error)
	deleteKeys(ws, view string, req engine.DeleteKeysRequest) (engine.Job, error)
	// local reports whether jobs run in this process, which must then
	// wait for them before it exits.
	local() bool
	close() error
}

type localJobs struct{ db *engine.DB }

func (l localJobs) list(ws string, f engine.JobFilter) ([]engine.Job, error) { return l.db.Jobs(ws, f) }
func (l localJobs) get(ws, id string, wait time.Duration) (engine.Job, error) {
	if wait <= 0 {
		return l.db.Job(ws, id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return l.db.WaitJob(ctx, ws, id)
}
func (l localJobs) cancel(ws, id string) (engine.Job, error) { return l.db.CancelJob(ws, id) }
func (l localJobs) materialize(ws, view string, req engine.MaterializeRequest) (engine.Job, error) {
	return l.db.Materialize(ws, view, req)
}
func (l localJobs) local() bool  { return true }
func (l localJobs) close() error { return l.db.Close() }

// remoteJobs calls a node's jobs API.
type remoteJobs struct{ c *client.Client }

func (r remoteJobs) list(ws string, f engine.JobFilter) ([]engine.Job, error) {
	jobs, err := r.c.ListJobs(context.Background(), ws, client.JobFilter{FeatureView: f.FeatureView, Type: string(f.Type), State: string(f.State), Limit: f.Limit})
	if err != nil {
		return nil, err
	}
	out := make([]engine.Job, len(jobs))
	for i := range jobs {
		if out[i], err = engineJob(&jobs[i], nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}
func (r remoteJobs) get(ws, id string, wait time.Duration) (engine.Job, error) {
	return engineJob(r.c.WaitJob(context.Background(), ws, id, wait))
}
func (r remoteJobs) cancel(ws, id string) (engine.Job, error) {
	return engineJob(r.c.CancelJob(context.Background(), ws, id))
}
func (r remoteJobs) materialize(ws, view string, req engine.MaterializeRequest) (engine.Job, error) {
	online, offline := req.Online, req.Offline
	return engineJob(r.c.Materialize(context.Background(), ws, view, client.MaterializationRequest{StartTime: req.Start, EndTime: req.End,
		Online: &online, Offline: &offline, Overwrite: req.Overwrite}))
}
func (r remoteJobs) local() bool  { return false }
func (r remoteJobs) close() error { return nil }

// engineJob converts a job the client read to the engine's type, which
// the commands print, through the JSON shape both share (SPEC §6).
func engineJob(j *client.Job, err error) (engine.Job, error) {
	var out engine.Job
	if err != nil {
		return out, err
	}
	data, err := json.Marshal(j)
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return out, fmt.Errorf("the node's job %s: %w", j.ID, err)
	}
	return out, nil
}

// jobs returns the jobs API of t, the node or the data directory, and
// fills in *ws when it is empty: the data directory's only workspace.
func (t *target) jobs(holder string, ws *string) (jobsAPI, error) {
	c, err := t.client()
	if err != nil {
		return nil, err
	}
	if c != nil {
		if *ws == "" {
			return nil, errors.New("--workspace is required with --server")
		}
		return remoteJobs{c}, nil
	}
	db, err := engine.Open(engine.Options{Dir: t.data, Holder: holder, Logger: slog.New(slog.DiscardHandler)})
	if errors.Is(err, dirlock.ErrLocked) {
		return nil, fmt.Errorf("%w\n(to act on a running node, pass --server URL with an owner's --api-key)", err)
	}
	if err != nil {
		return nil, err
	}
	if *ws == "" {
		names := db.Workspaces()
		if len(names) != 1 {
			db.Close()
			return nil, fmt.Errorf("--workspace is required: the data directory %s holds %d workspaces (%s)", t.data, len(names), strings.Join(names, ", "))
		}
		*ws = names[0]
	}
	return localJobs{db}, nil
}

func jobsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "jobs", Short: "List, inspect, wait for and cancel jobs (backfills, materializations)"}
	cmd.AddCommand(jobsListCmd(), jobsGetCmd(), jobsWaitCmd(), jobsCancelCmd())
	return cmd
}

func jobsListCmd() *cobra.Command {
	var t target
	var ws, output string
	var f engine.JobFilter
	var typ, state string
	cmd := &cobra.Command{
		Use:     "list [--workspace W]",
		Short:   "List a workspace's jobs, newest first",
		Example: "  featurelog jobs list --workspace ads --state RUNNING\n  featurelog jobs list --workspace ads --feature-view user_click_counts --output json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.Type, f.State = engine.JobType(typ), engine.JobState(state)
			api, err := t.jobs("featurelog jobs", &ws)
			if err != nil {
				return err
			}
			defer api.close()
			jobs, err := api.list(ws, f)
			if err != nil {
				return err
			}
			return printJobs(cmd.OutOrStdout(), jobs, output)
		},
	}
	cmd.Flags().StringVar(&ws, "workspace", "", "workspace (default: the data directory's only workspace; required with --server)")
	cmd.Flags().StringVar(&f.FeatureView, "feature-view", "", "only jobs of this feature view")
	cmd.Flags().StringVar(&typ, "type", "", "only jobs of this type: backfill, materialization or deletion")
	cmd.Flags().StringVar(&state, "state", "", "only jobs in this state (PENDING, RUNNING, SUCCESS, FAILED, MANUAL_CANCELLATION_REQUESTED, CANCELLED)")
	cmd.Flags().IntVar(&f.Limit, "limit", 100, "at most this many jobs")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	t.flags(cmd)
	return cmd
}

func printJobs(out io.Writer, jobs []engine.Job, output string) error {
	switch output {
	case "json":
		return writeJSON(out, map[string]any{"jobs": jobs})
	case "table":
	default:
		return fmt.Errorf("--output %q: use table or json", output)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTYPE\tFEATURE VIEW\tVERSION\tSTATE\tPROGRESS\tCREATED\tERROR")
	for _, j := range jobs {
		errText := ""
		if j.Error != nil {
			errText = *j.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", j.ID, j.Type, j.FeatureView, j.Version, j.State,
			progressText(j.Progress), j.CreatedAt.Format(time.RFC3339), errText)
	}
	return tw.Flush()
}

func progressText(p engine.JobProgress) string {
	if p.Total <= 0 {
		return fmt.Sprintf("%d %s", p.Done, p.Unit)
	}
	return fmt.Sprintf("%.0f%%", 100*float64(p.Done)/float64(p.Total))
}

func writeJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func jobsGetCmd() *cobra.Command {
	var t target
	var ws string
	cmd := &cobra.Command{
		Use:     "get [--workspace W] JOB_ID",
		Short:   "Show one job as JSON",
		Example: "  featurelog jobs get --workspace ads job_01JF3Q8Z5M6N7P8Q9R0S1T2V3W",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := t.jobs("featurelog jobs", &ws)
			if err != nil {
				return err
			}
			defer api.close()
			j, err := api.get(ws, args[0], 0)
			if err != nil {
				return err
			}
			return writeJSON(cmd.OutOrStdout(), j)
		},
	}
	cmd.Flags().StringVar(&ws, "workspace", "", "workspace (default: the data directory's only workspace; required with --server)")
	t.flags(cmd)
	return cmd
}

func jobsWaitCmd() *cobra.Command {
	var t target
	var ws string
	var timeout time.Duration
	var quiet bool
	cmd := &cobra.Command{
		Use:   "wait [--workspace W] JOB_ID...",
		Short: "Wait for jobs to end, with a progress bar; fails unless they all succeed",
		Long: "Wait for jobs to end. On a data directory (no --server) the jobs run in this process while it waits:\n" +
			"a job a stopped node left unfinished resumes here.",
		Example: "  featurelog jobs wait --workspace ads job_01JF3Q8Z5M6N7P8Q9R0S1T2V3W",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := t.jobs("featurelog jobs wait", &ws)
			if err != nil {
				return err
			}
			defer api.close()
			return waitJobs(cmd.OutOrStdout(), cmd.ErrOrStderr(), api, ws, args, timeout, quiet)
		},
	}
	cmd.Flags().StringVar(&ws, "workspace", "", "workspace (default: the data directory's only workspace; required with --server)")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "give up after this long (0: wait as long as it takes)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	t.flags(cmd)
	return cmd
}

// waitJobs waits for each job in turn, showing its progress on errOut
// when that is a terminal, and prints how each ended.
func waitJobs(out, errOut io.Writer, api jobsAPI, ws string, ids []string, timeout time.Duration, quiet bool) error {
	deadline := time.Time{}
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	var failed []string
	for _, id := range ids {
		j, err := waitJob(errOut, api, ws, id, deadline, quiet)
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %s %s: %s", j.ID, j.Type, j.FeatureView, j.State)
		if j.Result != nil {
			line += fmt.Sprintf(" (%d log records, %d batch rows, %d duplicates skipped, %d segments)",
				j.Result.LogRecords, j.Result.BatchRows, j.Result.BatchDuplicates, j.Result.Segments)
		}
		if j.Error != nil {
			line += ": " + *j.Error
		}
		fmt.Fprintln(out, line)
		if !j.State.Final() {
			return fmt.Errorf("job %s has not ended after %s (%s)", j.ID, timeout, j.State)
		}
		if j.State != engine.JobSuccess {
			failed = append(failed, j.ID)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("job(s) %s did not succeed", strings.Join(failed, ", "))
	}
	return nil
}

func waitJob(errOut io.Writer, api jobsAPI, ws, id string, deadline time.Time, quiet bool) (engine.Job, error) {
	var bar *progressbar.ProgressBar
	f, isFile := errOut.(*os.File)
	if !quiet && isFile && term.IsTerminal(int(f.Fd())) {
		bar = progressbar.NewOptions64(-1, progressbar.OptionSetWriter(errOut), progressbar.OptionShowBytes(true),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
		defer bar.Exit()
	}
	for {
		step := time.Second
		if !deadline.IsZero() {
			step = min(step, time.Until(deadline))
		}
		j, err := api.get(ws, id, max(step, time.Millisecond))
		if err != nil {
			return j, err
		}
		if bar != nil {
			if j.Progress.Total > 0 && bar.GetMax64() != j.Progress.Total {
				bar.ChangeMax64(j.Progress.Total)
			}
			bar.Describe(fmt.Sprintf("%s %s %s", j.Type, j.FeatureView, j.State))
			bar.Set64(j.Progress.Done)
		}
		if j.State.Final() || (!deadline.IsZero() && !time.Now().Before(deadline)) {
			return j, nil
		}
	}
}

func jobsCancelCmd() *cobra.Command {
	var t target
	var ws string
	cmd := &cobra.Command{
		Use:     "cancel [--workspace W] JOB_ID",
		Short:   "Cancel a pending or running job: everything is left as before it",
		Example: "  featurelog jobs cancel --workspace ads job_01JF3Q8Z5M6N7P8Q9R0S1T2V3W",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := t.jobs("featurelog jobs cancel", &ws)
			if err != nil {
				return err
			}
			defer api.close()
			j, err := api.cancel(ws, args[0])
			if err != nil {
				return err
			}
			if api.local() && !j.State.Final() {
				if j, err = api.get(ws, j.ID, time.Hour); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", j.ID, j.State)
			return nil
		},
	}
	cmd.Flags().StringVar(&ws, "workspace", "", "workspace (default: the data directory's only workspace; required with --server)")
	t.flags(cmd)
	return cmd
}

func materializeCmd() *cobra.Command {
	var t target
	var ws, view, start, end string
	var req engine.MaterializeRequest
	var wait, quiet bool
	cmd := &cobra.Command{
		Use:   "materialize --view V --start T1 --end T2 [--workspace W]",
		Short: "Load a view's batch rows with event time in [T1, T2) (a materialization job)",
		Example: "  featurelog materialize --workspace ads --view user_click_counts \\\n" +
			"    --start 2026-11-01T00:00:00Z --end 2026-12-01T00:00:00Z --wait",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if req.Start, err = parseTime("--start", start); err != nil {
				return err
			}
			if req.End, err = parseTime("--end", end); err != nil {
				return err
			}
			api, err := t.jobs("featurelog materialize", &ws)
			if err != nil {
				return err
			}
			defer api.close()
			j, err := api.materialize(ws, view, req)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Started materialization job %s of %s [%s, %s).\n", j.ID, view, start, end)
			if !wait && !api.local() {
				return nil
			}
			return waitJobs(cmd.OutOrStdout(), cmd.ErrOrStderr(), api, ws, []string{j.ID}, 0, quiet)
		},
	}
	cmd.Flags().StringVar(&ws, "workspace", "", "workspace (default: the data directory's only workspace; required with --server)")
	cmd.Flags().StringVar(&view, "view", "", "feature view (required)")
	cmd.Flags().StringVar(&start, "start", "", "start of the event-time range, RFC 3339, inclusive (required)")
	cmd.Flags().StringVar(&end, "end", "", "end of the event-time range, RFC 3339, exclusive (required)")
	cmd.Flags().BoolVar(&req.Online, "online", true, "load the online store")
	cmd.Flags().BoolVar(&req.Offline, "offline", true, "load the offline store")
	cmd.Flags().BoolVar(&req.Overwrite, "overwrite", false, "replace the rows an earlier materialization loaded for an overlapping range")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the job with a progress bar (always, on a data directory)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	for _, f := range []string{"view", "start", "end"} {
		cmd.MarkFlagRequired(f)
	}
	t.flags(cmd)
	return cmd
}

func parseTime(flag, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return t, fmt.Errorf("%s %q is not an RFC 3339 time such as 2026-11-01T00:00:00Z", flag, s)
	}
	return t, nil
}
