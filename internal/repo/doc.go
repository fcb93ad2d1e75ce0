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
package repo
