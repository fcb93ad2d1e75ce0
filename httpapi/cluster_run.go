package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/featurelog/featurelog/engine"
)

// Run in cluster mode (SPEC §6 "run", §10).
//
// The node a run request reaches checks it on its catalog exactly as a
// single node does (engine.DB.PlanRun: the view, the level, the times,
// the mock rows), so that a bad request gets a single node's status and
// message. With mock rows for the view's source the run reads nothing
// but the request: the catalog answers it, here. Otherwise every
// partition's owner runs the view over its partition's rows (its log and
// the rows of the source's batch files whose key it owns), here on the
// partition's DB or by one sub-request per partition: the same route,
// marked with forwardedHeader and partsHeader naming the partition, which
// its receiver answers from that partition only, never forwarding it
// again. The answers are merged as they stream:
//
//   - partial and full: each partition answers by entity key, a key's
//     rows together, and a key lives in one partition, so the rows are
//     merged by entity key: exactly a single node's rows, in its order.
//   - disabled: a single node answers in input order, its log's order
//     then its batch files'. No node knows the order in which records of
//     different partitions were ingested, so the cluster answers the
//     partitions one after the other, in partition order, each in its
//     own input order (log, then batch files). The rows are a single
//     node's; the rows of one key come in a single node's order.
//
// Every partition is routed, and its answer begun, before anything is
// written: one without an owner, not caught up or unreachable is a 503
// with Retry-After. An owner that fails once rows were sent ends the
// answer with the error line of a failed stream, as a single node ends
// an answer that fails late.

// clusterRun serves run in cluster mode.
func (s *Server) clusterRun(r *http.Request, st *stream, ws, view string, req *engine.RunRequest) error {
	only, err := onlyParts(r)
	if err != nil {
		return err
	}
	if only != nil {
		return s.runPartition(r, st, ws, view, req, only)
	}
	plan, err := s.db.PlanRun(ws, view, req)
	if err != nil {
		return err
	}
	if plan.Mock {
		return s.db.Run(r.Context(), ws, view, req, st)
	}
	parts := make([]int32, s.opts.Cluster.Partitions())
	for p := range parts {
		parts[p] = int32(p)
	}
	groups, err := s.routeParts(r, nil, parts, &histRoute{})
	if err != nil {
		return err
	}
	slices.SortFunc(groups, func(a, b *partGroup) int { return int(a.part - b.part) })
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	header := string(appendColumns(nil, plan.Columns))
	streams := make([]*rangeStream, len(groups))
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for gi, g := range groups {
		wg.Go(func() {
			if g.db != nil {
				streams[gi], errs[gi] = s.localRows(ctx, header, func(ctx context.Context, sink engine.HistoricalSink) error {
					return g.db.Run(ctx, ws, view, req, sink)
				})
			} else {
				streams[gi], errs[gi] = s.remoteRun(ctx, r, g, ws, view, req, header, len(plan.Columns))
			}
			if errs[gi] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	defer func() {
		for _, rs := range streams {
			if rs != nil {
				rs.close()
			}
		}
	}()
	if err := firstError(errs, ctx); err != nil {
		return err
	}
	st.Begin(plan.Columns)
	m := &rangeMerge{st: st}
	if plan.KeyColumns == nil {
		for _, rs := range streams {
			if err := m.all(rs); err != nil {
				return err
			}
		}
		return nil
	}
	return m.byKey(streams, func(row []byte) (string, error) { return runRowKey(plan, row) })
}

// runPartition answers a forwarded run sub-request: the run of the one
// partition it names, on its DB here.
func (s *Server) runPartition(r *http.Request, st *stream, ws, view string, req *engine.RunRequest, only map[int32]bool) error {
	if len(only) != 1 {
		return paramError("header %s of a run sub-request names one partition, not %d", partsHeader, len(only))
	}
	var part int32
	for p := range only {
		part = p
	}
	_, db, err := s.route(r, &servingParams{}, part)
	if err != nil {
		return &unavailableError{fmt.Errorf("partition %d: %w", part, err)}
	}
	return db.Run(r.Context(), ws, view, req, st)
}

// remoteRun asks the node serving group g's partition for its run.
func (s *Server) remoteRun(ctx context.Context, r *http.Request, g *partGroup, ws, view string, req *engine.RunRequest, header string, n int) (*rangeStream, error) {
	b := appendString([]byte(`{"start_time":`), req.Start.UTC().Format(time.RFC3339Nano))
	b = appendString(append(b, `,"end_time":`...), req.End.UTC().Format(time.RFC3339Nano))
	b = appendString(append(b, `,"aggregation_level":`...), string(req.Level))
	b = append(b, '}')
	ctx, cancel := context.WithCancel(ctx)
	path := "/api/v1/workspaces/" + url.PathEscape(ws) + "/feature-views/" + url.PathEscape(view) + "/run"
	resp, err := s.subRequestTo(ctx, r, g, path, "application/json", bytes.NewReader(b), header)
	if err != nil {
		cancel()
		return nil, err
	}
	return s.remoteRows(resp, g, n, cancel), nil
}

// runRowKey returns the entity key of a keyed run row.
func runRowKey(plan *engine.RunPlan, row []byte) (string, error) {
	vals, err := lineMembers(row)
	if err != nil {
		return "", err
	}
	jk := make(map[string]any, len(plan.KeyColumns))
	for _, i := range plan.KeyColumns {
		if i >= len(vals) {
			return "", fmt.Errorf("a row of %d columns", len(vals))
		}
		jk[plan.Columns[i].Name] = engineValue(vals[i])
	}
	return plan.EntityKey(jk)
}

// all writes every row of rs.
func (m *rangeMerge) all(rs *rangeStream) error {
	for {
		row, err := rs.peek()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		rs.take()
		if err := m.write(row); err != nil {
			return err
		}
	}
}

// byKey writes the rows of every stream, each in the order of the keys
// key gives its rows, merged in that order: a row with the least key
// first, of the first stream among equals.
func (m *rangeMerge) byKey(streams []*rangeStream, key func([]byte) (string, error)) error {
	keys := make([]*string, len(streams)) // each stream's next row's key; nil: to read
	for {
		best := -1
		for i, rs := range streams {
			if keys[i] == nil {
				row, err := rs.peek()
				if err == io.EOF {
					continue
				}
				if err != nil {
					return err
				}
				k, err := key(row)
				if err != nil {
					return &unavailableError{fmt.Errorf("node %s answered a row without a valid key: %w", rs.node, err)}
				}
				keys[i] = &k
			}
			if best < 0 || *keys[i] < *keys[best] {
				best = i
			}
		}
		if best < 0 {
			return nil
		}
		row, _ := streams[best].peek()
		streams[best].take()
		keys[best] = nil
		if err := m.write(row); err != nil {
			return err
		}
	}
}
