// Command featurelog runs and administers a featurelog node (SPEC §8).
//
//	featurelog serve --data ./featurelog-data --repo examples/ads/features.yaml --no-auth
//	featurelog plan -f features.yaml
//	featurelog apply -f features.yaml
//	featurelog service-account create --name ingest
//	featurelog access-control assign-role --role editor --workspace ads --service-account ID
//	featurelog historical --workspace ads --service ad_ctr_feature_service --spine spine.csv --out training.parquet
//	featurelog run --view user_click_counts --start 2024-05-01T00:00:00Z --end 2024-05-02T00:00:00Z --level full
//	featurelog bench
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "featurelog:", err)
		os.Exit(1)
	}
}

// newRoot builds the command tree. Commands print through cmd.OutOrStdout
// so tests can capture them.
func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "featurelog",
		Short:         "An embedded, event-sourced storage engine for streaming ML features",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serveCmd(), planCmd(), applyCmd(), serviceAccountCmd(), accessControlCmd(), historicalCmd(), jobsCmd(), materializeCmd(), deleteKeysCmd(), outputStreamCmd(), replayCmd(), runViewCmd(), benchCmd())
	return root
}
