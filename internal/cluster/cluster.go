// Package cluster starts real synod processes on loopback ports chosen at
// run time, for end-to-end tests: replicas (and later proxies) that can be
// killed with SIGKILL, stopped, paused and restarted on the same data.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"synod/wire"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds the synod binary once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "synod-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "synod")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		args := []string{"build", "-tags", "synodtest", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./cmd/synod")...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("cluster: %v", buildErr)
	}
	return binPath
}

// FreePorts returns n loopback addresses whose ports were free a moment ago.
func FreePorts(t testing.TB, n int) []string {
	t.Helper()
	var addrs []string
	var lns []net.Listener
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("cluster: free port: %v", err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	for _, ln := range lns {
		ln.Close()
	}
	return addrs
}

// Proc is one synod process that can be stopped and started again with the
// same arguments.
type Proc struct {
	Name string
	Args []string
	Log  string // file collecting its stdout and stderr

	t    testing.TB
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start starts the process.
func (p *Proc) Start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		p.t.Fatalf("cluster: %s already running", p.Name)
	}
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatalf("cluster: %v", err)
	}
	cmd := exec.Command(Binary(p.t), p.Args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		p.t.Fatalf("cluster: start %s: %v", p.Name, err)
	}
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	p.cmd, p.done = cmd, done
}

// Running reports whether the process was started and has not exited.
func (p *Proc) Running() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Signal sends sig and, for SIGKILL and SIGTERM, waits for the exit.
func (p *Proc) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	if sig == syscall.SIGKILL || sig == syscall.SIGTERM || sig == syscall.SIGINT {
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		p.mu.Lock()
		err := p.err
		p.cmd, p.done = nil, nil
		p.mu.Unlock()
		if sig != syscall.SIGKILL {
			return err
		}
	}
	return nil
}

// Kill sends SIGKILL and waits for the process to die.
func (p *Proc) Kill() { p.Signal(syscall.SIGCONT); p.Signal(syscall.SIGKILL) }

// Stop sends SIGTERM and returns the exit error, if any.
func (p *Proc) Stop() error { return p.Signal(syscall.SIGTERM) }

// Wait waits up to d for the process to exit by itself and returns its exit
// error; ok is false if it still runs.
func (p *Proc) Wait(d time.Duration) (err error, ok bool) {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return nil, true
	}
	select {
	case <-done:
		p.mu.Lock()
		err = p.err
		p.cmd, p.done = nil, nil
		p.mu.Unlock()
		return err, true
	case <-time.After(d):
		return nil, false
	}
}

// Output returns what the process wrote so far.
func (p *Proc) Output() string {
	b, _ := os.ReadFile(p.Log)
	return string(b)
}

// Cluster is a set of replicas started from one test.
type Cluster struct {
	t     testing.TB
	ID    string
	Dir   string
	Addrs map[uint64]string
	Nodes map[uint64]*Proc
	// MountErr is Options.Mount's first failure.
	MountErr error
}

// Options shape a test cluster.
type Options struct {
	Nodes int
	// Extra flags for every node, e.g. "--election-timeout=300ms".
	NodeFlags []string
	// Mount, if set, mounts a file system on each data directory before its
	// node starts (for example a small tmpfs, to fill a disk); the
	// directories are unmounted at cleanup. A failure is left in
	// Cluster.MountErr and no node is started.
	Mount func(dir string) error
	// PeerAddr, if set, gives the address replica from dials to reach
	// replica to, whose real address is addr: a fault relay's listener for
	// that directed link, say. Proxies and the test itself still use the
	// real addresses.
	PeerAddr func(from, to uint64, addr string) string
	// NodeFlagsFor, if set, gives more flags for replica id's first start,
	// after NodeFlags (a clock rate of its own, say).
	NodeFlagsFor func(id uint64) []string
}

// New starts a cluster of opts.Nodes replicas (3 by default) and registers
// its teardown with t.Cleanup.
func New(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	c := &Cluster{t: t, ID: "test", Dir: t.TempDir(), Addrs: map[uint64]string{}, Nodes: map[uint64]*Proc{}}
	for i, a := range FreePorts(t, opts.Nodes) {
		c.Addrs[uint64(i+1)] = a
	}
	peersOf := func(from uint64) string {
		var peers []string
		for i := 1; i <= opts.Nodes; i++ {
			to := uint64(i)
			addr := c.Addrs[to]
			if opts.PeerAddr != nil && to != from {
				addr = opts.PeerAddr(from, to, addr)
			}
			peers = append(peers, fmt.Sprintf("%d=%s", to, addr))
		}
		return strings.Join(peers, ",")
	}
	if opts.Mount != nil {
		for i := 1; i <= opts.Nodes; i++ {
			dir := c.NodeDir(uint64(i))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := opts.Mount(dir); err != nil {
				c.MountErr = err
				return c
			}
			t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
		}
	}
	for i := 1; i <= opts.Nodes; i++ {
		id := uint64(i)
		args := []string{"--log-format=json", "--log-level=info", "node",
			fmt.Sprintf("--id=%d", id), "--listen=" + c.Addrs[id], "--peers=" + peersOf(id),
			"--dir=" + c.NodeDir(id), "--cluster=" + c.ID}
		args = append(args, opts.NodeFlags...)
		if opts.NodeFlagsFor != nil {
			args = append(args, opts.NodeFlagsFor(id)...)
		}
		p := &Proc{t: t, Name: fmt.Sprintf("node%d", id), Args: args, Log: filepath.Join(c.Dir, fmt.Sprintf("node%d.log", id))}
		c.Nodes[id] = p
		p.Start()
	}
	t.Cleanup(func() {
		if t.Failed() {
			// A goroutine dump of every live process, for the log below.
			for _, p := range c.Nodes {
				if p.Running() {
					p.Signal(syscall.SIGQUIT)
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
		for _, p := range c.Nodes {
			p.Kill()
		}
		if t.Failed() {
			for id, p := range c.Nodes {
				out := p.Output()
				if len(out) > 20000 {
					out = out[len(out)-20000:]
				}
				t.Logf("--- node %d log (tail) ---\n%s", id, out)
			}
		}
	})
	return c
}

// NodeDir is replica id's data directory.
func (c *Cluster) NodeDir(id uint64) string { return filepath.Join(c.Dir, fmt.Sprintf("n%d", id)) }

// Dial connects to replica id as a proxy would.
func (c *Cluster) Dial(ctx context.Context, id uint64) (*wire.Client, error) {
	return wire.DialClient(ctx, c.Addrs[id], wire.Hello{ClusterID: c.ID, Role: wire.RoleProxy}, wire.Options{})
}

// Statuses asks every running replica for its status.
func (c *Cluster) Statuses(ctx context.Context) map[uint64]wire.Status {
	out := map[uint64]wire.Status{}
	for id, p := range c.Nodes {
		if !p.Running() {
			continue
		}
		cl, err := c.Dial(ctx, id)
		if err != nil {
			continue
		}
		if st, err := cl.Status(ctx); err == nil {
			out[id] = st
		}
		cl.Close()
	}
	return out
}

// WaitMaster waits until a running replica reports itself a ready master
// and returns its id.
func (c *Cluster) WaitMaster(ctx context.Context) (uint64, error) {
	for {
		for id, st := range c.Statuses(ctx) {
			if st.Role == "master" {
				return id, nil
			}
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("cluster: no master: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// WaitConverged waits until every running replica has applied the same
// index with the same digest, and returns that digest.
func (c *Cluster) WaitConverged(ctx context.Context, minApplied uint64) (string, error) {
	var last map[uint64]wire.Status
	for {
		sts := c.Statuses(ctx)
		last = sts
		running := 0
		for _, p := range c.Nodes {
			if p.Running() {
				running++
			}
		}
		if len(sts) == running && running > 0 {
			var digest string
			var applied uint64
			same := true
			for _, st := range sts {
				if digest == "" {
					digest, applied = st.Digest, st.Applied
				}
				same = same && st.Digest == digest && st.Applied == applied
			}
			if same && applied >= minApplied {
				return digest, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("cluster: replicas did not converge: %+v: %w", last, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
