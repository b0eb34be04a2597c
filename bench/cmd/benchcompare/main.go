// Command benchcompare runs synod's bench and the etcd peer's through the
// same workloads, alternating, and prints one table of medians and ratios
// (`make bench-compare`). Every run's JSON, log and failover timeline stay in
// -out, with the table as compare.md and compare.json.
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

func main() {
	synodBin := flag.String("synod", "bin/synod", "the synod binary")
	etcdBin := flag.String("etcd", "bin/etcdbench", "the etcd peer's bench binary")
	runs := flag.Int("runs", 3, "runs per system and workload")
	duration := flag.Duration("duration", 10*time.Second, "measured window of each run")
	warmup := flag.Duration("warmup", 2*time.Second, "warm-up of each run")
	killAt := flag.Duration("kill-at", 3*time.Second, "when the failover case kills the master, into the window")
	nodes := flag.Int("nodes", 3, "cluster size")
	out := flag.String("out", "bin/bench-compare", "directory for every run's JSON and logs, and the table")
	cases := flag.String("cases", "", "comma-separated subset of the workloads (default: all)")
	direct := flag.Bool("direct", false, "run synod's clients straight to the master (--direct) instead of through the proxy")
	flag.Parse()
	if err := run(*synodBin, *etcdBin, *runs, *duration, *warmup, *killAt, *nodes, *out, *cases, *direct); err != nil {
		fmt.Fprintln(os.Stderr, "benchcompare:", err)
		os.Exit(1)
	}
}

func run(synodBin, etcdBin string, runs int, duration, warmup, killAt time.Duration, nodes int, out, only string, direct bool) error {
	all := compare.Cases(killAt)
	sel := all
	if only != "" {
		sel = nil
		for _, name := range strings.Split(only, ",") {
			found := false
			for _, c := range all {
				if c.Name == strings.TrimSpace(name) {
					sel, found = append(sel, c), true
				}
			}
			if !found {
				return fmt.Errorf("unknown workload %q", name)
			}
		}
	}
	o := compare.Options{
		Systems: [2]compare.System{
			{Name: "synod", Command: []string{synodBin, "bench"}},
			{Name: "etcd", Command: []string{etcdBin}},
		},
		Cases: sel, Runs: runs, Duration: duration, Warmup: warmup, Nodes: nodes,
		OutDir: out, Log: os.Stderr, PerExtra: map[string][]string{},
	}
	if direct {
		o.PerExtra["synod"] = []string{"--direct"}
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
	fmt.Fprintf(os.Stderr, "\n%d runs in %v; every run's JSON and log in %s\n", len(results), time.Since(start).Round(time.Second), out)
	md, err := os.Create(filepath.Join(out, "compare.md"))
	if err != nil {
		return err
	}
	defer md.Close()
	if err := t.WriteMarkdown(md); err != nil {
		return err
	}
	js, err := os.Create(filepath.Join(out, "compare.json"))
	if err != nil {
		return err
	}
	defer js.Close()
	if err := t.WriteJSON(js); err != nil {
		return err
	}
	return err
}
