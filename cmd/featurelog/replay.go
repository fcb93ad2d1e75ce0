package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/featurelog/featurelog/engine"
)

func replayCmd() *cobra.Command {
	var logDir, data, repoFile string
	var quiet bool
	var runRecords int
	cmd := &cobra.Command{
		Use:   "replay --log DIR --data NEW --repo FILE",
		Short: "Build a new data directory from a copy of another node's log (offline backfill)",
		Long: "replay copies the log in DIR (a node's data directory, or its wal/ directory) into the new data\n" +
			"directory NEW, never writing to DIR; repairs a torn tail of the copy as a node does on open;\n" +
			"applies FILE; and backfills every view from the log and the sources' batch files, with progress.\n" +
			"NEW can then be served (featurelog serve --data NEW) or queried (featurelog historical --data NEW).",
		Example: "  cp -r /var/lib/featurelog/wal /backups/wal-copy\n" +
			"  featurelog replay --log /backups/wal-copy --data ./experiment --repo features.yaml",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return replay(cmd.OutOrStdout(), cmd.ErrOrStderr(), logDir, data, repoFile, runRecords, quiet)
		},
	}
	cmd.Flags().StringVar(&logDir, "log", "", "the log to read: a data directory or its wal/ directory (required; never written)")
	cmd.Flags().StringVar(&data, "data", "", "the new data directory to build (required; must not exist or be empty)")
	cmd.Flags().StringVar(&repoFile, "repo", "", "the feature repo file to apply (required)")
	cmd.Flags().IntVar(&runRecords, "run-records", 0, "records per view held in memory before they are written out (bounds memory; default 1,000,000)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	for _, f := range []string{"log", "data", "repo"} {
		cmd.MarkFlagRequired(f)
	}
	return cmd
}

// segmentName matches a log segment file (wal/segment.go).
var segmentName = regexp.MustCompile(`^[0-9]{20}$`)

func replay(out, errOut io.Writer, logDir, data, repoFile string, runRecords int, quiet bool) error {
	content, err := readRepoFile(repoFile)
	if err != nil {
		return err
	}
	if st, err := os.Stat(filepath.Join(logDir, "wal")); err == nil && st.IsDir() {
		logDir = filepath.Join(logDir, "wal")
	}
	entries, err := os.ReadDir(logDir)
	if err != nil {
		return fmt.Errorf("--log: %w", err)
	}
	var segs []string
	for _, e := range entries {
		if e.Type().IsRegular() && segmentName.MatchString(e.Name()) {
			segs = append(segs, e.Name())
		}
	}
	if len(segs) == 0 {
		return fmt.Errorf("--log %s holds no log segment (files named like 00000000000000000001); give a node's data directory or its wal/ directory", logDir)
	}
	if existing, err := os.ReadDir(data); err == nil && len(existing) > 0 {
		return fmt.Errorf("--data %s is not empty: replay builds a new data directory", data)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("--data: %w", err)
	}
	wal := filepath.Join(data, "wal")
	if err := os.MkdirAll(wal, 0o755); err != nil {
		return err
	}
	var copied int64
	for _, name := range segs {
		n, err := copyFile(filepath.Join(logDir, name), filepath.Join(wal, name))
		if err != nil {
			return fmt.Errorf("copying the log: %w", err)
		}
		copied += n
	}
	fmt.Fprintf(out, "Copied %d log segment(s), %d bytes, from %s.\n", len(segs), copied, logDir)
	db, err := engine.Open(engine.Options{Dir: data, Holder: "featurelog replay", BackfillRunRecords: runRecords,
		BackfillWorkers: runtime.GOMAXPROCS(0),
		Logger:          slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer db.Close()
	if rep := db.LogRepair(); rep != nil {
		fmt.Fprintf(out, "Repaired a torn tail in the copy: segment %s, %d bytes dropped after offset %d.\n", rep.Segment, rep.DroppedBytes, rep.Offset)
	}
	res, err := db.Apply(repoFile, content)
	if err != nil {
		return err
	}
	fmt.Fprint(out, res.Plan.String())
	if err := reportJobs(out, localJobs{db}, res.Jobs, waitFlags{wait: true, quiet: quiet, errOut: errOut}); err != nil {
		return err
	}
	if err := db.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "Built %s.\n", data)
	return nil
}

func copyFile(from, to string) (int64, error) {
	in, err := os.Open(from)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	outF, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(outF, in)
	if err == nil {
		err = outF.Sync()
	}
	if cerr := outF.Close(); err == nil {
		err = cerr
	}
	return n, err
}
