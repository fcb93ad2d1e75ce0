package main

import (
	"github.com/spf13/cobra"
)

func benchCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "bench",
		Short: "Run the benchmarks and print a table",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBench(cmd)
		},
	}
}

func runBench(cmd *cobra.Command) error { return nil }
