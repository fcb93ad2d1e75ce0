// Package repo parses and validates feature repository files (SPEC §1):
// the YAML declaration of a workspace's entities, sources, feature views and
// feature services. Parse returns a fully resolved, immutable *Repo or an
// error listing every problem with file, line and object; Diff compares two
// repos and says what applying the second would change.
//
//	r, err := repo.Parse("features.yaml", data)
//	if err != nil {
//		fmt.Println(err) // features.yaml:31: feature view "user_click_counts": aggregate 2: unknown function "cnt" (did you mean "count"?)
//	}
//	fmt.Print(repo.Diff(current, r)) // what `featurelog plan` shows
//
// # Rules beyond SPEC §1
//
//   - Names of entities, sources, views, services, features and columns use
//     ASCII letters, digits and '_', do not start with a digit and have at
//     most 128 characters (ValidName); column names must not be expr-lang
//     keywords (in, not, and, ...). Workspace names may also hold '-'.
//   - Durations are whole numbers with units d, h, m, s, largest first
//     ("1h30m"); a window offset may be 0. FormatDuration prints the largest
//     whole unit, so a window written 24h is named 1d.
//   - feature_start_time is RFC 3339; a bare date means midnight UTC.
//   - timestamp_field may be left out when the source has exactly one
//     Timestamp column. Join keys must be String, Int64 or Int32 columns.
//   - A batch format may be left out when the uri ends in .parquet, .csv or
//     .jsonl.
//   - An empty value (`key:`) counts as absent. YAML anchors, aliases and
//     merge keys (<<) are allowed.
//   - Transforms cannot call now(): replaying the log must reproduce them.
//     Their types are inferred: integer results are Int64, floats Float64.
//   - A service with online_serving_enabled cannot list an offline view;
//     a view with output_stream must be online.
//
// A *Repo is shared between goroutines; Transform.Apply is safe for
// concurrent use.
package repo
