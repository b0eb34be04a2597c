// Package compare runs synod's bench binary and its peers' (etcd under
// bench/peers/etcd, ZooKeeper under bench/peers/zookeeper) through the same
// workloads, alternating between them on a fresh cluster each run, and puts
// the figures side by side: medians, synod's ratio to each peer, the
// servers' CPU per operation and the load generators' own CPU, and whether
// the aims set for synod were met. Every binary takes the flags of
// bench/benchcli and writes the JSON of bench.Result, so this package only
// builds command lines and reads files.
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
	"slices"
	"sort"
	"strings"
	"time"

	"synod/bench"
)

// System is a bench binary: the command that runs it, before the shared
// flags.
type System struct {
	Name    string   // "synod", "etcd", "zookeeper"
	Command []string // e.g. {"bin/synod", "bench"}
}

// The systems' names as the cases refer to them.
const (
	Synod     = "synod"
	Etcd      = "etcd"
	ZooKeeper = "zookeeper"
)

// Groups of cases, for selecting some (benchcompare -cases).
const (
	GroupCore     = "core"     // issue 8's: writes at 1, 16, 64 clients, reads at 64, a master kill
	GroupReads    = "reads"    // the weaker read levels
	GroupSizes    = "sizes"    // values of 4 KiB, 64 KiB, 1 MiB
	GroupClients  = "clients"  // 256 and 1,024 clients
	GroupPipeline = "pipeline" // one connection, 16 requests in flight
	GroupTLS      = "tls"      // TLS on every link
	GroupMetrics  = "metrics"  // synod's metrics endpoints scraped every second
	GroupFiles    = "files"    // files of 64 KiB, 1 MB and 64 MB, beside the disk's own figure
)

// Case is one workload of the comparison.
type Case struct {
	Name  string // short, used in file names: "write-64"
	Title string // for the table: "writes, 64 clients"
	Group string
	// Args are the workload flags of every system; PerSystem adds each
	// system's own (the read level it is compared at, TLS).
	Args      []string
	PerSystem map[string][]string
	// ValueSize is the bytes per value; 0 means 100.
	ValueSize int
	// Skip names the systems that do not run this case, and why.
	Skip map[string]string
	// Refused names the systems that do not run this case because they
	// refuse its requests (a value over their limit), and which limit:
	// shown as "refused", not "n/a".
	Refused map[string]string
	// FileSize, if positive, makes the case a file case (--file-size):
	// its rows give MB/s and server CPU per byte, and the disk's own
	// figure is measured beside each of its runs.
	FileSize int64
	// Kill marks the failover case, judged by its unavailability.
	Kill bool
	// Window, if longer than Options.Duration, is this case's measured
	// window: the failover case must see the longest outage (a 5 s client
	// timeout after the kill) whole.
	Window time.Duration
}

// window is c's measured window under o.
func (o Options) window(c Case) time.Duration { return max(o.Duration, c.Window) }

// valueSize is the case's value size in bytes.
func (c Case) valueSize() int {
	if c.ValueSize > 0 {
		return c.ValueSize
	}
	return 100
}

// Skips reports whether sys does not run c.
func (c Case) Skips(sys string) bool {
	_, ok := c.Skip[sys]
	_, refused := c.Refused[sys]
	return ok || refused
}

// whySkipped is why sys does not run c ("" if it does), and whether it is
// because sys refuses c's requests.
func (c Case) whySkipped(sys string) (why string, refused bool) {
	if why, ok := c.Refused[sys]; ok {
		return why, true
	}
	return c.Skip[sys], false
}

// Read levels each system is compared at: synod's linearizable reads with
// etcd's linearizable ones and ZooKeeper's sync+read; synod's session and
// stale reads with etcd's serializable ones and ZooKeeper's plain ones
// (served by the server the client is on, in session order).
func levels(synod, etcd, zk string) map[string][]string {
	return map[string][]string{
		Synod: {"--consistency", synod}, Etcd: {"--consistency", etcd}, ZooKeeper: {"--consistency", zk},
	}
}

// Why some systems sit out some cases.
const (
	skipZKMiB       = "over ZooKeeper's default request limit, jute.maxbuffer = 1 MiB − 1 byte"
	skipZKTLS       = "ZooKeeper's TLS needs its Netty connection factory and Java keystores; not set up"
	skipZKTwin      = "the plaintext twin of the TLS case, which ZooKeeper sits out"
	skipPeerMetrics = "prices synod's own metrics; the peers are not measured here"
	refuseEtcd      = "over etcd's request limit, --max-request-bytes = 1.5 MiB"
	refuseZK        = "over ZooKeeper's request limit, jute.maxbuffer = 1 MiB − 1 byte"
	skipPeerPutFile = "synod's PUTFILE below its value limit; the peers store the same files as values in the row above"
)

// Cases returns every workload: issue 8's (writes at 1, 16 and 64 clients,
// 90% and 100% linearizable reads at 64 clients, a master kill under 16
// writers, killAt into the window) and issue 19's and 15's (session and
// stale reads; values of 4 KiB, 64 KiB and 1 MiB; 256 and 1,024 clients;
// one pipelined connection; TLS), each in its group. Values are 100 bytes
// over 1,000 uniform keys unless a case says otherwise.
func Cases(killAt time.Duration) []Case {
	write := func(n int) Case {
		g := GroupCore
		if n > 64 {
			g = GroupClients
		}
		return Case{Name: fmt.Sprintf("write-%d", n), Title: fmt.Sprintf("writes, %d client%s", n, plural(n)), Group: g,
			Args: []string{"--clients", fmt.Sprint(n), "--reads", "0"}}
	}
	size := func(name, title string, bytes int, skip map[string]string) Case {
		return Case{Name: "write-" + name + "-16", Title: "writes of " + title + ", 16 clients", Group: GroupSizes,
			Args: []string{"--clients", "16", "--reads", "0"}, ValueSize: bytes, Skip: skip}
	}
	return []Case{
		write(1), write(16), write(64),
		{Name: "read90-64", Title: "90% reads, 64 clients (ZooKeeper: sync+read)", Group: GroupCore,
			Args: []string{"--clients", "64", "--reads", "0.9"}, PerSystem: levels("linearizable", "linearizable", "sync")},
		{Name: "linread-64", Title: "linearizable reads, 64 clients (ZooKeeper: sync+read)", Group: GroupCore,
			Args: []string{"--clients", "64", "--reads", "1"}, PerSystem: levels("linearizable", "linearizable", "sync")},
		{Name: "kill-16", Title: "master kill, 16 writers", Group: GroupCore, Kill: true, Window: killAt + 6*time.Second,
			Args: []string{"--clients", "16", "--reads", "0", "--kill-master-at", killAt.String()}},
		{Name: "session-64", Title: "session reads, 64 clients (etcd: serializable, ZooKeeper: plain)", Group: GroupReads,
			Args: []string{"--clients", "64", "--reads", "1"}, PerSystem: levels("session", "serializable", "plain")},
		{Name: "stale-64", Title: "stale reads, 64 clients (etcd: serializable, ZooKeeper: plain)", Group: GroupReads,
			Args: []string{"--clients", "64", "--reads", "1"}, PerSystem: levels("stale", "serializable", "plain")},
		size("4k", "4 KiB", 4<<10, nil),
		size("64k", "64 KiB", 64<<10, nil),
		size("1m", "1 MiB", 1<<20, map[string]string{ZooKeeper: skipZKMiB}),
		write(256), write(1024),
		{Name: "pipe16-write", Title: "pipelined writes, 1 connection, 16 in flight", Group: GroupPipeline,
			Args: []string{"--clients", "1", "--pipeline", "16", "--reads", "0"}},
		// The plaintext twin of tls-write-64, run right before it: the cost
		// of TLS is their ratio, and on a shared machine only figures
		// measured minutes apart compare.
		{Name: "plain-write-64", Title: "writes, 64 clients, plaintext (beside TLS)", Group: GroupTLS,
			Args: []string{"--clients", "64", "--reads", "0"}, Skip: map[string]string{ZooKeeper: skipZKTwin}},
		{Name: "tls-write-64", Title: "writes, 64 clients, TLS on every link", Group: GroupTLS,
			Args: []string{"--clients", "64", "--reads", "0"}, PerSystem: map[string][]string{Synod: {"--secure"}, Etcd: {"--secure"}},
			Skip: map[string]string{ZooKeeper: skipZKTLS}},
		// synod with no metrics endpoint, then with every process's
		// endpoint scraped each second, as Prometheus would: their ratio is
		// what observability costs (the counters themselves are always kept).
		{Name: "nometrics-write-64", Title: "writes, 64 clients, no metrics endpoint (beside the next)", Group: GroupMetrics,
			Args: []string{"--clients", "64", "--reads", "0"}, Skip: map[string]string{Etcd: skipPeerMetrics, ZooKeeper: skipPeerMetrics}},
		{Name: "metrics-write-64", Title: "writes, 64 clients, every /metrics scraped each second", Group: GroupMetrics,
			Args: []string{"--clients", "64", "--reads", "0"}, PerSystem: map[string][]string{Synod: {"--scrape-metrics", "1s"}},
			Skip: map[string]string{Etcd: skipPeerMetrics, ZooKeeper: skipPeerMetrics}},
		file("64k", "64 KiB", 64<<10, 16, 0, nil),
		file("1m", "1 MB", 1_000_000, 16, 0, nil),
		// The same 1 MB files as synod stores files above its value
		// limit, to price PUTFILE against PUT at one size.
		{Name: "file-1m-putfile-16", Title: "files of 1 MB with PUTFILE, 16 clients", Group: GroupFiles, FileSize: 1_000_000,
			Args:      []string{"--clients", "16", "--reads", "0", "--file-size", "1000000"},
			PerSystem: map[string][]string{Synod: {"--putfile-above", "0"}},
			Skip:      map[string]string{Etcd: skipPeerPutFile, ZooKeeper: skipPeerPutFile}},
		// 64 MB files take seconds each here: fewer clients (the bench
		// holds one file per client), a longer window, so it sees several
		// complete, and a longer operation timeout than 5 s.
		withArgs(file("64m", "64 MB", 64_000_000, 4, 12*time.Second, map[string]string{Etcd: refuseEtcd, ZooKeeper: refuseZK}),
			"--op-timeout", "60s"),
	}
}

// withArgs returns c with args added to its workload flags.
func withArgs(c Case, args ...string) Case {
	c.Args = append(c.Args, args...)
	return c
}

// file is a file case of the files group: clients writing files of bytes
// (title names the size) for at least window.
func file(name, title string, bytes int64, clients int, window time.Duration, refused map[string]string) Case {
	return Case{Name: fmt.Sprintf("file-%s-%d", name, clients), Title: fmt.Sprintf("files of %s, %d clients", title, clients),
		Group: GroupFiles, FileSize: bytes, Window: window, Refused: refused,
		Args: []string{"--clients", fmt.Sprint(clients), "--reads", "0", "--file-size", fmt.Sprint(bytes)}}
}

// Select picks cases by name or group from all, in all's order; "all" or
// an empty list picks every one.
func Select(all []Case, names []string) ([]Case, error) {
	want := map[string]bool{}
	for _, n := range names {
		if n = strings.TrimSpace(n); n != "" {
			want[n] = true
		}
	}
	if len(want) == 0 || want["all"] {
		return all, nil
	}
	known := map[string]bool{"all": true}
	var sel []Case
	for _, c := range all {
		known[c.Name], known[c.Group] = true, true
		if want[c.Name] || want[c.Group] {
			sel = append(sel, c)
		}
	}
	for n := range want {
		if !known[n] {
			return nil, fmt.Errorf("compare: unknown workload or group %q", n)
		}
	}
	return sel, nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// Options configure a comparison.
type Options struct {
	Systems  []System // the first is the one judged: ratios are first/each other
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
	// NoDisk leaves out the disk's own figure beside the file cases.
	NoDisk bool
}

// Bounds of the disk's figure beside a file case: each copy is written
// for at most diskDuration, up to diskMax bytes.
const (
	diskDuration = 4 * time.Second
	diskMax      = 256 << 20
)

// Run is one finished (or failed) run.
type Run struct {
	System string        `json:"system"`
	Case   string        `json:"case"`
	Index  int           `json:"run"`
	JSON   string        `json:"json"`
	Err    string        `json:"error,omitempty"`
	Result *bench.Result `json:"-"`
	// Disk is the disk's figure, on a Run whose System is Disk.
	Disk *DiskResult `json:"disk,omitempty"`
}

// Args returns the command line of run index (from 1) of c on sys.
func (o Options) Args(sys System, c Case, index int) (name string, args []string, jsonPath string) {
	base := fmt.Sprintf("%s-%s-%d", sys.Name, c.Name, index)
	jsonPath = filepath.Join(o.OutDir, base+".json")
	args = append(args, sys.Command[1:]...)
	args = append(args, "--spawn", fmt.Sprint(o.Nodes), "--duration", o.window(c).String(), "--warmup", o.Warmup.String(),
		"--value-size", fmt.Sprint(c.valueSize()), "--keys", "1000", "--dist", "uniform", "--quiet", "--json", jsonPath)
	if c.Kill {
		args = append(args, "--timeline", filepath.Join(o.OutDir, base+".svg"))
	}
	args = append(args, c.Args...)
	args = append(args, c.PerSystem[sys.Name]...)
	args = append(args, o.Extra...)
	args = append(args, o.PerExtra[sys.Name]...)
	return sys.Command[0], args, jsonPath
}

// Execute runs every case Runs times on every system that does not skip
// it, in the systems' order on odd runs and the reverse on even ones, and
// returns every run, failed ones included. It stops early only when ctx
// ends.
func Execute(ctx context.Context, o Options) ([]Run, error) {
	if o.Runs < 1 || len(o.Cases) == 0 || o.Nodes < 1 || len(o.Systems) < 2 {
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
	total := 0
	for _, c := range o.Cases {
		for _, sys := range o.Systems {
			if !c.Skips(sys.Name) {
				total += o.Runs
			}
		}
		if c.FileSize > 0 && !o.NoDisk {
			total += o.Runs
		}
	}
	var runs []Run
	for i := 1; i <= o.Runs; i++ {
		for _, c := range o.Cases {
			var order []System
			for _, sys := range o.Systems {
				if !c.Skips(sys.Name) {
					order = append(order, sys)
				}
			}
			disk := c.FileSize > 0 && !o.NoDisk
			if disk {
				// The disk goes first (odd runs) or last, as the systems
				// alternate, so it is measured in the same minutes.
				order = append([]System{{Name: Disk}}, order...)
			}
			if i%2 == 0 {
				slices.Reverse(order)
			}
			for _, sys := range order {
				if err := ctx.Err(); err != nil {
					return runs, err
				}
				var r Run
				if sys.Name == Disk {
					r = Run{System: Disk, Case: c.Name, Index: i}
					d, err := MeasureDisk(ctx, DiskOptions{Duration: diskDuration, Max: diskMax})
					if err != nil {
						r.Err = err.Error()
					} else {
						r.Disk = &d
					}
				} else {
					r = o.runOne(ctx, sys, c, i)
				}
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
	rctx, cancel := context.WithTimeout(ctx, o.Warmup+o.window(c)+o.Slack)
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
	head := fmt.Sprintf("%-9s %-13s run %d: ", r.System, r.Case, r.Index)
	if d := r.Disk; d != nil {
		return head + fmt.Sprintf("%.1f MB/s of client data, %d copies of %d bytes with an fsync per MiB in %.2f s", d.MBPerSec, d.Copies, d.Bytes, d.Seconds)
	}
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
