// Package cluster starts real synod processes on loopback ports chosen at
// run time, for end-to-end tests: replicas and proxies that can be killed
// with SIGKILL, stopped, paused and restarted on the same data. The
// processes are run by the supervisor, internal/proc, one group per
// cluster, so none outlives the test binary.
//
// Goroutines: the test's, and any it starts (the nemesis restarts replicas
// from its own); a Proc's methods may be called from several at once.
// internal/proc reaps each process on a goroutine of its own.
package cluster

// This file owns the Cluster and its Procs: the synod binary (built once),
// free ports, starting the replicas, and dialling them to wait for a master
// or for convergence. See the package comment for the goroutines.

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"synod/internal/proc"
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
		// The synodtest tag compiles in the test hooks (the --test-* flags,
		// cmd/synod/testhooks.go); release builds leave them out.
		args := []string{"build", "-tags", "synodtest", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./cmd/synod")...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
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
	addrs, err := proc.FreePorts(n)
	if err != nil {
		t.Fatalf("cluster: %v", err)
	}
	return addrs
}

// stopGrace is how long Stop and Signal(SIGTERM or SIGINT) let a process
// exit by itself before it is killed.
const stopGrace = 15 * time.Second

// Proc is one synod process that can be stopped and started again with the
// same arguments (or others: Args may change while it is stopped). Each
// start is a run of the process supervisor, internal/proc, in the
// cluster's group, so no process outlives the test binary.
type Proc struct {
	Name string
	Args []string
	Log  string // file collecting its stdout and stderr

	t     testing.TB
	group *proc.Group
	mu    sync.Mutex
	cur   *proc.Proc // the current run; nil before Start and once it is collected
}

// Start starts the process. It fails the test if the last run has not been
// collected (by Kill, Stop, Signal(SIGTERM, SIGINT or SIGKILL) or Wait).
func (p *Proc) Start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur != nil {
		p.t.Fatalf("cluster: %s already running", p.Name)
	}
	cur, err := p.group.Start(proc.Spec{Name: p.Name, Path: Binary(p.t), Args: p.Args, Log: p.Log})
	if err != nil {
		p.t.Fatalf("cluster: %v", err)
	}
	p.cur = cur
}

// current returns the current run, or nil.
func (p *Proc) current() *proc.Proc {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

// collect forgets run cur if it has exited, so the process can start
// again.
func (p *Proc) collect(cur *proc.Proc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == cur && !cur.Running() {
		p.cur = nil
	}
}

// PID is the current run's process id, or 0 when it is not running (to
// read its /proc/<pid>/status, say).
func (p *Proc) PID() int {
	cur := p.current()
	if cur == nil || !cur.Running() {
		return 0
	}
	return cur.PID()
}

// Running reports whether the process was started and has not exited.
func (p *Proc) Running() bool {
	cur := p.current()
	return cur != nil && cur.Running()
}

// Signal sends sig. For SIGKILL it waits for the exit; for SIGTERM and
// SIGINT it waits up to 15 s, then kills the process, and returns its exit
// error (nil for a clean exit).
func (p *Proc) Signal(sig syscall.Signal) error {
	cur := p.current()
	if cur == nil {
		return nil
	}
	switch sig {
	case syscall.SIGKILL:
		err := cur.Kill()
		p.collect(cur)
		return err
	case syscall.SIGTERM, syscall.SIGINT:
		err := cur.Terminate(sig, stopGrace)
		p.collect(cur)
		return err
	default:
		return cur.Signal(sig)
	}
}

// Kill sends SIGKILL and waits for the process to die, paused or not.
func (p *Proc) Kill() { p.Signal(syscall.SIGKILL) }

// Stop sends SIGTERM and returns the exit error, if any.
func (p *Proc) Stop() error { return p.Signal(syscall.SIGTERM) }

// Wait waits up to d for the process to exit by itself and returns its exit
// error; ok is false if it still runs.
func (p *Proc) Wait(d time.Duration) (err error, ok bool) {
	cur := p.current()
	if cur == nil {
		return nil, true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-cur.Exited():
		p.collect(cur)
		return cur.ExitErr(), true
	case <-t.C:
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
	group *proc.Group // every process of the cluster, proxies too
	ID    string
	Dir   string
	Addrs map[uint64]string
	Nodes map[uint64]*Proc
	// MountErr is Options.Mount's first failure.
	MountErr error

	nodeFlags []string
	tls       *tls.Config
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
	// MemberAddr, if set, gives the address every replica's --peers names
	// replica id at, its own entry included, so the configuration the
	// first master chooses names the same address for a replica as every
	// other does (a fault relay's listener for it, say). PeerAddr, if also
	// set, is applied to the result for the other replicas' entries.
	MemberAddr func(id uint64, addr string) string
	// NodeFlagsFor, if set, gives more flags for replica id's first start,
	// after NodeFlags (a clock rate of its own, say).
	NodeFlagsFor func(id uint64) []string
	// ID is the cluster id; default "test".
	ID string
	// Prepare, if set, runs once the addresses are chosen and before any
	// node starts: to seed the data directories (synod snapshot restore).
	Prepare func(c *Cluster)
	// TLS, if set, is the config the test's own connections to replicas
	// (Dial, Statuses, WaitMaster) use: a cluster started with TLS flags
	// in NodeFlags refuses plaintext ones.
	TLS *tls.Config
}

// New starts a cluster of opts.Nodes replicas (3 by default) and registers
// its teardown with t.Cleanup.
func New(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	c := &Cluster{t: t, group: proc.NewGroup(), ID: cmp.Or(opts.ID, "test"), Dir: t.TempDir(), Addrs: map[uint64]string{}, Nodes: map[uint64]*Proc{}, nodeFlags: opts.NodeFlags, tls: opts.TLS}
	// Registered first, so it runs last: after every process is killed and
	// its log printed, it ends the group's goroutine.
	t.Cleanup(func() { c.group.Close(time.Second) })
	for i, a := range FreePorts(t, opts.Nodes) {
		c.Addrs[uint64(i+1)] = a
	}
	memberAddrs := map[uint64]string{}
	for id, a := range c.Addrs {
		memberAddrs[id] = a
		if opts.MemberAddr != nil {
			memberAddrs[id] = opts.MemberAddr(id, a)
		}
	}
	peersOf := func(from uint64) string {
		var peers []string
		for i := 1; i <= opts.Nodes; i++ {
			to := uint64(i)
			addr := memberAddrs[to]
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
	if opts.Prepare != nil {
		opts.Prepare(c)
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
		p := &Proc{t: t, group: c.group, Name: fmt.Sprintf("node%d", id), Args: args, Log: filepath.Join(c.Dir, fmt.Sprintf("node%d.log", id))}
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

// JoinProc prepares, without starting it, replica id on a new data
// directory and a free loopback port (c.Addrs[id]), to join the running
// cluster through replica via (synod node --join): add the member, then
// Start it. Prepare every replica a test adds before its clients start:
// Nodes and Addrs are not safe to change while they are read.
func (c *Cluster) JoinProc(id, via uint64, flags ...string) *Proc {
	c.t.Helper()
	if c.Addrs[id] == "" {
		c.NewAddr(id)
	}
	args := []string{"--log-format=json", "--log-level=info", "node",
		fmt.Sprintf("--id=%d", id), "--listen=" + c.Addrs[id], "--join=" + c.Addrs[via],
		"--dir=" + c.NodeDir(id), "--cluster=" + c.ID}
	args = append(append(args, c.nodeFlags...), flags...)
	p := &Proc{t: c.t, group: c.group, Name: fmt.Sprintf("node%d", id), Args: args, Log: filepath.Join(c.Dir, fmt.Sprintf("node%d.log", id))}
	c.Nodes[id] = p
	return p
}

// NewAddr picks a free loopback address for replica id, to add it.
func (c *Cluster) NewAddr(id uint64) string {
	c.Addrs[id] = FreePorts(c.t, 1)[0]
	return c.Addrs[id]
}

// NodeDir is replica id's data directory.
func (c *Cluster) NodeDir(id uint64) string { return filepath.Join(c.Dir, fmt.Sprintf("n%d", id)) }

// Dial connects to replica id as a proxy would.
func (c *Cluster) Dial(ctx context.Context, id uint64) (*wire.Client, error) {
	return wire.DialClient(ctx, c.Addrs[id], wire.Hello{ClusterID: c.ID, Role: wire.RoleProxy}, wire.Options{TLS: c.tls})
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
			if st.Role == wire.NodeMaster {
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
		if len(sts) > 0 || last == nil {
			last = sts // the last answers, not the empty round the deadline cut short
		}
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
