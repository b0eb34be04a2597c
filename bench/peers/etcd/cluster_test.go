package main

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"synod/bench"
)

// The test binary is also the member binary: startCluster re-executes
// os.Executable() as `member`.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "member" {
		main()
		return
	}
	os.Exit(m.Run())
}

// TestClusterRunAndKill starts three members, plain and with TLS, runs a
// workload with a leader kill (plain) or pipelined (TLS) through them, and
// checks they stop without leaving a process or a file.
func TestClusterRunAndKill(t *testing.T) {
	for _, tc := range []struct {
		name     string
		secure   bool
		kill     bool
		pipeline int
	}{
		{"plain, leader killed", false, true, 1},
		{"TLS, pipelined", true, false, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			c, err := startCluster(ctx, 3, false, tc.secure)
			if err != nil {
				t.Fatal(err)
			}
			procs := c.Procs()
			defer func() {
				if err := c.Close(); err != nil {
					t.Error(err)
				}
				for _, p := range procs {
					if syscall.Kill(p.PID, 0) == nil {
						t.Errorf("%s still running after Close", p.Name)
					}
				}
				if _, err := os.Stat(c.dir); !os.IsNotExist(err) {
					t.Errorf("data left in %s", c.dir)
				}
			}()
			if tc.secure != strings.HasPrefix(c.endpoints[0], "https://") || tc.secure != (c.tls != nil) {
				t.Fatalf("secure %v: endpoints %v, client TLS %v", tc.secure, c.endpoints, c.tls != nil)
			}
			w := bench.DefaultWorkload()
			w.Clients, w.Duration, w.Warmup, w.Keys, w.Reads = 4, 3*time.Second, 200*time.Millisecond, 50, 0.5
			w.Pipeline = tc.pipeline
			opts := bench.Options{System: "etcd"}
			if tc.kill {
				w.KillMasterAt = time.Second
				opts.Cluster = c
			}
			tg, err := newTarget(ctx, c.endpoints, c.tls, routeAuto, w)
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]string{true: routeAll, false: routeSpread}[tc.kill]; tg.route != want {
				t.Fatalf("route %s, want %s", tg.route, want)
			}
			opts.Target, opts.Via = tg, tg.via()
			res, err := bench.Run(ctx, w, opts)
			if err != nil {
				t.Fatal(err)
			}
			if res.Writes.Count == 0 || res.Reads.Count == 0 {
				t.Fatalf("result: writes %+v reads %+v errors %v", res.Writes, res.Reads, res.Errors)
			}
			if tc.kill && (res.Failover == nil || res.Failover.Killed == "" || len(res.CPU.Procs) != 3) {
				t.Fatalf("failover %+v cpu %+v", res.Failover, res.CPU)
			}
			if !tc.kill && res.Total.Errors != 0 {
				t.Fatalf("errors without a fault: %v", res.Errors)
			}
			if _, err := newTarget(ctx, c.endpoints, c.tls, routeAuto, bench.Workload{Consistency: "session"}); err == nil {
				t.Fatal("session reads accepted")
			}
		})
	}
}
