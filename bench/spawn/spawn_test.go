package spawn

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"synod/bench"
	"synod/bench/target"
	"synod/internal/cluster"
)

func start(t *testing.T, proxy bool) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{Exe: cluster.Binary(t), Nodes: 3, Proxy: proxy, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// closeAndCheck closes c and checks that no process and no directory is
// left behind.
func closeAndCheck(t *testing.T, c *Cluster) {
	t.Helper()
	procs := c.Procs()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		if syscall.Kill(p.PID, 0) == nil {
			t.Errorf("%s (pid %d) still running after Close", p.Name, p.PID)
		}
	}
	if _, err := os.Stat(c.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("directory %s left behind: %v", c.Dir(), err)
	}
}

func quick() bench.Workload {
	w := bench.DefaultWorkload()
	w.Clients = 4
	w.Duration = 3 * time.Second
	w.Warmup = 200 * time.Millisecond
	w.Keys = 100
	return w
}

// TestDirectKillMaster runs writes straight at the master, kills it mid-run,
// and checks that the clients found the new master by themselves.
func TestDirectKillMaster(t *testing.T) {
	c := start(t, false)
	defer closeAndCheck(t, c)
	if len(c.Procs()) != 3 || c.ProxyAddr() != "" || len(c.NodeAddrs()) != 3 {
		t.Fatalf("procs %v proxy %q nodes %v", c.Procs(), c.ProxyAddr(), c.NodeAddrs())
	}
	tg, err := target.NewDirect(c.NodeAddrs(), c.ClusterID(), "linearizable")
	if err != nil {
		t.Fatal(err)
	}
	w := quick()
	w.Reads = 0.5
	w.KillMasterAt = time.Second
	res, err := bench.Run(context.Background(), w, bench.Options{Target: tg, Cluster: c, System: "synod", Via: "direct"})
	if err != nil {
		t.Fatal(err)
	}
	var rep strings.Builder
	res.WriteReport(&rep)
	t.Log("\n" + rep.String())
	f := res.Failover
	if f == nil || f.FirstWrite <= 0 || f.Unavailable <= 0 {
		t.Fatalf("failover %+v", f)
	}
	if res.Writes.Count == 0 || res.Reads.Count == 0 {
		t.Fatalf("writes %+v reads %+v", res.Writes, res.Reads)
	}
	if res.CPU.ServerSeconds <= 0 || len(res.CPU.Procs) != 3 {
		t.Fatalf("server CPU %+v", res.CPU)
	}
	// The killed replica no longer counts; the others still do.
	running := 0
	for _, p := range c.Procs() {
		if syscall.Kill(p.PID, 0) == nil {
			running++
		}
	}
	if running != 2 {
		t.Fatalf("%d replicas running after the kill, want 2", running)
	}
	if _, err := c.Master(context.Background()); err != nil {
		t.Fatalf("no master after the failover: %v", err)
	}
}

func TestStartRefuses(t *testing.T) {
	ctx := context.Background()
	if _, err := Start(ctx, Options{Exe: "/bin/true", Nodes: 0}); err == nil {
		t.Fatal("started 0 replicas")
	}
	// A binary that exits at once is reported, not waited on for the timeout.
	_, err := Start(ctx, Options{Exe: "/bin/false", Nodes: 1, Dir: t.TempDir(), ReadyTimeout: time.Minute})
	if !errors.Is(err, ErrNotReady) {
		t.Fatalf("Start with a binary that exits: %v", err)
	}
}
