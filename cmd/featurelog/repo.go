package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/featurelog/featurelog/client"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/internal/dirlock"
)

func planCmd() *cobra.Command {
	return repoCmd("plan", "Show what applying a feature repo file would change", false)
}
func applyCmd() *cobra.Command { return repoCmd("apply", "Apply a feature repo file", true) }

func repoCmd(use, short string, apply bool) *cobra.Command {
	var t target
	var file string
	var w waitFlags
	cmd := &cobra.Command{
		Use:   use + " -f FILE",
		Short: short,
		Example: fmt.Sprintf("  featurelog %[1]s -f examples/ads/features.yaml --data ./featurelog-data\n"+
			"  featurelog %[1]s -f features.yaml --server http://127.0.0.1:8080 --api-key $OWNER_KEY", use),
		RunE: func(cmd *cobra.Command, _ []string) error {
			content, err := readRepoFile(file)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			w.errOut = cmd.ErrOrStderr()
			c, err := t.client()
			if err != nil {
				return err
			}
			if c != nil {
				return remoteRepo(commandContext(cmd), out, c, file, content, apply, w)
			}
			return localRepo(out, t.data, file, content, apply, w)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "feature repo file")
	if apply {
		cmd.Flags().BoolVar(&w.wait, "wait", false, "wait for the backfill jobs the apply starts, with a progress bar (always, on a data directory)")
		cmd.Flags().BoolVarP(&w.quiet, "quiet", "q", false, "no progress bar")
	}
	t.flags(cmd)
	return cmd
}

// waitFlags are apply's --wait and --quiet.
type waitFlags struct {
	wait, quiet bool
	errOut      io.Writer
}

// reportJobs prints the jobs an apply started and, when asked (always
// on a data directory, whose jobs run in this process), waits for them.
func reportJobs(out io.Writer, api jobsAPI, jobs []engine.Job, w waitFlags) error {
	if len(jobs) == 0 {
		return nil
	}
	var ids []string
	for _, j := range jobs {
		fmt.Fprintf(out, "Started backfill job %s for %s version %d.\n", j.ID, j.FeatureView, j.Version)
		ids = append(ids, j.ID)
	}
	if !w.wait && !api.local() {
		fmt.Fprintf(out, "The new versions serve once their backfills succeed; watch them with featurelog jobs wait --workspace %s %s\n",
			jobs[0].Workspace, strings.Join(ids, " "))
		return nil
	}
	return waitJobs(out, w.errOut, api, jobs[0].Workspace, ids, 0, w.quiet)
}

func localRepo(out io.Writer, data, file string, content []byte, apply bool, w waitFlags) error {
	db, err := engine.Open(engine.Options{Dir: data, Holder: "featurelog plan/apply", Logger: slog.New(slog.DiscardHandler)})
	if errors.Is(err, dirlock.ErrLocked) {
		return fmt.Errorf("%w\n(to plan or apply on a running node, pass --server URL with an owner's --api-key)", err)
	}
	if err != nil {
		return err
	}
	defer db.Close()
	if !apply {
		plan, err := db.Plan(file, content)
		if err != nil {
			return err
		}
		fmt.Fprint(out, plan.String())
		return nil
	}
	res, err := db.Apply(file, content)
	if err != nil {
		return err
	}
	fmt.Fprint(out, res.Plan.String())
	reportApply(out, !res.Plan.Empty(), res.Rebuilt)
	return reportJobs(out, localJobs{db}, res.Jobs, w)
}

func remoteRepo(ctx context.Context, out io.Writer, c *client.Client, file string, content []byte, apply bool, w waitFlags) error {
	call := c.Plan
	if apply {
		call = c.Apply
	}
	res, err := call(ctx, file, content)
	if err != nil {
		return err
	}
	fmt.Fprint(out, res.Plan)
	if !apply {
		return nil
	}
	reportApply(out, res.Changed, res.Rebuilt)
	jobs := make([]engine.Job, len(res.Jobs))
	for i := range res.Jobs {
		if jobs[i], err = engineJob(&res.Jobs[i], nil); err != nil {
			return err
		}
	}
	return reportJobs(out, remoteJobs{c}, jobs, w)
}

func reportApply(out io.Writer, changed bool, rebuilt []string) {
	switch {
	case !changed:
		fmt.Fprintln(out, "No changes: the workspace already matches the file.")
	case len(rebuilt) > 0:
		fmt.Fprintf(out, "Applied. Views built by backfill jobs (from the log and batch files): %v\n", rebuilt)
	default:
		fmt.Fprintln(out, "Applied.")
	}
}
