// Command featurelog runs and administers a featurelog node (SPEC §8).
//
//	featurelog serve --data ./featurelog-data --repo examples/ads/features.yaml --no-auth
//	featurelog plan -f features.yaml
//	featurelog apply -f features.yaml
//	featurelog service-account create --name ingest
//	featurelog access-control assign-role --role editor --workspace ads --service-account ID
//	featurelog historical --workspace ads --service ad_ctr_feature_service --spine spine.csv --out training.parquet
//	featurelog run --view user_click_counts --start 2024-05-01T00:00:00Z --end 2024-05-02T00:00:00Z --level full
//	featurelog feature-views list --workspace ads
//	featurelog feature-services describe --workspace ads ad_ctr_feature_service
//	featurelog version
//	featurelog bench
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

func main() {
	setProcs()
	stop, err := startProfiles()
	if err == nil {
		err = newRoot().Execute()
	}
	if perr := stop(); err == nil {
		err = perr
	}
	if err != nil {
		reportError(os.Stderr, err)
		os.Exit(1)
	}
}

// startProfiles starts a CPU profile of the whole command when
// FEATURELOG_CPUPROFILE names a file, and writes a heap profile at the
// end when FEATURELOG_MEMPROFILE does, and an execution trace (go tool
// trace) when FEATURELOG_TRACE does: how to profile a command exactly as
// a user runs it (e.g. featurelog historical in a fresh process). A %p in
// the name is replaced by the process ID, so the processes a benchmark
// starts write files of their own.
func startProfiles() (stop func() error, err error) {
	stop = func() error { return nil }
	pid := strconv.Itoa(os.Getpid())
	if path := strings.ReplaceAll(os.Getenv("FEATURELOG_CPUPROFILE"), "%p", pid); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return stop, fmt.Errorf("FEATURELOG_CPUPROFILE: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return stop, fmt.Errorf("FEATURELOG_CPUPROFILE: %w", err)
		}
		stop = func() error {
			pprof.StopCPUProfile()
			return f.Close()
		}
	}
	if path := strings.ReplaceAll(os.Getenv("FEATURELOG_TRACE"), "%p", pid); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return stop, errors.Join(stop(), fmt.Errorf("FEATURELOG_TRACE: %w", err))
		}
		if err := trace.Start(f); err != nil {
			f.Close()
			return stop, errors.Join(stop(), fmt.Errorf("FEATURELOG_TRACE: %w", err))
		}
		prev := stop
		stop = func() error {
			trace.Stop()
			return errors.Join(prev(), f.Close())
		}
	}
	if path := strings.ReplaceAll(os.Getenv("FEATURELOG_MEMPROFILE"), "%p", pid); path != "" {
		cpu := stop
		stop = func() error {
			err := cpu()
			f, ferr := os.Create(path)
			if ferr != nil {
				return errors.Join(err, fmt.Errorf("FEATURELOG_MEMPROFILE: %w", ferr))
			}
			return errors.Join(err, pprof.Lookup("allocs").WriteTo(f, 0), f.Close())
		}
	}
	return stop, nil
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
	root.AddCommand(serveCmd(), devClusterCmd(), planCmd(), applyCmd(), serviceAccountCmd(), accessControlCmd(), historicalCmd(), jobsCmd(), materializeCmd(), deleteKeysCmd(), outputStreamCmd(), replayCmd(), runViewCmd(), benchCmd(),
		versionCmd(), workspacesCmd(), featureViewsCmd(), featureServicesCmd())
	return root
}
