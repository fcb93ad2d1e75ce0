package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
	"github.com/featurelog/featurelog/internal/auth"
)

func serveCmd() *cobra.Command {
	var data, repoFile, addr string
	var noAuth bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Open the data directory, apply the repo file, and serve HTTP",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(data, repoFile, addr, noAuth)
		},
	}
	cmd.Flags().StringVar(&data, "data", "./featurelog-data", "data directory (created if absent; locked while open)")
	cmd.Flags().StringVar(&repoFile, "repo", "", "feature repo file to apply at start")
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8080", "listen address")
	cmd.Flags().BoolVar(&noAuth, "no-auth", false, "serve without API keys (loopback addresses only)")
	return cmd
}

func serve(data, repoFile, addr string, noAuth bool) error {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	hopts := httpapi.Options{Addr: addr, NoAuth: noAuth, Logger: logger}
	hopts.EnsureDefaults()
	if err := hopts.Validate(); err != nil {
		return err
	}
	db, err := engine.Open(engine.Options{Dir: data, Logger: logger, Holder: "featurelog serve --addr " + addr})
	if err != nil {
		return err
	}
	defer db.Close()
	var ws string
	if repoFile != "" {
		content, err := readRepoFile(repoFile)
		if err != nil {
			return err
		}
		res, err := db.Apply(repoFile, content)
		if err != nil {
			return err
		}
		ws = res.Workspace
		logger.Info("repo applied", "file", repoFile, "workspace", ws, "changed", !res.Plan.Empty())
	}
	if !noAuth {
		if err := bootstrapOwner(db.Accounts(), ws); err != nil {
			return err
		}
	}
	srv, err := httpapi.New(db, hopts)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return srv.ListenAndServe(ctx, func(a net.Addr) {
		logger.Info("serving", "addr", a.String(), "auth", !noAuth)
		fmt.Fprintf(os.Stderr, "featurelog: serving on http://%s\n", a)
	})
}

// bootstrapOwner creates a first owner account when auth is on and none
// exists, so a fresh node is usable; its key is printed once.
func bootstrapOwner(store *auth.Store, ws string) error {
	if len(store.Accounts()) > 0 || ws == "" {
		return nil
	}
	key, acct, err := store.CreateAccount("bootstrap-owner", "created by featurelog serve on an empty data directory")
	if err != nil {
		return err
	}
	if err := store.AssignRole(acct.ID, ws, auth.Owner); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "featurelog: created the first service account (owner of workspace %q).\nSave this API Key - you will not be able to get it again.\nAPI Key: %s\nService Account ID: %s\n%s\n",
		ws, key, acct.ID, strings.Repeat("-", 40))
	return nil
}
