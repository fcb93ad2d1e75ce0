package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/featurelog/featurelog/cluster"
	"github.com/featurelog/featurelog/engine"
)

// Cluster mode (SPEC §10). With Options.Cluster set, the Server's DB is
// the node's catalog (the repo, no records): listing reads it, and
// ingest and reads go through the cluster node.
//
//	POST /ingest         validated here, produced to Kafka in one transaction;
//	                     200 adds "kafkaPositions": [{"partition": 3, "offset": "17"}, ...].
//	                     With an Idempotency-Key: served by the owner of the
//	                     key's partition, here or forwarded once; 503 with
//	                     Retry-After while no node serves it.
//	POST get-features    served by the owner of the key's partition: here, or
//	                     forwarded once (keep-alive) to the owner's advertised URL;
//	                     503 with Retry-After while no node serves the partition.
//	                     "min_positions" (as ingest returned them) waits until
//	                     the owner applied them, at most MinPositionsWait, else 503.
//	POST get-features-batch  rows grouped by owner, one forwarded request per
//	                     owner, answers merged back in row order.
//
//	POST get-features-for-events  split by partition, answered by each
//	                     partition's owner, gathered in spine order
//	                     (cluster_historical.go).
//
//	POST run             mock rows on the catalog; else every partition's
//	                     share, merged (cluster_run.go).
//	GET feature-views/{name}, .../ingest-rate  the catalog's summary with
//	                     the figures of every partition combined
//	                     (cluster_views.go).
//
// Routes not in clusterOnly (output streams among them) answer 501 in
// cluster mode until they are built: answering them from one node's
// partitions would be wrong.

// forwardedHeader marks a request forwarded by another node: its
// receiver serves it or refuses it, and never forwards it again.
const forwardedHeader = "X-Featurelog-Forwarded-By"

// MinPositionsWait bounds how long a read waits for its min_positions.
const MinPositionsWait = 2 * time.Second

// clusterOnly lists the routes cluster mode serves; the others are 501.
var clusterOnly = map[string]bool{
	"ingest": true, "get_features": true, "get_features_batch": true, "get_features_for_events": true, "feature_service_metadata": true,
	"workspaces": true, "feature_views": true, "feature_view": true, "feature_services": true, "feature_service": true,
	"service_accounts": true, "assign_role": true, "plan": true, "apply": true,
	"jobs": true, "job": true, "cancel_job": true, "delete_keys": true, "materialize": true, "partition_jobs": true, "run": true, "ingest_rate": true, "partition_views": true, "healthz": true, "readyz": true, "openapi": true,
}

// notInCluster answers a route cluster mode does not serve yet.
func notInCluster(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeServingError(w, http.StatusNotImplemented, grpcUnimplemented, fmt.Sprintf(
			"%s %s is not available in cluster mode yet: it needs every partition, and this node holds only its own "+
				"(run it against a single node, or see DESIGN.md, \"Cluster mode\")", r.Method, r.URL.Path))
	}
}

// clusterIngest produces an ingest request to Kafka. A request with an
// Idempotency-Key is served by the node serving the key's partition
// (cluster.KeyPartition): here, or forwarded once to it; 503 with
// Retry-After while no node serves that partition.
func (s *Server) clusterIngest(w http.ResponseWriter, r *http.Request, body []byte, key string, authorize engine.Authorizer) {
	node := s.opts.Cluster
	if key != "" {
		q, dryRun, err := node.KeyPartitionOf(body, key, authorize)
		if err != nil {
			s.writeIngestError(w, err)
			return
		}
		if !dryRun { // a dry run ignores its key: served here
			route, err := node.RouteOf(q)
			if err == nil && !route.Self && r.Header.Get(forwardedHeader) != "" {
				err = fmt.Errorf("%w: this node does not serve partition %d, of the Idempotency-Key (the node that forwarded the request thought so; membership is changing)", cluster.ErrNoOwner, q)
			}
			switch {
			case err != nil:
				writeIngestUnavailable(w, err)
				return
			case !route.Self:
				s.forwardOr(w, r, route, body, writeIngestUnavailable)
				return
			}
		}
	}
	resp, pos, err := node.IngestWithKey(r.Context(), body, key, authorize)
	if errors.Is(err, cluster.ErrUnavailable) {
		s.opts.Logger.Error("ingest failed", "err", err)
	}
	if errors.Is(err, cluster.ErrUnavailable) || errors.Is(err, cluster.ErrNotOwner) || errors.Is(err, cluster.ErrCatchingUp) {
		writeIngestUnavailable(w, err)
		return
	}
	if err != nil {
		s.writeIngestError(w, err)
		return
	}
	if resp.Replayed {
		w.Header().Set(replayedHeader, "true")
	}
	dst := appendIngestResponse(make([]byte, 0, 256), resp)
	dst = append(dst[:len(dst)-1], `,"kafkaPositions":[`...)
	for i, p := range pos {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = fmt.Appendf(dst, `{"partition":%d,"offset":"%d"}`, p.Partition, p.Offset)
	}
	writeJSONBytes(w, http.StatusOK, append(dst, "]}"...))
}

// writeIngestUnavailable answers an ingest request 503, to be retried.
func writeIngestUnavailable(w http.ResponseWriter, err error) {
	w.Header().Set("Retry-After", "1")
	writeRequestError(w, http.StatusServiceUnavailable, "Unavailable", err.Error())
}

// readMinPositions decodes params.min_positions: [{"partition": 3,
// "offset": "17"}, ...] (offset a string or an integer).
func readMinPositions(d *jsontext.Decoder) ([]engine.Position, error) {
	var raw []struct {
		Partition *int32         `json:"partition"`
		Offset    jsontext.Value `json:"offset"`
	}
	val, err := d.ReadValue()
	if err != nil {
		return nil, jsonError(err)
	}
	if err := json.Unmarshal(val, &raw, json.RejectUnknownMembers(true)); err != nil {
		return nil, paramError("params.min_positions must be a list of {\"partition\": N, \"offset\": \"M\"} as ingest returns them: %v", err)
	}
	out := make([]engine.Position, len(raw))
	for i, p := range raw {
		off, err := strconv.ParseInt(strings.Trim(string(p.Offset), `"`), 10, 64)
		if p.Partition == nil || *p.Partition < 0 || err != nil || off < 0 {
			return nil, paramError("params.min_positions[%d] needs a partition and an offset, both non-negative, as ingest returns them", i)
		}
		out[i] = engine.Position{Partition: *p.Partition, Offset: off}
	}
	return out, nil
}

// routeRead finds the DB serving the key of joinKeys. It returns the DB
// when this node serves it (after waiting for p's min_positions of its
// partition); otherwise it has forwarded the request or written the
// error, and returns nil.
func (s *Server) routeRead(w http.ResponseWriter, r *http.Request, p *servingParams, joinKeys map[string]any) *engine.DB {
	part, err := s.partitionOf(p, joinKeys)
	if err != nil {
		s.writeEngineError(w, err)
		return nil
	}
	route, db, err := s.route(r, p, part)
	switch {
	case err != nil:
		writeUnavailable(w, err)
	case !route.Self:
		s.forward(w, r, route, p.raw)
	}
	return db
}

// route says where partition part is read: on another node (Self
// false), or here, returning its DB once it applied the read's
// min_positions. A forwarded request is never forwarded again, so a
// node that does not serve part refuses it.
func (s *Server) route(r *http.Request, p *servingParams, part int32) (cluster.Route, *engine.DB, error) {
	node := s.opts.Cluster
	route, err := node.RouteOf(part)
	if err != nil {
		return route, nil, err
	}
	if !route.Self {
		if r.Header.Get(forwardedHeader) != "" {
			return route, nil, fmt.Errorf("%w: this node does not serve partition %d (the node that forwarded the request thought so; membership is changing)", cluster.ErrNoOwner, part)
		}
		return route, nil, nil
	}
	db, err := node.Owner(part)
	if err == nil {
		err = s.waitPositions(r.Context(), p.minPositions, part)
	}
	if err != nil {
		return route, nil, err
	}
	return route, db, nil
}

func (s *Server) partitionOf(p *servingParams, joinKeys map[string]any) (int32, error) {
	key, err := s.db.ServiceKey(p.workspace, p.service, joinKeys)
	if err != nil {
		return 0, err
	}
	return int32(cluster.PartitionOf(key, s.opts.Cluster.Partitions())), nil
}

// waitPositions waits until this node applied the positions of part.
func (s *Server) waitPositions(ctx context.Context, positions []engine.Position, part int32) error {
	var mine []engine.Position
	for _, p := range positions {
		if p.Partition == part {
			mine = append(mine, p)
		}
	}
	if len(mine) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, MinPositionsWait)
	defer cancel()
	return s.opts.Cluster.WaitApplied(ctx, mine)
}

// writeClusterError answers a failed request through Kafka: 503 with
// Retry-After when Kafka did not take it (cluster.ErrUnavailable), else
// as the engine's error.
func (s *Server) writeClusterError(w http.ResponseWriter, err error) {
	if errors.Is(err, cluster.ErrUnavailable) {
		writeUnavailable(w, err)
		return
	}
	s.writeEngineError(w, err)
}

func writeUnavailable(w http.ResponseWriter, err error) {
	w.Header().Set("Retry-After", "1")
	writeServingError(w, http.StatusServiceUnavailable, grpcUnavailable, err.Error()+"; retry")
}

// forward sends the request to the node that serves it, and its answer
// back as it is.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, route cluster.Route, body []byte) {
	s.forwardOr(w, r, route, body, writeUnavailable)
}

// forwardOr is forward, answering a failure to reach the node with
// unavailable (the route's error shape).
func (s *Server) forwardOr(w http.ResponseWriter, r *http.Request, route cluster.Route, body []byte, unavailable func(http.ResponseWriter, error)) {
	status, hdr, resp, err := s.forwardRaw(r, route, r.URL.Path, body)
	if err != nil {
		unavailable(w, err)
		return
	}
	for _, h := range []string{"Content-Type", "Retry-After", replayedHeader} {
		if v := hdr.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(status)
	w.Write(resp)
}

func (s *Server) forwardRaw(r *http.Request, route cluster.Route, path string, body []byte) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, strings.TrimSuffix(route.URL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if a := r.Header.Get("Authorization"); a != "" {
		req.Header.Set("Authorization", a)
	}
	if k := r.Header.Get(idempotencyHeader); k != "" { // ingest's, which the owner of its partition serves
		req.Header.Set(idempotencyHeader, k)
	}
	req.Header.Set(forwardedHeader, s.opts.Cluster.ID())
	resp, err := s.forwarder.Do(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("forwarding to node %s at %s failed: %w", route.Node, route.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("reading the answer of node %s at %s: %w", route.Node, route.URL, err)
	}
	return resp.StatusCode, resp.Header, b, nil
}

// clusterBatch serves get-features-batch: the rows are grouped by the
// node serving their partition, each group is read here or forwarded as
// one batch, and the answers are merged back in row order.
func (s *Server) clusterBatch(w http.ResponseWriter, r *http.Request, p *servingParams) {
	type group struct {
		route cluster.Route
		db    *engine.DB // the partition's DB when it is read here
		rows  []int
	}
	var groups []*group
	byNode := map[string]*group{}
	for i, jk := range p.requestData {
		part, err := s.partitionOf(p, jk)
		if err != nil {
			s.writeEngineError(w, fmt.Errorf("request_data[%d]: %w", i, err))
			return
		}
		route, db, err := s.route(r, p, part)
		if db != nil {
			route.Node = fmt.Sprintf("%s/%d", route.Node, part) // one DB per partition
		}
		if err != nil {
			writeUnavailable(w, fmt.Errorf("request_data[%d]: %w", i, err))
			return
		}
		g := byNode[route.Node]
		if g == nil {
			g = &group{route: route, db: db}
			byNode[route.Node] = g
			groups = append(groups, g)
		}
		g.rows = append(g.rows, i)
	}
	// The groups are read at once, each here or on its node.
	answers := make([]batchAnswer, len(groups))
	statuses, bodies, errs := make([]int, len(groups)), make([][]byte, len(groups)), make([]error, len(groups))
	var wg sync.WaitGroup
	for gi, g := range groups {
		rows := make([]map[string]any, len(g.rows))
		for k, i := range g.rows {
			rows[k] = p.requestData[i]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[gi], bodies[gi], errs[gi] = s.batchGroup(r, p, g.route, g.db, rows)
			if errs[gi] == nil && statuses[gi] == http.StatusOK {
				if err := json.Unmarshal(bodies[gi], &answers[gi]); err != nil || len(answers[gi].Result) != len(rows) {
					errs[gi] = fmt.Errorf("node %s answered a batch of %d rows with %d results (%v)", g.route.Node, len(rows), len(answers[gi].Result), err)
				}
			}
		}()
	}
	wg.Wait()
	for gi := range groups {
		switch {
		case errs[gi] != nil:
			writeUnavailable(w, errs[gi])
			return
		case statuses[gi] != http.StatusOK:
			if statuses[gi] == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", "1")
			}
			writeJSONBytes(w, statuses[gi], bodies[gi]) // the group's error, as its node stated it
			return
		}
	}
	order := make([][2]int, len(p.requestData)) // row → (group, index in group)
	for gi, g := range groups {
		for k, i := range g.rows {
			order[i] = [2]int{gi, k}
		}
	}
	writeJSONBytes(w, http.StatusOK, mergeBatch(answers, order))
}

// batchGroup reads rows from db here, or on their node, as a batch
// answer.
func (s *Server) batchGroup(r *http.Request, p *servingParams, route cluster.Route, db *engine.DB, rows []map[string]any) (int, []byte, error) {
	if db != nil {
		rec := httptest.NewRecorder()
		sub := *p
		sub.requestData = rows
		s.writeBatch(rec, db, &sub)
		return rec.Code, rec.Body.Bytes(), nil
	}
	data := make([]map[string]any, len(rows))
	for i, r := range rows {
		data[i] = map[string]any{"join_key_map": r}
	}
	params := map[string]any{
		"workspace_name": p.workspace, "feature_service_name": p.service, "request_data": data,
		"metadata_options": map[string]bool{"include_names": p.meta.names, "include_data_types": p.meta.dataTypes,
			"include_effective_times": p.meta.effectiveTimes, "include_serving_status": p.meta.status}}
	if !p.asOf.IsZero() { // else each node reads at its own now: their clocks differ
		params["as_of"] = p.asOf.UTC().Format(time.RFC3339Nano)
	}
	if len(p.minPositions) > 0 {
		params["min_positions"] = positionsParam(p.minPositions)
	}
	body, err := json.Marshal(map[string]any{"params": params})
	if err != nil {
		return 0, nil, err
	}
	status, _, resp, err := s.forwardRaw(r, route, "/api/v1/feature-service/get-features-batch", body)
	return status, resp, err
}

func positionsParam(ps []engine.Position) []map[string]any {
	out := make([]map[string]any, len(ps))
	for i, p := range ps {
		out[i] = map[string]any{"partition": p.Partition, "offset": strconv.FormatInt(p.Offset, 10)}
	}
	return out
}

// batchAnswer is a get-features-batch answer, kept raw per row.
type batchAnswer struct {
	Result   []jsontext.Value `json:"result"`
	Metadata *struct {
		Features []map[string]jsontext.Value `json:"features"`
	} `json:"metadata,omitempty"`
}

// mergeBatch merges the groups' answers into one, row i being
// answers[order[i][0]]'s row order[i][1]. Per-row metadata arrays
// (effectiveTime, status) are merged the same way; the rest of the
// metadata is the same in every answer.
func mergeBatch(answers []batchAnswer, order [][2]int) []byte {
	dst := []byte(`{"result":[`)
	for i, o := range order {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, answers[o[0]].Result[o[1]]...)
	}
	dst = append(dst, ']')
	if len(answers) > 0 && answers[0].Metadata != nil {
		dst = append(dst, `,"metadata":{"features":[`...)
		for j, f := range answers[0].Metadata.Features {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '{')
			for k, name := range slices.Sorted(maps.Keys(f)) {
				if k > 0 {
					dst = append(dst, ',')
				}
				dst = appendString(dst, name)
				dst = append(dst, ':')
				if name != "effectiveTime" && name != "status" {
					dst = append(dst, f[name]...)
					continue
				}
				per := make([][]jsontext.Value, len(answers))
				for gi := range answers {
					json.Unmarshal(answers[gi].Metadata.Features[j][name], &per[gi])
				}
				dst = append(dst, '[')
				for i, o := range order {
					if i > 0 {
						dst = append(dst, ',')
					}
					dst = append(dst, per[o[0]][o[1]]...)
				}
				dst = append(dst, ']')
			}
			dst = append(dst, '}')
		}
		dst = append(dst, "]}"...)
	}
	return append(dst, '}')
}

// clusterReady reports whether the node is in the consumer group and
// serves every partition it owns.
func (s *Server) clusterReady() error {
	node := s.opts.Cluster
	if !node.Joined() {
		return errors.New("the node has not joined the consumer group yet")
	}
	for _, p := range node.Owned() {
		if _, err := node.Owner(p); err != nil {
			return fmt.Errorf("partition %d: %w", p, err)
		}
	}
	return nil
}

// gather asks every node that serves a partition for its items of the
// partitions it serves — this node by local, the others by a POST of req
// to path, forwarded once, whose answers decode gives — and returns the
// items of every partition, each from the node its route names (a node
// that still thinks it serves a partition it lost is not counted twice),
// with the node serving each partition. It fails, wrapping
// cluster.ErrNoOwner, when a partition has no owner, an owner cannot be
// asked, or a partition is not served by the node its route names: the
// callers answer the whole or nothing.
func gather[T any](s *Server, r *http.Request, path string, req any,
	local func() (node string, serving []int32, items []T, err error),
	decode func([]byte) (node string, serving []int32, items []T, err error),
	partition func(T) int32) ([]T, map[int32]string, error) {
	node := s.opts.Cluster
	owners := map[int32]string{}
	routes := map[string]cluster.Route{} // the other nodes to ask, by id
	self := false
	for p := range int32(node.Partitions()) {
		rt, err := node.RouteOf(p)
		if err != nil {
			return nil, nil, err
		}
		owners[p] = rt.Node
		if rt.Self {
			self = true
		} else {
			routes[rt.Node] = rt
		}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, nil, err
	}
	type answer struct {
		node    string
		serving []int32
		items   []T
	}
	var (
		mu      sync.Mutex
		answers []answer
		errs    []error
		wg      sync.WaitGroup
	)
	add := func(node string, serving []int32, items []T, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, err)
			return
		}
		answers = append(answers, answer{node, serving, items})
	}
	if self {
		wg.Go(func() { add(local()) })
	}
	for _, rt := range routes {
		wg.Go(func() {
			status, _, b, err := s.forwardRaw(r, rt, path, body)
			switch {
			case err != nil:
				add("", nil, nil, err)
			case status != http.StatusOK:
				add("", nil, nil, fmt.Errorf("node %s answered %d: %s", rt.Node, status, strings.TrimSpace(string(b))))
			default:
				add(decode(b))
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, nil, fmt.Errorf("%w: %v", cluster.ErrNoOwner, errors.Join(errs...))
	}
	served := map[int32]bool{}
	var out []T
	for _, a := range answers {
		for _, p := range a.serving {
			if owners[p] == a.node {
				served[p] = true
			}
		}
		for _, it := range a.items {
			if owners[partition(it)] == a.node {
				out = append(out, it)
			}
		}
	}
	for p, owner := range owners {
		if !served[p] {
			return nil, nil, fmt.Errorf("%w (partition %d: node %s does not serve it now)", cluster.ErrNoOwner, p, owner)
		}
	}
	return out, owners, nil
}
