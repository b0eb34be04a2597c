package proxy

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"synod/wire"
)

// repState is one replica's state in a routing scenario.
type repState struct {
	alive, ejected bool
	applied        uint64
	inflight       int
	ewmaMs         float64
	idle           bool // no read routed here for a while: owed a probe
}

func up(applied uint64) repState { return repState{alive: true, applied: applied} }

// testRouter builds a router over replicas 1..n in the given states, with
// master as master (0: none), without starting any goroutine.
func testRouter(t *testing.T, master uint64, states ...repState) *router {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Nodes = map[uint64]string{}
	for i := range states {
		cfg.Nodes[uint64(i+1)] = "127.0.0.1:1"
	}
	cfg.MaxLag = 100
	rt := newRouter(&cfg, newCounters())
	rt.rnd = rand.New(rand.NewPCG(3, 4))
	now := time.Now()
	for i, st := range states {
		rp := rt.reps[i]
		rp.alive, rp.ejected, rp.applied, rp.inflight = st.alive, st.ejected, st.applied, st.inflight
		if st.ewmaMs > 0 {
			rp.lat = replyLatency{ms: st.ewmaMs, at: now}
		}
		if !st.idle {
			rp.picked = now
		}
		rp.status.Commit = st.applied
		rp.polled = true
		rp.status.Role = wire.NodeFollower
		rp.status.MasterID = master
	}
	if master != 0 {
		rt.master = rt.byID[master]
		rt.master.status.Role = wire.NodeMaster
		rt.master.status.Round = 5
	}
	return rt
}

func TestPick(t *testing.T) {
	lin, sess, stale := wire.Linearizable, wire.Session, wire.Stale
	tests := []struct {
		name   string
		master uint64
		states []repState
		level  wire.Consistency
		min    uint64
		want   map[uint64]bool // replicas that may be picked; empty: nil
		all    bool            // every replica in want must be picked at least once
	}{
		{name: "reads spread over the followers, never the master", master: 1, states: []repState{up(5), up(5), up(5)}, level: lin, want: set(2, 3), all: true},
		{name: "linearizable read with no master is held", states: []repState{up(5), up(5), up(5)}, level: lin, want: set()},
		{name: "session read with no master goes to a follower", states: []repState{up(5), up(5), {applied: 5}}, level: sess, want: set(1, 2), all: true},
		{name: "an ejected follower gets nothing", master: 1, states: []repState{up(5), {alive: true, ejected: true, applied: 5}, up(5)}, level: stale, want: set(3)},
		{name: "the master serves when no follower can", master: 1, states: []repState{up(5), {alive: true, ejected: true}, {applied: 5}}, level: stale, want: set(1)},
		{name: "nobody at all: held", master: 0, states: []repState{{applied: 5}, {applied: 5}}, level: stale, want: set()},
		{name: "a follower too far behind the index gets nothing", master: 1, states: []repState{up(500), up(500), up(100)}, level: sess, min: 450, want: set(2)},
		{name: "lagging within MaxLag is still eligible", master: 1, states: []repState{up(500), up(450), up(420)}, level: sess, min: 500, want: set(2, 3), all: true},
		{name: "linearizable reads need the master's commit", master: 1, states: []repState{up(1000), up(100), up(990)}, level: lin, want: set(3)},
		{name: "an index beyond everyone: held", master: 1, states: []repState{up(5), up(5), up(5)}, level: sess, min: 1000, want: set()},
		{name: "two followers: the much faster one wins", master: 1, states: []repState{up(5), {alive: true, applied: 5, ewmaMs: 5}, {alive: true, applied: 5, ewmaMs: 0.2}}, level: lin, want: set(3)},
		{name: "a slow follower idle for a while is probed", master: 1, states: []repState{up(5), {alive: true, applied: 5, ewmaMs: 5, idle: true}, {alive: true, applied: 5, ewmaMs: 0.2}}, level: lin, want: set(2, 3), all: true},
		{name: "in-flight requests make a fast follower dear", master: 1, states: []repState{up(5), {alive: true, applied: 5, ewmaMs: 1, inflight: 20}, {alive: true, applied: 5, ewmaMs: 2}}, level: lin, want: set(3)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := testRouter(t, tt.master, tt.states...)
			o := &op{req: wire.Request{Consistency: tt.level, MinIndex: tt.min}}
			picked := map[uint64]int{}
			for range 200 {
				rt.mu.Lock()
				rp := rt.pickRead(o)
				rt.mu.Unlock()
				if rp == nil {
					picked[0]++
					continue
				}
				picked[rp.id]++
			}
			for id, n := range picked {
				if id == 0 && len(tt.want) != 0 {
					t.Fatalf("held %d times, want one of %v", n, tt.want)
				}
				if id != 0 && !tt.want[id] {
					t.Fatalf("picked replica %d (%d times), want only %v: %v", id, n, tt.want, picked)
				}
			}
			if tt.all {
				for id := range tt.want {
					if picked[id] == 0 {
						t.Fatalf("replica %d never picked: %v", id, picked)
					}
				}
			}
		})
	}
}

// TestReadsFollowTheCurrentMaster: a replica that claims mastership at a
// ballot below the master's, one still electing itself, or one that
// follows another master follows nobody, so no read that needs the
// current master's commit goes there; reads it can serve from what it
// applied still may (issue 12.2).
func TestReadsFollowTheCurrentMaster(t *testing.T) {
	lin, sess, stale := wire.Linearizable, wire.Session, wire.Stale
	type claim struct {
		role     wire.NodeRole
		round    uint64
		masterID uint64
	}
	tests := []struct {
		name  string
		claim claim // replica 3's status; replica 1 is master at round 5
		level wire.Consistency
		min   uint64
		want  map[uint64]bool
	}{
		{"a stale master gets no linearizable read", claim{"master", 4, 3}, lin, 0, set(2)},
		{"a candidate gets no linearizable read", claim{"candidate", 6, 3}, lin, 0, set(2)},
		{"a follower of another master gets no linearizable read", claim{"follower", 4, 2}, lin, 0, set(2)},
		{"a follower of nobody gets no linearizable read", claim{"follower", 5, 0}, lin, 0, set(2)},
		{"a follower of the master does", claim{"follower", 5, 1}, lin, 0, set(2, 3)},
		{"a stale master gets no session read above its applied index", claim{"master", 4, 3}, sess, 8, set(2)},
		{"it gets session reads it has applied", claim{"master", 4, 3}, sess, 5, set(2, 3)},
		{"and stale reads", claim{"master", 4, 3}, stale, 0, set(2, 3)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := testRouter(t, 1, up(10), up(10), up(5))
			rp := rt.byID[3]
			rp.status.Role, rp.status.Round, rp.status.MasterID = tt.claim.role, tt.claim.round, tt.claim.masterID
			picked := map[uint64]int{}
			for range 200 {
				rt.mu.Lock()
				p := rt.pickRead(&op{req: wire.Request{Consistency: tt.level, MinIndex: tt.min}})
				rt.mu.Unlock()
				if p == nil {
					t.Fatal("held")
				}
				picked[p.id]++
			}
			for id := range picked {
				if !tt.want[id] {
					t.Fatalf("picked %v, want only %v", picked, tt.want)
				}
			}
			for id := range tt.want {
				if picked[id] == 0 {
					t.Fatalf("replica %d never picked: %v", id, picked)
				}
			}
		})
	}
}

func set(ids ...uint64) map[uint64]bool {
	m := map[uint64]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return m
}

// TestPolledMaster: the master is whoever reports itself master, the higher
// ballot winning when two claim it; a step-down clears it; a change counts
// as a failover.
func TestPolledMaster(t *testing.T) {
	rt := testRouter(t, 0, up(0), up(0), up(0))
	poll := func(id uint64, role wire.NodeRole, round uint64) {
		rt.polled(rt.byID[id], wire.Status{ID: id, Role: role, Round: round, BallotNode: id})
	}
	masterID := func() uint64 {
		if rt.master == nil {
			return 0
		}
		return rt.master.id
	}
	steps := []struct {
		id        uint64
		role      wire.NodeRole
		round     uint64
		want      uint64
		failovers uint64
	}{
		{2, "follower", 1, 0, 0},
		{1, "master", 1, 1, 0},
		{3, "master", 0, 1, 0}, // a stale claim under a lower ballot
		{2, "candidate", 2, 1, 0},
		{2, "master", 2, 2, 1},
		{1, "master", 1, 2, 1}, // the old master has not heard yet
		{2, "follower", 3, 0, 1},
		{3, "master", 3, 3, 2},
	}
	for i, s := range steps {
		poll(s.id, s.role, s.round)
		if got := masterID(); got != s.want {
			t.Fatalf("step %d (%d says %s at round %d): master %d, want %d", i, s.id, s.role, s.round, got, s.want)
		}
		if got := rt.cnt.failovers.Load(); got != s.failovers {
			t.Fatalf("step %d: %d failovers, want %d", i, got, s.failovers)
		}
	}
}

// TestNotMasterHint: a not-master answer naming a live replica switches to
// it; naming a dead one or nobody leaves no master.
func TestNotMasterHint(t *testing.T) {
	tests := []struct {
		hint       uint64
		states     []repState
		want       uint64
		wantSwitch bool
	}{
		{hint: 2, states: []repState{up(0), up(0), up(0)}, want: 2, wantSwitch: true},
		{hint: 0, states: []repState{up(0), up(0), up(0)}, want: 0},
		{hint: 1, states: []repState{up(0), up(0), up(0)}, want: 0}, // names itself
		{hint: 3, states: []repState{up(0), up(0), {}}, want: 0},    // names a dead one
		{hint: 9, states: []repState{up(0), up(0), up(0)}, want: 0}, // names a stranger
	}
	for _, tt := range tests {
		rt := testRouter(t, 1, tt.states...)
		rt.mu.Lock()
		switched := rt.notMaster(rt.byID[1], tt.hint)
		got := uint64(0)
		if rt.master != nil {
			got = rt.master.id
		}
		rt.mu.Unlock()
		if got != tt.want || switched != tt.wantSwitch {
			t.Errorf("hint %d: master %d switched %v, want %d %v", tt.hint, got, switched, tt.want, tt.wantSwitch)
		}
		// With no master to try, every replica is polled at once rather
		// than at its next tick (Poll may be long).
		for _, rp := range rt.reps {
			if asked := len(rp.nudge) == 1; asked == switched {
				t.Errorf("hint %d: replica %d asked for a poll: %v, want %v", tt.hint, rp.id, asked, !switched)
			}
		}
	}
}

// TestRefusalRounds: a pipeline refused together backs off once; a
// refusal of an attempt sent after the backoff began starts the next
// round, with a longer backoff.
func TestRefusalRounds(t *testing.T) {
	rt := testRouter(t, 1, up(0), up(0))
	s := rt.newSession()
	t0 := time.Now()
	var ws []*op
	for range 50 {
		ws = append(ws, &op{write: true, sess: s, sentAt: t0})
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for i, w := range ws {
		rt.refused(w, t0.Add(time.Duration(i+1)*time.Microsecond), time.Second)
	}
	if s.tries != 1 {
		t.Fatalf("50 writes sent together, refused together: %d rounds, want 1", s.tries)
	}
	first := s.notBefore
	again := &op{write: true, sess: s, sentAt: first}
	rt.refused(again, first.Add(time.Millisecond), time.Second)
	if s.tries != 2 || !s.notBefore.After(first) {
		t.Fatalf("a resend refused: %d rounds, backoff until %v (first until %v), want 2 rounds and later", s.tries, s.notBefore, first)
	}
}

// TestLearnConfig: which configuration the router adopts from a sequence
// of STATUS answers, and the replicas it routes to afterwards. No
// goroutine runs: the router is not started.
func TestLearnConfig(t *testing.T) {
	v := func(id uint64) wire.Member { return wire.Member{ID: id, Addr: fmt.Sprintf("h:%d", id), Voter: true} }
	l := func(id uint64) wire.Member { return wire.Member{ID: id, Addr: fmt.Sprintf("h:%d", id)} }
	st := func(slot uint64, ms ...wire.Member) wire.Status {
		return wire.Status{ID: 1, ConfigSlot: slot, Members: ms}
	}
	tests := []struct {
		name   string
		seen   []wire.Status
		want   string // the replicas: id@addr, "L" for a learner
		slot   uint64
		master uint64 // the master afterwards (1 before)
	}{
		{"no configuration: --nodes stand", []wire.Status{{ID: 1}}, "[1@h:1 2@h:2 3@h:3]", 0, 1},
		{"the same members", []wire.Status{st(1, v(1), v(2), v(3))}, "[1@h:1 2@h:2 3@h:3]", 1, 1},
		{"a learner added", []wire.Status{st(1, v(1), v(2), v(3)), st(5, v(1), v(2), v(3), l(4))}, "[1@h:1 2@h:2 3@h:3 4@h:4L]", 5, 1},
		{"then promoted", []wire.Status{st(5, v(1), v(2), v(3), l(4)), st(6, v(1), v(2), v(3), v(4))}, "[1@h:1 2@h:2 3@h:3 4@h:4]", 6, 1},
		{"an older one is ignored", []wire.Status{st(6, v(1), v(2), v(3), v(4)), st(5, v(1), v(2), v(3), l(4)), st(1, v(1), v(2), v(3))}, "[1@h:1 2@h:2 3@h:3 4@h:4]", 6, 1},
		{"the same slot twice changes nothing", []wire.Status{st(6, v(1), v(2)), st(6, v(1), v(2), v(3))}, "[1@h:1 2@h:2]", 6, 1},
		{"removed", []wire.Status{st(2, v(1), v(3))}, "[1@h:1 3@h:3]", 2, 1},
		{"the master removed", []wire.Status{st(2, v(2), v(3))}, "[2@h:2 3@h:3]", 2, 0},
		{"another address for a member: the proxy's stays", []wire.Status{st(2, v(1), v(2), wire.Member{ID: 3, Addr: "relay:33"})}, "[1@h:1 2@h:2 3@h:3L]", 2, 1},
		{"replaced: 3 out, 5 in", []wire.Status{st(2, v(1), v(2), v(3), l(5)), st(3, v(1), v(2), l(5)), st(4, v(1), v(2), v(5))}, "[1@h:1 2@h:2 5@h:5]", 4, 1},
		{"members without an address are skipped", []wire.Status{st(2, v(1), wire.Member{ID: 2}, wire.Member{Addr: "h:0"})}, "[1@h:1]", 2, 1},
		{"an empty list is no configuration", []wire.Status{st(9)}, "[1@h:1 2@h:2 3@h:3]", 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := testRouter(t, 1, up(0), up(0), up(0))
			for i, rp := range rt.reps {
				rp.addr = fmt.Sprintf("h:%d", i+1)
			}
			for _, s := range tt.seen {
				rt.learnConfigLocked(s)
			}
			var got []string
			for _, rp := range rt.reps {
				s := fmt.Sprintf("%d@%s", rp.id, rp.addr)
				if !rp.voter {
					s += "L"
				}
				got = append(got, s)
				if rt.byID[rp.id] != rp {
					t.Fatalf("byID[%d] is not the replica listed", rp.id)
				}
			}
			master := uint64(0)
			if rt.master != nil {
				master = rt.master.id
			}
			if fmt.Sprint(got) != tt.want || rt.confSlot != tt.slot || len(rt.byID) != len(rt.reps) || master != tt.master {
				t.Fatalf("replicas %v at slot %d, master %d; want %s at %d, master %d", got, rt.confSlot, master, tt.want, tt.slot, tt.master)
			}
		})
	}
}

// TestPickMember: where a membership op goes.
func TestPickMember(t *testing.T) {
	change := &op{req: wire.Request{Op: wire.OpMemberAdd}}
	list := &op{req: wire.Request{Op: wire.OpMembers}}
	down := repState{}
	tests := []struct {
		name         string
		master       uint64
		states       []repState
		learners     []int // indexes of replicas that are learners
		change, list uint64
	}{
		{"the master", 2, []repState{up(0), up(0), up(0)}, nil, 2, 2},
		{"no master: a list goes to a voter, a change waits", 0, []repState{down, up(0), up(0)}, []int{1}, 0, 3},
		{"no master, only a learner up", 0, []repState{down, up(0), down}, []int{1}, 0, 2},
		{"the master is down", 1, []repState{down, up(0)}, nil, 0, 2},
		{"nobody", 0, []repState{down, down}, nil, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := testRouter(t, tt.master, tt.states...)
			for _, i := range tt.learners {
				rt.reps[i].voter = false
			}
			id := func(rp *replica) uint64 {
				if rp == nil {
					return 0
				}
				return rp.id
			}
			if c, l := id(rt.pick(change)), id(rt.pick(list)); c != tt.change || l != tt.list {
				t.Fatalf("change to %d, list to %d; want %d, %d", c, l, tt.change, tt.list)
			}
		})
	}
}

// TestLearnersGetNoReads: a learner is catching up; reads at any level go
// to the voters, and to the master before a learner.
func TestLearnersGetNoReads(t *testing.T) {
	for _, level := range []wire.Consistency{wire.Linearizable, wire.Session, wire.Stale} {
		rt := testRouter(t, 1, up(10), up(10), up(10))
		rt.reps[1].voter = false
		for range 50 {
			if got := rt.pick(&op{req: wire.Request{Op: wire.OpGet, Consistency: level}}); got == nil || got.id != 3 {
				t.Fatalf("%v read went to %v, want 3", level, got)
			}
		}
		rt.reps[2].voter = false
		if got := rt.pick(&op{req: wire.Request{Op: wire.OpGet, Consistency: level}}); got == nil || got.id != 1 {
			t.Fatalf("%v read with only learners as followers went to %v, want the master", level, got)
		}
	}
}
