package proxy

// Membership through the proxy against scripted fake replicas: MEMBER
// requests and how they travel, and the replica set following the
// configuration the fakes' STATUS carries. The test goroutine drives; the
// fakes and the proxy run their own.

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"synod/wire"
)

// fakeConfig is the configuration a set of fake replicas report in their
// STATUS and a fake master changes the way the node does: one change at a
// time, a change already in force answered OK.
type fakeConfig struct {
	mu      sync.Mutex
	slot    uint64
	members []wire.Member
	stale   map[uint64]bool // replicas that keep reporting the first configuration
	first   []wire.Member
	busy    int // changes still to refuse with BUSY
}

func newFakeConfig(fs ...*fakeReplica) *fakeConfig {
	fc := &fakeConfig{slot: 1, stale: map[uint64]bool{}}
	for _, f := range fs {
		fc.members = append(fc.members, wire.Member{ID: f.id, Addr: f.addr(), Voter: true})
	}
	fc.first = slices.Clone(fc.members)
	for _, f := range fs {
		fc.attach(f)
	}
	return fc
}

// attach makes f report the configuration in its STATUS.
func (fc *fakeConfig) attach(f *fakeReplica) {
	f.mu.Lock()
	f.status = func(st *wire.Status) {
		fc.mu.Lock()
		defer fc.mu.Unlock()
		if fc.stale[st.ID] {
			st.Members, st.ConfigSlot = slices.Clone(fc.first), 1
			return
		}
		st.Members, st.ConfigSlot = slices.Clone(fc.members), fc.slot
	}
	f.mu.Unlock()
}

// set replaces the configuration, at the next slot.
func (fc *fakeConfig) set(members ...wire.Member) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.members = members
	fc.slot++
}

// answer is a fake master's answer function: membership ops from the
// configuration, everything else OK.
func (fc *fakeConfig) answer(req wire.Request) (wire.Reply, bool) {
	if !req.Op.IsMemberChange() && req.Op != wire.OpMembers {
		return wire.Reply{Code: wire.CodeOK, Index: 1, Value: []byte("v"), Version: 1}, true
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if req.Op.IsMemberChange() && fc.busy > 0 {
		fc.busy--
		return wire.Reply{Code: wire.CodeBusy, Msg: "one change at a time"}, true
	}
	i := slices.IndexFunc(fc.members, func(m wire.Member) bool { return m.ID == req.MemberID })
	changed := true
	switch {
	case req.Op == wire.OpMembers:
		changed = false
	case req.Op == wire.OpMemberAdd && i < 0:
		fc.members = append(fc.members, wire.Member{ID: req.MemberID, Addr: req.MemberAddr})
	case req.Op == wire.OpMemberAdd && fc.members[i].Addr != req.MemberAddr:
		return wire.Reply{Code: wire.CodeBadRequest, Msg: "id taken"}, true
	case req.Op == wire.OpMemberRemove && i >= 0:
		fc.members = slices.Delete(slices.Clone(fc.members), i, i+1)
	case req.Op == wire.OpMemberPromote && i >= 0 && !fc.members[i].Voter:
		fc.members = slices.Clone(fc.members)
		fc.members[i].Voter = true
	case req.Op == wire.OpMemberPromote && i < 0:
		return wire.Reply{Code: wire.CodeBadRequest, Msg: "not a member"}, true
	default:
		changed = false // already in force
	}
	if changed {
		fc.slot++
	}
	return wire.Reply{Code: wire.CodeOK, Members: slices.Clone(fc.members), ConfigSlot: fc.slot}, true
}

// nodeIDs returns the ids STATUS shows, in order, and the learners.
func nodeIDs(s *Server) (ids []uint64, learners []uint64) {
	for _, n := range s.Nodes() {
		ids = append(ids, n.ID)
		if n.Extra["member"] == "learner" {
			learners = append(learners, n.ID)
		}
	}
	return ids, learners
}

// TestMemberCommands: every MEMBER request reaches the master, outside any
// write session, and its answer is written in the line protocol's form.
func TestMemberCommands(t *testing.T) {
	m := startFake(t, 1, "master")
	f := startFake(t, 2, "follower")
	fc := newFakeConfig(m, f)
	m.set("master", fc.answer)
	f.set("follower", fc.answer)
	s, addr := startServer(t, fakeNodes(m, f), func(c *Config) { c.Poll = 10 * time.Millisecond })
	eventually(t, "a master", func() bool { return s.Nodes()[0].Role == "master" })
	c := dialRaw(t, addr)
	tests := []struct {
		send string
		want []string
		op   wire.Op
		id   uint64
		addr string
	}{
		{"MEMBER LIST", []string{"MEMBERS 2 1", "id=1 addr=" + m.addr() + " role=voter", "id=2 addr=" + f.addr() + " role=voter"}, wire.OpMembers, 0, ""},
		{"member add 4 127.0.0.1:7104", []string{"OK 2"}, wire.OpMemberAdd, 4, "127.0.0.1:7104"},
		{"MEMBER ADD 4 127.0.0.1:7104", []string{"OK 2"}, wire.OpMemberAdd, 4, "127.0.0.1:7104"},
		{"MEMBER ADD 4 127.0.0.1:9999", []string{"ERR BAD_REQUEST id taken"}, wire.OpMemberAdd, 4, "127.0.0.1:9999"},
		{"MEMBER PROMOTE 4", []string{"OK 3"}, wire.OpMemberPromote, 4, ""},
		{"MEMBER REMOVE 2", []string{"OK 4"}, wire.OpMemberRemove, 2, ""},
		{"MEMBER LIST", []string{"MEMBERS 2 4", "id=1 addr=" + m.addr() + " role=voter", "id=4 addr=127.0.0.1:7104 role=voter"}, wire.OpMembers, 0, ""},
	}
	for _, tt := range tests {
		c.send(tt.send + "\r\n")
		for _, w := range tt.want {
			if got := c.line(); got != w {
				t.Fatalf("%s: reply %q, want %q", tt.send, got, w)
			}
		}
		req := nextRequest(t, m)
		if req.Op != tt.op || req.MemberID != tt.id || req.MemberAddr != tt.addr || req.ClientID != 0 || req.Seq != 0 || req.Key != "" {
			t.Fatalf("%s reached the master as %+v", tt.send, req)
		}
	}
	if n := len(f.requests()); n != 0 {
		t.Fatalf("the follower got %d requests; membership goes to the master", n)
	}
	st := c.stats()
	if statInt(t, st, "member_changes") != 5 {
		t.Fatalf("member_changes %s, want 5", st["member_changes"])
	}
}

// TestMemberChangeRouting: how a change travels when the master refuses
// it, moves or dies. Each case scripts the replicas and names the reply
// the client must get and how many attempts reach each replica.
func TestMemberChangeRouting(t *testing.T) {
	notMaster := func(hint uint64) func(wire.Request) (wire.Reply, bool) {
		return func(wire.Request) (wire.Reply, bool) {
			return wire.Reply{Code: wire.CodeNotMaster, MasterID: hint}, true
		}
	}
	fixed := func(rep wire.Reply) func(wire.Request) (wire.Reply, bool) {
		return func(wire.Request) (wire.Reply, bool) { return rep, true }
	}
	ok := fixed(wire.Reply{Code: wire.CodeOK, ConfigSlot: 7})
	tests := []struct {
		name     string
		a, b     func(wire.Request) (wire.Reply, bool) // replica 1 (master), replica 2 (follower)
		busy     int                                   // BUSY answers replica 1 gives first
		hold     time.Duration
		want     string
		attempts [2]int // at least this many at replicas 1 and 2 (exactly, for 0 and 1)
	}{
		{name: "answered", a: ok, want: "OK 7", attempts: [2]int{1, 0}},
		{name: "not master: the hint is followed", a: notMaster(2), b: ok, want: "OK 7", attempts: [2]int{1, 1}},
		{name: "busy: sent again until the other change is done", busy: 3, want: "OK 1", attempts: [2]int{4, 0}},
		{name: "busy for the whole window", a: fixed(wire.Reply{Code: wire.CodeBusy, Msg: "one change at a time"}), hold: 300 * time.Millisecond,
			want: "ERR BUSY one change at a time (for 300ms)", attempts: [2]int{2, 0}},
		{name: "majority not live: the master's words, at once", a: fixed(wire.Reply{Code: wire.CodeUnavailable, Msg: "the new majority is not live: 3, 5 unreachable"}),
			want: "ERR UNAVAILABLE the new majority is not live: 3, 5 unreachable", attempts: [2]int{1, 0}},
		{name: "nonsense", a: fixed(wire.Reply{Code: wire.CodeBadRequest, Msg: "2 is a voter already"}), want: "ERR BAD_REQUEST 2 is a voter already", attempts: [2]int{1, 0}},
		{name: "a replica without membership", a: fixed(wire.Reply{Code: wire.CodeBadRequest, Msg: "unknown operation"}), want: "ERR BAD_REQUEST unknown operation", attempts: [2]int{1, 0}},
		{name: "conflict", a: fixed(wire.Reply{Code: wire.CodeConflict, Msg: "no"}), want: "ERR CONFLICT no", attempts: [2]int{1, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := startFake(t, 1, "master")
			b := startFake(t, 2, "follower")
			fc := newFakeConfig(a, b)
			fc.busy = tt.busy
			a.set("master", cmpOr(tt.a, fc.answer))
			b.set("follower", cmpOr(tt.b, fc.answer))
			s, addr := startServer(t, fakeNodes(a, b), func(c *Config) {
				c.Poll = 10 * time.Millisecond
				if tt.hold > 0 {
					c.Hold = tt.hold
				}
			})
			eventually(t, "a master", func() bool { return s.Nodes()[0].Role == "master" })
			c := dialRaw(t, addr)
			c.send("MEMBER REMOVE 3\r\n")
			if got := c.line(); !strings.HasPrefix(got, tt.want) {
				t.Fatalf("reply %q, want %q", got, tt.want)
			}
			for i, f := range []*fakeReplica{a, b} {
				got, want := len(f.requests()), tt.attempts[i]
				if (want <= 1 && got != want) || got < want {
					t.Fatalf("replica %d got %d attempts, want %d", f.id, got, want)
				}
			}
		})
	}
}

// cmpOr returns f, or def when f is nil.
func cmpOr(f, def func(wire.Request) (wire.Reply, bool)) func(wire.Request) (wire.Reply, bool) {
	if f != nil {
		return f
	}
	return def
}

// TestMemberChangeHeldThroughFailover: a change in flight when its master
// dies is held, like a write, and sent to the next master; since a change
// in force answers OK, sending it twice is safe.
func TestMemberChangeHeldThroughFailover(t *testing.T) {
	a := startFake(t, 1, "master")
	b := startFake(t, 2, "follower")
	fc := newFakeConfig(a, b)
	s, addr := startServer(t, fakeNodes(a, b), func(c *Config) { c.Poll = 10 * time.Millisecond })
	eventually(t, "replica 1 as master", func() bool { return s.Nodes()[0].Role == "master" })
	c := dialRaw(t, addr)
	c.send("MEMBER ADD 3 127.0.0.1:7103\r\n")
	first := nextRequest(t, a) // parked: never answered
	b.set("master", fc.answer)
	a.kill()
	c.expect("OK 2")
	again := nextRequest(t, b)
	if again.Op != first.Op || again.MemberID != 3 || again.MemberAddr != "127.0.0.1:7103" {
		t.Fatalf("sent again as %+v, first as %+v", again, first)
	}
}

// TestMemberChangeWithoutMaster: a change waits for a master within the
// hold window; one that never reached a master is UNAVAILABLE, one that
// did and got no answer may be in force, and the reply says so.
func TestMemberChangeWithoutMaster(t *testing.T) {
	a := startFake(t, 1, "master")
	b := startFake(t, 2, "follower")
	newFakeConfig(a, b)
	s, addr := startServer(t, fakeNodes(a, b), func(c *Config) {
		c.Poll = 10 * time.Millisecond
		c.Hold = 400 * time.Millisecond
	})
	eventually(t, "replica 1 as master", func() bool { return s.Nodes()[0].Role == "master" })
	doubt := dialRaw(t, addr)
	doubt.send("MEMBER PROMOTE 2\r\n")
	nextRequest(t, a)
	a.kill()
	doubt.expect("ERR TIMEOUT no answer from the master within 400ms: the change may be in force")
	eventually(t, "replica 1 down", func() bool { return s.Nodes()[0].Role == "down" })
	never := dialRaw(t, addr)
	never.send("MEMBER PROMOTE 2\r\n")
	never.expect("ERR UNAVAILABLE no master within 400ms")
	// A MEMBER LIST needs no master: the follower answers it.
	b.set("follower", func(req wire.Request) (wire.Reply, bool) {
		return wire.Reply{Code: wire.CodeOK, Members: []wire.Member{{ID: 2, Addr: "h:2", Voter: true}}, ConfigSlot: 9}, true
	})
	never.send("MEMBER LIST\r\n")
	never.expect("MEMBERS 1 9")
	never.expect("id=2 addr=h:2 role=voter")
}

// TestMemberRequestsInAPipeline: a MEMBER request starts once everything
// before it is answered, and what follows waits for it, as if one by one.
func TestMemberRequestsInAPipeline(t *testing.T) {
	a := startFake(t, 1, "master")
	fc := newFakeConfig(a)
	s, addr := startServer(t, fakeNodes(a), func(c *Config) { c.Poll = 10 * time.Millisecond })
	eventually(t, "a master", func() bool { return s.Nodes()[0].Role == "master" })
	c := dialRaw(t, addr)
	c.send("PUT k v\r\nMEMBER ADD 2 h:2\r\nGET k\r\n")
	if req := nextRequest(t, a); req.Op != wire.OpPut {
		t.Fatalf("first request %+v", req)
	}
	eventually(t, "the PUT parked", func() bool { return a.parkedCount() == 1 })
	a.set("master", fc.answer)
	if n := len(a.requests()); n != 1 {
		t.Fatalf("%d requests sent while the write before them was unanswered", n)
	}
	a.release(func(wire.Request) wire.Reply { return wire.Reply{Code: wire.CodeOK, Index: 1} })
	if req := nextRequest(t, a); req.Op != wire.OpMemberAdd {
		t.Fatalf("second request %+v", req)
	}
	if req := nextRequest(t, a); req.Op != wire.OpGet {
		t.Fatalf("third request %+v", req)
	}
	c.expect("OK 1")
	c.expect("OK 2")
	c.expectValue("v", 1)
}

// TestProxyFindsEveryMember: a proxy given one address, without an id,
// learns that replica's id and every other member from its STATUS.
func TestProxyFindsEveryMember(t *testing.T) {
	a := startFake(t, 1, "follower")
	b := startFake(t, 2, "master")
	c3 := startFake(t, 3, "follower")
	fakeNodes(a, b, c3)
	fc := newFakeConfig(a, b, c3)
	for _, f := range []*fakeReplica{a, b, c3} {
		f.set(f.currentRole(), fc.answer)
	}
	s, addr := startServer(t, nil, func(c *Config) {
		c.Nodes = nil
		c.Seeds = []string{a.addr()}
		c.Poll = 10 * time.Millisecond
	})
	eventually(t, "three members, 2 the master", func() bool {
		n := s.Nodes()
		return len(n) == 3 && n[0].ID == 1 && n[1].ID == 2 && n[2].ID == 3 && n[1].Role == "master" &&
			n[0].Role == "follower" && n[2].Role == "follower" && n[2].Addr == c3.addr()
	})
	cl := dialRaw(t, addr)
	cl.send("PUT k v\r\n")
	cl.expect("OK 1")
	st := cl.stats()
	if st["members"] != "3" || st["config_slot"] != "1" || st["seeds_unreached"] != "0" {
		t.Fatalf("stats: members %s, config_slot %s, seeds_unreached %s", st["members"], st["config_slot"], st["seeds_unreached"])
	}
}

// TestUnreachedSeed: a seed that does not answer shows in STATUS as an
// address without an id, down, until it does.
func TestUnreachedSeed(t *testing.T) {
	dead := deadAddr(t)
	s, addr := startServer(t, nil, func(c *Config) {
		c.Nodes = nil
		c.Seeds = []string{dead}
	})
	c := dialRaw(t, addr)
	c.send("STATUS\r\n")
	c.expect("NODES 1")
	c.expect("id=0 addr=" + dead + " role=down ballot= commit=0 applied=0 seed=unreached")
	if n := s.Nodes(); len(n) != 1 {
		t.Fatalf("nodes %+v", n)
	}
}

// TestProxyFollowsTheConfiguration: a member added while the proxy runs is
// polled and, once a voter, read from; a member removed is dropped, its
// connections closed, and no read goes there again; a replica reporting
// an older configuration does not undo a newer one.
func TestProxyFollowsTheConfiguration(t *testing.T) {
	f1 := startFake(t, 1, "master")
	f2 := startFake(t, 2, "follower")
	f3 := startFake(t, 3, "follower")
	f4 := startFake(t, 4, "follower")
	fakeNodes(f1, f2, f3, f4)
	fc := newFakeConfig(f1, f2, f3)
	fc.attach(f4)
	for _, f := range []*fakeReplica{f1, f2, f3, f4} {
		f.set(f.currentRole(), fc.answer)
	}
	s, addr := startServer(t, fakeNodes(f1, f2, f3), func(c *Config) { c.Poll = 10 * time.Millisecond })
	c := dialRaw(t, addr)
	reads := func(n int) {
		t.Helper()
		for range n {
			c.send("CONSISTENCY stale\r\nGET k\r\n")
			c.expect("OK")
			c.expectValue("v", 1)
		}
	}
	eventually(t, "three members", func() bool { ids, _ := nodeIDs(s); return fmt.Sprint(ids) == "[1 2 3]" })

	one := func(id uint64, voter bool) wire.Member {
		addr := map[uint64]string{1: f1.addr(), 2: f2.addr(), 3: f3.addr(), 4: f4.addr()}[id]
		return wire.Member{ID: id, Addr: addr, Voter: voter}
	}
	fc.set(one(1, true), one(2, true), one(3, true), one(4, false))
	eventually(t, "4 as a learner", func() bool {
		ids, learners := nodeIDs(s)
		return fmt.Sprint(ids) == "[1 2 3 4]" && fmt.Sprint(learners) == "[4]" && s.Nodes()[3].Role == "follower"
	})
	reads(40)
	if n := len(f4.requests()); n != 0 {
		t.Fatalf("the learner served %d reads", n)
	}

	fc.set(one(1, true), one(2, true), one(3, true), one(4, true))
	eventually(t, "4 a voter, serving reads", func() bool {
		_, learners := nodeIDs(s)
		if len(learners) > 0 {
			return false
		}
		reads(10)
		return len(f4.requests()) > 0
	})

	// Replica 2 lags: it reports the first configuration from now on.
	fc.mu.Lock()
	fc.stale[2] = true
	fc.mu.Unlock()
	fc.set(one(1, true), one(2, true), one(4, true))
	eventually(t, "3 removed", func() bool { ids, _ := nodeIDs(s); return fmt.Sprint(ids) == "[1 2 4]" })
	eventually(t, "3's connections closed", func() bool { return f3.openConns() == 0 })
	before := len(f3.requests())
	reads(60)
	if after := len(f3.requests()); after != before {
		t.Fatalf("the removed replica got %d more requests", after-before)
	}
	time.Sleep(50 * time.Millisecond) // several polls of the lagging replica
	if ids, _ := nodeIDs(s); fmt.Sprint(ids) != "[1 2 4]" {
		t.Fatalf("an older configuration undid the newer one: %v", ids)
	}
	st := c.stats()
	if st["members_added"] != "1" || st["members_removed"] != "1" || st["config_slot"] != "4" {
		t.Fatalf("stats: added %s, removed %s, config_slot %s", st["members_added"], st["members_removed"], st["config_slot"])
	}
	if _, ok := st["node.3.up"]; ok {
		t.Fatalf("STATS still shows the removed replica")
	}
}

// TestRemovedReplicaGivesBackItsReads: a read waiting at a replica when it
// is removed comes back at once and is served elsewhere.
func TestRemovedReplicaGivesBackItsReads(t *testing.T) {
	f1 := startFake(t, 1, "master")
	f2 := startFake(t, 2, "follower")
	fakeNodes(f1, f2)
	fc := newFakeConfig(f1, f2)
	f1.set("master", fc.answer)
	f2.set("follower", func(wire.Request) (wire.Reply, bool) { return wire.Reply{}, false }) // never answers
	s, addr := startServer(t, fakeNodes(f1, f2), func(c *Config) {
		c.Poll = 10 * time.Millisecond
		c.ReadTimeout = time.Hour // only the removal can bring the read back
	})
	eventually(t, "a master and a follower", func() bool {
		n := s.Nodes()
		return len(n) == 2 && n[0].Role == "master" && n[1].Role == "follower"
	})
	c := dialRaw(t, addr)
	c.send("CONSISTENCY stale\r\nGET k\r\n")
	c.expect("OK")
	eventually(t, "the read parked at 2", func() bool { return f2.parkedCount() == 1 })
	fc.set(wire.Member{ID: 1, Addr: f1.addr(), Voter: true})
	c.expectValue("v", 1)
	if ids, _ := nodeIDs(s); fmt.Sprint(ids) != "[1]" {
		t.Fatalf("members %v", ids)
	}
}

// TestSeedUnderAnotherName: a seed given under another name than the
// configuration's keeps the address that reached it; the other members
// come at the configuration's addresses.
func TestSeedUnderAnotherName(t *testing.T) {
	a := startFake(t, 1, "master")
	b := startFake(t, 2, "follower")
	fakeNodes(a, b)
	fc := newFakeConfig(a, b)
	fc.mu.Lock()
	fc.members[0].Addr = "replica-1.invalid:7101" // how the others dial it
	fc.mu.Unlock()
	a.set("master", fc.answer)
	b.set("follower", fc.answer)
	alias := strings.Replace(a.addr(), "127.0.0.1", "localhost", 1)
	s, _ := startServer(t, nil, func(c *Config) {
		c.Nodes = nil
		c.Seeds = []string{alias}
		c.Poll = 10 * time.Millisecond
	})
	eventually(t, "both members up", func() bool {
		n := s.Nodes()
		return len(n) == 2 && n[0].Addr == alias && n[0].Role == "master" && n[1].Addr == b.addr() && n[1].Role == "follower"
	})
}
