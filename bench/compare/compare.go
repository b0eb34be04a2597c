// Package compare runs two bench binaries (synod's and a peer's, such as the
// etcd one under bench/peers/etcd) through the same workloads, alternating
// between them on a fresh cluster each run, and puts the figures side by side:
// medians, their ratio, the servers' CPU per operation and the load
// generators' own CPU, and whether the aims set for synod were met. Both
// binaries take the flags of bench/benchcli and write the JSON of
// bench.Result, so this package only builds command lines and reads files.
package compare

// This file owns the cases, each bench's command line, and Execute, which
// runs the benches one after the other and reads their results. It runs on
// the caller's goroutine; each bench is a child process.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"synod/bench"
)

// System is a bench binary: the command that runs it, before the shared
// flags.
type System struct {
	Name    string   // "synod", "etcd"
	Command []string // e.g. {"bin/synod", "bench"}
}

// Case is one workload of the comparison.
type Case struct {
	Name  string   // short, used in file names: "write-64"
	Title string   // for the table: "writes, 64 clients"
	Args  []string // workload flags
	// Kill marks the failover case, judged by its unavailability.
	Kill bool
}

// Cases returns the workloads issue 8 names: writes at 1, 16 and 64 clients
// (100-byte values over 1,000 keys), 90% reads at 64 clients, linearizable
// reads at 64 clients, and a master kill under 16 writing clients, killAt
// into the window.
func Cases(killAt time.Duration) []Case {
	write := func(n int) Case {
		return Case{Name: fmt.Sprintf("write-%d", n), Title: fmt.Sprintf("writes, %d client%s", n, plural(n)),
			Args: []string{"--clients", fmt.Sprint(n), "--reads", "0"}}
	}
	return []Case{
		write(1), write(16), write(64),
		{Name: "read90-64", Title: "90% reads, 64 clients", Args: []string{"--clients", "64", "--reads", "0.9", "--consistency", "linearizable"}},
		{Name: "linread-64", Title: "linearizable reads, 64 clients", Args: []string{"--clients", "64", "--reads", "1", "--consistency", "linearizable"}},
		{Name: "kill-16", Title: "master kill, 16 writers", Kill: true,
			Args: []string{"--clients", "16", "--reads", "0", "--kill-master-at", killAt.String()}},
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// Options configure a comparison.
type Options struct {
	Systems  [2]System // the first is the one judged: ratios are first/second
	Cases    []Case
	Runs     int
	Duration time.Duration
	Warmup   time.Duration
	// Nodes is the cluster size each run spawns.
	Nodes int
	// Extra flags for every run: common, and per system name.
	Extra    []string
	PerExtra map[string][]string
	// OutDir receives every run's JSON, log and (failover) timeline.
	OutDir string
	// Log receives a line per run.
	Log io.Writer
	// Slack is how much longer than warm-up plus duration a run may take
	// (start, preload, stop) before it is killed. 0 means 2 minutes.
	Slack time.Duration
}

// Run is one finished (or failed) run.
type Run struct {
	System string        `json:"system"`
	Case   string        `json:"case"`
	Index  int           `json:"run"`
	JSON   string        `json:"json"`
	Err    string        `json:"error,omitempty"`
	Result *bench.Result `json:"-"`
}

// Args returns the command line of run index (from 1) of c on sys.
func (o Options) Args(sys System, c Case, index int) (name string, args []string, jsonPath string) {
	base := fmt.Sprintf("%s-%s-%d", sys.Name, c.Name, index)
	jsonPath = filepath.Join(o.OutDir, base+".json")
	args = append(args, sys.Command[1:]...)
	args = append(args, "--spawn", fmt.Sprint(o.Nodes), "--duration", o.Duration.String(), "--warmup", o.Warmup.String(),
		"--value-size", "100", "--keys", "1000", "--dist", "uniform", "--quiet", "--json", jsonPath)
	if c.Kill {
		args = append(args, "--timeline", filepath.Join(o.OutDir, base+".svg"))
	}
	args = append(args, c.Args...)
	args = append(args, o.Extra...)
	args = append(args, o.PerExtra[sys.Name]...)
	return sys.Command[0], args, jsonPath
}

// Execute runs every case Runs times on both systems, alternating which goes
// first, and returns every run, failed ones included. It stops early only
// when ctx ends.
func Execute(ctx context.Context, o Options) ([]Run, error) {
	if o.Runs < 1 || len(o.Cases) == 0 || o.Nodes < 1 {
		return nil, errors.New("compare: nothing to run")
	}
	if o.Slack <= 0 {
		o.Slack = 2 * time.Minute
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	total := o.Runs * len(o.Cases) * 2
	var runs []Run
	for i := 1; i <= o.Runs; i++ {
		for _, c := range o.Cases {
			order := []System{o.Systems[0], o.Systems[1]}
			if i%2 == 0 {
				order[0], order[1] = order[1], order[0]
			}
			for _, sys := range order {
				if err := ctx.Err(); err != nil {
					return runs, err
				}
				r := o.runOne(ctx, sys, c, i)
				runs = append(runs, r)
				fmt.Fprintf(o.Log, "[%d/%d] %s\n", len(runs), total, r.summary())
			}
		}
	}
	return runs, nil
}

func (o Options) runOne(ctx context.Context, sys System, c Case, index int) Run {
	name, args, jsonPath := o.Args(sys, c, index)
	r := Run{System: sys.Name, Case: c.Name, Index: index, JSON: jsonPath}
	logPath := strings.TrimSuffix(jsonPath, ".json") + ".log"
	logf, err := os.Create(logPath)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer logf.Close()
	rctx, cancel := context.WithTimeout(ctx, o.Warmup+o.Duration+o.Slack)
	defer cancel()
	cmd := exec.CommandContext(rctx, name, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// On timeout, SIGTERM first: the bench then stops its cluster itself.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	fmt.Fprintf(logf, "$ %s %s\n", name, strings.Join(args, " "))
	if err := cmd.Run(); err != nil {
		r.Err = fmt.Sprintf("%v (log: %s)", err, logPath)
		return r
	}
	res, err := bench.ReadResultFile(jsonPath)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	r.Result = res
	return r
}

func (r Run) summary() string {
	head := fmt.Sprintf("%-6s %-11s run %d: ", r.System, r.Case, r.Index)
	if r.Result == nil {
		return head + "FAILED: " + r.Err
	}
	s := head + fmt.Sprintf("%.0f ops/s, p99 %.2f ms, %d errors", r.Result.Total.PerSec, r.Result.Total.P99Ms, r.Result.Total.Errors)
	if f := r.Result.Failover; f != nil {
		s += fmt.Sprintf(", unavailable %.3f s", f.Unavailable)
	}
	return s
}

// Stat is min, median and max of a figure over the runs.
type Stat struct {
	N                int
	Min, Median, Max float64
}

// Summarize returns the Stat of vs (zero Stat for none).
func Summarize(vs []float64) Stat {
	if len(vs) == 0 {
		return Stat{}
	}
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Stat{N: len(s), Min: s[0], Median: m, Max: s[len(s)-1]}
}
