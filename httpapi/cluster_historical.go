package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/featurelog/featurelog/cluster"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/schema"
	"github.com/featurelog/featurelog/tabread"
	"github.com/featurelog/featurelog/tabular"
)

// Historical joins in cluster mode (SPEC §10: "historical joins are split
// by partition and gathered back in spine order").
//
// The node that receives get-features-for-events validates the request
// on its catalog exactly as a single node would (engine.SplitSpine,
// engine.PlanRange), so that a bad row or entity is refused with a single
// node's status and message, naming the row of the whole spine. It then
// splits the rows by the partition of their join key (the function reads
// use), and each partition's rows are answered by the node that serves
// it: here, on the partition's DB, or by one sub-request to its owner,
// marked with forwardedHeader and partsHeader, which its receiver answers
// from those partitions only, never forwarding it again (503 when it no
// longer serves one of them). The answers are gathered back in order.
//
// Spine mode reads the spine in the engine's chunks (ChunkRows): each
// chunk is validated whole, its partitions' answers are gathered whole,
// then its rows are written in spine order. The node holds one chunk of
// the spine and its answer's feature values; a JSON spine's answer is
// held to the end, as a single node holds it until the spine was read,
// so that it fails whole. A sub-request sends the partition's rows as an
// NDJSON spine of the join-key and time columns only (their raw JSON, the
// time column named), since the spine's other columns are not needed to
// answer and are repeated here from the request.
//
// Range mode with entities sends each partition its entities, and writes
// each entity's rows (from _valid_from = start_time to _valid_to =
// end_time) in the request's entity order; without entities, every
// partition reports the keys it holds, and their answers, each in entity
// key order, are merged in that order, as a single node lists its keys.
// Range answers stream: the node holds a few rows per partition.
//
// Every partition the request needs is routed before anything is
// answered: one without an owner (or not caught up), an owner that
// cannot be reached or refuses, is a 503 with Retry-After. An owner that
// fails once rows were sent (a large NDJSON spine, a range) ends the
// answer with the error line of a failed stream (code 14), as a single
// node ends an answer that fails late: never a silently partial answer.

// partsHeader lists, on a forwarded historical sub-request, the
// partitions it is for; its receiver answers from those only.
const partsHeader = "X-Featurelog-Partitions"

// unavailableError is a partition that cannot answer now (503).
type unavailableError struct{ err error }

func (e *unavailableError) Error() string { return e.err.Error() + "; retry" }
func (e *unavailableError) Unwrap() error { return e.err }

// nodeError is a sub-request's error answer, passed on as it was stated.
type nodeError struct {
	status, code int
	msg          string
}

func (e *nodeError) Error() string { return e.msg }

// newNodeError reads an error answer {"code", "error", "message"}.
func newNodeError(status int, body []byte, route cluster.Route) error {
	var m struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(body, &m); err != nil || m.Message == "" {
		return &unavailableError{fmt.Errorf("node %s answered %d: %.200q", route.Node, status, body)}
	}
	if status == http.StatusServiceUnavailable {
		return &unavailableError{errors.New(strings.TrimSuffix(m.Message, "; retry"))}
	}
	return &nodeError{status: status, code: m.Code, msg: m.Message}
}

// histRoute is what routes a historical request's partitions.
type histRoute struct {
	// only: the partitions a forwarded sub-request is for (nil: any).
	only map[int32]bool
	// min: the request's min_positions; a partition read here waits for
	// its own, one read elsewhere passes them on.
	min []engine.Position
}

// positionsOf returns the positions of partition part.
func (rt *histRoute) positionsOf(part int32) []engine.Position {
	var out []engine.Position
	for _, p := range rt.min {
		if p.Partition == part {
			out = append(out, p)
		}
	}
	return out
}

// onlyParts returns the partitions a forwarded sub-request is for (nil:
// any, for a request from a client).
func onlyParts(r *http.Request) (map[int32]bool, error) {
	v := r.Header.Get(partsHeader)
	if v == "" || r.Header.Get(forwardedHeader) == "" {
		return nil, nil
	}
	out := map[int32]bool{}
	for f := range strings.SplitSeq(v, ",") {
		p, err := strconv.ParseInt(f, 10, 32)
		if err != nil {
			return nil, paramError("header %s: %q is not a partition list", partsHeader, v)
		}
		out[int32(p)] = true
	}
	return out, nil
}

// partGroup is the rows (spine mode) or entities (range mode) of one
// partition, and where they are answered.
type partGroup struct {
	part  int32
	route cluster.Route
	db    *engine.DB // the partition's DB when answered here
	rows  []int
}

// routeParts routes every partition of keys (or parts, when keys is
// nil), in order of first appearance, failing if one cannot be read.
func (s *Server) routeParts(r *http.Request, keys []string, parts []int32, rt *histRoute) ([]*partGroup, error) {
	n := s.opts.Cluster.Partitions()
	var groups []*partGroup
	byPart := map[int32]*partGroup{}
	add := func(p int32) *partGroup {
		g := byPart[p]
		if g == nil {
			g = &partGroup{part: p}
			byPart[p] = g
			groups = append(groups, g)
		}
		return g
	}
	for i, k := range keys {
		g := add(int32(cluster.PartitionOf([]byte(k), n)))
		g.rows = append(g.rows, i)
	}
	for _, p := range parts {
		add(p)
	}
	for _, g := range groups {
		if rt.only != nil && !rt.only[g.part] {
			return nil, &unavailableError{fmt.Errorf("%w: partition %d is not one of the partitions this sub-request was forwarded for (the nodes' repos differ?)", cluster.ErrNoOwner, g.part)}
		}
		route, db, err := s.route(r, &servingParams{minPositions: rt.min}, g.part)
		if err != nil {
			return nil, &unavailableError{fmt.Errorf("partition %d: %w", g.part, err)}
		}
		g.route, g.db = route, db
	}
	return groups, nil
}

// clusterHistorical serves get-features-for-events in cluster mode.
func (s *Server) clusterHistorical(w http.ResponseWriter, r *http.Request, rc *http.ResponseController, p *historicalParams, req *engine.HistoricalRequest) {
	only, err := onlyParts(r)
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	rt := &histRoute{only: only, min: p.minPositions}
	if p.rangeMode() {
		st := &stream{w: w, rc: rc}
		st.finish(r.Context(), s, s.clusterRange(r, req, st, rt))
		return
	}
	if isNDJSON(r) {
		rc.EnableFullDuplex() // as spineJoin
		defer r.Body.Close()
	}
	sp, err := s.openSpine(p, w, r, rc)
	if err != nil {
		s.writeHistoricalError(w, err, nil)
		return
	}
	st := &stream{w: w, rc: rc, spine: sp}
	st.finish(r.Context(), s, s.clusterSpine(r, req, sp, st, rt))
}

// clusterSpine answers spine mode, chunk by chunk.
func (s *Server) clusterSpine(r *http.Request, req *engine.HistoricalRequest, sp *httpSpine, st *stream, rt *histRoute) error {
	split, err := s.db.SplitSpine(req, sp)
	if err != nil {
		return err
	}
	hold := !sp.lines // a JSON spine's answer is sent whole
	var cols []engine.HistoricalColumn
	var sub *subSpine
	for {
		rows, keys, err := split.Next(r.Context())
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if cols == nil {
			cols = split.Columns()
			st.Begin(cols)
			sub = newSubSpine(sp.cols, split.JoinKeys(), split.TimestampKey(), cols[len(sp.cols):])
		}
		raws := make([]spineRow, len(rows))
		for i := range raws {
			raws[i], _ = sp.pop()
		}
		feats, err := s.joinChunk(r, req, sub, rows, raws, keys, rt)
		if err != nil {
			return err
		}
		for i, row := range raws {
			b := append(st.buf, '{')
			for c := range sp.cols {
				b = st.member(b, c)
				if c < len(row.raw) && row.raw[c] != nil {
					b = append(b, row.raw[c]...)
				} else {
					b = append(b, "null"...)
				}
			}
			st.buf = append(append(b, feats[i]...), '}', '\n')
			if !hold && (len(st.buf) >= flushBytes || time.Since(st.last) >= flushEvery) { // as stream.Row
				if err := st.flush(); err != nil {
					return err
				}
			}
		}
	}
}

// subSpine describes the spine a partition answers: the join-key and
// time columns of the request's spine.
type subSpine struct {
	cols    []string // the request's spine columns
	keep    []int    // the columns sent to another node: join keys, then the time
	tsKey   string
	names   [][]byte // each feature's `"name":`
	feats   []engine.HistoricalColumn
	header  string // the Featurelog-Columns a sub-request must answer
	fullHdr string // the Featurelog-Columns of a partition answered here
}

func newSubSpine(cols, joinKeys []string, tsKey string, feats []engine.HistoricalColumn) *subSpine {
	s := &subSpine{cols: cols, tsKey: tsKey, feats: feats}
	for _, name := range append(slices.Clone(joinKeys), tsKey) {
		if i := slices.Index(cols, name); i >= 0 && !slices.Contains(s.keep, i) {
			s.keep = append(s.keep, i)
		}
	}
	var sent, full []engine.HistoricalColumn
	for _, i := range s.keep {
		sent = append(sent, engine.HistoricalColumn{Name: cols[i], Spine: true})
	}
	for _, c := range cols {
		full = append(full, engine.HistoricalColumn{Name: c, Spine: true})
	}
	s.header = string(appendColumns(nil, append(sent, feats...)))
	s.fullHdr = string(appendColumns(nil, append(full, feats...)))
	for _, f := range feats {
		s.names = append(s.names, append(appendString([]byte{','}, f.Name), ':'))
	}
	return s
}

// joinChunk answers a chunk of spine rows, each on its partition, and
// returns each row's features as members: `,"v.f":1,"v.g":"x"`.
func (s *Server) joinChunk(r *http.Request, req *engine.HistoricalRequest, sub *subSpine, rows [][]any, raws []spineRow, keys []string, rt *histRoute) ([][]byte, error) {
	groups, err := s.routeParts(r, keys, nil, rt)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	out := make([][]byte, len(rows))
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for gi, g := range groups {
		wg.Go(func() {
			var feats [][]byte
			if g.db != nil {
				feats, errs[gi] = s.localSpine(ctx, g.db, req, sub, rows, g.rows)
			} else {
				feats, errs[gi] = s.remoteSpine(ctx, r, g, rt, req, sub, raws)
			}
			if errs[gi] != nil {
				cancel() // the others' work is of no use
				return
			}
			for k, i := range g.rows {
				out[i] = feats[k]
			}
		})
	}
	wg.Wait()
	if err := firstError(errs, ctx); err != nil {
		return nil, err
	}
	return out, nil
}

// firstError returns the first error that is not the cancellation of
// the others after it, else the first.
func firstError(errs []error, ctx context.Context) error {
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// localSpine answers the rows idx of a chunk on db, the DB of a
// partition this node serves.
func (s *Server) localSpine(ctx context.Context, db *engine.DB, req *engine.HistoricalRequest, sub *subSpine, rows [][]any, idx []int) ([][]byte, error) {
	r := *req
	r.TimestampKey = sub.tsKey // as found in the whole spine's first chunk
	r.Progress = nil
	sink := &featureSink{sub: sub}
	k := 0
	sp := &rowsSpine{cols: sub.cols, next: func() ([]any, error) {
		if k == len(idx) {
			return nil, io.EOF
		}
		k++
		return rows[idx[k-1]], nil
	}}
	if err := db.GetFeaturesForEvents(ctx, &r, sp, sink); err != nil {
		return nil, err
	}
	if len(sink.out) != len(idx) {
		return nil, fmt.Errorf("BUG: httpapi: partition answered %d rows for %d", len(sink.out), len(idx))
	}
	return sink.out, nil
}

// rowsSpine is an engine.Spine of decoded rows.
type rowsSpine struct {
	cols []string
	next func() ([]any, error)
}

func (s *rowsSpine) Columns() []string    { return s.cols }
func (s *rowsSpine) Next() ([]any, error) { return s.next() }

// featureSink keeps each row's features as members.
type featureSink struct {
	sub *subSpine
	out [][]byte
}

func (f *featureSink) Begin(cols []engine.HistoricalColumn) error {
	if h := string(appendColumns(nil, cols)); h != f.sub.fullHdr {
		return &unavailableError{fmt.Errorf("a partition answers the columns %s, not %s: the repos of this node's partitions and catalog differ", h, f.sub.fullHdr)}
	}
	return nil
}

func (f *featureSink) Row(lead []any, features []schema.Value) error {
	var b []byte
	for j, v := range features {
		b = schema.AppendJSON(append(b, f.sub.names[j]...), v)
	}
	f.out = append(f.out, b)
	return nil
}

// remoteSpine answers the rows of group g on the node that serves them,
// sending the join-key and time columns as an NDJSON spine.
func (s *Server) remoteSpine(ctx context.Context, r *http.Request, g *partGroup, rt *histRoute, req *engine.HistoricalRequest, sub *subSpine, raws []spineRow) ([][]byte, error) {
	var body bytes.Buffer
	for _, i := range g.rows {
		b := []byte{'{'}
		for k, c := range sub.keep {
			if k > 0 {
				b = append(b, ',')
			}
			b = append(appendString(b, sub.cols[c]), ':')
			if raw := raws[i].raw; c < len(raw) && raw[c] != nil {
				b = append(b, raw[c]...)
			} else {
				b = append(b, "null"...)
			}
		}
		body.Write(append(b, '}', '\n'))
	}
	q := url.Values{"workspace_name": {req.Workspace}, "feature_service_name": {req.Service},
		"timestamp_key": {sub.tsKey}, "from_source": {strconv.FormatBool(req.FromSource)}}
	if ps := rt.positionsOf(g.part); len(ps) > 0 {
		var f []string
		for _, p := range ps {
			f = append(f, fmt.Sprintf("%d:%d", p.Partition, p.Offset))
		}
		q.Set("min_positions", strings.Join(f, ","))
	}
	resp, err := s.subRequest(ctx, r, g, "?"+q.Encode(), "application/x-ndjson", &body, sub.header)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := make([][]byte, 0, len(g.rows))
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		line, err := readLine(br, int(s.opts.MaxBodyBytes))
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, &unavailableError{fmt.Errorf("reading the answer of node %s at %s: %w", g.route.Node, g.route.URL, err)}
		}
		members, err := answerRow(line, len(sub.keep)+len(sub.feats), g.route)
		if err != nil {
			return nil, err
		}
		var b []byte
		for j, m := range members[len(sub.keep):] {
			b = append(append(b, sub.names[j]...), m...)
		}
		out = append(out, b)
	}
	if len(out) != len(g.rows) {
		return nil, &unavailableError{fmt.Errorf("node %s answered %d rows for %d", g.route.Node, len(out), len(g.rows))}
	}
	return out, nil
}

// subRequest sends a historical sub-request for group g's partition to
// the node serving it, and returns its answer once it began (200, with
// the columns wantCols), or the error it answered.
func (s *Server) subRequest(ctx context.Context, r *http.Request, g *partGroup, query, contentType string, body io.Reader, wantCols string) (*http.Response, error) {
	return s.subRequestTo(ctx, r, g, "/api/v1/feature-service/get-features-for-events"+query, contentType, body, wantCols)
}

// subRequestTo is subRequest to another route, path with its query.
func (s *Server) subRequestTo(ctx context.Context, r *http.Request, g *partGroup, path, contentType string, body io.Reader, wantCols string) (*http.Response, error) {
	u := strings.TrimSuffix(g.route.URL, "/") + path
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	if a := r.Header.Get("Authorization"); a != "" {
		req.Header.Set("Authorization", a)
	}
	req.Header.Set(forwardedHeader, s.opts.Cluster.ID())
	req.Header.Set(partsHeader, strconv.Itoa(int(g.part)))
	resp, err := s.streamForwarder.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &unavailableError{fmt.Errorf("partition %d: forwarding to node %s at %s failed: %w", g.part, g.route.Node, g.route.URL, err)}
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, newNodeError(resp.StatusCode, b, g.route)
	}
	if h := resp.Header.Get(ColumnsHeader); h != wantCols {
		resp.Body.Close()
		return nil, &unavailableError{fmt.Errorf("node %s answers partition %d with the columns %s, not %s: the nodes' repos differ", g.route.Node, g.part, h, wantCols)}
	}
	return resp, nil
}

// readLine returns the next non-empty line (without its newline), at
// most max bytes; io.EOF at the end.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long := slices.Clone(line)
			for errors.Is(err, bufio.ErrBufferFull) {
				if len(long) > max {
					return nil, fmt.Errorf("a line longer than %d bytes", max)
				}
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err == io.EOF && len(line) > 0 {
			return nil, errors.New("the answer ends inside a line")
		}
		if err != nil {
			return nil, err
		}
		if line = bytes.TrimSpace(line); len(line) > 0 {
			return line, nil
		}
	}
}

// lineMembers returns the values of an answer line's members, in order,
// or the error line's lineErr.
func lineMembers(line []byte) ([][]byte, error) {
	var vals [][]byte
	var names []string
	err := tabread.ReadObject(line, func(name string, raw jsontext.Value) error {
		names = append(names, name)
		vals = append(vals, slices.Clone(raw))
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(names) == 3 && names[0] == "code" && names[1] == "error" && names[2] == "message" {
		return nil, &lineErr{code: vals[0], msg: vals[2]}
	}
	return vals, nil
}

// lineErr is the last line of an answer that failed after it began.
type lineErr struct{ code, msg []byte }

func (e *lineErr) Error() string { return string(e.msg) }

// answerRow returns the values of an answer line of a node, a row of n
// columns, or the error it ended its answer with.
func answerRow(line []byte, n int, route cluster.Route) ([][]byte, error) {
	members, err := lineMembers(line)
	var le *lineErr
	switch {
	case errors.As(err, &le):
		code, _ := strconv.Atoi(string(le.code))
		var msg string
		json.Unmarshal(le.msg, &msg)
		if code == grpcUnavailable {
			return nil, &unavailableError{fmt.Errorf("node %s: %s", route.Node, strings.TrimSuffix(msg, "; retry"))}
		}
		return nil, &nodeError{status: codeStatus(code), code: code, msg: msg}
	case err != nil:
		return nil, &unavailableError{fmt.Errorf("node %s answered a malformed line: %w", route.Node, err)}
	case len(members) != n:
		return nil, &unavailableError{fmt.Errorf("node %s answered a row of %d columns, not %d", route.Node, len(members), n)}
	}
	return members, nil
}

// codeStatus is the HTTP status of a gRPC code, as writeServingError's
// callers pair them.
func codeStatus(code int) int {
	switch code {
	case grpcInvalidArgument:
		return http.StatusBadRequest
	case grpcNotFound:
		return http.StatusNotFound
	case grpcPermissionDenied:
		return http.StatusForbidden
	case grpcUnauthenticated:
		return http.StatusUnauthorized
	case grpcResourceExhausted:
		return http.StatusTooManyRequests
	case grpcUnavailable:
		return http.StatusServiceUnavailable
	case grpcUnimplemented:
		return http.StatusNotImplemented
	case grpcOutOfRange:
		return http.StatusGone
	}
	return http.StatusInternalServerError
}

// clusterRange answers range mode.
func (s *Server) clusterRange(r *http.Request, req *engine.HistoricalRequest, st *stream, rt *histRoute) error {
	plan, err := s.db.PlanRange(req)
	if err != nil {
		return err
	}
	var parts []int32
	if plan.Keys == nil { // every key with data: every partition
		for p := range int32(s.opts.Cluster.Partitions()) {
			if rt.only == nil || rt.only[p] {
				parts = append(parts, p)
			}
		}
	}
	groups, err := s.routeParts(r, plan.Keys, parts, rt)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	header := string(appendColumns(nil, plan.Columns))
	streams := make([]*rangeStream, len(groups))
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for gi, g := range groups {
		wg.Go(func() {
			if g.db != nil {
				streams[gi], errs[gi] = s.localRange(ctx, g, req, header)
			} else {
				streams[gi], errs[gi] = s.remoteRange(ctx, r, g, rt, req, header, len(plan.Columns))
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
	m := &rangeMerge{st: st, plan: plan, start: tabular.AppendJSON(nil, time.Unix(0, req.Start.UnixNano()).UTC()), nkeys: countLead(plan)}
	if plan.Keys != nil {
		byEntity := make([]int, len(plan.Keys))
		for gi, g := range groups {
			for _, e := range g.rows {
				byEntity[e] = gi
			}
		}
		for _, gi := range byEntity {
			if err := m.entity(streams[gi]); err != nil {
				return err
			}
		}
	} else if err := m.mergeByKey(streams); err != nil {
		return err
	}
	for _, rs := range streams {
		if _, err := rs.peek(); err != io.EOF {
			if err == nil {
				err = &unavailableError{fmt.Errorf("node %s answered more rows than its entities'", rs.node)}
			}
			return err
		}
	}
	return nil
}

// countLead is the number of join keys of a range plan's columns.
func countLead(plan *engine.RangePlan) int {
	for i, c := range plan.Columns {
		if c.Name == "_valid_from" {
			return i
		}
	}
	return 0
}

// rangeStream is the answer of one partition to a range request: its
// rows, encoded as a single node encodes them, one at a time.
type rangeStream struct {
	node  string
	next  func() ([]byte, error) // the next row (without its newline), io.EOF after the last
	close func()
	row   []byte
	err   error
	ok    bool // row, err hold the next row
}

func (rs *rangeStream) peek() ([]byte, error) {
	if !rs.ok {
		rs.row, rs.err = rs.next()
		rs.ok = true
	}
	return rs.row, rs.err
}

func (rs *rangeStream) take() { rs.ok = false }

// localRange answers group g here, on its partition's DB, from a
// goroutine that hands the rows over one chunk at a time.
func (s *Server) localRange(ctx context.Context, g *partGroup, req *engine.HistoricalRequest, header string) (*rangeStream, error) {
	r := *req
	r.Progress = nil
	if req.Entities != nil {
		r.Entities = make([]map[string]any, len(g.rows))
		for k, e := range g.rows {
			r.Entities[k] = req.Entities[e]
		}
	}
	return s.localRows(ctx, header, func(ctx context.Context, sink engine.HistoricalSink) error {
		return g.db.GetFeaturesForRange(ctx, &r, sink)
	})
}

// localRows runs answer, a partition's answer here, in a goroutine that
// hands its rows over one chunk at a time (encoded as a single node
// encodes them), once it began with the columns header.
func (s *Server) localRows(ctx context.Context, header string, answer func(context.Context, engine.HistoricalSink) error) (*rangeStream, error) {
	ctx, cancel := context.WithCancel(ctx)
	rows := make(chan [][]byte, 4)
	began := make(chan error, 1)
	done := make(chan error, 1)
	sink := &rangeSink{ctx: ctx, header: header, rows: rows, began: began}
	go func() {
		err := answer(ctx, sink)
		if err == nil {
			err = sink.send()
		}
		if !sink.begun {
			began <- err
		}
		done <- err
		close(rows)
	}()
	if err := <-began; err != nil {
		cancel()
		return nil, err
	}
	var batch [][]byte
	rs := &rangeStream{node: s.opts.Cluster.ID(), close: cancel}
	rs.next = func() ([]byte, error) {
		for len(batch) == 0 {
			b, ok := <-rows
			if !ok {
				if err := <-done; err != nil {
					done <- err
					return nil, err
				}
				done <- nil
				return nil, io.EOF
			}
			batch = b
		}
		row := batch[0]
		batch = batch[1:]
		return row, nil
	}
	return rs, nil
}

// rangeSink encodes a partition's range rows as a single node does, and
// hands them to the merge in batches.
type rangeSink struct {
	ctx    context.Context
	header string
	names  [][]byte
	rows   chan<- [][]byte
	began  chan<- error
	begun  bool
	batch  [][]byte
}

func (rs *rangeSink) Begin(cols []engine.HistoricalColumn) error {
	if h := string(appendColumns(nil, cols)); h != rs.header {
		return &unavailableError{fmt.Errorf("a partition answers the columns %s, not %s: the repos of this node's partitions and catalog differ", h, rs.header)}
	}
	for i, c := range cols {
		n := appendString(nil, c.Name)
		if i > 0 {
			n = append([]byte{','}, n...)
		}
		rs.names = append(rs.names, append(n, ':'))
	}
	rs.begun = true
	rs.began <- nil
	return nil
}

func (rs *rangeSink) Row(lead []any, features []schema.Value) error {
	b := []byte{'{'}
	for i, v := range lead {
		b = tabular.AppendJSON(append(b, rs.names[i]...), v)
	}
	for j, v := range features {
		b = schema.AppendJSON(append(b, rs.names[len(lead)+j]...), v)
	}
	rs.batch = append(rs.batch, append(b, '}'))
	if len(rs.batch) >= 256 {
		return rs.send()
	}
	return nil
}

func (rs *rangeSink) send() error {
	if len(rs.batch) == 0 {
		return nil
	}
	select {
	case rs.rows <- rs.batch:
		rs.batch = nil
		return nil
	case <-rs.ctx.Done():
		return rs.ctx.Err()
	}
}

// remoteRange asks the node serving group g's partition for its rows.
func (s *Server) remoteRange(ctx context.Context, r *http.Request, g *partGroup, rt *histRoute, req *engine.HistoricalRequest, header string, n int) (*rangeStream, error) {
	b := []byte(`{"params":{"workspace_name":`)
	b = appendString(b, req.Workspace)
	b = appendString(append(b, `,"feature_service_name":`...), req.Service)
	b = strconv.AppendBool(append(b, `,"from_source":`...), req.FromSource)
	b = appendString(append(b, `,"start_time":`...), req.Start.UTC().Format(time.RFC3339Nano))
	b = appendString(append(b, `,"end_time":`...), req.End.UTC().Format(time.RFC3339Nano))
	if req.Entities != nil {
		b = append(b, `,"entities":[`...)
		for k, e := range g.rows {
			if k > 0 {
				b = append(b, ',')
			}
			b = appendEntity(b, req.Entities[e])
		}
		b = append(b, ']')
	}
	if ps := rt.positionsOf(g.part); len(ps) > 0 {
		b = append(b, `,"min_positions":[`...)
		for i, p := range ps {
			if i > 0 {
				b = append(b, ',')
			}
			b = fmt.Appendf(b, `{"partition":%d,"offset":"%d"}`, p.Partition, p.Offset)
		}
		b = append(b, ']')
	}
	b = append(b, "}}"...)
	ctx, cancel := context.WithCancel(ctx)
	resp, err := s.subRequest(ctx, r, g, "", "application/json", bytes.NewReader(b), header)
	if err != nil {
		cancel()
		return nil, err
	}
	return s.remoteRows(resp, g, n, cancel), nil
}

// remoteRows reads the rows of a sub-request's answer resp, each of n
// columns; cancel ends the sub-request.
func (s *Server) remoteRows(resp *http.Response, g *partGroup, n int, cancel func()) *rangeStream {
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	rs := &rangeStream{node: g.route.Node, close: func() { cancel(); resp.Body.Close() }}
	rs.next = func() ([]byte, error) {
		line, err := readLine(br, int(s.opts.MaxBodyBytes))
		if err == io.EOF {
			return nil, io.EOF
		}
		if err != nil {
			return nil, &unavailableError{fmt.Errorf("reading the answer of node %s at %s: %w", g.route.Node, g.route.URL, err)}
		}
		if _, err := answerRow(line, n, g.route); err != nil {
			return nil, err
		}
		return slices.Clone(line), nil
	}
	return rs
}

// appendEntity appends a join-key map as readJoinKeys read it.
func appendEntity(b []byte, m map[string]any) []byte {
	b = append(b, '{')
	for k, name := range slices.Sorted(maps.Keys(m)) {
		if k > 0 {
			b = append(b, ',')
		}
		b = append(appendString(b, name), ':')
		b = tabular.AppendJSON(b, m[name]) // a string, or an engine.Number as given
	}
	return append(b, '}')
}

// rangeMerge writes the partitions' range rows in a single node's order.
type rangeMerge struct {
	st    *stream
	plan  *engine.RangePlan
	start []byte // _valid_from of an entity's first row
	nkeys int    // the join keys, first of each row
}

// entity writes the next entity's rows of rs: from its first row (whose
// _valid_from is start_time) to the row before the next entity's.
func (m *rangeMerge) entity(rs *rangeStream) error {
	for first := true; ; first = false {
		row, err := rs.peek()
		if err == io.EOF && !first {
			return nil
		}
		if err == io.EOF {
			return &unavailableError{fmt.Errorf("node %s answered fewer entities than it was sent", rs.node)}
		}
		if err != nil {
			return err
		}
		vals, err := lineMembers(row)
		if err != nil || len(vals) <= m.nkeys {
			return &unavailableError{fmt.Errorf("node %s answered a malformed row: %.200q", rs.node, row)}
		}
		if starts := bytes.Equal(vals[m.nkeys], m.start); starts != first {
			if first {
				return &unavailableError{fmt.Errorf("node %s answered an entity whose first row starts at %s, not at start_time", rs.node, vals[m.nkeys])}
			}
			return nil
		}
		rs.take()
		if err := m.write(row); err != nil {
			return err
		}
	}
}

// mergeByKey writes the rows of every stream in the order of their
// entity keys, as a single node lists every key.
func (m *rangeMerge) mergeByKey(streams []*rangeStream) error {
	keys := make([]*string, len(streams)) // each stream's next entity key; nil: to read
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
				k, err := m.entityKey(row)
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
		if err := m.entity(streams[best]); err != nil {
			return err
		}
		keys[best] = nil
	}
}

func (m *rangeMerge) entityKey(row []byte) (string, error) {
	vals, err := lineMembers(row)
	if err != nil {
		return "", err
	}
	if len(vals) < m.nkeys {
		return "", errors.New("too few columns")
	}
	jk := make(map[string]any, m.nkeys)
	for i := range m.nkeys {
		jk[m.plan.Columns[i].Name] = engineValue(vals[i])
	}
	return m.plan.EntityKey(jk)
}

func (m *rangeMerge) write(row []byte) error {
	st := m.st
	st.buf = append(append(st.buf, row...), '\n')
	if len(st.buf) >= flushBytes || time.Since(st.last) >= flushEvery {
		return st.flush()
	}
	return nil
}
