package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/featurelog/featurelog/client"
)

// target is where a state-changing command acts: the data directory
// (when no server holds it) or a running node.
type target struct {
	data   string
	server string
	apiKey string
}

func (t *target) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&t.data, "data", "./featurelog-data", "data directory to act on when no server holds it")
	cmd.Flags().StringVar(&t.server, "server", "", "URL of a running node to act on instead (e.g. http://127.0.0.1:8080)")
	cmd.Flags().StringVar(&t.apiKey, "api-key", "", "an owner's API key for --server (default $FEATURELOG_API_KEY)")
}

// client returns the client of --server, or nil without --server.
func (t *target) client() (*client.Client, error) {
	if t.server == "" {
		return nil, nil
	}
	key := t.apiKey
	if key == "" {
		key = os.Getenv("FEATURELOG_API_KEY")
	}
	c, err := client.New(t.server, client.Options{APIKey: key, UserAgent: "featurelog-cli"})
	if err != nil {
		return nil, fmt.Errorf("--server: %w", err)
	}
	return c, nil
}

func readRepoFile(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("-f FILE is required: the feature repo file to read")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the feature repo: %w", err)
	}
	return data, nil
}
