package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"syscall"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/featurelog/featurelog/client"
	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
	"github.com/featurelog/featurelog/internal/dirlock"
	"github.com/featurelog/featurelog/schema"
	"github.com/featurelog/featurelog/tabread"
	"github.com/featurelog/featurelog/tabular"
)

// historicalFlags are the flags of `featurelog historical` (SPEC §5).
type historicalFlags struct {
	t                        target
	workspace, service       string
	spine, out, timestampKey string
	start, end, entities     string
	fromSource, quiet        bool
}

func historicalCmd() *cobra.Command {
	var f historicalFlags
	cmd := &cobra.Command{
		Use:     "historical --workspace W --service S (--spine FILE | --start T --end T [--entities FILE]) --out FILE",
		Example: "  featurelog historical --workspace ads --service ad_ctr_feature_service_v2 --spine examples/ads/spine.csv --out training.parquet --data ./featurelog-data\n  featurelog historical --workspace ads --service ad_ctr_feature_service_v2 --start 2025-01-01T00:00:00Z --end 2025-01-02T00:00:00Z --out range.csv --server http://127.0.0.1:8080 --api-key $KEY",
		Short:   "Write point-in-time correct training data for a spine, or a range of time, to a file",
		Long: `Spine mode joins every row of the spine (.parquet, .csv, .jsonl or .ndjson) with
the features an online read at the row's time returns; range mode writes, for
each key, the intervals of [--start, --end) over which its features hold.
The output format follows --out's extension. The file appears only when complete.`,
		RunE: func(cmd *cobra.Command, _ []string) error { return runHistorical(cmd, &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.workspace, "workspace", "", "workspace of the feature service (required)")
	fl.StringVar(&f.service, "service", "", "feature service to read (required)")
	fl.StringVar(&f.spine, "spine", "", "spine file: .parquet, .csv, .jsonl or .ndjson")
	fl.StringVar(&f.out, "out", "", "output file: .parquet, .csv, .jsonl or .ndjson (required)")
	fl.StringVar(&f.timestampKey, "timestamp-key", "", "spine column holding each row's time (default: the spine's one timestamp column)")
	fl.BoolVar(&f.fromSource, "from-source", false, "recompute the features from the offline log instead of the tiles")
	fl.StringVar(&f.start, "start", "", "range mode: start of the range (RFC 3339)")
	fl.StringVar(&f.end, "end", "", "range mode: end of the range, exclusive (RFC 3339)")
	fl.StringVar(&f.entities, "entities", "", "range mode: file of join-key rows to report (default: every key with data)")
	fl.BoolVar(&f.quiet, "quiet", false, "no progress bar")
	f.t.flags(cmd)
	return cmd
}

// query checks the flags and returns the request they make.
func (f *historicalFlags) query() (client.HistoricalRequest, error) {
	q := client.HistoricalRequest{Workspace: f.workspace, Service: f.service, TimestampKey: f.timestampKey, FromSource: f.fromSource}
	ranged := f.start != "" || f.end != ""
	switch {
	case f.service == "":
		return q, errors.New("--service S is required: the feature service whose features to write")
	case f.workspace == "":
		return q, errors.New("--workspace W is required: the workspace of --service (the `workspace:` of its repo file)")
	case f.out == "":
		return q, fmt.Errorf("--out FILE is required: the file to write (%s)", tabread.Supported)
	case f.spine == "" && !ranged:
		return q, errors.New("give --spine FILE (a row per training example) or --start T and --end T (range mode)")
	case f.spine != "" && ranged:
		return q, errors.New("--spine and --start/--end are exclusive: give a spine, or a range")
	case f.entities != "" && !ranged:
		return q, errors.New("--entities is for range mode, with --start and --end")
	case ranged && f.timestampKey != "":
		return q, errors.New("--timestamp-key names a spine column; range mode has no spine")
	}
	for flag, path := range map[string]string{"--out": f.out, "--spine": f.spine, "--entities": f.entities} {
		if _, err := tabread.FormatOf(path); err != nil && path != "" {
			return q, fmt.Errorf("%s: %w", flag, err)
		}
	}
	if !ranged {
		return q, nil
	}
	var err error
	if q.Start, err = parseFlagTime("--start", f.start, " in range mode"); err != nil {
		return q, err
	}
	if q.End, err = parseFlagTime("--end", f.end, " in range mode"); err != nil {
		return q, err
	}
	if !q.End.After(q.Start) {
		return q, fmt.Errorf("--end %s must be after --start %s", f.end, f.start)
	}
	return q, nil
}

// parseFlagTime parses a time flag; when, if not empty, says when the
// flag is required (" in range mode").
func parseFlagTime(flag, s, when string) (time.Time, error) {
	if s == "" {
		return time.Time{}, fmt.Errorf("%s T is required%s (RFC 3339, like 2024-05-01T00:00:00Z)", flag, when)
	}
	t, err := schema.ParseTimestamp(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", flag, err)
	}
	return t, nil
}

func runHistorical(cmd *cobra.Command, f *historicalFlags) error {
	q, err := f.query()
	if err != nil {
		return err
	}
	var spine tabread.Spine
	if f.spine != "" {
		file, err := os.Open(f.spine)
		if err != nil {
			return fmt.Errorf("--spine: %w", err)
		}
		defer file.Close()
		if spine, err = tabread.OpenSpine(f.spine, file); err != nil {
			return err
		}
	} else if f.entities != "" {
		if q.Entities, err = readEntities(f.entities); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(commandContext(cmd), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out, err := tabular.CreateFile(f.out)
	if err != nil {
		return err
	}
	defer out.Abort()
	total := int64(-1)
	if spine != nil {
		total = spine.Len()
	}
	bar := newProgress(cmd.ErrOrStderr(), total, f.quiet)
	c, err := f.t.client()
	if err != nil {
		return err
	}
	if c != nil {
		err = remoteHistorical(ctx, c, q, spine, out, bar)
	} else {
		format, _ := tabread.FormatOf(f.spine)
		err = localHistorical(ctx, f.t.data, q, spine, format == tabread.Parquet, out, bar)
	}
	if err != nil {
		bar.abandon()
		return spineError(err, f.spine, spine)
	}
	if err := out.Commit(); err != nil {
		bar.abandon()
		return err
	}
	bar.finish(int(out.Rows()))
	fmt.Fprintf(cmd.OutOrStdout(), "wrote %d rows to %s\n", out.Rows(), f.out)
	return nil
}

func commandContext(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

// readEntities reads range mode's join-key rows from a file; null cells
// are left out.
func readEntities(path string) ([]map[string]any, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--entities: %w", err)
	}
	defer file.Close()
	s, err := tabread.OpenSpine(path, file)
	if err != nil {
		return nil, err
	}
	var out []map[string]any
	for {
		row, err := s.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		m := make(map[string]any, len(row))
		for i, v := range row {
			if v != nil {
				m[s.Columns()[i]] = v
			}
		}
		out = append(out, m)
	}
}

// localHistorical runs the request on the data directory.
func localHistorical(ctx context.Context, data string, q client.HistoricalRequest, spine tabread.Spine, parquetSpine bool, out tabular.Writer, bar *progress) error {
	if spine != nil && parquetSpine {
		p := newPrefetchSpine(spine)
		defer p.Close()
		spine = p
	}
	db, err := engine.Open(engine.Options{Dir: data, Holder: "featurelog historical", Logger: slog.New(slog.DiscardHandler)})
	if errors.Is(err, dirlock.ErrLocked) {
		return fmt.Errorf("%w\n(to read from a running node, pass --server URL with an API key of a viewer of the workspace)", err)
	}
	if err != nil {
		return err
	}
	defer db.Close()
	req := &engine.HistoricalRequest{Workspace: q.Workspace, Service: q.Service, TimestampKey: q.TimestampKey, FromSource: q.FromSource,
		Start: q.Start, End: q.End, Entities: q.Entities, Progress: bar.set}
	if spine == nil {
		return db.GetFeaturesForRange(ctx, req, out)
	}
	return db.GetFeaturesForEvents(ctx, req, spine, out)
}

// prefetchRows is how many spine rows a prefetching spine reads ahead:
// the engine's chunk, so that the first chunk is read while the data
// directory opens.
const prefetchRows = 1 << 20

// prefetchSpine reads a spine ahead in a goroutine, in batches, so that
// decoding the spine file overlaps with opening the data directory and
// with the join (a 1M-row Parquet spine takes 0.4 s of one core). Only
// for Parquet spines: a CSV or JSON Lines spine remembers the lines of
// recent rows for error messages, and reading ahead would outrun them.
type prefetchSpine struct {
	tabread.Spine
	batches chan spineBatch
	stop    chan struct{}
	done    chan struct{}
	cur     [][]any
	err     error
}

type spineBatch struct {
	rows [][]any
	err  error
}

func newPrefetchSpine(s tabread.Spine) *prefetchSpine {
	const batch = 4096
	p := &prefetchSpine{Spine: s, batches: make(chan spineBatch, prefetchRows/batch), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		defer close(p.batches)
		for {
			b := spineBatch{rows: make([][]any, 0, batch)}
			for len(b.rows) < batch {
				row, err := s.Next()
				if err != nil {
					b.err = err
					break
				}
				b.rows = append(b.rows, row)
			}
			select {
			case p.batches <- b:
			case <-p.stop:
				return
			}
			if b.err != nil {
				return
			}
		}
	}()
	return p
}

// Next returns the next row, or the error the spine returned there.
func (p *prefetchSpine) Next() ([]any, error) {
	for len(p.cur) == 0 {
		if p.err != nil {
			return nil, p.err
		}
		b, ok := <-p.batches
		if !ok {
			return nil, io.EOF
		}
		p.cur, p.err = b.rows, b.err
	}
	row := p.cur[0]
	p.cur = p.cur[1:]
	return row, nil
}

// Close stops the reading goroutine and waits for it, so that the spine
// may be used again (for its error positions).
func (p *prefetchSpine) Close() {
	close(p.stop)
	<-p.done
}

// remoteHistorical runs the request on a node through the client. A
// spine streams as NDJSON while the answer streams back; each answer
// row's spine values are its tag, the spine file's own row (so that they
// keep their types: a Parquet timestamp stays a timestamp), and features
// are decoded by the types the node lists.
func remoteHistorical(ctx context.Context, c *client.Client, q client.HistoricalRequest, spine tabread.Spine, out tabular.Writer, bar *progress) error {
	if spine != nil {
		q.SpineSource = &spineSource{spine: spine}
	}
	rows, err := c.GetFeaturesForEvents(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := engineColumns(rows.Columns())
	if err != nil {
		return err
	}
	if err := out.Begin(cols); err != nil {
		return err
	}
	for n := 1; ; n++ {
		row, err := rows.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		lead, features, err := decodeRow(row, cols, rows.Lead())
		if err != nil {
			return fmt.Errorf("the node's answer, row %d: %w", n, err)
		}
		if err := out.Row(lead, features); err != nil {
			return err
		}
		bar.set(n)
	}
}

// engineColumns converts the answer's columns to the engine's, typed.
func engineColumns(cols []client.Column) ([]engine.HistoricalColumn, error) {
	out := make([]engine.HistoricalColumn, len(cols))
	for i, c := range cols {
		out[i] = engine.HistoricalColumn{Name: c.Name, Spine: c.Spine}
		if c.Spine {
			continue
		}
		if c.DataType == nil {
			return nil, fmt.Errorf("the node's answer: column %q has neither spine nor dataType", c.Name)
		}
		elem := ""
		if c.DataType.ElementType != nil {
			elem = c.DataType.ElementType.Type
		}
		t, err := httpapi.ParseDataType(c.DataType.Type, elem)
		if err != nil {
			return nil, fmt.Errorf("the node's answer: column %q: %w", c.Name, err)
		}
		out[i].Type = t
	}
	return out, nil
}

// decodeRow splits a row as an engine sink receives it: the leading
// values (the spine row sent, its tag; or range mode's typed join keys,
// _valid_from and _valid_to), and the features as engine values.
func decodeRow(row *client.Row, cols []engine.HistoricalColumn, nlead int) ([]any, []schema.Value, error) {
	lead := make([]any, nlead)
	if sent, ok := row.Tag.([]any); ok {
		if len(sent) != nlead {
			return nil, nil, fmt.Errorf("the node answered %d spine columns for a spine of %d", nlead, len(sent))
		}
		lead = sent
	}
	features := make([]schema.Value, len(cols)-nlead)
	for i, c := range cols {
		raw := jsontext.Value(row.Values[i])
		if c.Spine {
			if row.Tag == nil {
				lead[i] = raw
			}
			continue
		}
		v, err := httpapi.DecodeValue(raw, c.Type)
		if err != nil {
			return nil, nil, fmt.Errorf("column %q: %w", c.Name, err)
		}
		if i < nlead {
			lead[i] = v
		} else {
			features[i-nlead] = v
		}
	}
	return lead, features, nil
}

// spineSource sends a spine file's rows as JSON objects, each tagged with
// its values.
type spineSource struct {
	spine tabread.Spine
	buf   []byte
}

func (s *spineSource) Next() ([]byte, any, error) {
	row, err := s.spine.Next()
	if err != nil {
		return nil, nil, err
	}
	cols := s.spine.Columns()
	s.buf = append(s.buf[:0], '{')
	for i, v := range row {
		if i > 0 {
			s.buf = append(s.buf, ',')
		}
		s.buf = tabular.AppendJSON(append(strconv.AppendQuote(s.buf, cols[i]), ':'), v)
	}
	return append(s.buf, '}'), row, nil
}

// lineRE finds the spine row a node's error names: it numbers the NDJSON
// lines sendSpine wrote, one per spine row.
var lineRE = regexp.MustCompile(`^line (\d+): `)

// spineError names the spine file's line (or row) in an error about a
// spine row.
func spineError(err error, path string, spine tabread.Spine) error {
	if spine == nil {
		return err
	}
	var le *tabread.LineError
	if errors.As(err, &le) {
		return le // the spine file's own error names its line already
	}
	var se *engine.SpineError
	if errors.As(err, &se) {
		return fmt.Errorf("%s: %s: %w", path, spine.Position(se.Row), se.Err)
	}
	if m := lineRE.FindStringSubmatch(err.Error()); m != nil {
		row, _ := strconv.Atoi(m[1])
		return fmt.Errorf("%s: %s: %s", path, spine.Position(row), err.Error()[len(m[0]):])
	}
	return err
}

// progress is the progress bar on stderr, counting output rows; it is
// off when stderr is not a terminal or with --quiet. Its methods accept a
// nil bar.
type progress struct {
	bar *progressbar.ProgressBar
}

func newProgress(w io.Writer, total int64, quiet bool) *progress {
	f, ok := w.(*os.File)
	if quiet || !ok || !term.IsTerminal(int(f.Fd())) {
		return &progress{}
	}
	return &progress{bar: progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("historical"),
		progressbar.OptionShowCount(),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)}
}

func (p *progress) set(rows int) {
	if p.bar != nil {
		p.bar.Set(rows)
	}
}

func (p *progress) finish(rows int) {
	if p.bar != nil {
		p.bar.Set(rows)
		p.bar.Finish()
	}
}

func (p *progress) abandon() {
	if p.bar != nil {
		p.bar.Exit()
	}
}
