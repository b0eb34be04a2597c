// Package spawn starts a synod cluster for one benchmark run: N replicas and,
// if asked, a proxy, each a process of the synod binary, on loopback ports
// chosen at run time, with their data and logs in a fresh directory, and if
// asked with TLS on every link (certificates of its own, made in that
// directory as `synod up --secure` makes them). It waits until the cluster
// takes writes, can SIGKILL the master, and tears everything down on Close.
//
// Goroutines: the bench's, which calls every method; the processes are run
// by the supervisor, internal/proc, which reaps each on a goroutine of its
// own.
package spawn

// This file owns all of it: the Cluster a run spawns, on the bench's
// goroutine (see the package comment).

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"synod/bench"
	"synod/bench/profile"
	"synod/internal/proc"
	"synod/wire"
	"synod/wire/line"
	"synod/wire/tlsconf"
)

// MaxNodes bounds Options.Nodes: one machine, a handful of replicas.
const MaxNodes = 9

// ErrNotReady is returned by Start when the cluster did not take a write in
// time, and by KillMaster when no replica is master.
var ErrNotReady = errors.New("spawn: cluster not ready")

// Options say what to start.
type Options struct {
	// Exe is the synod binary.
	Exe string
	// Nodes is the number of replicas, 1 to MaxNodes.
	Nodes int
	// Proxy starts a proxy in front of the replicas.
	Proxy bool
	// Dir is where the cluster's directory is made; "" means the system's
	// temporary directory. Keep leaves it behind after Close.
	Dir  string
	Keep bool
	// NodeFlags and ProxyFlags are added to every replica's and the proxy's
	// command line.
	NodeFlags, ProxyFlags []string
	// LogLevel is the children's --log-level; "" means info.
	LogLevel string
	// ReadyTimeout bounds the wait for the first write; 0 means 30 s.
	ReadyTimeout time.Duration
	// Grace is how long Close lets a process stop after SIGTERM; 0 means 5 s.
	Grace time.Duration
	// ProfileDir, if set, is where StartProfiles and StopProfiles have
	// every process write a CPU profile, <name>.pprof (package profile).
	ProfileDir string
	// TLS turns on TLS on every link: mutual TLS between replicas and
	// from the proxy to them, and TLS from clients to the proxy, with a CA
	// and certificates made for this cluster (ClientTLS is the clients'
	// side). Users and permissions stay off.
	TLS bool
	// Metrics gives every process a metrics endpoint (--metrics-listen)
	// on a free loopback port of its own; MetricsURLs lists them.
	Metrics bool
}

// Cluster is a started cluster.
type Cluster struct {
	opts      Options
	dir       string
	clusterID string
	group     *proc.Group
	ids       []uint64
	addrs     map[uint64]string
	nodes     map[uint64]*proc.Proc
	proxy     *proc.Proc
	proxyAddr string
	// With Options.TLS: how the cluster's own connections dial replicas
	// (as a replica, whose certificate may claim any role) and the proxy
	// (as a client).
	wireTLS, clientTLS *tls.Config
	nodeFlags          []string
	proxyFlags         []string
	metricsURLs        []string
}

// Start starts the cluster and waits until it takes a write: through the
// proxy if there is one, else at the master.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	if opts.Nodes < 1 || opts.Nodes > MaxNodes {
		return nil, fmt.Errorf("spawn: %d replicas: want 1 to %d", opts.Nodes, MaxNodes)
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "info"
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 30 * time.Second
	}
	if opts.Grace <= 0 {
		opts.Grace = 5 * time.Second
	}
	dir, err := os.MkdirTemp(opts.Dir, "synod-bench-")
	if err != nil {
		return nil, fmt.Errorf("spawn: %w", err)
	}
	ports, err := proc.FreePorts(opts.Nodes + 1)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	var metricsPorts []string
	if opts.Metrics {
		if metricsPorts, err = proc.FreePorts(opts.Nodes + 1); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	c := &Cluster{opts: opts, dir: dir, group: proc.NewGroup(),
		// A cluster id of its own, so nothing left over from another run
		// can talk to this one.
		clusterID: fmt.Sprintf("bench-%08x", rand.Uint32()),
		addrs:     map[uint64]string{}, nodes: map[uint64]*proc.Proc{}}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	// metricsFlag gives process i (the proxy is Nodes) its endpoint.
	metricsFlag := func(i int) []string {
		if !opts.Metrics {
			return nil
		}
		c.metricsURLs = append(c.metricsURLs, "http://"+metricsPorts[i]+"/metrics")
		return []string{"--metrics-listen", metricsPorts[i]}
	}
	if opts.TLS {
		if err := c.makeCerts(); err != nil {
			return nil, err
		}
	}
	var peers []string
	for i := 1; i <= opts.Nodes; i++ {
		id := uint64(i)
		c.ids = append(c.ids, id)
		c.addrs[id] = ports[i-1]
		peers = append(peers, fmt.Sprintf("%d=%s", id, ports[i-1]))
	}
	global := []string{"--log-level", opts.LogLevel, "--log-format", "json"}
	for _, id := range c.ids {
		name := fmt.Sprintf("node%d", id)
		args := append(append([]string{}, global...), "node",
			"--id", strconv.FormatUint(id, 10), "--listen", c.addrs[id],
			"--peers", strings.Join(peers, ","), "--dir", filepath.Join(dir, name),
			"--cluster", c.clusterID)
		args = append(append(args, c.nodeFlags...), metricsFlag(int(id)-1)...)
		p, err := c.group.Start(proc.Spec{Name: name, Path: opts.Exe, Args: append(args, opts.NodeFlags...),
			Log: filepath.Join(dir, name+".log"), Env: c.profileEnv(name)})
		if err != nil {
			return nil, err
		}
		c.nodes[id] = p
	}
	if opts.Proxy {
		c.proxyAddr = ports[opts.Nodes]
		args := append(append([]string{}, global...), "proxy",
			"--listen", c.proxyAddr, "--nodes", strings.Join(peers, ","), "--cluster", c.clusterID)
		args = append(append(args, c.proxyFlags...), metricsFlag(opts.Nodes)...)
		if c.proxy, err = c.group.Start(proc.Spec{Name: "proxy", Path: opts.Exe, Args: append(args, opts.ProxyFlags...),
			Log: filepath.Join(dir, "proxy.log"), Env: c.profileEnv("proxy")}); err != nil {
			return nil, err
		}
	}
	rctx, cancel := context.WithTimeout(ctx, opts.ReadyTimeout)
	defer cancel()
	if err := c.waitWrite(rctx); err != nil {
		return nil, err
	}
	return c, nil
}

// waitWrite retries one write until it succeeds, failing early if a process
// died.
func (c *Cluster) waitWrite(ctx context.Context) error {
	var last error
	for {
		for _, p := range c.all() {
			if !p.Running() {
				return fmt.Errorf("%w: %s exited (%v): %s", ErrNotReady, p.Name, p.ExitErr(), p.Tail(2000))
			}
		}
		if last = c.tryWrite(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %v (last error: %v)", ErrNotReady, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *Cluster) tryWrite(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if c.proxy != nil {
		cl, err := line.Dial(wctx, c.proxyAddr, line.Options{TLS: c.clientTLS})
		if err != nil {
			return err
		}
		defer cl.Close()
		_, err = cl.Put(wctx, "bench-ready", []byte("1"))
		return err
	}
	id, err := c.Master(wctx)
	if err != nil {
		return err
	}
	cl, err := wire.DialClient(wctx, c.addrs[id], c.hello(), wire.Options{TLS: c.wireTLS})
	if err != nil {
		return err
	}
	defer cl.Close()
	rep, err := cl.Do(wctx, &wire.Request{Op: wire.OpPut, Key: "bench-ready", Value: []byte("1"), ClientID: rand.Uint64() | 1, Seq: 1})
	if err != nil {
		return err
	}
	if rep.Code != wire.CodeOK {
		return fmt.Errorf("%s: %s", rep.Code, rep.Msg)
	}
	return nil
}

func (c *Cluster) hello() wire.Hello {
	return wire.Hello{ClusterID: c.clusterID, Role: wire.RoleClient}
}

func (c *Cluster) all() []*proc.Proc {
	var ps []*proc.Proc
	for _, id := range c.ids {
		ps = append(ps, c.nodes[id])
	}
	if c.proxy != nil {
		ps = append(ps, c.proxy)
	}
	return ps
}

// certValidity is how long a spawned cluster's certificates are valid: a
// benchmark run, with room to spare.
const certValidity = 24 * time.Hour

// makeCerts makes a CA and a node, a proxy and a client certificate in
// <dir>/certs, and the flags and client configs that use them.
func (c *Cluster) makeCerts() error {
	dir := filepath.Join(c.dir, "certs")
	ca, err := tlsconf.NewCA("synod bench CA", tlsconf.Validity{For: certValidity})
	if err != nil {
		return fmt.Errorf("spawn: %w", err)
	}
	caFile, _, err := ca.WriteFiles(dir, "ca", false)
	if err != nil {
		return fmt.Errorf("spawn: %w", err)
	}
	bundles := map[string]*tlsconf.Bundle{}
	flags := map[string][]string{}
	for _, k := range []struct {
		name string
		kind tlsconf.Kind
	}{{"node", tlsconf.KindNode}, {"proxy", tlsconf.KindProxy}, {"client", tlsconf.KindClient}} {
		is, err := ca.Issue(k.kind, k.name, nil, tlsconf.Validity{For: certValidity})
		if err != nil {
			return fmt.Errorf("spawn: %w", err)
		}
		cert, key, err := is.WriteFiles(dir, k.name, false)
		if err != nil {
			return fmt.Errorf("spawn: %w", err)
		}
		if bundles[k.name], err = tlsconf.Load(tlsconf.Files{CA: caFile, Cert: cert, Key: key}); err != nil {
			return fmt.Errorf("spawn: %w", err)
		}
		flags[k.name] = []string{"--cacert", caFile, "--cert", cert, "--key", key}
	}
	c.nodeFlags, c.proxyFlags = flags["node"], flags["proxy"]
	c.wireTLS, c.clientTLS = bundles["node"].ClientConfig(), bundles["client"].ClientConfig()
	return nil
}

// ClientTLS is the TLS config a client of the proxy dials with (nil
// without Options.TLS): the cluster's CA, and a client certificate.
func (c *Cluster) ClientTLS() *tls.Config { return c.clientTLS }

// ClusterID is the id the cluster's processes share.
func (c *Cluster) ClusterID() string { return c.clusterID }

// MetricsURLs returns every process's /metrics URL (Options.Metrics), the
// replicas' then the proxy's.
func (c *Cluster) MetricsURLs() []string { return c.metricsURLs }

// Dir is the cluster's directory: a data directory and a log per process.
func (c *Cluster) Dir() string { return c.dir }

// ProxyAddr is the proxy's line-protocol address ("" without a proxy).
func (c *Cluster) ProxyAddr() string { return c.proxyAddr }

// NodeAddrs lists the replicas' addresses in id order.
func (c *Cluster) NodeAddrs() []string {
	addrs := make([]string, len(c.ids))
	for i, id := range c.ids {
		addrs[i] = c.addrs[id]
	}
	return addrs
}

// Procs lists the cluster's processes, replicas then proxy.
func (c *Cluster) Procs() []bench.Proc {
	var ps []bench.Proc
	for _, p := range c.all() {
		ps = append(ps, bench.Proc{Name: p.Name, PID: p.PID()})
	}
	return ps
}

// Master returns the id of the replica that reports itself a ready master.
func (c *Cluster) Master(ctx context.Context) (uint64, error) {
	var errs []error
	for _, id := range c.ids {
		if !c.nodes[id].Running() {
			continue
		}
		cl, err := wire.DialClient(ctx, c.addrs[id], c.hello(), wire.Options{TLS: c.wireTLS})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		st, err := cl.Status(ctx)
		cl.Close()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if st.Role == wire.NodeMaster {
			return id, nil
		}
	}
	return 0, fmt.Errorf("%w: no replica is master: %w", ErrNotReady, errors.Join(errs...))
}

// KillMaster SIGKILLs the master and waits until it is reaped.
func (c *Cluster) KillMaster(ctx context.Context) (bench.Proc, error) {
	id, err := c.Master(ctx)
	if err != nil {
		return bench.Proc{}, err
	}
	p := c.nodes[id]
	bp := bench.Proc{Name: p.Name, PID: p.PID()}
	return bp, p.Kill()
}

func (c *Cluster) profileEnv(name string) []string {
	if c.opts.ProfileDir == "" {
		return nil
	}
	return []string{profile.Env + "=" + c.profilePath(name)}
}

func (c *Cluster) profilePath(name string) string {
	return filepath.Join(c.opts.ProfileDir, name+".pprof")
}

// StartProfiles has every running process start a CPU profile, if the
// cluster was started with a ProfileDir. Profiles left from an earlier run
// are removed first.
func (c *Cluster) StartProfiles() error {
	if c.opts.ProfileDir == "" {
		return nil
	}
	var errs []error
	for _, p := range c.all() {
		if err := os.Remove(c.profilePath(p.Name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		errs = append(errs, p.Signal(profile.StartSignal))
	}
	return errors.Join(errs...)
}

// StopProfiles has every running process write its profile, and waits until
// they are written. A process killed meanwhile has none. The master's name
// goes to master.txt beside the profiles, since that is the one to read.
func (c *Cluster) StopProfiles() error {
	if c.opts.ProfileDir == "" {
		return nil
	}
	var running []*proc.Proc
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if id, err := c.Master(ctx); err == nil {
		errs = append(errs, os.WriteFile(filepath.Join(c.opts.ProfileDir, "master.txt"), []byte(c.nodes[id].Name+"\n"), 0o644))
	}
	for _, p := range c.all() {
		if p.Running() {
			running = append(running, p)
			errs = append(errs, p.Signal(profile.StopSignal))
		}
	}
	for _, p := range running {
		errs = append(errs, profile.WaitWritten(c.profilePath(p.Name), 10*time.Second))
	}
	return errors.Join(errs...)
}

// Close stops every process and removes the directory unless Keep. Processes
// that died or were killed are not errors.
func (c *Cluster) Close() error {
	err := c.group.Close(c.opts.Grace)
	if !c.opts.Keep {
		if rerr := os.RemoveAll(c.dir); rerr != nil {
			err = errors.Join(err, fmt.Errorf("spawn: %w", rerr))
		}
	}
	return err
}

// Logs lists the processes' log files, sorted.
func (c *Cluster) Logs() []string {
	var logs []string
	for _, p := range c.all() {
		logs = append(logs, p.Log)
	}
	sort.Strings(logs)
	return logs
}
