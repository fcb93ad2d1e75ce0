// Package tiles will hold featurelog's partial aggregates: per view, entity
// key and aggregation interval, the mergeable state of every aggregation
// function of SPEC §3, with a hot tier in fastcache.
//
// It is empty in this version: aggregate features are parsed, validated and
// logged, and the log is kept so that the tile builder can be rebuilt from
// it when it lands. Attribute (latest-value) views are served by the engine
// package directly.
package tiles
