package main

// This file owns the etcd members of one run: three processes of this
// binary (`etcdbench member`) started, watched and stopped through
// synod's process supervisor (bench/proc), their leader found and killed,
// and with TLS the certificates they and their clients use.
// It runs on the bench's goroutine; the supervisor reaps each member on a
// goroutine of its own.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"synod/bench"
	"synod/bench/proc"
	"synod/wire/tlsconf"
)

// errNoLeader is returned when no member reports a leader.
var errNoLeader = errors.New("etcd: no leader")

// cluster is a set of etcd members started for one run, one process each.
type cluster struct {
	dir       string
	keep      bool
	group     *proc.Group
	names     []string
	endpoints []string // client URLs, in member order
	members   []*proc.Proc
	tls       *tls.Config // the clients' side of TLS; nil without
}

// startCluster starts n members from this binary and waits until a write
// through them succeeds. With secure, every client and peer link is mutual
// TLS, with a CA and certificates made in the cluster's directory by synod's
// own wire/tlsconf (as synod's bench --secure makes its own).
func startCluster(ctx context.Context, n int, keep, secure bool) (_ *cluster, err error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("etcd: find this binary: %w", err)
	}
	dir, err := os.MkdirTemp("", "etcd-bench-")
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	ports, err := proc.FreePorts(2 * n)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	c := &cluster{dir: dir, keep: keep, group: proc.NewGroup()}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	scheme := "http://"
	var tlsArgs []string
	if secure {
		scheme = "https://"
		if tlsArgs, c.tls, err = makeCerts(filepath.Join(dir, "certs")); err != nil {
			return nil, err
		}
	}
	var initial []string
	for i := range n {
		name := fmt.Sprintf("m%d", i+1)
		c.names = append(c.names, name)
		c.endpoints = append(c.endpoints, scheme+ports[2*i])
		initial = append(initial, name+"="+scheme+ports[2*i+1])
	}
	for i, name := range c.names {
		args := []string{"member", "--name", name, "--dir", filepath.Join(dir, name),
			"--client-url", c.endpoints[i], "--peer-url", scheme + ports[2*i+1],
			"--initial-cluster", strings.Join(initial, ","), "--token", filepath.Base(dir)}
		args = append(args, tlsArgs...)
		p, err := c.group.Start(proc.Spec{Name: name, Path: exe, Args: args, Log: filepath.Join(dir, name+".log")})
		if err != nil {
			return nil, err
		}
		c.members = append(c.members, p)
	}
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := c.waitWrite(rctx); err != nil {
		return nil, err
	}
	return c, nil
}

// certValidity is how long a run's certificates are valid.
const certValidity = 24 * time.Hour

// makeCerts makes a CA, a member certificate (server and client: members
// dial each other) and a client certificate in dir, and returns the
// members' TLS flags and the clients' TLS config.
func makeCerts(dir string) ([]string, *tls.Config, error) {
	ca, err := tlsconf.NewCA("etcd bench CA", tlsconf.Validity{For: certValidity})
	if err != nil {
		return nil, nil, fmt.Errorf("etcd: %w", err)
	}
	caFile, _, err := ca.WriteFiles(dir, "ca", false)
	if err != nil {
		return nil, nil, fmt.Errorf("etcd: %w", err)
	}
	files := map[string][2]string{}
	for _, k := range []struct {
		name string
		kind tlsconf.Kind
	}{{"member", tlsconf.KindNode}, {"client", tlsconf.KindClient}} {
		is, err := ca.Issue(k.kind, k.name, nil, tlsconf.Validity{For: certValidity})
		if err != nil {
			return nil, nil, fmt.Errorf("etcd: %w", err)
		}
		cert, key, err := is.WriteFiles(dir, k.name, false)
		if err != nil {
			return nil, nil, fmt.Errorf("etcd: %w", err)
		}
		files[k.name] = [2]string{cert, key}
	}
	info := transport.TLSInfo{CertFile: files["client"][0], KeyFile: files["client"][1], TrustedCAFile: caFile}
	cfg, err := info.ClientConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("etcd: client TLS: %w", err)
	}
	return []string{"--tls-ca", caFile, "--tls-cert", files["member"][0], "--tls-key", files["member"][1]}, cfg, nil
}

// newClient returns a client of endpoints, over TLS if tlsCfg is not nil.
func newClient(endpoints []string, tlsCfg *tls.Config) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop(), TLS: tlsCfg})
}

func (c *cluster) waitWrite(ctx context.Context) error {
	cl, err := newClient(c.endpoints, c.tls)
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	defer cl.Close()
	for {
		for _, p := range c.members {
			if !p.Running() {
				return fmt.Errorf("etcd: %s exited (%v): %s", p.Name, p.ExitErr(), p.Tail(2000))
			}
		}
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := cl.Put(wctx, "bench-ready", "1")
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcd: cluster not ready: %v (last error: %v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Procs lists the members' processes.
func (c *cluster) Procs() []bench.Proc {
	var ps []bench.Proc
	for _, p := range c.members {
		ps = append(ps, bench.Proc{Name: p.Name, PID: p.PID()})
	}
	return ps
}

// leader returns the index of the member that is leader.
func (c *cluster) leader(ctx context.Context) (int, error) {
	return leaderOf(ctx, c.endpoints, c.tls, func(i int) bool { return c.members[i].Running() })
}

// leaderOf asks the members at endpoints which of them leads.
func leaderOf(ctx context.Context, endpoints []string, tlsCfg *tls.Config, alive func(int) bool) (int, error) {
	var errs []error
	for i, ep := range endpoints {
		if alive != nil && !alive(i) {
			continue
		}
		cl, err := newClient([]string{ep}, tlsCfg)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := cl.Status(sctx, ep)
		cancel()
		cl.Close()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if st.Leader != 0 && st.Header.MemberId == st.Leader {
			return i, nil
		}
	}
	return 0, fmt.Errorf("%w: %w", errNoLeader, errors.Join(errs...))
}

// KillMaster SIGKILLs the leader and waits until it is reaped.
func (c *cluster) KillMaster(ctx context.Context) (bench.Proc, error) {
	i, err := c.leader(ctx)
	if err != nil {
		return bench.Proc{}, err
	}
	p := c.members[i]
	return bench.Proc{Name: p.Name, PID: p.PID()}, p.Kill()
}

// Close stops the members and removes their data unless keep.
func (c *cluster) Close() error {
	err := c.group.Close(10 * time.Second)
	if !c.keep {
		err = errors.Join(err, os.RemoveAll(c.dir))
	}
	return err
}
