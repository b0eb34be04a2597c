package node

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"synod/filestore"
	"synod/paxos"
	"synod/wire"
)

// startMaster runs a three-replica cluster in the test process (real TCP on
// loopback, real fsync in temporary directories) and returns its master
// once it serves.
func startMaster(t *testing.T) *Node {
	t.Helper()
	nodes := startNodes(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, n := range nodes {
			if si := n.soft.Load(); si.Role == paxos.Master && si.Ready {
				return n
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no master")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func dialProxy(t *testing.T, n *Node) *wire.Conn {
	t.Helper()
	c, _, err := wire.Dial(context.Background(), n.Addr().String(), wire.Hello{ClusterID: "synod", Role: wire.RoleProxy}, wire.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestSlowProxyIsNotDropped: a proxy that reads its replies slowly has its
// requests read slowly (backpressure), not its connection closed, however
// many replies it has waiting (issue 21.5: the node closed a connection
// with 4,096 replies queued, failing everything in flight on it).
func TestSlowProxyIsNotDropped(t *testing.T) {
	n := startMaster(t)
	value := bytes.Repeat([]byte("v"), 8<<10)
	c := dialProxy(t, n)
	if err := c.Send(wire.KindRequest, 1, &wire.Request{Op: wire.OpPut, Key: "k", Value: value}); err != nil {
		t.Fatal(err)
	}
	c.Flush()
	if env, err := c.Recv(); err != nil || env.Kind != wire.KindReply {
		t.Fatalf("put: %v %v", env.Kind, err)
	}

	stalled := make(chan struct{}, 1)
	hook := func() {
		select {
		case stalled <- struct{}{}:
		default:
		}
	}
	testHookReplyBackpressure.Store(&hook)
	defer testHookReplyBackpressure.Store(nil)

	// 8 KiB replies, 10,000 of them: far more than the socket buffers
	// and than any bound on queued replies. The proxy reads nothing
	// until the node has stopped reading its requests.
	const reads = 10000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range reads {
			req := wire.Request{Op: wire.OpGet, Key: "k", Consistency: wire.Stale}
			if c.Send(wire.KindRequest, uint64(i+2), &req) != nil {
				return
			}
		}
		c.Flush()
	}()
	defer wg.Wait()
	select {
	case <-stalled:
	case <-time.After(30 * time.Second):
		t.Fatal("the node never stopped reading a connection whose replies pile up")
	}
	for i := range reads {
		env, err := c.Recv()
		if err != nil {
			t.Fatalf("reply %d of %d: %v: the node dropped the connection", i+1, reads, err)
		}
		var rep wire.Reply
		if err := env.Decode(&rep); err != nil || rep.Code != wire.CodeOK || !bytes.Equal(rep.Value, value) || env.ID != uint64(i+2) {
			t.Fatalf("reply %d: id %d %+v %v", i+1, env.ID, rep.Code, err)
		}
	}
}

// TestNotMasterNamesTransferTarget: during a handover a master refuses
// writes naming the replica it hands over to, so a proxy goes there at
// once instead of back to the master that is leaving (issue 21.8).
func TestNotMasterNamesTransferTarget(t *testing.T) {
	n := &Node{cfg: Config{ID: 1, Peers: map[uint64]string{1: "a:1", 2: "b:2", 3: "c:3"}, MaxValue: 1 << 20}}
	n.soft.Store(&paxos.SoftState{Role: paxos.Master, Master: 1, Ready: true, Transfer: 3})
	var got wire.Reply
	n.handleWrite(context.Background(), wire.Request{Op: wire.OpPut, Key: "k", ClientID: 9, Seq: 1}, func(r wire.Reply) { got = r })
	if got.Code != wire.CodeNotMaster || got.MasterID != 3 || got.MasterAddr != "c:3" {
		t.Fatalf("reply %+v, want NOT_MASTER naming replica 3 at c:3", got)
	}
	if !got.NotApplied {
		t.Fatalf("reply %+v: a write refused before it was proposed is surely not applied", got)
	}
}

// TestStatusUnderReadLock: a STATUS poll takes the node's lock only for
// reading, so it neither waits for nor holds up the readers (issue 21.5:
// every poll took it exclusively).
func TestStatusUnderReadLock(t *testing.T) {
	n := &Node{cfg: Config{ID: 1, Peers: map[uint64]string{1: "a:1"}}, app: applier{fsm: filestore.New(filestore.Options{})}}
	n.soft.Store(&paxos.SoftState{Role: paxos.Follower})
	n.app.fsm.Apply(1, filestore.EncodeCommand(nil, filestore.Command{Op: wire.OpPut, Key: "k", Value: []byte("v")}))
	n.app.mu.RLock() // a reader in the middle of serving a read
	done := make(chan wire.Status, 1)
	go func() { done <- n.Status() }()
	var st wire.Status
	select {
	case st = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Status waits for the readers to finish")
	}
	n.app.mu.RUnlock()
	if st.Applied != 1 || st.Digest != n.app.fsm.Digest() {
		t.Fatalf("status %+v", st)
	}
}
