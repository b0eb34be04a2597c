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
	if got := strings.Join(names, ","); got != "write-1,write-16,write-64,read90-64,linread-64,kill-16" {
		t.Fatalf("cases %s", got)
	}
	o := Options{Duration: 10 * time.Second, Warmup: 2 * time.Second, Nodes: 3, OutDir: "out",
		Extra: []string{"--op-timeout", "5s"}, PerExtra: map[string][]string{"synod": {"--direct"}}}
	name, args, jsonPath := o.Args(System{Name: "synod", Command: []string{"bin/synod", "bench"}}, cases[5], 2)
	want := "bench --spawn 3 --duration 10s --warmup 2s --value-size 100 --keys 1000 --dist uniform --quiet " +
		"--json out/synod-kill-16-2.json --timeline out/synod-kill-16-2.svg --clients 16 --reads 0 --kill-master-at 3s --op-timeout 5s --direct"
	if name != "bin/synod" || strings.Join(args, " ") != want || jsonPath != "out/synod-kill-16-2.json" {
		t.Fatalf("got %s %s (%s)", name, strings.Join(args, " "), jsonPath)
	}
	_, args, _ = o.Args(System{Name: "etcd", Command: []string{"bin/etcdbench"}}, cases[4], 1)
	if s := strings.Join(args, " "); strings.Contains(s, "--direct") || strings.Contains(s, "--timeline") || !strings.Contains(s, "--reads 1 --consistency linearizable") {
		t.Fatalf("etcd args %s", s)
	}
}

func opts(dir string, runs int, cases ...Case) Options {
	return Options{
		Systems:  [2]System{{Name: "a", Command: []string{os.Args[0]}}, {Name: "b", Command: []string{os.Args[0]}}},
		Cases:    cases,
		Runs:     runs,
		Duration: time.Second, Warmup: 0, Nodes: 3, OutDir: dir, Slack: time.Minute,
	}
}

// TestExecute runs the fake bench binary: runs alternate, results are read
// back, a failing run is recorded and the others go on.
func TestExecute(t *testing.T) {
	t.Setenv("COMPARE_FAKE_OPS_a", "2000")
	t.Setenv("COMPARE_FAKE_OPS_b", "1000")
	cases := Cases(time.Second)
	dir := t.TempDir()
	o := opts(dir, 2, cases[2], cases[5])
	// The fake learns its name from the environment, which both systems
	// share; give each its own through a wrapper script.
	for i, name := range []string{"a", "b"} {
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
	if got := strings.Join(order, " "); got != "a1 b1 a1 b1 b2 a2 b2 a2" {
		t.Fatalf("order %s", got)
	}
	if !strings.Contains(log.String(), "[8/8]") {
		t.Fatalf("log:\n%s", log.String())
	}
	tab := Build(o, runs, "make bench-compare")
	r, ok := tab.row("write-64", "ops/s")
	if !ok || r.Ratio != 2 || r.Stats[0].N != 2 {
		t.Fatalf("row %+v", r)
	}
	u, _ := tab.row("kill-16", "unavailable s")
	if u.Ratio != 0.5 {
		t.Fatalf("unavailability row %+v", u)
	}

	t.Setenv("COMPARE_FAKE_OPS_b", "fail")
	o.Runs = 1
	o.Cases = cases[:1]
	runs, err = Execute(context.Background(), o)
	if err != nil || len(runs) != 2 || runs[0].Result == nil || runs[1].Result != nil || !strings.Contains(runs[1].Err, "log:") {
		t.Fatalf("with a failing system: %v %+v", err, runs)
	}
	tab = Build(o, runs, "")
	if len(tab.Failed) != 1 {
		t.Fatalf("failed %v", tab.Failed)
	}
}

func synthetic() []Run {
	var runs []Run
	add := func(sys, c string, i int, r *bench.Result) {
		runs = append(runs, Run{System: sys, Case: c, Index: i, Result: r})
	}
	for i, f := range []float64{0.9, 1, 1.1} {
		add("synod", "write-64", i+1, result("synod", 20000*f, 10, 50, 30))
		add("etcd", "write-64", i+1, result("etcd", 8000*f, 17, 165, 44))
		add("synod", "linread-64", i+1, result("synod", 20000*f, 5, 40, 30))
		add("etcd", "linread-64", i+1, result("etcd", 13000*f, 11, 88, 69))
		k := result("synod", 3000, 5, 100, 10)
		k.Failover = &bench.Failover{Unavailable: 0.7 * f, FirstWrite: 0.6, Errors: 0}
		add("synod", "kill-16", i+1, k)
		e := result("etcd", 3000, 5, 200, 10)
		e.Failover = &bench.Failover{Unavailable: 1.8 * f, FirstWrite: -1, Errors: 12}
		add("etcd", "kill-16", i+1, e)
	}
	runs = append(runs, Run{System: "etcd", Case: "write-1", Index: 1, Err: "exit status 1"})
	return runs
}

func TestBuildAndJudge(t *testing.T) {
	o := opts("", 3, Cases(3*time.Second)...)
	o.Systems[0].Name, o.Systems[1].Name = "synod", "etcd"
	tab := Build(o, synthetic(), "make bench-compare")
	if len(tab.Rows) != 5*2+3 {
		t.Fatalf("%d rows", len(tab.Rows))
	}
	r, _ := tab.row("write-64", "ops/s")
	if r.Stats[0] != (Stat{3, 18000, 20000, 22000}) || r.Ratio != 2.5 || r.ServerUsPerOp[1].Median != 165 || r.LoadgenPercent[0].Median != 30 {
		t.Fatalf("write-64 row %+v", r)
	}
	if r, _ := tab.row("write-1", "ops/s"); !math.IsNaN(r.Ratio) || r.Stats[0].N != 0 {
		t.Fatalf("unmeasured row %+v", r)
	}
	if r, _ := tab.row("kill-16", "first write after kill s"); r.Stats[1].N != 0 || r.Stats[0].N != 3 {
		t.Fatalf("first-write row: runs without a first write must not count: %+v", r)
	}
	for _, a := range tab.Aims {
		if !a.Measured {
			t.Fatalf("aim %+v not measured", a)
		}
	}
	want := []bool{true, true, false, true, true}
	for i, a := range tab.Aims {
		if a.Met != want[i] {
			t.Errorf("aim %q: met %v, want %v (%s)", a.Text, a.Met, want[i], a.Detail)
		}
	}
	if d := tab.Aims[2].Detail; d != "1.54×: missed, 23% short of 2×" {
		t.Errorf("missed aim detail %q", d)
	}
	if len(tab.Failed) != 1 {
		t.Fatalf("failed %v", tab.Failed)
	}

	var md bytes.Buffer
	if err := tab.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| workload | metric | synod | etcd | synod/etcd | server CPU µs/op (synod / etcd) | load-gen CPU % of a core (synod / etcd) |",
		"| writes, 64 clients | ops/s | 20000 (18000–22000) | 8000 (7200–8800) | 2.50× | 50 / 165 | 30 / 44 |",
		"|  | p99 ms | 10.00 | 17.00 | 0.59× |  |  |",
		"| writes, 1 client | ops/s | – | – | – |",
		"| master kill, 16 writers | unavailable s | 0.700 (0.630–0.770) | 1.800 (1.620–1.980) | 0.39× |",
		"|  | first write after kill s | 0.600 | – | – |",
		"|  | client errors after kill | 0 | 12 | 0.00× |",
		"- linearizable reads at 64 clients: synod ≥ 2× etcd's throughput: **missed** (1.54×: missed, 23% short of 2×)",
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
	if !strings.Contains(js.String(), `"ratio": null`) {
		t.Error("an undefined ratio is not null in JSON")
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
