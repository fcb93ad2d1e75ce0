package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/featurelog/featurelog/engine"
	"github.com/featurelog/featurelog/httpapi"
)

// OverloadConfig configures RunOverload.
type OverloadConfig struct {
	// Command starts the featurelog server process (see Server.Command).
	// Required.
	Command []string
	// TempDir is where the data directory is created (and removed
	// afterwards). Default os.TempDir().
	TempDir string
	// Clients is the closed loop's concurrency, which finds the
	// sustainable rate. Default 64: enough for the log's group commit to
	// form large batches, and below the server's default admission limits
	// (so the closed loop sees no 429).
	Clients int
	// BatchSize is the number of records per request. Default 100: the
	// engine's work, not HTTP parsing, dominates a request, as admission
	// control assumes (with single records, answering a 429 costs about
	// as much CPU as admitting the request, and on a machine shared with
	// the load generator no admission policy can hold the admitted rate).
	BatchSize int
	// Factor multiplies the sustainable rate into the offered rate of the
	// open loop. Default 2.
	Factor float64
	// Workers bounds the open loop's requests in flight (one connection
	// each); it must exceed what the server admits, or the client, not
	// the server, would shed the load. Default 1024.
	Workers int
	// Progress receives a line per phase. Default none.
	Progress io.Writer
	Loop
}

// EnsureDefaults fills in unset fields.
func (c *OverloadConfig) EnsureDefaults() {
	if c.Clients == 0 {
		c.Clients = 64
	}
	if c.Factor == 0 {
		c.Factor = 2
	}
	if c.BatchSize == 0 {
		c.BatchSize = 100
	}
	if c.Workers == 0 {
		c.Workers = 1024
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	c.Loop.EnsureDefaults()
}

// Validate reports a configuration that cannot run.
func (c *OverloadConfig) Validate() error {
	if len(c.Command) == 0 {
		return errors.New("bench: OverloadConfig.Command is required: the argv prefix of a program that calls bench.ServeMain")
	}
	if c.Clients <= 0 || c.Workers <= 0 || c.Factor <= 0 || c.BatchSize <= 0 {
		return errors.New("bench: Clients, Workers, BatchSize and Factor must be positive")
	}
	return c.Loop.Validate()
}

// OverloadResult is what RunOverload measured.
type OverloadResult struct {
	// Clients is the closed loop's concurrency; BatchSize the records per
	// request.
	Clients, BatchSize int
	// Sustainable is the closed loop: its OpsPerSec is the sustainable
	// rate, its Latency the baseline of the admitted requests' latency.
	Sustainable Result
	// Offered is the rate of the open loop (Factor × sustainable).
	Offered float64
	// Overload is the open loop: Ops are the admitted (200) requests and
	// Latency theirs, from each request's scheduled send time (so it
	// includes the client's lag, SendLag); Errors count the refused and
	// failed ones.
	Overload Result
	// AdmittedLatency is the admitted requests' latency from their actual
	// send: what the server made them wait.
	AdmittedLatency Latency
	// Admitted, Refused and Failed count the open loop's 200s, 429s and
	// other outcomes, warm-up included (Overload counts only the measured
	// window). Every 429 must carry Retry-After: MissingRetryAfter counts
	// those that did not.
	Admitted, Refused, Failed, MissingRetryAfter int64
	// Reasons is the server's featurelog_ingest_rejected_total by reason
	// at the end of the open loop.
	Reasons string
	// PeakRSSClosed and PeakRSSOverload are the server's VmHWM after each
	// phase (bytes; 0 where /proc is missing), when it held ClosedRecords
	// and Acked records: the views' memory grows with the data, so the
	// bound is judged per record held.
	PeakRSSClosed, PeakRSSOverload int64
	ClosedRecords                  int64
	// Acked is the number of acknowledged records of both phases, Lost
	// those missing when the data directory is reopened after the server
	// exits.
	Acked, Lost int64
}

// errRefused marks a 429 in the open loop.
var errRefused = errors.New("429 Too Many Requests")

// RunOverload measures admission control (issue #5 item 6): it finds the
// sustainable single-record ingest rate with a closed loop, offers Factor
// times that rate open loop, and reports the admitted and refused
// requests, the admitted requests' latency, the server's peak RSS, and
// whether every acknowledged record is in the data directory once the
// server has shut down (reopened with engine.Open).
func RunOverload(cfg OverloadConfig) (*OverloadResult, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(cfg.TempDir, "featurelog-overload-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	db, err := openAds(dir, false, nil)
	if err != nil {
		return nil, err
	}
	if err := db.Close(); err != nil {
		return nil, err
	}
	srv := Server{Command: cfg.Command, DataDir: dir}
	p, err := srv.start()
	if err != nil {
		return nil, err
	}
	res, acked, err := overloadPhases(&cfg, p)
	if serr := p.stop(); serr != nil {
		return res, errors.Join(err, serr)
	}
	if err != nil {
		return res, err
	}
	res.Acked, res.Lost, err = countLost(dir, acked, cfg.BatchSize)
	return res, err
}

// overloadPhases runs the closed and the open loop against p and returns
// the acknowledged requests.
func overloadPhases(cfg *OverloadConfig, p *process) (*OverloadResult, []ackLog, error) {
	res := &OverloadResult{Clients: cfg.Clients, BatchSize: cfg.BatchSize}
	url := p.url(ingestPath)
	c := newClient(cfg.Clients)
	closedAcks := newAckLogs("c", cfg.Clients)
	fmt.Fprintf(cfg.Progress, "bench: overload: closed loop, %d clients, %d records per request\n", cfg.Clients, cfg.BatchSize)
	res.Sustainable = closedLoop(fmt.Sprintf("ingest-http c=%d b=%d", cfg.Clients, cfg.BatchSize), cfg.Clients, cfg.Loop,
		ackingIngestOp(c, url, cfg.BatchSize, closedAcks, nil))
	c.close()
	res.PeakRSSClosed = procPeakRSS(p.cmd.Process.Pid)
	for _, a := range closedAcks {
		res.ClosedRecords += int64(len(a.acked) * cfg.BatchSize)
	}
	if res.Sustainable.Ops == 0 {
		return res, closedAcks, fmt.Errorf("bench: overload: the closed loop completed no request: %s", res.Sustainable.FirstError)
	}
	res.Offered = cfg.Factor * res.Sustainable.OpsPerSec
	fmt.Fprintf(cfg.Progress, "bench: overload: open loop at %s req/s (%.3gx %s req/s)\n", fmtRate(res.Offered), cfg.Factor, fmtRate(res.Sustainable.OpsPerSec))
	oc := newClient(cfg.Workers)
	openAcks := newAckLogs("o", cfg.Workers)
	var n outcomes
	over, err := openLoop(fmt.Sprintf("ingest-http b=%d @%s/s", cfg.BatchSize, fmtRate(res.Offered)), res.Offered, cfg.Workers, cfg.Loop,
		ackingIngestOp(oc, url, cfg.BatchSize, openAcks, &n))
	oc.close()
	res.Overload = over
	res.Admitted, res.Refused, res.Failed, res.MissingRetryAfter = n.admitted.Load(), n.refused.Load(), n.failed.Load(), n.noRetryAfter.Load()
	var lat [][]int64
	for _, a := range openAcks {
		lat = append(lat, a.latency)
	}
	res.AdmittedLatency = summarize(concat(lat))
	res.PeakRSSOverload = procPeakRSS(p.cmd.Process.Pid)
	res.Reasons = scrapeRejected(p.url("/metrics"))
	return res, append(closedAcks, openAcks...), err
}

// ackLog is one worker's acknowledged requests: request i carried the
// records of users prefix+(i*BatchSize+j), j < BatchSize.
type ackLog struct {
	prefix  string
	acked   []int32 // request numbers answered 200
	latency []int64 // their latency from the actual send, ns
}

func newAckLogs(prefix string, workers int) []ackLog {
	logs := make([]ackLog, workers)
	for w := range logs {
		logs[w].prefix = prefix + strconv.Itoa(w) + "-"
	}
	return logs
}

// outcomes counts the answers of an open loop, warm-up included.
type outcomes struct {
	admitted, refused, failed, noRetryAfter atomic.Int64
}

// note counts one answer: its status, or err.
func (o *outcomes) note(status int, h http.Header, err error) {
	switch {
	case err == nil && status == http.StatusOK:
		o.admitted.Add(1)
	case err == nil && status == http.StatusTooManyRequests:
		o.refused.Add(1)
		if n, err := strconv.Atoi(h.Get("Retry-After")); err != nil || n < 1 {
			o.noRetryAfter.Add(1)
		}
	default:
		o.failed.Add(1)
	}
}

// ackingIngestOp returns ops that POST batch new records each and note
// in acks[worker] every request answered 200, warm-up included. With out
// (the open loop) every answer is counted there and a 429 fails with
// errRefused; without, a 429 is an error like any status but 200.
func ackingIngestOp(c *client, url string, batch int, acks []ackLog, out *outcomes) func(int) op {
	return func(w int) op {
		log := &acks[w]
		var body []byte
		i := 0
		return func() (int, error) {
			body = appendIngestBody(body[:0], log.prefix, i*batch, batch, time.Now())
			t0 := time.Now()
			status, h, err := c.postStatus(w, url, body)
			d := time.Since(t0)
			if out != nil {
				out.note(status, h, err)
			}
			switch {
			case err != nil:
				return 0, err
			case status == http.StatusOK:
				log.acked = append(log.acked, int32(i))
				log.latency = append(log.latency, int64(d))
				i++
				return batch, nil
			case status == http.StatusTooManyRequests && out != nil:
				i++
				return 0, errRefused
			}
			i++
			return 0, fmt.Errorf("%s: HTTP %d: %.300s", url, status, c.buf[w])
		}
	}
}

// postStatus sends body to url and reads the whole response, returning
// its status and headers whatever the status.
func (c *client) postStatus(worker int, url string, body []byte) (int, http.Header, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b := bytes.NewBuffer(c.buf[worker][:0])
	_, err = b.ReadFrom(resp.Body)
	c.buf[worker] = b.Bytes()
	return resp.StatusCode, resp.Header, err
}

// scrapeRejected returns the server's featurelog_ingest_rejected_total
// series as "reason=count ...", or the error that kept it from them.
func scrapeRejected(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err.Error()
	}
	var parts []string
	for line := range strings.SplitSeq(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, `featurelog_ingest_rejected_total{reason="`); ok {
			reason, count, _ := strings.Cut(rest, `"} `)
			parts = append(parts, reason+"="+count)
		}
	}
	return strings.Join(parts, " ")
}

// countLost reopens the closed data directory dir and counts the
// acknowledged records and those of them that are not served.
func countLost(dir string, logs []ackLog, batch int) (acked, lost int64, err error) {
	db, err := openPreloaded(dir, true, 0, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("bench: overload: reopening the data directory to check the acknowledged records: %w", err)
	}
	defer db.Close()
	req := engine.GetFeaturesRequest{Workspace: adsWorkspace, Service: adsService, JoinKeys: map[string]any{}}
	for _, l := range logs {
		for _, i := range l.acked {
			for j := range batch {
				req.JoinKeys["user_id"] = l.prefix + strconv.Itoa(int(i)*batch+j)
				vec, err := db.GetFeatures(&req)
				if err != nil {
					return acked, lost, err
				}
				acked++
				if vec.Features[0].Status != engine.Present {
					lost++
				}
			}
		}
	}
	return acked, lost, db.Close()
}

// procPeakRSS returns the VmHWM of process pid in bytes; 0 where there is
// no /proc.
func procPeakRSS(pid int) int64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// OverloadRows turns r into table rows, with the targets of issue #5
// item 6: every 429 carries Retry-After; the admitted requests' p99 stays
// within the server's IngestQueueTimeout (the bench server runs
// httpapi's defaults) plus the closed loop's p99; peak RSS under overload
// per record held at most 1.25× the closed loop's; no acknowledged record
// lost.
func OverloadRows(r *OverloadResult) []Row {
	var defaults httpapi.Options
	defaults.EnsureDefaults()
	queueTimeout := defaults.IngestQueueTimeout
	s, o := &r.Sustainable, &r.Overload
	p99Bound := queueTimeout + s.Latency.P99
	perRec := func(rss, recs int64) float64 { return float64(rss) / float64(max(recs, 1)) }
	rssRatio := perRec(r.PeakRSSOverload, r.Acked) / perRec(r.PeakRSSClosed, r.ClosedRecords)
	sent := float64(max(r.Admitted+r.Refused+r.Failed, 1))
	return []Row{
		{Benchmark: fmt.Sprintf("overload: sustainable ingest (closed loop, c=%d, b=%d)", r.Clients, r.BatchSize),
			Result: fmt.Sprintf("%s req/s (%s records/s), %s", fmtRate(s.OpsPerSec), fmtRate(s.RecordsPerSec), s.Latency) + errNote(s), Baseline: "-", Ratio: "-", Target: "reported", Verdict: "-"},
		{Benchmark: fmt.Sprintf("overload: offered %s/s open loop", fmtRate(r.Offered)),
			Result: fmt.Sprintf("admitted %d (%.0f%%; %s/s measured), 429 %d (%.0f%%: %s), other errors %d, not sent %d",
				r.Admitted, 100*float64(r.Admitted)/sent, fmtRate(o.OpsPerSec), r.Refused, 100*float64(r.Refused)/sent, r.Reasons, r.Failed, o.Dropped),
			Baseline: fmt.Sprintf("%s req/s sustainable", fmtRate(s.OpsPerSec)), Ratio: fmt.Sprintf("%.2fx admitted", o.OpsPerSec/s.OpsPerSec),
			Target: "429 + Retry-After beyond capacity", Verdict: verdictBool(r.Failed == 0 && r.MissingRetryAfter == 0 && r.Refused > 0)},
		{Benchmark: "overload: admitted latency (from actual send)", Result: r.AdmittedLatency.String(),
			Baseline: "closed loop " + s.Latency.String(), Ratio: fmt.Sprintf("%.2fx p99", float64(r.AdmittedLatency.P99)/float64(max(s.Latency.P99, 1))),
			Target: "p99 <= " + fmtDur(p99Bound) + " (queue timeout + closed p99)", Verdict: verdictBool(r.Admitted > 0 && r.AdmittedLatency.P99 <= p99Bound)},
		{Benchmark: "overload: admitted latency (from scheduled send)", Result: o.Latency.String(),
			Baseline: "client send lag " + o.SendLag.String(), Ratio: "-", Target: "reported", Verdict: "-"},
		{Benchmark: "overload: server peak RSS (VmHWM)", Result: fmt.Sprintf("%s after overload, %d records held (%.0f B/record)", fmtMB(r.PeakRSSOverload), r.Acked, perRec(r.PeakRSSOverload, r.Acked)),
			Baseline: fmt.Sprintf("%s after closed loop, %d records (%.0f B/record)", fmtMB(r.PeakRSSClosed), r.ClosedRecords, perRec(r.PeakRSSClosed, r.ClosedRecords)),
			Ratio:    fmt.Sprintf("%.2fx per record", rssRatio), Target: "<= 1.25x per record", Verdict: verdictBool(r.PeakRSSOverload > 0 && rssRatio <= 1.25)},
		{Benchmark: "overload: acknowledged records lost (data dir reopened)", Result: fmt.Sprintf("%d of %d", r.Lost, r.Acked),
			Baseline: "-", Ratio: "-", Target: "0", Verdict: verdictBool(r.Acked > 0 && r.Lost == 0)},
	}
}
