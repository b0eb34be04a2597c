package main

import (
	"context"
	"os"
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

func TestClusterRunAndKill(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := startCluster(ctx, 3, false)
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
	w := bench.DefaultWorkload()
	w.Clients, w.Duration, w.Warmup, w.Keys, w.Reads = 4, 3*time.Second, 200*time.Millisecond, 50, 0.5
	w.KillMasterAt = time.Second
	tg, err := newTarget(ctx, c.endpoints, routeAuto, w)
	if err != nil {
		t.Fatal(err)
	}
	if tg.route != routeAll {
		t.Fatalf("route %s with a kill, want all", tg.route)
	}
	res, err := bench.Run(ctx, w, bench.Options{Target: tg, Cluster: c, System: "etcd", Via: tg.via()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Writes.Count == 0 || res.Reads.Count == 0 || res.Failover == nil || res.Failover.Killed == "" || len(res.CPU.Procs) != 3 {
		t.Fatalf("result: writes %+v reads %+v failover %+v cpu %+v", res.Writes, res.Reads, res.Failover, res.CPU)
	}
	if _, err := newTarget(ctx, c.endpoints, routeAuto, bench.Workload{Consistency: "session"}); err == nil {
		t.Fatal("session reads accepted")
	}
}
