package main

// This file owns the ZooKeeper peer's tests: the configuration, the srvr
// and level parsing (pure, on the test's goroutine), and one real ensemble
// driven through bench.Run, whose clients run on goroutines of their own
// and are gone, as goleak checks, when the tests end.

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"synod/bench"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestServerConfig(t *testing.T) {
	all := []server{
		{id: 1, client: "127.0.0.1:1001", quorum: "127.0.0.1:1002", elector: "127.0.0.1:1003"},
		{id: 2, client: "127.0.0.1:2001", quorum: "127.0.0.1:2002", elector: "127.0.0.1:2003"},
		{id: 3, client: "127.0.0.1:3001", quorum: "127.0.0.1:3002", elector: "127.0.0.1:3003"},
	}
	for _, tc := range []struct {
		me   server
		want []string
	}{
		{all[0], []string{"tickTime=2000", "initLimit=10", "syncLimit=5", "dataDir=/d", "clientPort=1001", "clientPortAddress=127.0.0.1",
			"admin.enableServer=false", "4lw.commands.whitelist=srvr", "maxClientCnxns=0",
			"server.1=127.0.0.1:1002:1003", "server.2=127.0.0.1:2002:2003", "server.3=127.0.0.1:3002:3003"}},
		{all[2], []string{"clientPort=3001", "server.1=127.0.0.1:1002:1003", "server.3=127.0.0.1:3002:3003"}},
	} {
		got := serverConfig(tc.me, all, "/d")
		lines := map[string]bool{}
		for _, l := range strings.Split(strings.TrimSpace(got), "\n") {
			lines[l] = true
			// Nothing that trades durability or the package's timing
			// for speed.
			for _, banned := range []string{"forceSync", "tickTime=1", "syncEnabled", "preAllocSize", "snapCount", "jute"} {
				if strings.HasPrefix(l, banned) && l != "tickTime=2000" {
					t.Errorf("server %d: config sets %q", tc.me.id, l)
				}
			}
		}
		for _, w := range tc.want {
			if !lines[w] {
				t.Errorf("server %d: config lacks %q:\n%s", tc.me.id, w, got)
			}
		}
		if len(lines) != 12 {
			t.Errorf("server %d: %d lines, want 12:\n%s", tc.me.id, len(lines), got)
		}
	}
}

func TestParseMode(t *testing.T) {
	for _, tc := range []struct {
		reply, want string
		ok          bool
	}{
		{"Zookeeper version: 3.8.0-${mvngit.commit.id}, built on 2024-12-29 17:54 UTC\nLatency min/avg/max: 0/0.0/0\nMode: leader\nNode count: 5\n", "leader", true},
		{"Mode: follower\n", "follower", true},
		{"Zookeeper version: x\nMode: standalone\r\n", "standalone", true},
		{"This ZooKeeper instance is not currently serving requests\n", "", false},
		{"", "", false},
	} {
		got, err := parseMode(tc.reply)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("parseMode(%q) = %q, %v; want %q (ok %v)", tc.reply, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseLevel(t *testing.T) {
	for _, tc := range []struct {
		level string
		sync  bool
		ok    bool
	}{
		{"plain", false, true}, {"session", false, true}, {"stale", false, true}, {"serializable", false, true},
		{"sync", true, true}, {"Linearizable", true, true}, {"strong", false, false}, {"", false, false},
	} {
		sync, err := parseLevel(tc.level)
		if sync != tc.sync || (err == nil) != tc.ok || (err != nil && !errors.Is(err, errConsistency)) {
			t.Errorf("parseLevel(%q) = %v, %v", tc.level, sync, err)
		}
	}
}

// TestEnsembleRunAndKill starts a real three-server ensemble from Debian's
// package (make peer-test installs it), warms its JIT, runs a pipelined workload of plain
// reads and writes and a workload with sync reads and a leader kill
// through it, and checks it stops without leaving a process or a file.
func TestEnsembleRunAndKill(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e, err := startEnsemble(ctx, 3, false, javaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	procs := e.Procs()
	defer func() {
		if err := e.Close(); err != nil {
			t.Error(err)
		}
		for _, p := range procs {
			if syscall.Kill(p.PID, 0) == nil {
				t.Errorf("%s still running after Close", p.Name)
			}
		}
		if _, err := os.Stat(e.dir); !os.IsNotExist(err) {
			t.Errorf("data left in %s", e.dir)
		}
	}()
	if err := warmJIT(e.clientAddrs(), 300*time.Millisecond); err != nil {
		t.Fatalf("JIT warm-up: %v", err)
	}
	for _, tc := range []struct {
		name      string
		level     string
		pipeline  int
		kill      bool
		wantRoute string
	}{
		{"pipelined plain reads", "session", 4, false, routeSpread},
		{"sync reads, leader killed", "linearizable", 1, true, routeAll},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := bench.DefaultWorkload()
			w.Clients, w.Duration, w.Warmup, w.Keys, w.Reads = 4, 3*time.Second, 200*time.Millisecond, 50, 0.5
			w.Consistency, w.Pipeline = tc.level, tc.pipeline
			opts := bench.Options{System: "zookeeper"}
			if tc.kill {
				w.KillMasterAt = time.Second
				opts.Cluster = e
			}
			tg, err := newTarget(e.clientAddrs(), routeAuto, w)
			if err != nil {
				t.Fatal(err)
			}
			if tg.route != tc.wantRoute {
				t.Fatalf("route %s, want %s", tg.route, tc.wantRoute)
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
		})
	}
	if _, err := newTarget(e.clientAddrs(), routeAuto, bench.Workload{Consistency: "strong"}); !errors.Is(err, errConsistency) {
		t.Fatalf("unknown level: %v", err)
	}
}
