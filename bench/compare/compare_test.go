package compare

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"synod/bench"
)

// The test binary stands in for a bench binary when COMPARE_FAKE names the
// system: it writes a result to the path after --json, with throughput taken
// from COMPARE_FAKE_OPS, or fails when that is "fail".
func TestMain(m *testing.M) {
	if name := os.Getenv("COMPARE_FAKE"); name != "" {
		os.Exit(fakeBench(name))
	}
	os.Exit(m.Run())
}

func fakeBench(name string) int {
	args := os.Args[1:]
	var path string
	kill := false
	for i, a := range args {
		if a == "--json" && i+1 < len(args) {
			path = args[i+1]
		}
		if a == "--kill-master-at" {
			kill = true
		}
	}
	ops := os.Getenv("COMPARE_FAKE_OPS_" + name)
	if ops == "fail" || path == "" {
		fmt.Fprintln(os.Stderr, "fake bench failing as asked")
		return 1
	}
	var perSec float64
	fmt.Sscan(ops, &perSec)
	r := result(name, perSec, 2, 100, 20)
	if kill {
		r.Failover = &bench.Failover{Killed: "n1", Unavailable: 1000 / perSec, FirstWrite: 900 / perSec, Errors: int64(perSec) % 7}
	}
	if err := bench.WriteResultFile(path, r); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func result(system string, perSec, p99, usPerOp, loadgen float64) *bench.Result {
	return &bench.Result{System: system, Workload: bench.DefaultWorkload(),
		Total: bench.OpStats{Count: int64(perSec * 10), PerSec: perSec, P99Ms: p99},
		CPU:   bench.CPUStats{ServerUsPerOp: usPerOp, LoadgenPercent: loadgen}}
}

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want Stat
	}{
		{nil, Stat{}},
		{[]float64{5}, Stat{1, 5, 5, 5}},
		{[]float64{3, 1, 2}, Stat{3, 1, 2, 3}},
		{[]float64{4, 1, 3, 2}, Stat{4, 1, 2.5, 4}},
	} {
		if got := Summarize(tc.in); got != tc.want {
			t.Errorf("Summarize(%v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestCasesAndArgs(t *testing.T) {
	cases := Cases(3 * time.Second)
	var names []string
	for _, c := range cases {
		names = append(names, c.Name)
	}
	want := "write-1,write-16,write-64,read90-64,linread-64,kill-16,session-64,stale-64," +
		"write-4k-16,write-64k-16,write-1m-16,write-256,write-1024,pipe16-write,plain-write-64,tls-write-64,nometrics-write-64,metrics-write-64," +
		"file-64k-16,file-1m-16,file-1m-putfile-16,file-64m-4"
	if got := strings.Join(names, ","); got != want {
		t.Fatalf("cases %s", got)
	}
	byName := map[string]Case{}
	for _, c := range cases {
		byName[c.Name] = c
	}
	o := Options{Duration: 10 * time.Second, Warmup: 2 * time.Second, Nodes: 3, OutDir: "out",
		Extra: []string{"--op-timeout", "5s"}, PerExtra: map[string][]string{"synod": {"--direct"}}}
	synod := System{Name: Synod, Command: []string{"bin/synod", "bench"}}
	etcd := System{Name: Etcd, Command: []string{"bin/etcdbench"}}
	zk := System{Name: ZooKeeper, Command: []string{"bin/zkbench"}}
	for _, tc := range []struct {
		sys  System
		c    string
		want string // the whole command line, or a part of it after "…"
	}{
		{synod, "kill-16", "bench --spawn 3 --duration 10s --warmup 2s --value-size 100 --keys 1000 --dist uniform --quiet " +
			"--json out/synod-kill-16-2.json --timeline out/synod-kill-16-2.svg --clients 16 --reads 0 --kill-master-at 3s --op-timeout 5s --direct"},
		{etcd, "linread-64", "…--reads 1 --consistency linearizable --op-timeout 5s"},
		{etcd, "write-16", "…--spawn 3 --duration 10s --warmup 2s"},
		{zk, "linread-64", "…--reads 1 --consistency sync --op-timeout 5s"},
		{synod, "session-64", "…--reads 1 --consistency session --op-timeout 5s --direct"},
		{etcd, "stale-64", "…--reads 1 --consistency serializable --op-timeout 5s"},
		{zk, "stale-64", "…--reads 1 --consistency plain --op-timeout 5s"},
		{etcd, "write-1m-16", "…--value-size 1048576 --keys 1000"},
		{zk, "pipe16-write", "…--clients 1 --pipeline 16 --reads 0"},
		{etcd, "tls-write-64", "…--clients 64 --reads 0 --secure --op-timeout 5s"},
		{synod, "metrics-write-64", "…--clients 64 --reads 0 --scrape-metrics 1s --op-timeout 5s --direct"},
	} {
		name, args, jsonPath := o.Args(tc.sys, byName[tc.c], 2)
		line := strings.Join(args, " ")
		if name != tc.sys.Command[0] || !strings.HasSuffix(jsonPath, tc.sys.Name+"-"+tc.c+"-2.json") {
			t.Errorf("%s %s: command %s, JSON %s", tc.sys.Name, tc.c, name, jsonPath)
		}
		if part, ok := strings.CutPrefix(tc.want, "…"); ok {
			if !strings.Contains(line, part) {
				t.Errorf("%s %s: %q lacks %q", tc.sys.Name, tc.c, line, part)
			}
		} else if line != tc.want {
			t.Errorf("%s %s: %q, want %q", tc.sys.Name, tc.c, line, tc.want)
		}
		if tc.sys.Name != Synod && (strings.Contains(line, "--direct") || strings.Contains(line, "--timeline")) {
			t.Errorf("%s %s: %q", tc.sys.Name, tc.c, line)
		}
	}
	short := o
	short.Duration = 4 * time.Second
	if _, args, _ := short.Args(zk, byName["kill-16"], 1); !strings.Contains(strings.Join(args, " "), "--duration 9s") {
		t.Errorf("a kill 3 s into a 4 s window: %q, want the window stretched to 9 s", args)
	}
	if !byName["write-1m-16"].Skips(ZooKeeper) || !byName["tls-write-64"].Skips(ZooKeeper) || byName["tls-write-64"].Skips(Etcd) {
		t.Error("skips: ZooKeeper sits out 1 MiB values and TLS, etcd neither")
	}
}

func TestSelect(t *testing.T) {
	all := Cases(time.Second)
	for _, tc := range []struct {
		names []string
		want  string // case names, or "error"
	}{
		{nil, "22 cases"},
		{[]string{"all"}, "22 cases"},
		{[]string{"metrics"}, "nometrics-write-64,metrics-write-64"},
		{[]string{"kill-16"}, "kill-16"},
		{[]string{"sizes", "write-1"}, "write-1,write-4k-16,write-64k-16,write-1m-16"},
		{[]string{" tls ", "pipeline", "clients"}, "write-256,write-1024,pipe16-write,plain-write-64,tls-write-64"},
		{[]string{"core"}, "write-1,write-16,write-64,read90-64,linread-64,kill-16"},
		{[]string{"reads", "nosuch"}, "error"},
	} {
		sel, err := Select(all, tc.names)
		var got string
		switch {
		case err != nil:
			got = "error"
		case len(sel) == len(all):
			got = fmt.Sprintf("%d cases", len(sel))
		default:
			var names []string
			for _, c := range sel {
				names = append(names, c.Name)
			}
			got = strings.Join(names, ",")
		}
		if got != tc.want {
			t.Errorf("Select(%q) = %s, want %s", tc.names, got, tc.want)
		}
	}
}

func opts(dir string, runs int, cases ...Case) Options {
	return Options{
		Systems: []System{{Name: "a", Command: []string{os.Args[0]}}, {Name: "b", Command: []string{os.Args[0]}},
			{Name: "c", Command: []string{os.Args[0]}}},
		Cases:    cases,
		Runs:     runs,
		Duration: time.Second, Warmup: 0, Nodes: 3, OutDir: dir, Slack: time.Minute,
	}
}

// TestExecute runs the fake bench binary as three systems: runs alternate,
// a system that skips a case is not run for it, results are read back, a
// failing run is recorded and the others go on.
func TestExecute(t *testing.T) {
	t.Setenv("COMPARE_FAKE_OPS_a", "2000")
	t.Setenv("COMPARE_FAKE_OPS_b", "1000")
	t.Setenv("COMPARE_FAKE_OPS_c", "4000")
	cases := Cases(time.Second)
	write64, kill := cases[2], cases[5]
	write64.Skip = map[string]string{"c": "not for c"}
	dir := t.TempDir()
	o := opts(dir, 2, write64, kill)
	// The fake learns its name from the environment, which the systems
	// share; give each its own through a wrapper script.
	for i, name := range []string{"a", "b", "c"} {
		script := filepath.Join(dir, name+".sh")
		os.WriteFile(script, []byte(fmt.Sprintf("#!/bin/sh\nCOMPARE_FAKE=%s exec %s \"$@\"\n", name, os.Args[0])), 0o755)
		o.Systems[i].Command = []string{script}
	}
	var log bytes.Buffer
	o.Log = &log
	runs, err := Execute(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, r := range runs {
		if r.Result == nil {
			t.Fatalf("run %+v failed", r)
		}
		order = append(order, fmt.Sprintf("%s%d", r.System, r.Index))
	}
	if got := strings.Join(order, " "); got != "a1 b1 a1 b1 c1 b2 a2 c2 b2 a2" {
		t.Fatalf("order %s", got)
	}
	if !strings.Contains(log.String(), "[10/10]") {
		t.Fatalf("log:\n%s", log.String())
	}
	tab := Build(o, runs, "make bench-compare")
	r, ok := tab.row("write-64", "ops/s")
	if !ok || r.Ratios[0] != 2 || !math.IsNaN(r.Ratios[1]) || r.Stats[0].N != 2 || r.Stats[2].N != 0 || r.Skipped[2] != "not for c" {
		t.Fatalf("row %+v", r)
	}
	u, _ := tab.row("kill-16", "unavailable s")
	if u.Ratios[0] != 0.5 || u.Ratios[1] != 2 {
		t.Fatalf("unavailability row %+v", u)
	}

	t.Setenv("COMPARE_FAKE_OPS_b", "fail")
	o.Runs = 1
	o.Cases = cases[:1]
	runs, err = Execute(context.Background(), o)
	if err != nil || len(runs) != 3 || runs[0].Result == nil || runs[1].Result != nil || !strings.Contains(runs[1].Err, "log:") || runs[2].Result == nil {
		t.Fatalf("with a failing system: %v %+v", err, runs)
	}
	tab = Build(o, runs, "")
	if len(tab.Failed) != 1 {
		t.Fatalf("failed %v", tab.Failed)
	}
}

// synthetic is a comparison of synod, etcd and ZooKeeper: synod writes
// 2.5× etcd and 1.25× ZooKeeper at 64 clients, reads 1.54× etcd, fails over
// in 0.39× etcd's time, loses a tenth of its throughput to TLS and a
// third at 1,024 clients; ZooKeeper sits out TLS; one etcd run failed.
func synthetic() []Run {
	var runs []Run
	add := func(sys, c string, i int, r *bench.Result) {
		runs = append(runs, Run{System: sys, Case: c, Index: i, Result: r})
	}
	for i, f := range []float64{0.9, 1, 1.1} {
		add(Synod, "write-64", i+1, result(Synod, 20000*f, 10, 50, 30))
		add(Etcd, "write-64", i+1, result(Etcd, 8000*f, 17, 165, 44))
		add(ZooKeeper, "write-64", i+1, result(ZooKeeper, 16000*f, 12, 100, 20))
		add(Synod, "linread-64", i+1, result(Synod, 20000*f, 5, 40, 30))
		add(Etcd, "linread-64", i+1, result(Etcd, 13000*f, 11, 88, 69))
		add(ZooKeeper, "linread-64", i+1, result(ZooKeeper, 25000*f, 4, 30, 20))
		k := result(Synod, 3000, 5, 100, 10)
		k.Failover = &bench.Failover{Unavailable: 0.7 * f, FirstWrite: 0.6, Errors: 0}
		add(Synod, "kill-16", i+1, k)
		e := result(Etcd, 3000, 5, 200, 10)
		e.Failover = &bench.Failover{Unavailable: 1.8 * f, FirstWrite: -1, Errors: 12}
		add(Etcd, "kill-16", i+1, e)
		z := result(ZooKeeper, 3000, 5, 200, 10)
		z.Failover = &bench.Failover{Unavailable: 0.5 * f, FirstWrite: 0.4, Errors: 3}
		add(ZooKeeper, "kill-16", i+1, z)
		for j, sys := range []string{Synod, Etcd, ZooKeeper} { // ZooKeeper's is ignored: it skips the case
			r := result(sys, 100*f/float64(j+1), 20*float64(j+1), 500, 10)
			r.Workload.ValueSize = 1 << 20
			add(sys, "write-1m-16", i+1, r)
		}
		add(Synod, "tls-write-64", i+1, result(Synod, 18000*f, 11, 60, 30))
		add(Synod, "plain-write-64", i+1, result(Synod, 24000*f, 10, 45, 30))
		add(Etcd, "tls-write-64", i+1, result(Etcd, 6000*f, 20, 200, 50))
		add(Synod, "nometrics-write-64", i+1, result(Synod, 20000*f, 10, 50, 30))
		add(Synod, "metrics-write-64", i+1, result(Synod, 19800*f, 10, 51, 30))
		add(Synod, "write-1024", i+1, result(Synod, 13000*f, 90, 55, 60))
		add(Etcd, "write-1024", i+1, result(Etcd, 7000*f, 200, 170, 90))
		add(ZooKeeper, "write-1024", i+1, result(ZooKeeper, 9000*f, 150, 120, 40))
	}
	runs = append(runs, Run{System: Etcd, Case: "write-1", Index: 1, Err: "exit status 1"})
	return runs
}

func TestBuildAndJudge(t *testing.T) {
	o := opts("", 3, Cases(3*time.Second)...)
	o.Systems = []System{{Name: Synod}, {Name: Etcd}, {Name: ZooKeeper}}
	tab := Build(o, synthetic(), "make bench-compare")
	// 3 metrics for write-1, the kill and each size; 2 for the other 13;
	// 4 for each of the 4 file cases.
	if len(tab.Rows) != 3*5+2*13+4*4 {
		t.Fatalf("%d rows", len(tab.Rows))
	}
	r, _ := tab.row("write-64", "ops/s")
	if r.Stats[0] != (Stat{3, 18000, 20000, 22000}) || r.Ratios[0] != 2.5 || r.Ratios[1] != 1.25 ||
		r.ServerUsPerOp[1].Median != 165 || r.LoadgenPercent[0].Median != 30 || r.Skipped != nil {
		t.Fatalf("write-64 row %+v", r)
	}
	if r, _ := tab.row("write-1", "ops/s"); !math.IsNaN(r.Ratios[0]) || r.Stats[0].N != 0 {
		t.Fatalf("unmeasured row %+v", r)
	}
	if r, _ := tab.row("kill-16", "first write after kill s"); r.Stats[1].N != 0 || r.Stats[0].N != 3 {
		t.Fatalf("first-write row: runs without a first write must not count: %+v", r)
	}
	if r, ok := tab.row("write-1m-16", "MB/s"); !ok || math.Abs(r.Stats[0].Median-104.8576) > 1e-9 {
		t.Fatalf("MB/s row %+v", r)
	}
	if r, _ := tab.row("tls-write-64", "ops/s"); r.Skipped == nil || r.Skipped[2] != skipZKTLS || r.Skipped[0] != "" {
		t.Fatalf("TLS row %+v", r)
	}
	wantCost := []string{
		"synod: 24000 → 18000 ops/s (-25%), server CPU 45 → 60 µs per write (+15 µs)",
		"etcd: 8000 → 6000 ops/s (-25%), server CPU 165 → 200 µs per write (+35 µs) (plaintext from writes, 64 clients, run apart)",
	}
	if strings.Join(tab.TLSCost, "\n") != strings.Join(wantCost, "\n") {
		t.Fatalf("TLS cost %q", tab.TLSCost)
	}
	if got, want := strings.Join(tab.MetricsCost, "\n"), "synod: 20000 → 19800 ops/s (-1%), server CPU 50 → 51 µs per write (+1 µs)"; got != want {
		t.Fatalf("metrics cost %q, want %q", got, want)
	}
	aims := map[string]Aim{}
	for _, a := range tab.Aims {
		aims[a.Text] = a
	}
	for _, tc := range []struct {
		text           string
		measured, met  bool
		detailContains string
	}{
		{"writes at 64 clients: synod ≥ 6× etcd's throughput", true, false, "2.50×: missed (aim ≥ 6.00×)"},
		{"writes at 64 clients: server CPU ≤ 35 µs per write", true, false, "50 µs: missed by 15 µs"},
		{"linearizable reads at 64 clients: synod ≥ 7× etcd's throughput", true, false, "1.54×"},
		{"linearizable reads at 64 clients: server CPU ≤ 20 µs per read", true, false, "40 µs"},
		{"writes, 1 client: p50 ≤ ⅓ of etcd's", false, false, ""},
		{"failover: unavailability ≤ 0.3× etcd's", true, false, "0.39×"},
		{"failover: zero client errors on synod", true, true, "0 at most over 3 runs"},
		{"p99 below etcd's on every row", true, true, "5 of 5 rows"},
		{"synod ahead of both peers on every row", true, false, "9 of 12 rows; missed: linearizable reads, 64 clients (ZooKeeper: sync+read) ops/s; " +
			"linearizable reads, 64 clients (ZooKeeper: sync+read) p99 ms; master kill, 16 writers unavailable s"},
		{"writes at 256 and 1,024 clients keep ≥ 90% of the throughput at 64 (no collapse)", true, false, "write-1024 65%"},
	} {
		a, ok := aims[tc.text]
		if !ok {
			t.Errorf("no aim %q in %+v", tc.text, tab.Aims)
			continue
		}
		if a.Measured != tc.measured || a.Met != tc.met || !strings.Contains(a.Detail, tc.detailContains) {
			t.Errorf("aim %q: %+v", tc.text, a)
		}
	}
	if len(tab.Aims) != 10 {
		t.Errorf("%d aims", len(tab.Aims))
	}
	if len(tab.Failed) != 1 {
		t.Fatalf("failed %v", tab.Failed)
	}

	var md bytes.Buffer
	if err := tab.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| workload | metric | synod | etcd | zookeeper | synod/etcd | synod/zookeeper | server CPU µs/op (synod / etcd / zookeeper) | load-gen CPU % of a core (synod / etcd / zookeeper) |",
		"|---|---|---:|---:|---:|---:|---:|---:|---:|\n",
		"| writes, 64 clients | ops/s | 20000 (18000–22000) | 8000 (7200–8800) | 16000 (14400–17600) | 2.50× | 1.25× | 50 / 165 / 100 | 30 / 44 / 20 |",
		"|  | p99 ms | 10.00 | 17.00 | 12.00 | 0.59× | 0.83× |  |  |",
		"| writes, 1 client | ops/s | – | – | – | – | – |",
		"|  | p50 ms | – | – | – | – | – |",
		"| writes, 64 clients, TLS on every link | ops/s | 18000 (16200–19800) | 6000 (5400–6600) | n/a | 3.00× | – | 60 / 200 / n/a | 30 / 50 / n/a |",
		"| master kill, 16 writers | unavailable s | 0.700 (0.630–0.770) | 1.800 (1.620–1.980) | 0.500 (0.450–0.550) | 0.39× | 1.40× |",
		"|  | first write after kill s | 0.600 | – | 0.400 | – | 1.50× |",
		"|  | MB/s | 104.9 (94.4–115.3) |",
		"- zookeeper, writes, 64 clients, TLS on every link: " + skipZKTLS,
		"- zookeeper, writes of 1 MiB, 16 clients: " + skipZKMiB,
		"Cost of TLS on every link (writes, 64 clients, medians):\n- synod: 24000 → 18000 ops/s (-25%)",
		"- writes at 64 clients: synod ≥ 6× etcd's throughput: **missed** (2.50×: missed (aim ≥ 6.00×))",
		"- writes, 1 client: p50 ≤ ⅓ of etcd's: **not measured**",
		"Command: `make bench-compare`.",
		"- etcd write-1 run 1: exit status 1",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
	var js bytes.Buffer
	if err := tab.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("JSON does not parse back: %v", err)
	}
	if !strings.Contains(js.String(), `"ratios": [
        null,
        null
      ]`) || !strings.Contains(js.String(), `"ratios": [
        2.5,
        1.25
      ]`) {
		t.Error("ratios missing from JSON, or an undefined one is not null")
	}
}

func TestCell(t *testing.T) {
	for _, tc := range []struct {
		s    Stat
		want string
	}{
		{Stat{}, "–"},
		{Stat{1, 5, 5, 5}, "5"},
		{Stat{3, 5, 5, 5.1}, "5"},
		{Stat{3, 4, 5, 6}, "5 (4–6)"},
	} {
		if got := cell(tc.s, "%.0f", true); got != tc.want {
			t.Errorf("cell(%+v) = %q, want %q", tc.s, got, tc.want)
		}
	}
}
