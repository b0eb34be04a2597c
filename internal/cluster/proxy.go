package cluster

// This file owns the test proxies: a `synod proxy` process in front of a
// test cluster, started and torn down from the test's goroutine.

import (
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Proxy is a `synod proxy` process in front of a test cluster.
type Proxy struct {
	*Proc
	Addr string // where it serves the line protocol
}

// NodesFlag is the replica list as `synod proxy --nodes` takes it.
func (c *Cluster) NodesFlag() string { return c.nodesFlag(nil) }

// nodesFlag is NodesFlag with each address passed through via, if set.
func (c *Cluster) nodesFlag(via func(id uint64, addr string) string) string {
	ids := make([]uint64, 0, len(c.Addrs))
	for id := range c.Addrs {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	parts := make([]string, len(ids))
	for i, id := range ids {
		addr := c.Addrs[id]
		if via != nil {
			addr = via(id, addr)
		}
		parts[i] = fmt.Sprintf("%d=%s", id, addr)
	}
	return strings.Join(parts, ",")
}

// StartProxy starts a proxy process for the cluster on a free loopback port,
// with extra flags such as "--hold=1s", waits until it accepts connections,
// and registers its teardown with t.Cleanup.
func (c *Cluster) StartProxy(t testing.TB, flags ...string) *Proxy {
	t.Helper()
	return c.StartProxyNodes(t, c.NodesFlag(), flags...)
}

// StartProxyVia is StartProxy for a proxy that reaches replica id at
// via(id, its address) instead (a fault relay's listener, say); nil via
// means the real addresses.
func (c *Cluster) StartProxyVia(t testing.TB, via func(id uint64, addr string) string, flags ...string) *Proxy {
	t.Helper()
	return c.StartProxyNodes(t, c.nodesFlag(via), flags...)
}

// StartProxyNodes is StartProxy with nodes as the proxy's --nodes: id=addr
// entries or bare seed addresses (a proxy follows the configuration from
// any one replica).
func (c *Cluster) StartProxyNodes(t testing.TB, nodes string, flags ...string) *Proxy {
	t.Helper()
	addr := FreePorts(t, 1)[0]
	_, port, _ := net.SplitHostPort(addr)
	name := "proxy-" + port
	args := []string{"--log-format=json", "--log-level=info", "proxy",
		"--listen=" + addr, "--nodes=" + nodes, "--cluster=" + c.ID}
	args = append(args, flags...)
	p := &Proxy{
		Proc: &Proc{t: t, group: c.group, Name: name, Args: args, Log: filepath.Join(c.Dir, name+".log")},
		Addr: addr,
	}
	p.Start()
	t.Cleanup(func() {
		if t.Failed() && p.Running() {
			p.Signal(syscall.SIGQUIT)
			time.Sleep(100 * time.Millisecond)
		}
		p.Kill()
		if t.Failed() {
			out := p.Output()
			if len(out) > 20000 {
				out = out[len(out)-20000:]
			}
			t.Logf("--- %s log (tail) ---\n%s", p.Name, out)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		nc, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			nc.Close()
			return p
		}
		if !p.Running() || time.Now().After(deadline) {
			t.Fatalf("cluster: proxy did not start: %v\n%s", err, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
