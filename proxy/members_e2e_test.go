package proxy

// End-to-end membership changes through the proxy with real replica
// processes (internal/cluster): a proxy that finds every member from one
// address, 3 -> 5 -> 3 replicas and the master's removal under sixteen
// writing clients, a wiped host replaced. They need the node half of
// issue 14 (`synod node --join`, Status.Members, the MEMBER operations) and
// skip without it. The test goroutine drives; each writer has one.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"synod/internal/cluster"
	"synod/wire/line"
)

// skipWithoutMembership skips a test the replicas cannot pass yet.
func skipWithoutMembership(t *testing.T) {
	t.Helper()
	if !cluster.NodeHasFlag(t, "--join") {
		t.Skip("needs the node half of issue 14: `synod node --join`, Status.Members and the MEMBER operations")
	}
}

// memberClient is a line client for membership requests in a test.
type memberClient struct {
	t  *testing.T
	cl *line.Client
}

func dialMembers(t *testing.T, addr string) *memberClient {
	t.Helper()
	cl, err := line.Dial(context.Background(), addr, line.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return &memberClient{t: t, cl: cl}
}

// change makes a membership change, sending it again while the cluster
// answers with a transient error (another change under way, a new member
// not live yet) for up to a minute.
func (mc *memberClient) change(what string, do func(ctx context.Context) (uint64, error)) uint64 {
	mc.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		slot, err := do(ctx)
		cancel()
		if err == nil {
			mc.t.Logf("%s: configuration %d", what, slot)
			return slot
		}
		if !line.IsTransient(err) || time.Now().After(deadline) {
			mc.t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (mc *memberClient) add(id uint64, addr string) {
	mc.t.Helper()
	mc.change(fmt.Sprintf("add %d at %s", id, addr), func(ctx context.Context) (uint64, error) { return mc.cl.MemberAdd(ctx, id, addr) })
}

func (mc *memberClient) remove(id uint64) {
	mc.t.Helper()
	mc.change(fmt.Sprintf("remove %d", id), func(ctx context.Context) (uint64, error) { return mc.cl.MemberRemove(ctx, id) })
}

// voter waits for the learner id to be promoted (the master does it once
// the learner has caught up) and promotes it itself after 30 s.
func (mc *memberClient) voter(id uint64) {
	mc.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m, ok := mc.member(id); ok && m.Voter {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	mc.change(fmt.Sprintf("promote %d", id), func(ctx context.Context) (uint64, error) { return mc.cl.MemberPromote(ctx, id) })
}

// member returns member id of the configuration in force.
func (mc *memberClient) member(id uint64) (line.Member, bool) {
	mc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ms, _, err := mc.cl.Members(ctx)
	if err != nil {
		mc.t.Fatalf("member list: %v", err)
	}
	for _, m := range ms {
		if m.ID == id {
			return m, true
		}
	}
	return line.Member{}, false
}

// ids returns the members' ids.
func (mc *memberClient) ids() string {
	mc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ms, _, err := mc.cl.Members(ctx)
	if err != nil {
		mc.t.Fatalf("member list: %v", err)
	}
	var ids []string
	for _, m := range ms {
		ids = append(ids, fmt.Sprint(m.ID))
	}
	return strings.Join(ids, ",")
}

// writeLoad is sixteen clients appending numbered tokens to a file each
// through the proxy until stopped.
type writeLoad struct {
	addr  string
	stop  chan struct{}
	wg    sync.WaitGroup
	acked []int
	errs  chan error
}

func startWriteLoad(t *testing.T, addr string) *writeLoad {
	t.Helper()
	const clients = 16
	w := &writeLoad{addr: addr, stop: make(chan struct{}), acked: make([]int, clients), errs: make(chan error, clients)}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	for i := range clients {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			cl, err := line.Dial(ctx, addr, line.Options{})
			if err != nil {
				w.errs <- err
				return
			}
			defer cl.Close()
			for j := 0; ; j++ {
				select {
				case <-w.stop:
					return
				default:
				}
				if _, err := cl.Append(ctx, fmt.Sprintf("load/%d", i), []byte(fmt.Sprintf("%d,", j))); err != nil {
					w.errs <- fmt.Errorf("client %d append %d: %w", i, j, err)
					return
				}
				w.acked[i]++
			}
		}()
	}
	return w
}

// finish stops the writers and checks that none saw an error and that
// every acknowledged append is in its file exactly once, in order.
func (w *writeLoad) finish(t *testing.T) {
	t.Helper()
	close(w.stop)
	w.wg.Wait()
	close(w.errs)
	for err := range w.errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	rc := dialRaw(t, w.addr)
	total := 0
	for i, n := range w.acked {
		total += n
		rc.send(fmt.Sprintf("GET load/%d\r\n", i))
		got, _ := rc.value()
		var want strings.Builder
		for j := range n {
			fmt.Fprintf(&want, "%d,", j)
		}
		if string(got) != want.String() {
			t.Errorf("load/%d holds %q, want the %d acknowledged appends", i, got, n)
		}
	}
	t.Logf("%d appends by %d clients, zero errors", total, len(w.acked))
}

// waitExit waits for a removed replica to exit by itself.
func waitExit(t *testing.T, p *cluster.Proc) {
	t.Helper()
	if _, ok := p.Wait(30 * time.Second); !ok {
		t.Fatalf("%s still runs 30 s after its removal", p.Name)
	}
}

// TestSeedFindsEveryMemberEndToEnd: a proxy given one replica's address,
// without its id, serves the whole cluster.
func TestSeedFindsEveryMemberEndToEnd(t *testing.T) {
	skipWithoutMembership(t)
	c := cluster.New(t, cluster.Options{NodeFlags: fastFlags})
	p := c.StartProxyNodes(t, c.Addrs[2], "--poll=50ms")
	rc := dialRaw(t, p.Addr)
	eventually(t, "three replicas, one master", func() bool {
		nodes, masters := rc.status(), 0
		for _, n := range nodes {
			if n.Role == "master" {
				masters++
			}
		}
		return len(nodes) == 3 && masters == 1 && nodes[0].ID == 1 && nodes[2].ID == 3
	})
	rc.send("PUT k v\r\n")
	rc.okIndex()
}

// TestGrowAndShrinkUnderLoad: 3 -> 5 -> 3 replicas while sixteen clients
// write through the proxy, with zero client errors and every acknowledged
// write present; the proxy follows each change and the removed replicas
// exit by themselves.
func TestGrowAndShrinkUnderLoad(t *testing.T) {
	skipWithoutMembership(t)
	c := cluster.New(t, cluster.Options{NodeFlags: fastFlags})
	p := c.StartProxy(t, "--poll=50ms")
	rc := dialRaw(t, p.Addr)
	waitMaster(t, rc)
	mc := dialMembers(t, p.Addr)
	load := startWriteLoad(t, p.Addr)
	time.Sleep(time.Second)

	for _, id := range []uint64{4, 5} {
		mc.add(id, c.ReserveAddr(t, id))
		c.Join(t, id, c.Addrs[1], fastFlags...)
		mc.voter(id)
	}
	if got := mc.ids(); got != "1,2,3,4,5" {
		t.Fatalf("members %s after growing", got)
	}
	eventually(t, "the proxy polls five replicas", func() bool { return len(rc.status()) == 5 })
	time.Sleep(time.Second)

	for _, id := range []uint64{4, 5} {
		mc.remove(id)
		waitExit(t, c.Nodes[id])
	}
	if got := mc.ids(); got != "1,2,3" {
		t.Fatalf("members %s after shrinking", got)
	}
	eventually(t, "the proxy polls three replicas", func() bool { return len(rc.status()) == 3 })
	time.Sleep(time.Second)
	load.finish(t)
}

// TestRemoveMasterUnderLoad: removing the master hands mastership over
// first; the writers see no error.
func TestRemoveMasterUnderLoad(t *testing.T) {
	skipWithoutMembership(t)
	c := cluster.New(t, cluster.Options{NodeFlags: fastFlags})
	p := c.StartProxy(t, "--poll=50ms")
	rc := dialRaw(t, p.Addr)
	master := waitMaster(t, rc)
	mc := dialMembers(t, p.Addr)
	// A fourth member first, so the cluster keeps three replicas.
	mc.add(4, c.ReserveAddr(t, 4))
	c.Join(t, 4, c.Addrs[1], fastFlags...)
	mc.voter(4)
	load := startWriteLoad(t, p.Addr)
	time.Sleep(time.Second)
	mc.remove(master)
	waitExit(t, c.Nodes[master])
	if next := waitMaster(t, rc); next == master {
		t.Fatalf("replica %d is still master after its removal", master)
	}
	time.Sleep(time.Second)
	load.finish(t)
	if _, ok := mc.member(master); ok {
		t.Fatalf("replica %d is still a member", master)
	}
}

// TestReplaceWipedHost: a replica whose host is lost for good is replaced
// by a new one with a new id at a new address; the old id, restarted with
// its old flags on an empty disk, is refused and exits.
func TestReplaceWipedHost(t *testing.T) {
	skipWithoutMembership(t)
	c := cluster.New(t, cluster.Options{NodeFlags: fastFlags})
	p := c.StartProxy(t, "--poll=50ms")
	rc := dialRaw(t, p.Addr)
	master := waitMaster(t, rc)
	lost := uint64(1)
	if lost == master {
		lost = 2
	}
	rc.send("PUT before v\r\n")
	rc.okIndex()
	c.Nodes[lost].Kill()
	wipeDir(t, c.NodeDir(lost))

	mc := dialMembers(t, p.Addr)
	mc.add(4, c.ReserveAddr(t, 4))
	c.Join(t, 4, c.Addrs[master], fastFlags...)
	mc.voter(4)
	mc.remove(lost)
	if got, want := mc.ids(), map[uint64]string{1: "2,3,4", 2: "1,3,4"}[lost]; got != want {
		t.Fatalf("members %s, want %s", got, want)
	}
	rc.send("GET before\r\n")
	rc.expectValue("v", 0)

	c.Nodes[lost].Start() // its old flags, an empty directory
	if err, ok := c.Nodes[lost].Wait(30 * time.Second); !ok {
		t.Fatalf("the removed replica %d runs again", lost)
	} else {
		var exit interface{ ExitCode() int }
		if errors.As(err, &exit) {
			t.Logf("replica %d exited with status %d", lost, exit.ExitCode())
		}
	}
	if _, ok := mc.member(lost); ok {
		t.Fatalf("replica %d came back", lost)
	}
	rc.send("PUT after v\r\n")
	rc.okIndex()
}

// wipeDir empties a replica's data directory, as a lost disk would.
func wipeDir(t *testing.T, dir string) {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}
