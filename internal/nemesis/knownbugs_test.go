package nemesis

// This file owns the reproductions of synod bugs the nemesis found and
// that are not fixed yet: each runs a small cluster on the test's
// goroutine, only with -nemesis.known, and fails while the bug stands.

import (
	"context"
	"flag"
	"os"
	"testing"
	"time"

	"synod/internal/cluster"
	"synod/wire"
	"synod/wire/line"
)

var flagKnown = flag.Bool("nemesis.known", false, "run the reproductions of known synod bugs (they fail until fixed)")

// TestWipedReplicaRejoinsUnderJoinedMaster: a replica of the first
// configuration whose data directory is wiped, restarted with its old
// flags (--peers of the first members), must catch up as a learner. It
// does not when the master is a replica added later: the wiped replica's
// configuration is its --peers list (slot 0), it refuses the master's
// handshake ("replica 4 is not a member of the configuration in force on
// replica 2 (1 2 3) config-slot=0", logged at debug level only), the
// master takes the refusal of a peer with an older configuration as one
// that will learn (noteRefusal), and it never does: applied 0 for good.
// The nemesis met it as "replicas did not converge" after a wipe-disk
// (seed 5026586500979261723: replica 3 follower@0/0 while the master was
// 6, then 8).
func TestWipedReplicaRejoinsUnderJoinedMaster(t *testing.T) {
	if !*flagKnown {
		t.Skip("a known synod bug: -nemesis.known")
	}
	flags := []string{"--heartbeat=20ms", "--election-timeout=200ms"}
	c := cluster.New(t, cluster.Options{Nodes: 3, NodeFlags: flags})
	p := c.StartProxy(t, "--poll=50ms")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	m, err := c.WaitMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := line.Dial(ctx, p.Addr, line.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	change := func(what string, do func() (uint64, error)) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
			_, err := do()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %v", what, err)
			}
		}
	}
	voter := func(id uint64) bool {
		ms, _, err := cl.Members(ctx)
		return err == nil && memberVoter(toWire(ms), id)
	}
	for _, id := range []uint64{4, 5} {
		addr := c.ReserveAddr(t, id)
		change("add", func() (uint64, error) { return cl.MemberAdd(ctx, id, addr) })
		c.Join(t, id, c.Addrs[m], flags...)
		for !voter(id) && ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond) // promoted once it caught up
		}
	}
	// Make 4 or 5 the master: with two of 1, 2, 3 down, the third hands
	// over to one of them when it stops.
	for i := 0; i < 5 && m < 4; i++ {
		var down []uint64
		for _, id := range []uint64{1, 2, 3} {
			if id != m {
				down = append(down, id)
				c.Nodes[id].Kill()
			}
		}
		c.Nodes[m].Stop()
		c.Nodes[m].Start()
		for _, id := range down {
			c.Nodes[id].Start()
		}
		wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
		m, err = c.WaitMaster(wctx)
		wcancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	if m < 4 {
		t.Skip("no replica added later became the master")
	}
	t.Logf("master %d", m)

	const v = 2
	c.Nodes[v].Kill()
	if err := os.RemoveAll(c.NodeDir(v)); err != nil {
		t.Fatal(err)
	}
	c.Nodes[v].Start() // its old flags: --peers 1, 2, 3
	if _, err := cl.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	if _, err := c.WaitConverged(wctx, 1); err != nil {
		_, _, herr := wire.Dial(ctx, c.Addrs[v], wire.Hello{ClusterID: c.ID, NodeID: m, Role: wire.RoleReplica}, wire.Options{})
		t.Fatalf("replica %d, wiped and restarted with its --peers, did not catch up under master %d: %v; a handshake as replica %d: %v", v, m, err, m, herr)
	}
}

func toWire(ms []line.Member) []wire.Member {
	out := make([]wire.Member, len(ms))
	for i, m := range ms {
		out[i] = wire.Member{ID: m.ID, Addr: m.Addr, Voter: m.Voter}
	}
	return out
}
