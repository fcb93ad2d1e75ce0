// Package main is the peer comparison of featurelog's benchmarks: the
// point-in-time join workload of issue 14 (bench.PreparePITJoin) run by
// featurelog and by DuckDB, on the same files, in the same run.
//
// It is a Go module of its own so that featurelog never depends on
// DuckDB. From the repository root:
//
//	cd bench/peers && go run . --dir /tmp/fbench
//
// It builds the featurelog CLI from the repository (or takes --featurelog),
// generates the workload's parquet files and loads the events into a
// featurelog data directory over HTTP (cached under --dir), then, --runs
// times: `featurelog historical --spine spine.parquet --out
// training.parquet` in a fresh process, and DuckDB's two joins on the same
// rows in this process (events and spine loaded into tables first, not
// timed): an ASOF LEFT JOIN on s.ts > e.ts for the latest amount, and RANGE
// window frames [T−W, T) over the union of events and spine for the
// view's aggregates (--shape hours: count and sum over 1h and 24h; days:
// count, sum, min, max and mean over 7d and 30d, with Int64 keys). DuckDB then reads training.parquet and compares it,
// row by row on row_id, with its own answers: every column must agree
// exactly (amounts are quarters, so sums are exact in any order).
//
// With --issue14 it then runs the rows of issue 14's table that need no
// peer, with the same binary, each beside its own baseline — reads during
// compaction, single-record acks, aggregate ingest — so that one command
// reports every row:
//
//	cd bench/peers && go run . --dir /tmp/fbench --issue14
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/featurelog/featurelog/bench"
)

func main() {
	var (
		cfg        bench.PITJoinConfig
		featurelog string
		root       string
		runs       int
		threads    int
		table      bool
		duration   time.Duration
	)
	cfg.Flags(flag.CommandLine)
	flag.StringVar(&featurelog, "featurelog", "", "featurelog binary (default: built from --root)")
	flag.StringVar(&root, "root", "../..", "the featurelog repository, to build the binary from")
	flag.IntVar(&runs, "runs", 1, "runs of each system, alternating")
	flag.IntVar(&threads, "threads", 0, "DuckDB threads (0: its default, every core)")
	flag.BoolVar(&table, "issue14", false, "then run featurelog's other rows of issue 14's table too (reads during compaction, single-record acks, aggregate ingest), each beside its baseline, so one command reports every row")
	flag.DurationVar(&duration, "duration", 10*time.Second, "measured window of each benchmark loop of --issue14")
	flag.Parse()
	cfg.Progress = os.Stderr
	if err := peers(cfg, featurelog, root, runs, threads, table, duration); err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		os.Exit(1)
	}
}

func peers(cfg bench.PITJoinConfig, featurelog, root string, runs, threads int, table bool, duration time.Duration) error {
	if featurelog == "" {
		bin, err := buildFeaturelog(root)
		if err != nil {
			return err
		}
		defer os.RemoveAll(filepath.Dir(bin))
		featurelog = bin
	}
	rows, err := run(cfg, featurelog, runs, threads)
	if len(rows) > 0 {
		if werr := bench.WriteTable(os.Stdout, rows); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil || !table {
		return err
	}
	return otherRows(featurelog, cfg.CacheDir, duration)
}

// otherRows runs the rows of the performance table that need no peer,
// with the same binary, each beside its own baseline (a trivial handler,
// no view, no compaction), and prints their table after the join's.
func otherRows(featurelog, dir string, duration time.Duration) error {
	rows, err := bench.RunTargets(bench.TargetsConfig{Featurelog: []string{featurelog}, SkipPIT: true,
		Duration: duration, TempDir: dir, Progress: os.Stderr})
	if len(rows) > 0 {
		fmt.Println()
		if werr := bench.WriteTable(os.Stdout, rows); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

func run(cfg bench.PITJoinConfig, featurelog string, runs, threads int) ([]bench.Row, error) {
	cfg.Featurelog = []string{featurelog}
	cfg.EnsureDefaults()
	data, err := bench.PreparePITJoin(cfg)
	if err != nil {
		return nil, err
	}
	duck, err := openDuck(data, cfg.Shape, threads)
	if err != nil {
		return nil, err
	}
	defer duck.close()
	var (
		joins []*bench.PITJoin
		peer  = bench.PITPeer{Name: "DuckDB " + duck.version, Joins: "ASOF + RANGE windows", Setup: duck.load}
	)
	for i := range runs {
		fmt.Fprintf(os.Stderr, "peers: run %d of %d: featurelog historical, fresh process\n", i+1, runs)
		j, err := bench.RunPITJoinCLI(cfg.Featurelog, data, filepath.Join(data.Dir, "training.parquet"))
		if err != nil {
			return nil, err
		}
		joins = append(joins, j)
		fmt.Fprintf(os.Stderr, "peers: run %d of %d: DuckDB ASOF and window joins\n", i+1, runs)
		d, err := duck.joins()
		if err != nil {
			return nil, err
		}
		peer.Runs = append(peer.Runs, d)
	}
	fmt.Fprintf(os.Stderr, "peers: comparing training.parquet with DuckDB's answers\n")
	cmp, err := duck.compare(joins[0].Out)
	if err != nil {
		return nil, err
	}
	peer.PeakRSS = bench.SelfPeakRSS()
	peer.Agree, peer.Comparison = cmp.ok(), cmp.String()
	return append(bench.PITRows(&cfg, data, joins), bench.PITPeerRows(joins, &peer)...), nil
}

// buildFeaturelog builds the CLI from the repository at root into a
// temporary directory.
func buildFeaturelog(root string) (string, error) {
	dir, err := os.MkdirTemp("", "featurelog-peers-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "featurelog")
	fmt.Fprintf(os.Stderr, "peers: building featurelog from %s\n", root)
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/featurelog")
	cmd.Dir, cmd.Stdout, cmd.Stderr = root, os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("building featurelog in %s: %w", root, err)
	}
	return bin, nil
}

// duck is an in-memory DuckDB holding the workload's events and spine.
type duck struct {
	db       *sql.DB
	conn     *sql.Conn
	load     time.Duration
	version  string
	features []bench.PITFeature
}

func openDuck(data *bench.PITJoinData, shape string, threads int) (*duck, error) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	conn, err := db.Conn(ctx) // one connection: the tables live in it
	if err != nil {
		db.Close()
		return nil, err
	}
	d := &duck{db: db, conn: conn, features: bench.PITFeatures(shape)}
	stmts := []string{"SET TimeZone = 'UTC'"}
	if threads > 0 {
		stmts = append(stmts, fmt.Sprintf("SET threads = %d", threads))
	}
	stmts = append(stmts,
		"CREATE TABLE events AS SELECT user_id, ts, amount FROM read_parquet("+quote(data.Events)+")",
		"CREATE TABLE spine AS SELECT row_id, user_id, ts FROM read_parquet("+quote(data.Spine)+")")
	fmt.Fprintf(os.Stderr, "peers: loading the events and the spine into DuckDB (not timed as a join)\n")
	t0 := time.Now()
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			d.close()
			return nil, fmt.Errorf("duckdb: %s: %w", s, err)
		}
	}
	d.load = time.Since(t0)
	if err := conn.QueryRowContext(ctx, "SELECT version()").Scan(&d.version); err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}

func (d *duck) close() {
	d.conn.Close()
	d.db.Close()
}

// duckASOF is the attribute join, as SQL users would write it.
const duckASOF = `CREATE OR REPLACE TABLE duck_asof AS
SELECT s.row_id, e.amount AS last_amount
FROM spine s ASOF LEFT JOIN events e ON s.user_id = e.user_id AND s.ts > e.ts`

// windowsSQL is the aggregate join, as SQL users would write it: RANGE
// window frames [T−W, T) over the union of events and spine, one column
// f0, f1, ... per feature.
func (d *duck) windowsSQL() string {
	var cols, outs, wins []string
	named := map[time.Duration]string{}
	for i, f := range d.features {
		w, ok := named[f.Window]
		if !ok {
			w = fmt.Sprintf("w%d", len(named))
			named[f.Window] = w
			wins = append(wins, fmt.Sprintf("%s AS (PARTITION BY user_id ORDER BY ts RANGE BETWEEN INTERVAL %d HOUR PRECEDING AND INTERVAL 1 MICROSECOND PRECEDING)",
				w, int64(f.Window/time.Hour)))
		}
		fn := f.Function
		if fn == "mean" {
			fn = "avg"
		}
		cols = append(cols, fmt.Sprintf("%s(amount) OVER %s AS f%d", fn, w, i))
		outs = append(outs, fmt.Sprintf("f%d", i))
	}
	return fmt.Sprintf(`CREATE OR REPLACE TABLE duck_win AS
SELECT row_id, %s FROM (
  SELECT row_id, %s
  FROM (SELECT user_id, ts, amount, NULL::BIGINT AS row_id FROM events
        UNION ALL
        SELECT user_id, ts, NULL::DOUBLE AS amount, row_id FROM spine)
  WINDOW %s)
WHERE row_id IS NOT NULL`, strings.Join(outs, ", "), strings.Join(cols, ", "), strings.Join(wins, ", "))
}

// joins runs both joins, timing each, with this process's CPU.
func (d *duck) joins() (bench.PITPeerRun, error) {
	var r bench.PITPeerRun
	ctx := context.Background()
	c0 := bench.SelfCPUTime()
	for _, q := range []struct{ name, sql string }{{"ASOF", duckASOF}, {"windows", d.windowsSQL()}} {
		t0 := time.Now()
		if _, err := d.conn.ExecContext(ctx, q.sql); err != nil {
			return r, fmt.Errorf("duckdb %s join: %w", q.name, err)
		}
		r.Parts = append(r.Parts, bench.PITPeerPart{Name: q.name, Took: time.Since(t0)})
	}
	r.CPU = bench.SelfCPUTime() - c0
	return r, nil
}

// comparison counts the rows of training.parquet and, per column, those
// that differ from DuckDB's answer.
type comparison struct {
	spine, out, matched int64
	columns             [][2]string
	diffs               map[string]int64
}

// compared pairs each output column of featurelog historical with
// DuckDB's answer for it.
func (d *duck) compared() [][2]string {
	out := [][2]string{{bench.PITAttribute, "a.last_amount"}}
	for i, f := range d.features {
		out = append(out, [2]string{f.Column, fmt.Sprintf("w.f%d", i)})
	}
	return out
}

func (d *duck) compare(out string) (*comparison, error) {
	ctx := context.Background()
	c := &comparison{diffs: map[string]int64{}}
	compared := d.compared()
	c.columns = compared
	var sel []string
	for _, p := range compared {
		sel = append(sel, fmt.Sprintf("count(*) FILTER (WHERE f.%q IS DISTINCT FROM %s)", p[0], p[1]))
	}
	q := fmt.Sprintf(`SELECT (SELECT count(*) FROM spine), (SELECT count(*) FROM read_parquet(%[1]s)), count(*), %[2]s
FROM read_parquet(%[1]s) f JOIN duck_asof a USING (row_id) JOIN duck_win w USING (row_id)`, quote(out), strings.Join(sel, ", "))
	dst := []any{&c.spine, &c.out, &c.matched}
	diffs := make([]int64, len(compared))
	for i := range diffs {
		dst = append(dst, &diffs[i])
	}
	if err := d.conn.QueryRowContext(ctx, q).Scan(dst...); err != nil {
		return nil, fmt.Errorf("duckdb comparing %s: %w", out, err)
	}
	for i, p := range compared {
		c.diffs[p[0]] = diffs[i]
	}
	return c, nil
}

func (c *comparison) ok() bool {
	if c.spine != c.out || c.out != c.matched {
		return false
	}
	for _, n := range c.diffs {
		if n != 0 {
			return false
		}
	}
	return true
}

func (c *comparison) String() string {
	var bad []string
	for _, p := range c.columns {
		if n := c.diffs[p[0]]; n != 0 {
			bad = append(bad, fmt.Sprintf("%s: %d rows differ", p[0], n))
		}
	}
	s := fmt.Sprintf("%d spine rows, %d output rows, %d matched on row_id", c.spine, c.out, c.matched)
	if len(bad) == 0 {
		return s + "; every column equal"
	}
	return s + "; " + strings.Join(bad, "; ")
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
