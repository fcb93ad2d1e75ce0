package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"time"

	"github.com/go-json-experiment/json/v1"

	"github.com/spf13/cobra"

	"github.com/featurelog/featurelog/client"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/tabread"
)

func (l localJobs) deleteKeys(ws, view string, req engine.DeleteKeysRequest) (engine.Job, error) {
	return l.db.DeleteKeys(ws, view, req)
}

func (r remoteJobs) deleteKeys(ws, view string, req engine.DeleteKeysRequest) (engine.Job, error) {
	online, offline := req.Online, req.Offline
	hr := client.DeleteKeysRequest{Online: &online, Offline: &offline, Keys: make([]map[string]any, len(req.Keys))}
	for i, k := range req.Keys {
		hr.Keys[i] = make(map[string]any, len(k))
		for name, v := range k {
			if n, ok := v.(int64); ok {
				v = strconv.FormatInt(n, 10) // exact for any int64
			}
			raw, err := json.Marshal(v)
			if err != nil {
				return engine.Job{}, err
			}
			hr.Keys[i][name] = json.RawMessage(raw)
		}
	}
	return engineJob(r.c.DeleteKeys(context.Background(), ws, view, hr))
}

func deleteKeysCmd() *cobra.Command {
	var t target
	var ws, view, keysPath string
	var online, offline, wait, quiet bool
	cmd := &cobra.Command{
		Use:   "delete-keys --view V --keys keys.(csv|jsonl|parquet) [--workspace W]",
		Short: "Delete entity keys' records from a view, or from the source's offline log too (deletion jobs)",
		Long: "Reads the keys from a file whose columns are the view's join keys and starts deletion jobs\n" +
			"(SPEC §6 delete_keys), one per 10,000 keys. With --offline (the default) the keys' records\n" +
			"acknowledged before the request are erased from every file of the data directory; with\n" +
			"--offline=false only the view's serving state forgets them.",
		Example: "  featurelog delete-keys --workspace ads --view user_click_counts --keys gdpr-2026-12.csv --wait\n" +
			"  featurelog delete-keys --server http://127.0.0.1:8080 --api-key $KEY --workspace ads \\\n" +
			"    --view user_click_counts --keys keys.parquet --offline=false",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			keys, sp, err := readKeys(keysPath)
			if err != nil {
				return err
			}
			api, err := t.jobs("featurelog delete-keys", &ws)
			if err != nil {
				return err
			}
			defer api.close()
			var ids []string
			for from := 0; from < len(keys); from += engine.MaxDeleteKeys {
				part := keys[from:min(from+engine.MaxDeleteKeys, len(keys))]
				j, err := api.deleteKeys(ws, view, engine.DeleteKeysRequest{Keys: part, Online: online, Offline: offline})
				if err != nil {
					return keysError(err, keysPath, sp, from)
				}
				ids = append(ids, j.ID)
				fmt.Fprintf(cmd.OutOrStdout(), "Started deletion job %s of %s (%d keys).\n", j.ID, view, len(part))
			}
			if !wait && !api.local() {
				return nil
			}
			return waitJobs(cmd.OutOrStdout(), cmd.ErrOrStderr(), api, ws, ids, 0, quiet)
		},
	}
	cmd.Flags().StringVar(&ws, "workspace", "", "workspace (default: the data directory's only workspace; required with --server)")
	cmd.Flags().StringVar(&view, "view", "", "feature view (required)")
	cmd.Flags().StringVar(&keysPath, "keys", "", "file of keys, one per row, with the view's join keys as columns: .csv, .jsonl or .parquet (required)")
	cmd.Flags().BoolVar(&online, "online", true, "remove the view's serving state of the keys")
	cmd.Flags().BoolVar(&offline, "offline", true, "erase the keys' records from the source's offline log, for every view of the source")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the jobs with a progress bar (always, on a data directory)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	for _, f := range []string{"view", "keys"} {
		cmd.MarkFlagRequired(f)
	}
	t.flags(cmd)
	return cmd
}

// readKeys reads a keys file: one key per row, a column per join key.
func readKeys(path string) ([]map[string]any, tabread.Spine, error) {
	keys, sp, err := readTableRows("--keys", path, func(v any) (any, bool) {
		if tm, ok := v.(time.Time); ok {
			v = tm.Format(time.RFC3339Nano)
		}
		return v, true
	})
	if err == nil && len(keys) == 0 {
		err = fmt.Errorf("--keys %s holds no keys", path)
	}
	return keys, sp, err
}

// readTableRows reads the rows of a CSV, JSON Lines or Parquet file named
// by flag as maps of column name to cell, cell passing each cell
// (false: leave it out). Errors name the flag and the file's line.
func readTableRows(flag, path string, cell func(v any) (any, bool)) ([]map[string]any, tabread.Spine, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", flag, err)
	}
	defer f.Close()
	sp, err := tabread.OpenSpine(path, f)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", flag, err)
	}
	rows := []map[string]any{}
	for {
		row, err := sp.Next()
		if errors.Is(err, io.EOF) {
			return rows, sp, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", flag, err) // it names the file and line
		}
		m := make(map[string]any, len(row))
		for i, c := range sp.Columns() {
			if v, ok := cell(row[i]); ok {
				m[c] = v
			}
		}
		rows = append(rows, m)
	}
}

var keysIndex = regexp.MustCompile(`^keys\[(\d+)\]: `)

// keysError names the file and row of the key an error is about.
func keysError(err error, path string, sp tabread.Spine, from int) error {
	var e *engine.Error
	msg := err.Error()
	if errors.As(err, &e) {
		msg = e.Msg
	}
	m := keysIndex.FindStringSubmatch(msg)
	if m == nil {
		return err
	}
	i, _ := strconv.Atoi(m[1])
	return fmt.Errorf("--keys %s, %s: %s", path, sp.Position(from+i+1), msg[len(m[0]):])
}
