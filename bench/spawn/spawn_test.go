package spawn

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"synod/bench"
	"synod/bench/target"
	"synod/internal/cluster"
)

func start(t *testing.T, proxy bool, profileDir ...string) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts := Options{Exe: cluster.Binary(t), Nodes: 3, Proxy: proxy, Dir: t.TempDir()}
	if len(profileDir) > 0 {
		opts.ProfileDir = profileDir[0]
	}
	c, err := Start(ctx, opts)
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

// TestProxyRun runs a mixed workload through the proxy, profiling every
// process over the measured window.
func TestProxyRun(t *testing.T) {
	profiles := t.TempDir()
	c := start(t, true, profiles)
	defer closeAndCheck(t, c)
	if len(c.Procs()) != 4 || c.ProxyAddr() == "" {
		t.Fatalf("procs %v proxy %q", c.Procs(), c.ProxyAddr())
	}
	tg, err := target.NewLine(c.ProxyAddr(), "linearizable")
	if err != nil {
		t.Fatal(err)
	}
	w := quick()
	w.Duration = time.Second
	res, err := bench.Run(context.Background(), w, bench.Options{Target: tg, Cluster: c, System: "synod", Via: "proxy"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Writes.Count == 0 || res.Reads.Count == 0 || res.Total.Errors != 0 {
		t.Fatalf("writes %+v reads %+v errors %v", res.Writes, res.Reads, res.Errors)
	}
	for _, name := range []string{"node1.pprof", "node2.pprof", "node3.pprof", "proxy.pprof", "master.txt"} {
		if st, err := os.Stat(filepath.Join(profiles, name)); err != nil || st.Size() == 0 {
			t.Errorf("profile %s: %v", name, err)
		}
	}
}

// TestBenchCommand is the smoke test of `synod bench --spawn 3`: the whole
// command, a master kill through the proxy, the JSON and the plot, and no
// process left behind.
func TestBenchCommand(t *testing.T) {
	dir := t.TempDir()
	jsonPath, svgPath := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.svg")
	cmd := exec.Command(cluster.Binary(t), "bench", "--spawn", "3", "--duration", "2s", "--warmup", "200ms",
		"--clients", "4", "--reads", "0", "--kill-master-at", "500ms", "--json", jsonPath, "--timeline", svgPath)
	cmd.Env = append(os.Environ(), "TMPDIR="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("synod bench: %v\n%s", err, out)
	}
	for _, want := range []string{"synod via proxy: 4 clients, 2s", "p99.9 ms", "failover: SIGKILL node"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	res, err := bench.ReadResultFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if res.Failover == nil || res.Writes.Count == 0 || len(res.CPU.Procs) != 4 {
		t.Fatalf("result: failover %+v writes %+v cpu %+v", res.Failover, res.Writes, res.CPU)
	}
	t.Logf("failover through the proxy: %+v, errors %v", *res.Failover, res.Errors)
	if svg, err := os.ReadFile(svgPath); err != nil || !strings.Contains(string(svg), "SIGKILL") {
		t.Fatalf("timeline: %v", err)
	}
	// The spawned cluster lived in TMPDIR and is gone, processes and files.
	left, _ := filepath.Glob(filepath.Join(dir, "synod-bench-*"))
	if len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range cmdlines {
		if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), dir) && alive(f) {
			t.Errorf("process still running: %s: %q", f, b)
		}
	}
}

// alive reports whether the process of /proc/<pid>/cmdline is not a zombie.
func alive(cmdline string) bool {
	b, err := os.ReadFile(filepath.Join(filepath.Dir(cmdline), "stat"))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i >= 0 && !strings.HasPrefix(string(b[i:]), ") Z")
}

// TestSecurePipelined spawns a cluster with TLS on every link and runs a
// pipelined workload through the proxy over TLS: the certificates the
// cluster made are the ones its processes and its clients use, and a
// client without TLS is refused.
func TestSecurePipelined(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{Exe: cluster.Binary(t), Nodes: 3, Proxy: true, Dir: t.TempDir(), TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer closeAndCheck(t, c)
	if c.ClientTLS() == nil {
		t.Fatal("no client TLS config")
	}
	for _, tc := range []struct {
		name     string
		tls      bool
		pipeline int
		wantOK   bool
	}{
		{"TLS, 8 in flight", true, 8, true},
		{"plaintext", false, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg, err := target.NewLine(c.ProxyAddr(), "session")
			if err != nil {
				t.Fatal(err)
			}
			if tc.tls {
				tg.TLS = c.ClientTLS()
			}
			w := quick()
			w.Clients, w.Pipeline, w.Duration = 2, tc.pipeline, time.Second
			res, err := bench.Run(ctx, w, bench.Options{Target: tg, System: "synod", Via: "proxy over TLS"})
			if !tc.wantOK {
				if err == nil && res.Total.Errors == 0 {
					t.Fatalf("a plaintext client was served: %+v", res.Total)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Writes.Count == 0 || res.Reads.Count == 0 || res.Total.Errors != 0 {
				t.Fatalf("writes %+v reads %+v errors %v", res.Writes, res.Reads, res.Errors)
			}
		})
	}
}

// TestMetricsEndpoints: with Options.Metrics every replica and the proxy
// serve Prometheus metrics at the URLs MetricsURLs gives.
func TestMetricsEndpoints(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{Exe: cluster.Binary(t), Nodes: 3, Proxy: true, Dir: t.TempDir(), Metrics: true})
	if err != nil {
		t.Fatal(err)
	}
	defer closeAndCheck(t, c)
	urls := c.MetricsURLs()
	if len(urls) != 4 {
		t.Fatalf("metrics URLs %v, want 4", urls)
	}
	for i, u := range urls {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := "synod_replica_"
		if i == 3 {
			want = "synod_proxy_"
		}
		if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Fatalf("%s: %v %v, body without %s:\n%.300s", u, resp.Status, err, want, body)
		}
	}
}
