// Package tabread reads tables from Parquet, CSV and JSON Lines files,
// row by row: the spines of historical retrieval and the batch sources of
// backfills. It depends on no engine package, so the engine can read
// batch files with it.
package tabread
