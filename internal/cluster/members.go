package cluster

// This file owns the test cluster's membership changes: replicas started
// with `synod node --join` into a running cluster, and the check that the
// test binary's replicas can do that. Called from the test's goroutine.

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	flagsOnce sync.Once
	nodeHelp  string
)

// NodeHasFlag reports whether `synod node` of the test binary takes flag
// (for example "--join"): end-to-end tests of a feature whose node side
// has not landed skip on it.
func NodeHasFlag(t testing.TB, flag string) bool {
	t.Helper()
	bin := Binary(t)
	flagsOnce.Do(func() {
		out, _ := exec.Command(bin, "node", "--help").CombinedOutput()
		nodeHelp = string(out)
	})
	return strings.Contains(nodeHelp, flag+" ") || strings.Contains(nodeHelp, flag+"=")
}

// Join starts replica id on a free loopback port, joining the running
// cluster through join (a member's address) instead of a --peers list,
// with the cluster's id, a data directory of its own and extra flags. It
// is added to Addrs and Nodes, so teardown kills it like the others. The
// replica must have been added to the configuration (MEMBER ADD) at
// Addrs[id], which Join sets first if it is not set yet: call ReserveAddr
// before the MEMBER ADD to know the address.
func (c *Cluster) Join(t testing.TB, id uint64, join string, flags ...string) *Proc {
	t.Helper()
	if _, ok := c.Nodes[id]; ok {
		t.Fatalf("cluster: replica %d exists", id)
	}
	addr := c.ReserveAddr(t, id)
	args := []string{"--log-format=json", "--log-level=info", "node",
		fmt.Sprintf("--id=%d", id), "--listen=" + addr, "--join=" + join,
		"--dir=" + c.NodeDir(id), "--cluster=" + c.ID}
	args = append(args, flags...)
	p := &Proc{t: t, group: c.group, Name: fmt.Sprintf("node%d", id), Args: args, Log: filepath.Join(c.Dir, fmt.Sprintf("node%d.log", id))}
	c.Nodes[id] = p
	p.Start()
	return p
}

// ReserveAddr returns replica id's address, choosing a free loopback port
// for a replica the cluster does not have yet.
func (c *Cluster) ReserveAddr(t testing.TB, id uint64) string {
	t.Helper()
	if a, ok := c.Addrs[id]; ok {
		return a
	}
	a := FreePorts(t, 1)[0]
	c.Addrs[id] = a
	return a
}
