package node_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"synod/internal/cluster"
	"synod/wire"
)

// changeMembers sends a membership change to the master, following its
// hints (a master asked to remove itself hands over first) and retrying
// while another change is under way.
func changeMembers(ctx context.Context, t *testing.T, c *cluster.Cluster, req wire.Request) wire.Reply {
	t.Helper()
	for {
		master, err := c.WaitMaster(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cl, err := c.Dial(ctx, master)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := cl.Do(ctx, &req)
		cl.Close()
		switch {
		case err != nil && ctx.Err() != nil:
			t.Fatalf("%v %d: %v", req.Op, req.MemberID, err)
		case err == nil && rep.Code == wire.CodeOK:
			return rep
		case err == nil && rep.Code != wire.CodeNotMaster && rep.Code != wire.CodeBusy && rep.Code != wire.CodeUnavailable:
			t.Fatalf("%v %d: %v %s", req.Op, req.MemberID, rep.Code, rep.Msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitRole waits until replica id reports role.
func waitRole(ctx context.Context, t *testing.T, c *cluster.Cluster, id uint64, roles ...wire.NodeRole) {
	t.Helper()
	for {
		st := c.Statuses(ctx)[id]
		for _, r := range roles {
			if st.Role == r {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("replica %d is %q, want one of %v", id, st.Role, roles)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func voters(rep wire.Reply) string {
	var out []string
	for _, m := range rep.Members {
		role := "+"
		if m.Voter {
			role = ""
		}
		out = append(out, fmt.Sprintf("%s%d", role, m.ID))
	}
	return strings.Join(out, " ")
}

// TestMembershipChange grows a cluster from 3 to 5 replicas under writing
// clients, shrinks it back to 3 removing the master among others, and
// checks a removed replica stops and never starts again on its data, and
// that no acknowledged write is lost.
func TestMembershipChange(t *testing.T) {
	c := cluster.New(t, cluster.Options{NodeFlags: fastFlags})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := c.WaitMaster(ctx); err != nil {
		t.Fatal(err)
	}
	joining := map[uint64]*cluster.Proc{4: c.JoinProc(4, 1), 5: c.JoinProc(5, 2)}
	stop := make(chan struct{})
	ackedCh := make(chan map[string][]string, 1)
	go func() { ackedCh <- appendTokens(ctx, t, c, 8, stop) }()

	for _, id := range []uint64{4, 5} {
		rep := changeMembers(ctx, t, c, wire.Request{Op: wire.OpMemberAdd, MemberID: id, MemberAddr: c.Addrs[id]})
		t.Logf("added %d: %s (slot %d)", id, voters(rep), rep.ConfigSlot)
		joining[id].Start()
		waitRole(ctx, t, c, id, "follower", "master") // promoted once caught up
	}
	master, err := c.WaitMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	removed := []uint64{master}
	for _, id := range []uint64{1, 2, 3} {
		if id != master && len(removed) < 2 {
			removed = append(removed, id)
		}
	}
	for _, id := range removed {
		rep := changeMembers(ctx, t, c, wire.Request{Op: wire.OpMemberRemove, MemberID: id})
		t.Logf("removed %d: %s (slot %d)", id, voters(rep), rep.ConfigSlot)
		if len(rep.Members) == 0 || strings.Contains(" "+voters(rep)+" ", fmt.Sprintf(" %d ", id)) {
			t.Fatalf("replica %d still a member: %s", id, voters(rep))
		}
	}
	for _, id := range removed {
		err, exited := c.Nodes[id].Wait(30 * time.Second)
		if !exited || err == nil {
			t.Fatalf("removed replica %d: exited %v, %v; want it to stop with an error", id, exited, err)
		}
		if out := c.Nodes[id].Output(); !strings.Contains(out, "removed from the cluster") {
			t.Fatalf("removed replica %d did not say so:\n%s", id, out[max(0, len(out)-2000):])
		}
	}
	close(stop)
	acked := <-ackedCh

	// Restarted with its old flags, a removed replica refuses to start.
	c.Nodes[removed[0]].Start()
	if err, exited := c.Nodes[removed[0]].Wait(30 * time.Second); !exited || err == nil {
		t.Fatalf("removed replica %d restarted: exited %v, %v", removed[0], exited, err)
	}
	var left uint64
	for id := uint64(1); id <= 5; id++ {
		if id != removed[0] && id != removed[1] {
			left = id
		}
	}
	if _, err := c.WaitConverged(ctx, 1); err != nil {
		t.Fatal(err)
	}
	checkTokens(ctx, t, c, left, acked)
}

// TestWipedMemberRejoinsUnderAddedMaster: the cluster starts as 1, 2, 3,
// adds 4 and 5 and removes 1 and 3, so its master is a replica added
// later. Replica 2's data directory is then wiped and it restarts with its
// old flags, --peers 1, 2, 3: the members it knows are gone and the master
// is none of them. It must still hear the master (which knows a newer
// configuration), catch up, and vote again.
func TestWipedMemberRejoinsUnderAddedMaster(t *testing.T) {
	c := cluster.New(t, cluster.Options{NodeFlags: fastFlags})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	master, err := c.WaitMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	joining := map[uint64]*cluster.Proc{4: c.JoinProc(4, master), 5: c.JoinProc(5, master)}
	for _, id := range []uint64{4, 5} {
		rep := changeMembers(ctx, t, c, wire.Request{Op: wire.OpMemberAdd, MemberID: id, MemberAddr: c.Addrs[id]})
		t.Logf("added %d: %s (slot %d)", id, voters(rep), rep.ConfigSlot)
		joining[id].Start()
		waitRole(ctx, t, c, id, wire.NodeFollower, wire.NodeMaster) // promoted once caught up
	}
	for _, id := range []uint64{1, 3} {
		rep := changeMembers(ctx, t, c, wire.Request{Op: wire.OpMemberRemove, MemberID: id})
		t.Logf("removed %d: %s (slot %d)", id, voters(rep), rep.ConfigSlot)
		if _, exited := c.Nodes[id].Wait(30 * time.Second); !exited {
			t.Fatalf("removed replica %d did not stop", id)
		}
	}

	c.Nodes[2].Kill()
	if err := os.RemoveAll(c.NodeDir(2)); err != nil {
		t.Fatal(err)
	}
	if master, err = c.WaitMaster(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("master %d; replica 2 wiped, restarting on --peers 1, 2, 3", master)
	c.Nodes[2].Start()
	w := newWriter(c, 77)
	defer w.close()
	rep, err := w.do(ctx, wire.Request{Op: wire.OpPut, Key: "after-wipe", Value: []byte("v")})
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	if _, err := c.WaitConverged(wctx, rep.Index); err != nil {
		t.Fatalf("replica 2, wiped and restarted on its --peers, did not catch up under master %d: %v", master, err)
	}
	// It votes again (STATUS says learner until then): with the master
	// stopped, 2 and the other added replica elect a new one.
	waitRole(wctx, t, c, 2, wire.NodeFollower)
	c.Nodes[master].Kill()
	if rep, err = w.do(wctx, wire.Request{Op: wire.OpPut, Key: "after-kill", Value: []byte("w")}); err != nil {
		t.Fatal(err)
	}
	t.Logf("master %d killed; write chosen at %d", master, rep.Index)
}

// TestJoinThroughMemberBehind: a replica joins through a follower that was
// stopped while the master added it, so the follower answers with the
// configuration before the change. The joining replica must not give up:
// it asks the master the follower names, and joins.
func TestJoinThroughMemberBehind(t *testing.T) {
	c := cluster.New(t, cluster.Options{NodeFlags: fastFlags})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	master, err := c.WaitMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	behind := master%3 + 1
	joiner := c.JoinProc(4, behind)
	if err := c.Nodes[behind].Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	rep := changeMembers(ctx, t, c, wire.Request{Op: wire.OpMemberAdd, MemberID: 4, MemberAddr: c.Addrs[4]})
	t.Logf("added 4 while replica %d was stopped: %s (slot %d)", behind, voters(rep), rep.ConfigSlot)
	joiner.Start()
	time.Sleep(300 * time.Millisecond) // the joiner's request waits on the stopped follower
	if err := c.Nodes[behind].Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	for {
		if c.Statuses(wctx)[4].Role == wire.NodeFollower {
			break
		}
		if !joiner.Running() {
			t.Fatalf("replica 4 joining through %d exited:\n%s", behind, joiner.Output())
		}
		select {
		case <-wctx.Done():
			t.Fatalf("replica 4 did not join through %d", behind)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestSIGTERMWhileJoining: a replica asked to stop while it waits to join
// (its --join member does not answer) stops cleanly, with status 0,
// instead of being killed by the signal.
func TestSIGTERMWhileJoining(t *testing.T) {
	c := cluster.New(t, cluster.Options{Nodes: 1, NodeFlags: fastFlags})
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if nc, err := silent.Accept(); err == nil {
			accepted <- nc // held open, never answered
		}
	}()
	c.Addrs[9] = silent.Addr().String()
	p := c.JoinProc(4, 9)
	p.Start()
	select {
	case nc := <-accepted:
		defer nc.Close()
	case <-time.After(30 * time.Second):
		t.Fatal("the joining replica never dialled its --join member")
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	err, exited := p.Wait(30 * time.Second)
	if !exited || err != nil {
		t.Fatalf("SIGTERM while joining: exited %v, %v; want status 0\n%s", exited, err, p.Output())
	}
	if out := p.Output(); !strings.Contains(out, "stopped during start-up") {
		t.Fatalf("the replica did not say it stopped:\n%s", out)
	}
}
