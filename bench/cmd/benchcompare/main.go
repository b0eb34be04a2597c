// Command benchcompare runs synod's bench and its peers' (etcd and
// ZooKeeper) through the same workloads, alternating, and prints one table
// of medians and ratios (`make bench-compare`). Every run's JSON, log and
// failover timeline stay in -out, with the table as compare.md and
// compare.json.
package main

// This file owns all of it: the flags and the run, on main's goroutine;
// SIGINT or SIGTERM cancels the benches under way.

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"synod/bench/compare"
)

// config is what the flags say.
type config struct {
	synodBin, etcdBin, zkBin string
	peers, cases, out        string
	runs, nodes              int
	duration, warmup, killAt time.Duration
	direct                   bool
}

func main() {
	var c config
	flag.StringVar(&c.synodBin, "synod", "bin/synod", "the synod binary")
	flag.StringVar(&c.etcdBin, "etcd", "bin/etcdbench", "the etcd peer's bench binary")
	flag.StringVar(&c.zkBin, "zookeeper", "bin/zkbench", "the ZooKeeper peer's bench binary")
	flag.StringVar(&c.peers, "peers", "etcd,zookeeper", "comma-separated peers to compare synod with: etcd, zookeeper")
	flag.IntVar(&c.runs, "runs", 1, "runs per system and workload (3 for medians)")
	flag.DurationVar(&c.duration, "duration", 4*time.Second, "measured window of each run (the failover case's is at least -kill-at + 6 s)")
	flag.DurationVar(&c.warmup, "warmup", 2*time.Second, "warm-up of each run (the ZooKeeper peer warms its JIT before that)")
	flag.DurationVar(&c.killAt, "kill-at", 2*time.Second, "when the failover case kills the master, into the window")
	flag.IntVar(&c.nodes, "nodes", 3, "cluster size")
	flag.StringVar(&c.out, "out", "bin/bench-compare", "directory for every run's JSON and logs, and the table")
	flag.StringVar(&c.cases, "cases", "all", "comma-separated workloads or groups ("+groups()+"; all: every one)")
	flag.BoolVar(&c.direct, "direct", false, "run synod's clients straight to the master (--direct) instead of through the proxy")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "benchcompare:", err)
		os.Exit(1)
	}
}

// groups lists the groups and their workloads, for -help.
func groups() string {
	var order []string
	members := map[string][]string{}
	for _, c := range compare.Cases(time.Second) {
		if members[c.Group] == nil {
			order = append(order, c.Group)
		}
		members[c.Group] = append(members[c.Group], c.Name)
	}
	parts := make([]string, len(order))
	for i, g := range order {
		parts[i] = g + ": " + strings.Join(members[g], " ")
	}
	return strings.Join(parts, "; ")
}

func run(c config) error {
	sel, err := compare.Select(compare.Cases(c.killAt), strings.Split(c.cases, ","))
	if err != nil {
		return err
	}
	systems := []compare.System{{Name: compare.Synod, Command: []string{c.synodBin, "bench"}}}
	for _, p := range strings.Split(c.peers, ",") {
		switch strings.TrimSpace(p) {
		case compare.Etcd:
			systems = append(systems, compare.System{Name: compare.Etcd, Command: []string{c.etcdBin}})
		case compare.ZooKeeper:
			systems = append(systems, compare.System{Name: compare.ZooKeeper, Command: []string{c.zkBin}})
		default:
			return fmt.Errorf("unknown peer %q: want etcd or zookeeper", p)
		}
	}
	o := compare.Options{
		Systems: systems, Cases: sel, Runs: c.runs, Duration: c.duration, Warmup: c.warmup, Nodes: c.nodes,
		OutDir: c.out, Log: os.Stderr, PerExtra: map[string][]string{},
	}
	if c.direct {
		o.PerExtra[compare.Synod] = []string{"--direct"}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	results, err := compare.Execute(ctx, o)
	if err != nil && len(results) == 0 {
		return err
	}
	t := compare.Build(o, results, strings.Join(os.Args, " "))
	if err := t.WriteMarkdown(os.Stdout); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "\n%d runs in %v; every run's JSON and log in %s\n", len(results), time.Since(start).Round(time.Second), c.out)
	for _, f := range []struct {
		name  string
		write func(*os.File) error
	}{
		{"compare.md", func(f *os.File) error { return t.WriteMarkdown(f) }},
		{"compare.json", func(f *os.File) error { return t.WriteJSON(f) }},
	} {
		if err := writeFile(filepath.Join(c.out, f.name), f.write); err != nil {
			return err
		}
	}
	return err
}

func writeFile(path string, write func(*os.File) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}
