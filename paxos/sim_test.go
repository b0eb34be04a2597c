package paxos

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"
)

// The simulator runs a whole cluster of Replicas in one goroutine against a
// seeded scheduler: a network that loses, duplicates, delays (and so
// reorders) messages and cuts links one way or both, replicas that crash and
// keep only what they persisted, clients that propose and read. After every
// event it checks the safety invariants against a global record of every
// vote; with liveness on, it also checks that once the faults stop the
// cluster chooses every pending proposal in bounded time.
//
// Nothing here reads a clock or draws an unseeded number, so one seed always
// gives one trace; the trace hash proves it.

// simOptions are the knobs of one run; simOptionsFor draws them from a seed
// ("swarm testing": every seed gets its own fault mix).
type simOptions struct {
	nodes       int
	ticks       int     // length of the faulty phase
	loss        float64 // per message
	dup         float64 // per message
	maxDelay    int     // ticks, at least 1
	crashRate   float64 // per tick, per live node
	wipeRate    float64 // per tick: a crash that also wipes the disk
	handRate    float64 // per tick: the master hands over
	partRate    float64 // per tick: a new partition
	slowRate    float64 // per tick: some directed links turn slow
	healRate    float64 // per tick: heal the partition
	proposeRate float64 // per tick, per client
	readRate    float64 // per tick
	clients     int
	snapEvery   uint64 // applied slots between snapshots; 0 = never
	window      uint64 // slots kept in the log behind a snapshot
	liveness    bool
	bugs        bugs
	sendEarly   bool // planted bug (a): votes sent before they are durable
}

func simOptionsFor(seed uint64) simOptions {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	o := simOptions{
		nodes:       3 + 2*rng.IntN(2),
		ticks:       600 + rng.IntN(600),
		maxDelay:    1 + rng.IntN(4),
		proposeRate: 0.2 + rng.Float64()*0.5,
		readRate:    0.1 + rng.Float64()*0.4,
		clients:     1 + rng.IntN(4),
		liveness:    true,
	}
	if rng.IntN(4) > 0 {
		o.loss = rng.Float64() * 0.3
	}
	if rng.IntN(3) == 0 {
		o.dup = rng.Float64() * 0.5
	}
	if rng.IntN(3) > 0 {
		o.crashRate = rng.Float64() * 0.01
	}
	if rng.IntN(3) > 0 {
		o.partRate = rng.Float64() * 0.02
		o.healRate = 0.01 + rng.Float64()*0.05
	}
	if rng.IntN(3) == 0 {
		o.handRate = rng.Float64() * 0.02
	}
	if rng.IntN(3) == 0 {
		o.wipeRate = rng.Float64() * 0.004
	}
	if rng.IntN(2) == 0 {
		o.snapEvery = 5 + uint64(rng.IntN(40))
		o.window = uint64(rng.IntN(10))
	}
	if rng.IntN(3) == 0 {
		o.slowRate = rng.Float64() * 0.02
		o.healRate = 0.01 + rng.Float64()*0.05
	}
	return o
}

// simConfig shortens the timeouts so a run covers many elections.
func simConfig(id NodeID, members []NodeID, rng *rand.Rand) Config {
	return Config{
		ID: id, Members: members,
		HeartbeatTicks: 2, ElectionTicks: 12, LeaseTicks: 11,
		MaxEntriesPerMsg: 4, MaxInflight: 16, MaxUncommitted: 64, LogMembers: true,
		Rand: rng,
	}
}

type simMsg struct {
	m  Message
	at int
}

// simNode is one replica plus what its disk holds.
type simNode struct {
	id      NodeID
	r       *Replica
	alive   bool
	downFor int

	// The disk.
	membership Membership // the learner marker
	snapSlot   uint64     // the snapshot covers every slot up to here
	promise    Ballot
	log        []Entry
	committed  uint64

	// A Ready whose persistence the planted bug (a) put off.
	deferred *Ready

	// Volatile.
	applied    uint64
	lastCommit uint64
	reads      map[uint64]simRead // read context -> read in progress
}

type simRead struct {
	needSlot uint64 // every write acknowledged before the read began
	index    uint64
	granted  bool
}

type simClient struct {
	id       int
	seq      int
	pending  string // command in flight, "" if none
	sentAt   int
	lastSend int
}

type sim struct {
	o     simOptions
	seed  uint64
	rng   *rand.Rand
	now   int
	nodes []*simNode
	ids   []NodeID
	net   []simMsg
	cut   map[[2]NodeID]bool // directed links that drop everything
	slow  map[[2]NodeID]int  // directed links with extra delay, in ticks

	// Global record, for the invariants.
	votes    map[uint64]map[Ballot]*simVote // slot -> ballot -> vote
	chosen   map[uint64]string              // slot -> value chosen (by the vote record)
	applied  map[uint64]string              // slot -> value some replica applied
	masters  map[Ballot]NodeID
	acked    map[string]uint64 // command -> slot, once its proposer applied it
	ackedMax uint64
	proposed map[string]NodeID // command -> proposer

	clients []*simClient
	nextCtx uint64
	trace   uint64
	stats   simStats
	err     error
}

type simVote struct {
	value string
	by    map[NodeID]bool
}

type simStats struct {
	chosen, reads, elections, crashes, snapshots, wipes, handovers int
}

func valueKey(v Value) string {
	switch v.Kind {
	case ValueNoop:
		return "noop"
	case ValueConfig:
		return "config"
	}
	var b strings.Builder
	for i, c := range v.Cmds {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(c)
	}
	return b.String()
}

func newSim(seed uint64, o simOptions) *sim {
	s := &sim{
		o: o, seed: seed,
		rng:      rand.New(rand.NewPCG(seed, 0xfeed)),
		cut:      map[[2]NodeID]bool{},
		slow:     map[[2]NodeID]int{},
		votes:    map[uint64]map[Ballot]*simVote{},
		chosen:   map[uint64]string{},
		applied:  map[uint64]string{},
		masters:  map[Ballot]NodeID{},
		acked:    map[string]uint64{},
		proposed: map[string]NodeID{},
	}
	for i := 1; i <= o.nodes; i++ {
		s.ids = append(s.ids, NodeID(i))
	}
	for _, id := range s.ids {
		n := &simNode{id: id, membership: Fresh} // a new cluster: every directory empty
		s.nodes = append(s.nodes, n)
		s.start(n)
	}
	for i := 0; i < o.clients; i++ {
		s.clients = append(s.clients, &simClient{id: i})
	}
	return s
}

func (s *sim) fail(format string, args ...any) {
	if s.err == nil {
		s.err = fmt.Errorf("tick %d: "+format, append([]any{s.now}, args...)...)
	}
}

func (s *sim) mix(parts ...uint64) {
	h := fnv.New64a()
	var b [8]byte
	for _, p := range append([]uint64{s.trace}, parts...) {
		for i := range b {
			b[i] = byte(p >> (8 * i))
		}
		h.Write(b[:])
	}
	s.trace = h.Sum64()
}

// start boots n from its disk.
func (s *sim) start(n *simNode) {
	hs := HardState{Promise: n.promise, Entries: slices.Clone(n.log), Committed: n.committed, Applied: n.snapSlot, Membership: n.membership}
	if s.o.bugs.skipPromiseOnCrash {
		hs.Promise = Ballot{}
	}
	cfg := simConfig(n.id, s.ids, rand.New(rand.NewPCG(s.seed, uint64(n.id)<<32|uint64(s.now))))
	cfg.bugs = s.o.bugs
	r, err := New(cfg, hs)
	if err != nil {
		s.fail("start %d: %v", n.id, err)
		return
	}
	n.r, n.alive, n.applied, n.lastCommit = r, true, n.snapSlot, 0
	n.reads = map[uint64]simRead{}
	n.deferred = nil
}

func (s *sim) crash(n *simNode) {
	// The peers' connections from n close (in the real node, TCP resets).
	for _, o := range s.nodes {
		if o.alive && o != n && !s.cut[[2]NodeID{n.id, o.id}] {
			o.r.PeerLost(n.id)
		}
	}
	n.alive = false
	n.r = nil
	n.deferred = nil // never persisted: lost
	n.downFor = 5 + s.rng.IntN(40)
	s.stats.crashes++
	s.mix(9, uint64(n.id))
}

func (s *sim) node(id NodeID) *simNode { return s.nodes[id-1] }

// allVoters reports whether no replica is fresh or a learner: wipes stay
// within the fault model (a minority forgets at a time).
func (s *sim) allVoters() bool {
	for _, n := range s.nodes {
		if n.membership != Voter {
			return false
		}
	}
	return true
}

// wipe empties n's disk, as an operator deleting its data directory.
func (s *sim) wipe(n *simNode) {
	*n = simNode{id: n.id, membership: Fresh, downFor: n.downFor}
	s.stats.wipes++
	s.mix(19, uint64(n.id))
}

func (s *sim) send(from NodeID, msgs []Message) {
	for _, m := range msgs {
		if s.cut[[2]NodeID{from, m.To}] || s.rng.Float64() < s.o.loss {
			continue
		}
		extra := s.slow[[2]NodeID{from, m.To}]
		s.net = append(s.net, simMsg{m: m, at: s.now + 1 + extra + s.rng.IntN(s.o.maxDelay)})
		if s.rng.Float64() < s.o.dup {
			s.net = append(s.net, simMsg{m: m, at: s.now + 1 + s.rng.IntN(s.o.maxDelay+2)})
		}
	}
}

// persist writes rd to n's disk and records its votes.
func (s *sim) persist(n *simNode, rd *Ready) {
	if rd.MembershipChanged {
		n.membership = rd.Membership
	}
	if rd.PromiseChanged {
		n.promise = rd.Promise
	}
	n.log = append(n.log, rd.Accepted...)
	if len(rd.Accepted) > 0 && rd.Committed > n.committed {
		n.committed = rd.Committed
	}
}

// vote records, in the global record, the votes rd makes visible.
func (s *sim) vote(n *simNode, rd *Ready) {
	for _, e := range rd.Accepted {
		byBallot := s.votes[e.Slot]
		if byBallot == nil {
			byBallot = map[Ballot]*simVote{}
			s.votes[e.Slot] = byBallot
		}
		v := byBallot[e.Ballot]
		k := valueKey(e.Value)
		if v == nil {
			v = &simVote{value: k, by: map[NodeID]bool{}}
			byBallot[e.Ballot] = v
		} else if v.value != k {
			s.fail("slot %d ballot %v: two values %q and %q", e.Slot, e.Ballot, v.value, k)
		}
		v.by[n.id] = true
		if len(v.by) >= len(s.ids)/2+1 {
			if c, ok := s.chosen[e.Slot]; ok && c != k {
				s.fail("slot %d: chose %q and %q", e.Slot, c, k)
			}
			s.chosen[e.Slot] = k
		}
	}
}

// handleReady does what a node does with a Ready: send, persist, send the
// votes, apply, advance.
func (s *sim) handleReady(n *simNode) {
	for n.alive && n.r.HasReady() {
		rd := n.r.Ready()
		s.mix(uint64(n.id), uint64(len(rd.Messages)), uint64(len(rd.Accepted)), uint64(len(rd.Chosen)))
		if rd.SoftState != nil && rd.SoftState.Role == Master {
			if other, ok := s.masters[rd.SoftState.Ballot]; ok && other != n.id {
				s.fail("ballot %v: two masters %d and %d", rd.SoftState.Ballot, other, n.id)
			}
			if _, ok := s.masters[rd.SoftState.Ballot]; !ok {
				s.stats.elections++
			}
			s.masters[rd.SoftState.Ballot] = n.id
		}
		s.send(n.id, rd.Messages)
		if s.o.sendEarly {
			// Planted bug (a): the votes go out now, the disk write later.
			if n.deferred != nil {
				s.persist(n, n.deferred)
			}
			s.vote(n, &rd)
			s.send(n.id, rd.MessagesAfterPersist)
			cp := rd
			n.deferred = &cp
		} else {
			s.persist(n, &rd)
			s.vote(n, &rd)
			s.send(n.id, rd.MessagesAfterPersist)
		}
		s.apply(n, rd.Chosen)
		s.snapshot(n)
		if rd.NeedSnapshot != None {
			s.installSnapshot(n, s.node(rd.NeedSnapshot))
		}
		s.readStates(n, rd.ReadStates)
		n.r.Advance(rd)
		if c := n.r.Committed(); c < n.lastCommit {
			s.fail("node %d: commit index went back from %d to %d", n.id, n.lastCommit, c)
		} else {
			n.lastCommit = c
		}
		s.serveReads(n)
	}
}

func (s *sim) apply(n *simNode, chosen []Entry) {
	for _, e := range chosen {
		if e.Slot != n.applied+1 {
			s.fail("node %d: applied slot %d after %d", n.id, e.Slot, n.applied)
			return
		}
		n.applied = e.Slot
		k := valueKey(e.Value)
		if c, ok := s.chosen[e.Slot]; !ok || c != k {
			s.fail("node %d applied %q at slot %d, but the votes chose %q (chosen=%v)", n.id, k, e.Slot, c, ok)
		}
		if prev, ok := s.applied[e.Slot]; ok && prev != k {
			s.fail("node %d applied %q at slot %d where another applied %q", n.id, k, e.Slot, prev)
		}
		s.applied[e.Slot] = k
		if e.Value.Kind != ValueCmds {
			continue
		}
		for _, c := range e.Value.Cmds {
			cmd := string(c)
			if s.proposed[cmd] == n.id {
				if _, ok := s.acked[cmd]; !ok {
					s.acked[cmd] = e.Slot
					s.stats.chosen++
					if e.Slot > s.ackedMax {
						s.ackedMax = e.Slot
					}
				}
			}
		}
	}
}

// snapshot takes a snapshot every snapEvery applied slots and compacts the
// log behind it, keeping a window.
func (s *sim) snapshot(n *simNode) {
	if s.o.snapEvery == 0 || n.applied < n.snapSlot+s.o.snapEvery {
		return
	}
	n.snapSlot = n.applied
	if n.snapSlot > s.o.window {
		upTo := n.snapSlot - s.o.window
		n.r.Compact(upTo)
		n.log = slices.DeleteFunc(n.log, func(e Entry) bool { return e.Slot <= upTo })
	}
	s.mix(17, uint64(n.id), n.snapSlot)
}

// installSnapshot copies from's durable snapshot to n, if it is newer.
func (s *sim) installSnapshot(n, from *simNode) {
	if !from.alive || s.cut[[2]NodeID{from.id, n.id}] || from.snapSlot <= n.applied {
		return
	}
	slot := from.snapSlot
	if !n.r.RestoreSnapshot(slot) {
		return
	}
	n.snapSlot, n.applied = slot, slot
	n.log = slices.DeleteFunc(n.log, func(e Entry) bool { return e.Slot <= slot })
	s.stats.snapshots++
	s.mix(18, uint64(n.id), slot)
}

func (s *sim) readStates(n *simNode, states []ReadState) {
	for _, rs := range states {
		rd, ok := n.reads[rs.Context]
		if !ok || rd.granted {
			continue
		}
		if rs.Failed {
			delete(n.reads, rs.Context)
			continue
		}
		rd.granted, rd.index = true, rs.Index
		n.reads[rs.Context] = rd
	}
}

// serveReads answers the granted reads n has applied far enough for, and
// checks each saw every write acknowledged before it began.
func (s *sim) serveReads(n *simNode) {
	for ctx, rd := range n.reads {
		if !rd.granted || n.applied < rd.index {
			continue
		}
		if n.applied < rd.needSlot {
			s.fail("node %d: linearizable read (ctx %d) served at slot %d with index %d, misses a write acknowledged at slot %d before it began",
				n.id, ctx, n.applied, rd.index, rd.needSlot)
		}
		s.stats.reads++
		delete(n.reads, ctx)
	}
}

// faults draws this tick's crashes, restarts and partitions.
func (s *sim) faults() {
	for _, n := range s.nodes {
		if n.alive && s.rng.Float64() < s.o.wipeRate && s.allVoters() {
			s.crash(n)
			s.wipe(n)
		} else if n.alive && s.rng.Float64() < s.o.crashRate {
			s.crash(n)
		} else if !n.alive {
			n.downFor--
			if n.downFor <= 0 {
				s.start(n)
				s.mix(10, uint64(n.id))
			}
		}
	}
	if m := s.masterNode(); m != nil && s.rng.Float64() < s.o.handRate {
		if to, err := m.r.TransferMastership(); err == nil {
			s.stats.handovers++
			s.mix(20, uint64(m.id), uint64(to))
		}
	}
	if len(s.cut) > 0 && s.rng.Float64() < s.o.healRate {
		clear(s.cut)
		s.mix(11)
	}
	if len(s.cut) == 0 && s.rng.Float64() < s.o.partRate {
		s.partition()
	}
	if len(s.slow) > 0 && s.rng.Float64() < s.o.healRate {
		clear(s.slow)
		s.mix(15)
	}
	if len(s.slow) == 0 && s.rng.Float64() < s.o.slowRate {
		// Congestion: a few directed links (often the ones into the
		// master) deliver late for a while.
		for i := 0; i < 1+s.rng.IntN(len(s.ids)); i++ {
			a, b := s.ids[s.rng.IntN(len(s.ids))], s.ids[s.rng.IntN(len(s.ids))]
			if m := s.masterNode(); m != nil && s.rng.IntN(2) == 0 {
				b = m.id
			}
			if a != b {
				s.slow[[2]NodeID{a, b}] = 5 + s.rng.IntN(15)
			}
		}
		s.mix(16, uint64(len(s.slow)))
	}
}

func (s *sim) partition() {
	ids := slices.Clone(s.ids)
	s.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	switch s.rng.IntN(3) {
	case 0: // a minority cut off both ways
		k := 1 + s.rng.IntN(len(ids)/2)
		for _, a := range ids[:k] {
			for _, b := range ids[k:] {
				s.cut[[2]NodeID{a, b}], s.cut[[2]NodeID{b, a}] = true, true
			}
		}
	case 1: // the master isolated, if there is one
		victim := ids[0]
		for _, n := range s.nodes {
			if n.alive && n.r.role == Master {
				victim = n.id
			}
		}
		for _, b := range s.ids {
			if b != victim {
				s.cut[[2]NodeID{victim, b}], s.cut[[2]NodeID{b, victim}] = true, true
			}
		}
	case 2: // one-way links
		for i := 0; i < 1+s.rng.IntN(3); i++ {
			a, b := ids[s.rng.IntN(len(ids))], ids[s.rng.IntN(len(ids))]
			if a != b {
				s.cut[[2]NodeID{a, b}] = true
			}
		}
	}
	s.mix(12, uint64(len(s.cut)))
}

func (s *sim) masterNode() *simNode {
	for _, n := range s.nodes {
		if n.alive && n.r.role == Master {
			return n
		}
	}
	return nil
}

// clientsAct proposes and reads. A client keeps one command in flight and
// sends it again (same command) to whoever is master when it lingers.
func (s *sim) clientsAct() {
	for _, c := range s.clients {
		if c.pending != "" {
			if _, ok := s.acked[c.pending]; ok {
				c.pending = ""
			}
		}
		if c.pending == "" {
			if s.rng.Float64() >= s.o.proposeRate {
				continue
			}
			c.seq++
			c.pending = fmt.Sprintf("c%d.%d", c.id, c.seq)
			c.sentAt = s.now
			c.lastSend = -1 << 30
		}
		if s.now-c.lastSend < 20 {
			continue
		}
		// Propose through a random replica; only a master takes it.
		n := s.nodes[s.rng.IntN(len(s.nodes))]
		if !n.alive {
			continue
		}
		if _, err := n.r.Propose([][]byte{[]byte(c.pending)}); err == nil {
			c.lastSend = s.now
			if _, ok := s.proposed[c.pending]; !ok {
				s.proposed[c.pending] = n.id
			} else {
				// A retry: acknowledged when any replica it went to applies it.
				s.proposed[c.pending] = n.id
			}
			s.mix(13, uint64(n.id))
		}
	}
	if s.rng.Float64() < s.o.readRate {
		n := s.nodes[s.rng.IntN(len(s.nodes))]
		if n.alive {
			s.nextCtx++
			n.reads[s.nextCtx] = simRead{needSlot: s.ackedMax}
			n.r.ReadIndex(s.nextCtx)
			s.mix(14, uint64(n.id))
		}
	}
}

// step runs one tick: clocks, deliveries, clients, faults, Ready handling.
func (s *sim) step(faulty bool) {
	s.now++
	for _, n := range s.nodes {
		if n.alive {
			n.r.Tick()
		}
	}
	// Deliver what is due, in a random order.
	var due []simMsg
	kept := s.net[:0]
	for _, m := range s.net {
		if m.at <= s.now {
			due = append(due, m)
		} else {
			kept = append(kept, m)
		}
	}
	s.net = kept
	s.rng.Shuffle(len(due), func(i, j int) { due[i], due[j] = due[j], due[i] })
	for _, dm := range due {
		n := s.node(dm.m.To)
		if !n.alive {
			continue
		}
		s.mix(uint64(dm.m.Type), uint64(dm.m.From), uint64(dm.m.To), dm.m.Slot)
		n.r.Step(dm.m)
		s.handleReady(n)
		if s.err != nil {
			return
		}
	}
	s.clientsAct()
	if faulty {
		s.faults()
	}
	for _, n := range s.nodes {
		if n.alive {
			s.handleReady(n)
		}
	}
}

// heal ends every fault: links mended, replicas restarted, no loss.
func (s *sim) heal() {
	clear(s.cut)
	clear(s.slow)
	s.o.loss, s.o.dup = 0, 0
	for _, n := range s.nodes {
		if !n.alive {
			s.start(n)
		}
	}
}

// run returns the first invariant violated, or nil.
func (s *sim) run() error {
	for s.now < s.o.ticks && s.err == nil {
		s.step(true)
	}
	if s.err != nil || !s.o.liveness {
		return s.err
	}
	s.heal()
	// Liveness: every client's pending command is chosen within 10 election
	// timeouts (the longest timeout is 2*ElectionTicks).
	healed := s.now
	var waiting []string
	for _, c := range s.clients {
		if c.pending != "" {
			waiting = append(waiting, c.pending)
		}
	}
	limit := healed + 10*2*12
	var stuck []string
	for s.now < limit && s.err == nil {
		s.step(false)
		stuck = stuck[:0]
		for _, cmd := range waiting {
			if _, ok := s.acked[cmd]; !ok {
				stuck = append(stuck, cmd)
			}
		}
		if len(stuck) == 0 && s.masterNode() != nil {
			return s.err
		}
	}
	if s.err != nil {
		return s.err
	}
	return fmt.Errorf("liveness: %d ticks after the faults stopped, still pending %v (master %v)",
		s.now-healed, stuck, s.masterNode() != nil)
}
