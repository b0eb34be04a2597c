package proxy

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"synod/wire"
)

// fakeReplica speaks the replica's side of the wire protocol over real TCP,
// for scenarios real replicas cannot be steered into on cue: a master that
// never answers, one that dies with a write in flight, a wrong hint. Its
// answer function decides each request's reply; ok false leaves the request
// unanswered.
type fakeReplica struct {
	t  testing.TB
	id uint64
	ln net.Listener

	mu     sync.Mutex
	role   string
	answer func(wire.Request) (rep wire.Reply, ok bool)
	reqs   []wire.Request
	conns  map[*wire.Conn]struct{}
	open   int // connections being served now
	dead   bool
	wg     sync.WaitGroup
	seen   chan wire.Request // every request, as it arrives
	parked []parked          // requests left unanswered, in arrival order
	peers  []*fakeReplica    // the fakes of the same test (set by fakeNodes)
	status func(*wire.Status)
	record bool // keep requests for requests(); off for load tests
}

// parked is a request the fake has not answered.
type parked struct {
	c   *wire.Conn
	id  uint64
	req wire.Request
}

func startFake(t testing.TB, id uint64, role string) *fakeReplica {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeReplica{t: t, id: id, ln: ln, role: role, conns: map[*wire.Conn]struct{}{}, seen: make(chan wire.Request, 1000), record: true}
	f.answer = func(wire.Request) (wire.Reply, bool) { return wire.Reply{}, false }
	f.wg.Add(1)
	go f.serve()
	t.Cleanup(f.kill)
	return f
}

func (f *fakeReplica) addr() string { return f.ln.Addr().String() }

func (f *fakeReplica) currentRole() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.role
}

// statusNow is what the fake answers to STATUS: a follower names the
// fake of its test that says it is master, as a real follower names its
// master.
func (f *fakeReplica) statusNow() wire.Status {
	f.mu.Lock()
	role, peers, hook := f.role, f.peers, f.status
	f.mu.Unlock()
	st := wire.Status{ID: f.id, Role: wire.NodeRole(role), Round: 1, BallotNode: f.id}
	if role == "master" {
		st.MasterID = f.id
	} else {
		for _, p := range peers {
			if p != f && p.currentRole() == "master" {
				st.MasterID = p.id
				break
			}
		}
	}
	if hook != nil {
		hook(&st)
	}
	return st
}

func (f *fakeReplica) set(role string, answer func(wire.Request) (wire.Reply, bool)) {
	f.mu.Lock()
	f.role = role
	if answer != nil {
		f.answer = answer
	}
	f.mu.Unlock()
}

// kill closes the listener and every connection, as a SIGKILL would.
func (f *fakeReplica) kill() {
	f.mu.Lock()
	f.dead = true
	f.ln.Close()
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

func (f *fakeReplica) parkedCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.parked)
}

func (f *fakeReplica) parkedRequests() []wire.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []wire.Request
	for _, p := range f.parked {
		out = append(out, p.req)
	}
	return out
}

// release answers every parked request, in order.
func (f *fakeReplica) release(answer func(wire.Request) wire.Reply) {
	f.mu.Lock()
	ps := f.parked
	f.parked = nil
	f.mu.Unlock()
	for _, p := range ps {
		rep := answer(p.req)
		p.c.Send(wire.KindReply, p.id, &rep)
		p.c.Flush()
	}
}

func (f *fakeReplica) requests() []wire.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]wire.Request(nil), f.reqs...)
}

func (f *fakeReplica) serve() {
	defer f.wg.Done()
	for {
		nc, err := f.ln.Accept()
		if err != nil {
			return
		}
		c, _, err := wire.Accept(nc, wire.Hello{ClusterID: "test", NodeID: f.id, Role: wire.RoleReplica}, nil, wire.Options{})
		if err != nil {
			continue
		}
		f.mu.Lock()
		if f.dead {
			f.mu.Unlock()
			c.Close()
			return
		}
		f.conns[c] = struct{}{}
		f.mu.Unlock()
		f.wg.Add(1)
		go f.handle(c)
	}
}

// openConns returns how many connections the fake serves now.
func (f *fakeReplica) openConns() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.open
}

func (f *fakeReplica) handle(c *wire.Conn) {
	defer f.wg.Done()
	defer c.Close()
	f.mu.Lock()
	f.open++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.open--
		delete(f.conns, c)
		f.mu.Unlock()
	}()
	// Replies are flushed by a goroutine of their own, once per batch, as a
	// real replica does.
	kick, stop := make(chan struct{}, 1), make(chan struct{})
	defer close(stop)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			select {
			case <-kick:
				if c.Flush() != nil {
					c.Close()
				}
			case <-stop:
				return
			}
		}
	}()
	for {
		env, err := c.Recv()
		if err != nil {
			return
		}
		f.mu.Lock()
		answer := f.answer
		f.mu.Unlock()
		switch env.Kind {
		case wire.KindStatus:
			st := f.statusNow()
			c.Send(wire.KindStatusReply, env.ID, &st)
		case wire.KindRequest:
			var req wire.Request
			if err := env.Decode(&req); err != nil {
				f.t.Errorf("fake replica %d: %v", f.id, err)
				return
			}
			f.mu.Lock()
			if f.record && len(f.reqs) < 10000 {
				f.reqs = append(f.reqs, req)
			}
			f.mu.Unlock()
			select {
			case f.seen <- req:
			default: // nobody is watching (benchmarks)
			}
			if rep, ok := answer(req); ok {
				c.Send(wire.KindReply, env.ID, &rep)
			} else {
				f.mu.Lock()
				f.parked = append(f.parked, parked{c: c, id: env.ID, req: req})
				f.mu.Unlock()
			}
		}
		select {
		case kick <- struct{}{}:
		default:
		}
	}
}

// okWrites answers every write OK at the next index.
func okWrites() func(wire.Request) (wire.Reply, bool) {
	var mu sync.Mutex
	var index uint64
	return func(req wire.Request) (wire.Reply, bool) {
		mu.Lock()
		defer mu.Unlock()
		if !req.Op.IsWrite() {
			return wire.Reply{Code: wire.CodeOK, Value: []byte("v"), Version: 1}, true
		}
		index++
		return wire.Reply{Code: wire.CodeOK, Index: index, Version: index}, true
	}
}

func fakeNodes(fs ...*fakeReplica) map[uint64]string {
	m := map[uint64]string{}
	for _, f := range fs {
		m[f.id] = f.addr()
		f.mu.Lock()
		f.peers = fs
		f.mu.Unlock()
	}
	return m
}

func nextRequest(t *testing.T, f *fakeReplica) wire.Request {
	t.Helper()
	select {
	case req := <-f.seen:
		return req
	case <-time.After(20 * time.Second):
		t.Fatalf("replica %d got no request", f.id)
		return wire.Request{}
	}
}

// TestRetryKeepsIdentity: a write in flight when its master dies goes to the
// next master with its original (client id, sequence).
func TestRetryKeepsIdentity(t *testing.T) {
	a := startFake(t, 1, "master")
	b := startFake(t, 2, "follower")
	s, addr := startServer(t, fakeNodes(a, b), func(c *Config) { c.Poll = 10 * time.Millisecond })
	c := dialRaw(t, addr)
	eventually(t, "replica 1 as master", func() bool { return s.rt.nodes()[0].Role == "master" })
	c.send("PUT k v\r\n")
	first := nextRequest(t, a)
	if first.ClientID == 0 || first.Seq == 0 {
		t.Fatalf("write without identity: %+v", first)
	}
	b.set("master", okWrites())
	a.kill()
	c.expect("OK 1")
	retried := nextRequest(t, b)
	if retried.ClientID != first.ClientID || retried.Seq != first.Seq || retried.Key != "k" {
		t.Fatalf("retry %+v, want client %d seq %d", retried, first.ClientID, first.Seq)
	}
	c.send("PUT k w\r\n")
	c.expect("OK 2")
	next := nextRequest(t, b)
	if next.ClientID == first.ClientID && next.Seq <= first.Seq {
		t.Fatalf("next write reused client %d at seq %d <= %d", next.ClientID, next.Seq, first.Seq)
	}
}

// TestInDoubtWriteClosesConnection: a write whose master died after it was
// sent, with no master to retry at before its window ends, is neither OK
// nor UNAVAILABLE: its connection is closed. A write never sent is
// UNAVAILABLE.
func TestInDoubtWriteClosesConnection(t *testing.T) {
	a := startFake(t, 1, "master")
	b := startFake(t, 2, "follower")
	s, addr := startServer(t, fakeNodes(a, b), func(c *Config) {
		c.Poll = 10 * time.Millisecond
		c.Hold = 500 * time.Millisecond
	})
	eventually(t, "replica 1 as master", func() bool { return s.rt.nodes()[0].Role == "master" })
	doubt := dialRaw(t, addr)
	doubt.send("PING\r\nPUT k v\r\n")
	doubt.expect("PONG")
	nextRequest(t, a)
	a.kill()
	never := dialRaw(t, addr)
	eventually(t, "replica 1 down", func() bool { return s.rt.nodes()[0].Role == "down" })
	never.send("PUT k w\r\n")
	never.expect("ERR UNAVAILABLE no master within")
	doubt.expectClosed()
	st := never.stats()
	if statInt(t, st, "aborted_connections") != 1 {
		t.Fatalf("stats: aborted %s", st["aborted_connections"])
	}
}

// TestPipelineIsOneSession: the writes of one connection are one session
// of the replicas' state machine: one client id, seqs 1, 2, 3 ... in
// request order, all in flight together, each acknowledging the replies
// the proxy holds; another connection has a client id of its own.
func TestPipelineIsOneSession(t *testing.T) {
	a := startFake(t, 1, "master")
	s, addr := startServer(t, fakeNodes(a), func(c *Config) { c.Poll = 10 * time.Millisecond })
	eventually(t, "a master", func() bool { return s.rt.nodes()[0].Role == "master" })
	c := dialRaw(t, addr)
	const n = 10
	index := uint64(0)
	var client uint64
	for round := range 3 {
		var batch strings.Builder
		for i := range n {
			fmt.Fprintf(&batch, "PUT k/%d/%d v\r\n", round, i)
		}
		c.send(batch.String())
		eventually(t, "the whole pipeline in flight", func() bool { return a.parkedCount() == n })
		for i, req := range a.parkedRequests() {
			if want := fmt.Sprintf("k/%d/%d", round, i); req.Key != want {
				t.Fatalf("request %d reached the master as %q, want %q: out of order", i, req.Key, want)
			}
			if client == 0 {
				client = req.ClientID
			}
			seq := uint64(round*n + i + 1)
			if req.ClientID != client || req.Seq != seq || req.Ack != uint64(round*n+1) || req.Retry {
				t.Fatalf("round %d write %d: client %d seq %d ack %d retry %v; want client %d seq %d ack %d",
					round, i, req.ClientID, req.Seq, req.Ack, req.Retry, client, seq, round*n+1)
			}
		}
		a.release(func(req wire.Request) wire.Reply {
			index++
			return wire.Reply{Code: wire.CodeOK, Index: index}
		})
		for i := range n {
			c.expect(fmt.Sprintf("OK %d", index-n+uint64(i)+1))
		}
	}
	other := dialRaw(t, addr)
	a.set("master", okWrites())
	other.send("PUT x y\r\n")
	other.expect("OK ")
	req := nextRequest(t, a)
	for req.Key != "x" {
		req = nextRequest(t, a)
	}
	if req.ClientID == client || req.Seq != 1 {
		t.Fatalf("another connection wrote as client %d seq %d; the first was %d", req.ClientID, req.Seq, client)
	}
}

// TestNotMasterHintFollowed: a not-master answer naming another replica
// sends the write there at once, before any poll says so.
func TestNotMasterHintFollowed(t *testing.T) {
	a := startFake(t, 1, "master")
	b := startFake(t, 2, "follower")
	a.set("master", func(wire.Request) (wire.Reply, bool) {
		return wire.Reply{Code: wire.CodeNotMaster, MasterID: 2, MasterAddr: b.addr()}, true
	})
	b.set("follower", okWrites())
	s, addr := startServer(t, fakeNodes(a, b), func(c *Config) { c.Poll = time.Hour })
	// One poll each at start; with an hour between polls, only the hint
	// can tell the proxy where to go.
	eventually(t, "both polled", func() bool {
		n := s.rt.nodes()
		return n[0].Role == "master" && n[1].Role == "follower"
	})
	c := dialRaw(t, addr)
	c.send("PUT k v\r\n")
	c.expect("OK 1")
	if got := b.requests(); len(got) != 1 {
		t.Fatalf("replica 2 got %d writes, want the one", len(got))
	}
}

// TestReadEjection: a follower that fails a read is ejected and the read
// served elsewhere; its next good poll lets it back.
func TestReadEjection(t *testing.T) {
	m := startFake(t, 1, "master")
	bad := startFake(t, 2, "follower")
	good := startFake(t, 3, "follower")
	m.set("master", okWrites())
	bad.set("follower", func(wire.Request) (wire.Reply, bool) {
		return wire.Reply{Code: wire.CodeTimeout, Msg: "behind"}, true
	})
	good.set("follower", okWrites())
	s, addr := startServer(t, fakeNodes(m, bad, good), func(c *Config) { c.Poll = 20 * time.Millisecond })
	// Both followers known first: a read retried while the good one's
	// first poll is still out goes to the master (seen once in CI).
	eventually(t, "a master and two followers", func() bool {
		n := s.rt.nodes()
		return n[0].Role == "master" && n[1].Role == "follower" && n[2].Role == "follower"
	})
	c := dialRaw(t, addr)
	for range 50 {
		c.send("GET k\r\n")
		c.expectValue("v", 1)
	}
	st := c.stats()
	if statInt(t, st, "node.2.ejections") == 0 || statInt(t, st, "node.2.reads") != 0 ||
		statInt(t, st, "node.3.reads") != 50 || statInt(t, st, "node.1.reads") != 0 {
		t.Fatalf("stats: %v", st)
	}
}
