package proxy

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"synod/filestore"
	"synod/wire"
)

// okIndices reads n "OK <index>" replies and checks they rise.
func (c *rawConn) okIndices(n int) []uint64 {
	c.t.Helper()
	var out []uint64
	for range n {
		l := c.expect("OK ")
		i, err := strconv.ParseUint(strings.TrimPrefix(l, "OK "), 10, 64)
		if err != nil {
			c.t.Fatalf("bad reply %q", l)
		}
		if len(out) > 0 && i <= out[len(out)-1] {
			c.t.Fatalf("write replies %v then %d: the pipeline applied out of order", out, i)
		}
		out = append(out, i)
	}
	return out
}

// TestPipelineOrderAfterBusy: the master turns the first write of a
// pipeline away as BUSY and takes the next; the writes still apply in
// request order (issue 21.1: the client got OK 2, OK 1 and k ended as
// "first").
func TestPipelineOrderAfterBusy(t *testing.T) {
	sm := newStateMaster(filestore.Options{})
	sm.refuse = func(req wire.Request, attempt int) (wire.Reply, bool) {
		if string(req.Value) == "first" && attempt == 0 {
			return wire.Reply{Code: wire.CodeBusy, Msg: "too many writes queued", NotApplied: true}, true
		}
		return wire.Reply{}, false
	}
	m := startFake(t, 1, "master")
	m.set("master", sm.answer)
	s, addr := startServer(t, fakeNodes(m), func(c *Config) { c.Poll = 10 * time.Millisecond })
	eventually(t, "a master", func() bool { return s.rt.nodes()[0].Role == "master" })
	c := dialRaw(t, addr)
	c.send("PUT k first\r\nPUT k second\r\n")
	c.okIndices(2)
	if v, _ := sm.value("k"); v != "second" {
		t.Fatalf("k = %q after PUT k first, PUT k second", v)
	}
}

// TestPipelineDelThenCAS: a pipelined DEL then CAS-must-not-exist, the DEL
// refused once: no false CONFLICT.
func TestPipelineDelThenCAS(t *testing.T) {
	sm := newStateMaster(filestore.Options{})
	sm.apply(wire.Request{Op: wire.OpPut, Key: "k", Value: []byte("old")})
	sm.refuse = func(req wire.Request, attempt int) (wire.Reply, bool) {
		if req.Op == wire.OpDel && attempt == 0 {
			return wire.Reply{Code: wire.CodeBusy, Msg: "too many writes queued", NotApplied: true}, true
		}
		return wire.Reply{}, false
	}
	m := startFake(t, 1, "master")
	m.set("master", sm.answer)
	s, addr := startServer(t, fakeNodes(m), func(c *Config) { c.Poll = 10 * time.Millisecond })
	eventually(t, "a master", func() bool { return s.rt.nodes()[0].Role == "master" })
	c := dialRaw(t, addr)
	c.send("DEL k\r\nCAS k 0 new\r\n")
	c.okIndices(2)
	if v, _ := sm.value("k"); v != "new" {
		t.Fatalf("k = %q", v)
	}
}

// TestPipelineOrderAcrossFailover: the master dies with the first write of
// a pipeline lost (its slot became a no-op) and the second chosen; the new
// master gets the first write retried. The second must not apply first.
// (The connection wrote before, so its session is known to the replicas:
// the first write of a session whose fate is unknown cannot be retried,
// see TestFirstWriteInDoubt.)
func TestPipelineOrderAcrossFailover(t *testing.T) {
	sm := newStateMaster(filestore.Options{})
	a := startFake(t, 1, "master")
	b := startFake(t, 2, "follower")
	a.set("master", func(req wire.Request) (wire.Reply, bool) {
		if string(req.Value) == "first" {
			return wire.Reply{}, false // lost with the master
		}
		return sm.answer(req)
	})
	s, addr := startServer(t, fakeNodes(a, b), func(c *Config) { c.Poll = 10 * time.Millisecond })
	eventually(t, "replica 1 as master", func() bool { return s.rt.nodes()[0].Role == "master" })
	c := dialRaw(t, addr)
	c.send("PUT k zeroth\r\n")
	c.okIndices(1)
	nextRequest(t, a)
	c.send("PUT k first\r\nPUT k second\r\n")
	nextRequest(t, a)
	nextRequest(t, a)
	b.set("master", sm.answer)
	a.kill()
	c.okIndices(2)
	if v, _ := sm.value("k"); v != "second" {
		t.Fatalf("k = %q after PUT k first, PUT k second", v)
	}
}

// TestPipelineOrderNotMasterHints: a replica that answers every write
// not-master naming the real master; long pipelines still apply in order.
func TestPipelineOrderNotMasterHints(t *testing.T) {
	sm := newStateMaster(filestore.Options{})
	a := startFake(t, 1, "master")
	b := startFake(t, 2, "follower")
	a.set("master", func(wire.Request) (wire.Reply, bool) {
		return wire.Reply{Code: wire.CodeNotMaster, MasterID: 2, MasterAddr: b.addr(), NotApplied: true}, true
	})
	b.set("follower", sm.answer)
	_, addr := startServer(t, fakeNodes(a, b), func(c *Config) { c.Poll = time.Hour })
	c := dialRaw(t, addr)
	const n = 50
	var batch strings.Builder
	for i := range n {
		fmt.Fprintf(&batch, "APPEND k %d,\r\n", i)
	}
	c.send(batch.String())
	c.okIndices(n)
	var want strings.Builder
	for i := range n {
		fmt.Fprintf(&want, "%d,", i)
	}
	if v, _ := sm.value("k"); v != want.String() {
		t.Fatalf("k = %q, want %q", v, want.String())
	}
}

// TestFirstWriteInDoubt: a session's first write whose master died with it
// in flight cannot be retried safely once the new master does not know the
// session (its first attempt may have been applied and the session lost
// since): the connection is closed, and the write is not applied twice.
func TestFirstWriteInDoubt(t *testing.T) {
	sm := newStateMaster(filestore.Options{})
	a := startFake(t, 1, "master")
	b := startFake(t, 2, "follower")
	s, addr := startServer(t, fakeNodes(a, b), func(c *Config) { c.Poll = 10 * time.Millisecond })
	eventually(t, "replica 1 as master", func() bool { return s.rt.nodes()[0].Role == "master" })
	c := dialRaw(t, addr)
	c.send("PUT k v\r\n")
	nextRequest(t, a) // parked: its fate is unknown once a dies
	b.set("master", sm.answer)
	a.kill()
	c.expectClosed()
	if req := nextRequest(t, b); !req.Retry || req.Seq != 1 {
		t.Fatalf("the new master got %+v, want the write marked as a retry", req)
	}
}

// TestRefusedWriteLeavesNoGap: a write the master refuses for good before
// applying it (TOO_LARGE by its own limit) takes its seq out of the
// session; the writes after it still apply, in order.
func TestRefusedWriteLeavesNoGap(t *testing.T) {
	sm := newStateMaster(filestore.Options{})
	sm.refuse = func(req wire.Request, _ int) (wire.Reply, bool) {
		if string(req.Value) == "big" {
			return wire.Reply{Code: wire.CodeTooLarge, Msg: "value exceeds the maximum size", NotApplied: true}, true
		}
		return wire.Reply{}, false
	}
	m := startFake(t, 1, "master")
	m.set("master", sm.answer)
	s, addr := startServer(t, fakeNodes(m), func(c *Config) { c.Poll = 10 * time.Millisecond })
	eventually(t, "a master", func() bool { return s.rt.nodes()[0].Role == "master" })
	c := dialRaw(t, addr)
	c.send("PUT a 1\r\nPUT b big\r\nPUT c 3\r\nPUT d 4\r\n")
	c.okIndices(1)
	c.expect("ERR TOO_LARGE")
	c.okIndices(2)
	for _, k := range []string{"a", "c", "d"} {
		if _, ok := sm.value(k); !ok {
			t.Fatalf("%s not written", k)
		}
	}
}

// TestWriteAfterUnavailable: a write that waited out its hold window with
// no master is answered UNAVAILABLE; the connection's next write still
// applies once a master is back (its seq does not follow one that never
// applied).
func TestWriteAfterUnavailable(t *testing.T) {
	sm := newStateMaster(filestore.Options{})
	m := startFake(t, 1, "follower")
	s, addr := startServer(t, fakeNodes(m), func(c *Config) {
		c.Poll = 10 * time.Millisecond
		c.Hold = 300 * time.Millisecond
	})
	eventually(t, "the replica polled", func() bool { return s.rt.nodes()[0].Role == "follower" })
	c := dialRaw(t, addr)
	c.send("PUT a 1\r\n")
	c.expect("ERR UNAVAILABLE no master within")
	m.set("master", sm.answer)
	eventually(t, "a master", func() bool { return s.rt.nodes()[0].Role == "master" })
	c.send("PUT b 2\r\n")
	c.okIndices(1)
	if _, ok := sm.value("a"); ok {
		t.Fatal("a applied after UNAVAILABLE")
	}
}

// TestLostSessionMovesOn: the replicas evicted the connection's session;
// its next write, surely not applied, moves to a fresh session and
// applies.
func TestLostSessionMovesOn(t *testing.T) {
	sm := newStateMaster(filestore.Options{MaxSessions: 1})
	m := startFake(t, 1, "master")
	m.set("master", sm.answer)
	s, addr := startServer(t, fakeNodes(m), func(c *Config) { c.Poll = 10 * time.Millisecond })
	eventually(t, "a master", func() bool { return s.rt.nodes()[0].Role == "master" })
	one, two := dialRaw(t, addr), dialRaw(t, addr)
	one.send("PUT a 1\r\n")
	one.okIndices(1)
	two.send("PUT b 2\r\n") // evicts one's session
	two.okIndices(1)
	one.send("PUT c 3\r\nPUT d 4\r\n")
	one.okIndices(2)
	if v, _ := sm.value("d"); v != "4" {
		t.Fatalf("d = %q", v)
	}
	if n := statInt(t, one.stats(), "session_rebases"); n != 1 {
		t.Fatalf("session_rebases = %d, want 1", n)
	}
}

// TestLostSessionRetryCloses: the replicas evicted a session while one of
// its writes was in doubt at a master that died; the retry cannot tell
// whether the first attempt applied, so the connection is closed after
// the replies before it, and nothing is applied twice.
func TestLostSessionRetryCloses(t *testing.T) {
	sm := newStateMaster(filestore.Options{MaxSessions: 1})
	a := startFake(t, 1, "master")
	b := startFake(t, 2, "follower")
	a.set("master", func(req wire.Request) (wire.Reply, bool) {
		if req.Key == "c" {
			sm.apply(req) // applied, but the answer is lost with the master
			return wire.Reply{}, false
		}
		return sm.answer(req)
	})
	s, addr := startServer(t, fakeNodes(a, b), func(c *Config) { c.Poll = 10 * time.Millisecond })
	eventually(t, "replica 1 as master", func() bool { return s.rt.nodes()[0].Role == "master" })
	one, two := dialRaw(t, addr), dialRaw(t, addr)
	one.send("PUT a 1\r\n")
	one.okIndices(1)
	one.send("APPEND c x\r\n")
	eventually(t, "c applied", func() bool { _, ok := sm.value("c"); return ok })
	two.send("PUT b 2\r\n") // evicts one's session
	two.okIndices(1)
	b.set("master", sm.answer)
	a.kill()
	one.expectClosed()
	if v, _ := sm.value("c"); v != "x" {
		t.Fatalf("c = %q: applied twice", v)
	}
}

// TestPipelinesUnderRefusals: ten connections pipeline appends while the
// master refuses a fifth of the attempts (BUSY, nothing applied) and
// answers a tenth not-master after applying them (a master that stepped
// down with the write chosen: the proxy cannot know). Every write is
// answered OK once, and every file holds its connection's appends once
// each, in request order.
func TestPipelinesUnderRefusals(t *testing.T) {
	sm := newStateMaster(filestore.Options{})
	var rmu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	sm.refuse = func(req wire.Request, _ int) (wire.Reply, bool) {
		rmu.Lock()
		p := rng.IntN(10)
		rmu.Unlock()
		switch {
		case p < 2:
			return wire.Reply{Code: wire.CodeBusy, Msg: "too many writes queued", NotApplied: true}, true
		case p < 3:
			sm.applyLocked(req)
			return wire.Reply{Code: wire.CodeNotMaster, Msg: "mastership changed before the write was chosen"}, true
		}
		return wire.Reply{}, false
	}
	m := startFake(t, 1, "master")
	m.set("master", sm.answer)
	s, addr := startServer(t, fakeNodes(m), func(c *Config) { c.Poll = 10 * time.Millisecond })
	eventually(t, "a master", func() bool { return s.rt.nodes()[0].Role == "master" })
	const conns, writes = 10, 30
	var wg sync.WaitGroup
	for i := range conns {
		c := dialRaw(t, addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var batch strings.Builder
			for j := range writes {
				fmt.Fprintf(&batch, "APPEND k%d %d,\r\n", i, j)
			}
			c.send(batch.String())
			c.okIndices(writes)
		}()
	}
	wg.Wait()
	for i := range conns {
		var want strings.Builder
		for j := range writes {
			fmt.Fprintf(&want, "%d,", j)
		}
		if v, _ := sm.value(fmt.Sprintf("k%d", i)); v != want.String() {
			t.Errorf("k%d = %q, want %q", i, v, want.String())
		}
	}
}
