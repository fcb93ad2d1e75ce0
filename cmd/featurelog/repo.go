package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
	"github.com/featurelog/featurelog/internal/dirlock"
)

func planCmd() *cobra.Command {
	return repoCmd("plan", "Show what applying a feature repo file would change", false)
}
func applyCmd() *cobra.Command { return repoCmd("apply", "Apply a feature repo file", true) }

func repoCmd(use, short string, apply bool) *cobra.Command {
	var t target
	var file string
	cmd := &cobra.Command{
		Use:   use + " -f FILE",
		Short: short,
		RunE: func(cmd *cobra.Command, _ []string) error {
			content, err := readRepoFile(file)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if c, ok := t.client(); ok {
				return remoteRepo(out, c, file, content, apply)
			}
			return localRepo(out, t.data, file, content, apply)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "feature repo file")
	t.flags(cmd)
	return cmd
}

func localRepo(out io.Writer, data, file string, content []byte, apply bool) error {
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
	return nil
}

func remoteRepo(out io.Writer, c *httpapi.Client, file string, content []byte, apply bool) error {
	call := c.Plan
	if apply {
		call = c.Apply
	}
	res, err := call(file, content)
	if err != nil {
		return err
	}
	fmt.Fprint(out, res.Plan)
	if apply {
		reportApply(out, res.Changed, res.Rebuilt)
	}
	return nil
}

func reportApply(out io.Writer, changed bool, rebuilt []string) {
	switch {
	case !changed:
		fmt.Fprintln(out, "No changes: the workspace already matches the file.")
	case len(rebuilt) > 0:
		fmt.Fprintf(out, "Applied. Rebuilt from the log: %v\n", rebuilt)
	default:
		fmt.Fprintln(out, "Applied.")
	}
}
