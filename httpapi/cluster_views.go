package httpapi

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/go-json-experiment/json"

	"github.com/featurelog/featurelog/auth"
	"github.com/featurelog/featurelog/cluster"
	"github.com/featurelog/featurelog/engine"
)

// Feature views' summaries (one, or the workspace's list) and ingest
// rate in cluster mode. The catalog
// holds the view's definition but no records, so its record counts,
// freshness, keys and storage are zeros; the records live in the
// partitions' DBs. The node a request reaches asks every node that
// serves a partition for its partitions' figures (POST
// /internal/v1/workspaces/{ws}/partition-views), as the jobs API gathers
// its shares, and combines them:
//
//	online_record_count, offline_record_count  sums: a record is applied
//	                     in the one partition of its key.
//	entity_keys_online   sum: a key lives in one partition.
//	freshness            the latest: the newest event time applied anywhere.
//	storage              sums of segments, segment_bytes, memtable_records
//	                     and memtable_bytes: what the whole cluster holds
//	                     for the view (each partition's own LSM).
//	ingest-rate points   per minute, the sum over partitions; every
//	                     partition counts the same minutes, those ending
//	                     with the gathering node's current one.
//
// Everything else (the definition, versions, job, serving_version) is
// the catalog's, which every node applies from the same repo. The list
// gathers every view's figures in one request per node. An answer
// needs every partition: while one has no owner, or its owner cannot be
// reached, it is 503 with Retry-After, never a partial sum.

// partitionViewsRequest asks a node for a view's figures (every view's
// of the workspace when FeatureView is empty) on the partitions it
// serves; Minutes > 0 also asks for the ingest rate of the minutes ending
// with the one holding End.
type partitionViewsRequest struct {
	FeatureView string    `json:"feature_view,omitempty"`
	Minutes     int       `json:"minutes,omitempty"`
	End         time.Time `json:"end,omitzero"`
}

// partitionViewsResponse is a node's figures, and the partitions it
// served.
type partitionViewsResponse struct {
	Node       string          `json:"node"`
	Serving    []int32         `json:"serving"`
	Partitions []partitionView `json:"partitions"`
}

// partitionView is one partition's figures of a view.
type partitionView struct {
	Partition       int32     `json:"partition"`
	FeatureView     string    `json:"feature_view"`
	OnlineRecords   int64     `json:"online_records"`
	OfflineRecords  int64     `json:"offline_records"`
	Freshness       time.Time `json:"freshness,omitzero"`
	Keys            int       `json:"keys"`
	Segments        int       `json:"segments"`
	SegmentBytes    int64     `json:"segment_bytes"`
	MemtableRecords int64     `json:"memtable_records"`
	MemtableBytes   int64     `json:"memtable_bytes"`
	Rate            []int64   `json:"rate,omitempty"` // per minute, oldest first
}

// partitionViews answers another node's gather: this node's figures.
func (s *Server) partitionViews(w http.ResponseWriter, r *http.Request) {
	var req partitionViewsRequest
	ws, ok := s.jobsCaller(w, r, auth.Viewer, "read feature views", &req)
	if !ok {
		return
	}
	if _, err := s.viewNames(ws, req.FeatureView); err != nil { // the catalog checks the workspace and view
		s.writeEngineError(w, err)
		return
	}
	if req.Minutes < 0 || req.Minutes > engine.MaxIngestRateMinutes {
		s.writeEngineError(w, paramError("minutes %d must be from 0 to %d", req.Minutes, engine.MaxIngestRateMinutes))
		return
	}
	a, err := s.localViews(ws, req)
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	writeJSONValue(w, http.StatusOK, a)
}

// localViews reads the view's figures on every partition this node
// serves now.
func (s *Server) localViews(ws string, req partitionViewsRequest) (partitionViewsResponse, error) {
	node := s.opts.Cluster
	a := partitionViewsResponse{Node: node.ID(), Serving: []int32{}, Partitions: []partitionView{}}
	views, err := s.viewNames(ws, req.FeatureView)
	if err != nil {
		return a, err
	}
	for _, p := range node.Owned() {
		db, err := node.Owner(p)
		if err != nil {
			continue // not serving: the gatherer finds it missing
		}
		a.Serving = append(a.Serving, p)
		for _, view := range views {
			pv, err := partitionFigures(db, ws, view, req)
			if err != nil {
				return a, fmt.Errorf("partition %d: %w", p, err)
			}
			pv.Partition = p
			a.Partitions = append(a.Partitions, pv)
		}
	}
	return a, nil
}

// viewNames returns view, or every view of the workspace when view is
// empty, as the catalog has them.
func (s *Server) viewNames(ws, view string) ([]string, error) {
	if view != "" {
		_, err := s.db.FeatureViewSummary(ws, view)
		return []string{view}, err
	}
	sums, err := s.db.FeatureViewSummaries(ws)
	names := make([]string, len(sums))
	for i, sum := range sums {
		names[i] = sum.Name
	}
	return names, err
}

// partitionFigures reads a view's figures on a partition's DB.
func partitionFigures(db *engine.DB, ws, view string, req partitionViewsRequest) (partitionView, error) {
	sum, err := db.FeatureViewSummary(ws, view)
	if err != nil {
		return partitionView{}, err
	}
	pv := partitionView{FeatureView: view, OnlineRecords: sum.OnlineRecords, OfflineRecords: sum.OfflineRecords,
		Freshness: sum.Freshness, Keys: sum.Keys, Segments: sum.Storage.Segments, SegmentBytes: sum.Storage.SegmentBytes,
		MemtableRecords: sum.Storage.MemtableRecords, MemtableBytes: sum.Storage.MemtableBytes}
	if req.Minutes > 0 {
		pts, err := db.IngestRateUntil(ws, view, req.Minutes, req.End)
		if err != nil {
			return pv, err
		}
		for _, pt := range pts {
			pv.Rate = append(pv.Rate, pt.Records)
		}
	}
	return pv, nil
}

// gatherViews collects a view's figures on every partition (gather).
func (s *Server) gatherViews(r *http.Request, ws string, req partitionViewsRequest) ([]partitionView, error) {
	out, _, err := gather(s, r, "/internal/v1/workspaces/"+url.PathEscape(ws)+"/partition-views", req,
		func() (string, []int32, []partitionView, error) {
			a, err := s.localViews(ws, req)
			return a.Node, a.Serving, a.Partitions, err
		},
		func(b []byte) (string, []int32, []partitionView, error) {
			var a partitionViewsResponse
			err := json.Unmarshal(b, &a)
			return a.Node, a.Serving, a.Partitions, err
		},
		func(pv partitionView) int32 { return pv.Partition })
	return out, err
}

// clusterSummaries replaces the figures of the catalog's summaries of
// workspace ws by the cluster's (see above); one is asked for with view.
func (s *Server) clusterSummaries(r *http.Request, ws, view string, sums []*engine.Summary) error {
	parts, err := s.gatherViews(r, ws, partitionViewsRequest{FeatureView: view})
	if err != nil {
		return err
	}
	for _, sum := range sums {
		var mine []partitionView
		for _, p := range parts {
			if p.FeatureView == sum.Name {
				mine = append(mine, p)
			}
		}
		if len(mine) != s.opts.Cluster.Partitions() {
			return fmt.Errorf("%w: %d partitions answered the figures of feature view %q, of %d (the nodes' repos differ?)",
				cluster.ErrNoOwner, len(mine), sum.Name, s.opts.Cluster.Partitions())
		}
		combineFigures(sum, mine)
	}
	return nil
}

// combineFigures sets sum's figures to the partitions'.
func combineFigures(sum *engine.Summary, parts []partitionView) {
	sum.OnlineRecords, sum.OfflineRecords, sum.Freshness, sum.Keys, sum.Storage = 0, 0, time.Time{}, 0, engine.ViewStorage{}
	for _, p := range parts {
		sum.OnlineRecords += p.OnlineRecords
		sum.OfflineRecords += p.OfflineRecords
		if p.Freshness.After(sum.Freshness) {
			sum.Freshness = p.Freshness
		}
		sum.Keys += p.Keys
		sum.Storage.Segments += p.Segments
		sum.Storage.SegmentBytes += p.SegmentBytes
		sum.Storage.MemtableRecords += p.MemtableRecords
		sum.Storage.MemtableBytes += p.MemtableBytes
	}
}

// clusterRate sums the partitions' ingest rates of the minutes of pts,
// the catalog's points (whose counts are zeros).
func (s *Server) clusterRate(r *http.Request, ws, view string, pts []engine.RatePoint) error {
	parts, err := s.gatherViews(r, ws, partitionViewsRequest{FeatureView: view, Minutes: len(pts), End: pts[len(pts)-1].Start})
	if err != nil {
		return err
	}
	if len(parts) != s.opts.Cluster.Partitions() {
		return fmt.Errorf("%w: %d partitions answered, of %d", cluster.ErrNoOwner, len(parts), s.opts.Cluster.Partitions())
	}
	for _, p := range parts {
		if len(p.Rate) != len(pts) {
			return fmt.Errorf("%w: partition %d answered %d minutes, not %d", cluster.ErrNoOwner, p.Partition, len(p.Rate), len(pts))
		}
		for i, n := range p.Rate {
			pts[i].Records += n
		}
	}
	return nil
}
