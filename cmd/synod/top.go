package main

// This file owns `synod top`: a live view of the cluster through the proxy
// (STATUS and STATS over the line protocol, and, with --metrics, the
// proxy's latency histograms), redrawn in place every --interval. It runs
// on the command's goroutine; drawing a frame is a pure function of two
// samples (topFrame), so tests check it without a terminal.

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/urfave/cli/v2"

	"synod/wire/line"
)

func init() { commandMakers = append(commandMakers, topCommand) }

func topCommand() *cli.Command {
	return &cli.Command{
		Name:  "top",
		Usage: "a live view of the cluster through the proxy: roles, lag, ops/s, p99 latency, held requests",
		Description: "Redraws every --interval until Ctrl-C. Rates are over the last interval. The p99\n" +
			"columns come from the proxy's STATS (since it started) unless --metrics names\n" +
			"the proxy's --metrics-listen address, which gives p99 over the last interval.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "addr", Value: "127.0.0.1:7000", Usage: "the proxy to watch", EnvVars: env("addr")},
			&cli.StringFlag{Name: "metrics", Usage: "the proxy's --metrics-listen address (synod up: 127.0.0.1:7200), for p99 over each interval", EnvVars: env("top-metrics")},
			&cli.DurationFlag{Name: "interval", Value: time.Second, Usage: "time between two frames", EnvVars: env("top-interval")},
			&cli.IntFlag{Name: "count", Usage: "stop after this many frames (0: until Ctrl-C)"},
		},
		Action: runTop,
	}
}

// topSample is what one poll of the proxy returned.
type topSample struct {
	at    time.Time
	nodes []line.NodeStatus
	stats map[string]string
	// hist holds the proxy's request latency histograms by class ("read",
	// "write"): cumulative counts by upper bound; nil without --metrics.
	hist map[string]map[float64]float64
	err  error // the poll failed: the frame says so
}

func runTop(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError("top takes no arguments, got %q", c.Args().First())
	}
	interval := c.Duration("interval")
	if interval < 10*time.Millisecond {
		return usageError("--interval %v: want at least 10ms", interval)
	}
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	out := c.App.Writer
	tty := isTerminal(out)
	if tty {
		fmt.Fprint(out, "\x1b[?25l")       // hide the cursor
		defer fmt.Fprint(out, "\x1b[?25h") // and show it again
	}
	p := &topPoller{addr: c.String("addr"), metrics: c.String("metrics"), timeout: max(interval, time.Second)}
	defer p.close()
	prev := p.sample(ctx)
	if prev.err != nil && c.Int("count") > 0 {
		return &exitError{code: exitUnavailable, err: fmt.Errorf("top: %w", prev.err)}
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for frames := 0; c.Int("count") == 0 || frames < c.Int("count"); frames++ {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		cur := p.sample(ctx)
		frame := topFrame(prev, cur, p.addr, p.metrics != "")
		if tty {
			fmt.Fprint(out, "\x1b[H\x1b[2J") // home, clear: redraw in place
		} else if frames > 0 {
			fmt.Fprintln(out)
		}
		fmt.Fprint(out, frame)
		if cur.err == nil {
			prev = cur
		}
	}
	return nil
}

// topPoller keeps one connection to the proxy, dialled again after a
// failure.
type topPoller struct {
	addr, metrics string
	timeout       time.Duration
	cl            *line.Client
	http          *http.Client
}

func (p *topPoller) close() {
	if p.cl != nil {
		p.cl.Close()
		p.cl = nil
	}
	if p.http != nil {
		p.http.CloseIdleConnections()
	}
}

func (p *topPoller) sample(ctx context.Context) topSample {
	s := topSample{at: time.Now()}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	if p.cl == nil {
		cl, err := line.Dial(ctx, p.addr, line.Options{})
		if err != nil {
			s.err = fmt.Errorf("cannot reach the proxy at %s: %w", p.addr, err)
			return s
		}
		p.cl = cl
	}
	var err error
	if s.nodes, err = p.cl.Status(ctx); err == nil {
		s.stats, err = p.cl.Stats(ctx)
	}
	if err != nil {
		p.close()
		s.err = fmt.Errorf("proxy %s: %w", p.addr, err)
		return s
	}
	if p.metrics != "" {
		if p.http == nil {
			p.http = &http.Client{Timeout: p.timeout}
		}
		s.hist, err = scrapeLatency(p.http, p.metrics)
		if err != nil {
			s.hist = nil // the frame falls back to STATS
		}
	}
	return s
}

// readOps and writeOps sort the proxy's op label into top's two classes.
var (
	readOps  = map[string]bool{"get": true, "stat": true, "list": true}
	writeOps = map[string]bool{"put": true, "append": true, "cas": true, "del": true}
)

// scrapeLatency reads the proxy's request latency histograms at addr,
// summed into reads and writes.
func scrapeLatency(hc *http.Client, addr string) (map[string]map[float64]float64, error) {
	resp, err := hc.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s/metrics: %s", addr, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]map[float64]float64{"read": {}, "write": {}}
	fam := fams["synod_proxy_request_duration_seconds"]
	if fam == nil {
		return nil, fmt.Errorf("%s/metrics: no request latency", addr)
	}
	for _, m := range fam.GetMetric() {
		class := ""
		for _, l := range m.GetLabel() {
			if l.GetName() == "op" {
				switch {
				case readOps[l.GetValue()]:
					class = "read"
				case writeOps[l.GetValue()]:
					class = "write"
				}
			}
		}
		if class == "" || m.Histogram == nil {
			continue
		}
		for _, b := range m.Histogram.GetBucket() {
			if !math.IsInf(b.GetUpperBound(), 1) { // the text format lists +Inf; the count is the same
				out[class][b.GetUpperBound()] += float64(b.GetCumulativeCount())
			}
		}
		out[class][math.Inf(1)] += float64(m.Histogram.GetSampleCount())
	}
	return out, nil
}

// quantile estimates the q-quantile of the observations between two
// cumulative histograms (upper bound -> count), interpolating within a
// bucket as Prometheus's histogram_quantile does. ok is false without
// observations in between.
func quantile(q float64, prev, cur map[float64]float64) (float64, bool) {
	les := make([]float64, 0, len(cur))
	for le := range cur {
		les = append(les, le)
	}
	sort.Float64s(les)
	if len(les) == 0 {
		return 0, false
	}
	total := cur[les[len(les)-1]] - prev[les[len(les)-1]]
	if total <= 0 {
		return 0, false
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for _, le := range les {
		n := cur[le] - prev[le]
		if n >= rank {
			if math.IsInf(le, 1) {
				return lower, true // beyond the last bound: report it
			}
			if n == below {
				return le, true
			}
			return lower + (le-lower)*(rank-below)/(n-below), true
		}
		lower, below = le, n
	}
	return lower, true
}

// topFrame draws one frame from two samples taken one interval apart.
func topFrame(prev, cur topSample, addr string, windowed bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "synod top   proxy %s   %s   (Ctrl-C quits)\n", addr, cur.at.Format("15:04:05"))
	if cur.err != nil {
		fmt.Fprintf(&b, "\n  %v\n  retrying every interval\n", cur.err)
		return b.String()
	}
	dt := cur.at.Sub(prev.at).Seconds()
	rate := func(name string) float64 {
		if prev.stats == nil || dt <= 0 {
			return 0
		}
		d := statNum(cur.stats, name) - statNum(prev.stats, name)
		return max(d, 0) / dt
	}
	reads, writes := rate("reads"), rate("writes")
	p99 := func(class string) string {
		if windowed && cur.hist != nil && prev.hist != nil {
			if v, ok := quantile(0.99, prev.hist[class], cur.hist[class]); ok {
				return fmtDur(v)
			}
			return "-"
		}
		return cur.stats[class+"_p99_ms"] + " ms*"
	}
	master := cur.stats["master"]
	if master == "" || master == "0" {
		master = "none"
	}
	fmt.Fprintf(&b, "master %s   ops/s %.0f (reads %.0f, writes %.0f)   p99 read %s  write %s\n",
		master, reads+writes, reads, writes, p99("read"), p99("write"))
	fmt.Fprintf(&b, "held %s   in flight %s   connections %s   failovers %s   unavailable/s %.0f   timeouts/s %.0f\n\n",
		orDash(cur.stats["buffered"]), orDash(cur.stats["inflight"]), orDash(cur.stats["connections"]),
		orDash(cur.stats["failovers"]), rate("unavailable"), rate("timeouts"))

	rows := statusRows(cur.nodes)
	var readSum float64
	for _, r := range rows {
		readSum += rate(fmt.Sprintf("node.%d.reads", r.ID))
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tADDRESS\tROLE\tBALLOT\tAPPLIED\tLAG\tREADS/S\tSHARE\tLATENCY")
	for _, r := range rows {
		lag := "-"
		if r.Lag != nil {
			lag = strconv.FormatUint(*r.Lag, 10)
		}
		p := fmt.Sprintf("node.%d.", r.ID)
		rr := rate(p + "reads")
		share := "-"
		if readSum > 0 {
			share = fmt.Sprintf("%.0f%%", 100*rr/readSum)
		}
		latency := "-"
		if ms, ok := cur.stats[p+"ewma_ms"]; ok && r.Role != "down" {
			latency = ms + " ms"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%.0f\t%s\t%s\n", r.ID, r.Addr, r.Role, orDash(r.Ballot), r.Applied, lag, rr, share, latency)
	}
	tw.Flush()
	if !windowed || cur.hist == nil {
		fmt.Fprintf(&b, "\n* p99 since the proxy started; --metrics <proxy metrics address> gives p99 over each interval\n")
	}
	return b.String()
}

func statNum(stats map[string]string, name string) float64 {
	v, err := strconv.ParseFloat(stats[name], 64)
	if err != nil {
		return 0
	}
	return v
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// fmtDur prints seconds as milliseconds with two decimals.
func fmtDur(s float64) string { return strconv.FormatFloat(s*1000, 'f', 2, 64) + " ms" }
