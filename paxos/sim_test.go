package paxos

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
)

// The simulator runs a whole cluster of Replicas in one goroutine against a
// seeded scheduler that produces the faults real replicas meet:
//
//   - the network loses, duplicates, delays and so reorders messages, holds
//     some back for very long and releases them late, cuts links both ways
//     or one way, and slows some directed links;
//   - connections close without a crash (a TCP reset), which a replica
//     takes as its peer lost;
//   - processes crash, restart, and stall (SIGSTOP, a VM pause, a long GC)
//     for any length; every replica's clock runs at its own rate within the
//     drift bound the timing rules tolerate (MaxDriftPercent), and keeps
//     running while the process is stopped, so a stalled replica wakes up
//     older and is handed every tick it missed before anything else;
//   - the disk is asynchronous, as the node's persister is: a Ready's writes
//     reach the disk only when their fsync completes some steps later; a
//     crash keeps a random prefix of the writes not yet synced (what the
//     page cache flushed) and loses the rest; an fsync can fail; a restart
//     can find one piece of durable state missing (the acceptor file, the
//     log, the snapshot) or the last batch damaged by bit rot; an operator
//     can wipe a data directory;
//   - clients propose and read at every replica.
//
// After every event it checks the safety invariants against a global record
// of every vote: a vote counts from the moment a replica claims it (an
// Accepted sent, a master's own vote once synced), whatever its disk holds
// later. With liveness on, it also checks that once the faults stop the
// cluster chooses every pending proposal in bounded time.
//
// A simulation step is one tick of real time. Nothing here reads a clock or
// draws an unseeded number, so one seed always gives one trace; the trace
// hash proves it.

// simOptions are the knobs of one run; simOptionsFor draws them from a seed
// ("swarm testing": every seed gets its own fault mix).
// Times are in ticks and rates per tick of real time; the simulator runs
// res steps per tick, so messages can travel in a fraction of a tick as
// they do on a real network, where a round trip is far shorter than a
// tick and a drift window of a few percent of a lease is room for a whole
// election.
type simOptions struct {
	nodes       int
	slowTiming  bool    // the node's default timing (heartbeat 5, election 50, lease 40 ticks) instead of a short one
	res         int     // simulation steps per tick
	ticks       int     // length of the faulty phase
	loss        float64 // per message
	dup         float64 // per message
	maxDelay    int     // in steps, at least 1
	lateRate    float64 // per message: held back for up to lateMax ticks
	lateMax     int
	crashRate   float64 // per live node
	wipeRate    float64 // a crash that also wipes the disk
	handRate    float64 // the master hands over
	partRate    float64 // a new partition
	slowRate    float64 // some directed links turn slow
	healRate    float64 // heal the partition
	stallRate   float64 // per live node: the process stops
	resetRate   float64 // a connection closes without a crash
	reconfRate  float64 // the master changes the membership: adds, promotes, removes a replica
	drift       int     // clock rates are drawn in [1000-drift, 1000+drift] per mille
	diskDelay   int     // steps from a Ready's write to its fsync, at most
	fsyncFail   float64 // per fsync
	lossRate    float64 // per restart: one piece of durable state is missing
	rotRate     float64 // per restart: the last durable batch is damaged
	proposeRate float64 // per client
	readRate    float64
	clients     int
	fileRate    float64 // of the clients' writes, the share that are large files (simfiles_test.go)
	snapEvery   uint64  // applied slots between snapshots; 0 = never
	window      uint64  // slots kept in the log behind a snapshot
	liveness    bool
	bugs        bugs
	node        nodeBugs
}

// nodeBugs are planted mistakes of the node around the core (how it feeds
// time and handles its disk), which the simulator stands in for. Each is a
// mistake synod once made.
type nodeBugs struct {
	sendEarly  bool // (a) votes sent when written, before their fsync
	oldTicks   bool // one tick per wake-up: a stalled replica wakes with the time it missed lost
	retryFsync bool // after a failed fsync, rebuild from the page cache in place instead of exiting
	ignoreLoss bool // a missing acceptor file, log or snapshot goes unnoticed: the replica votes on
	rotAsTorn  bool // a damaged last batch is cut as a torn write, without becoming a learner
	// fetchOnce: a replica that lacks a large file's chunk asks its peers
	// once, when it applies the file or starts, and gives up.
	fetchOnce bool
	// promoteWithoutChunks: a learner votes again once it holds the log,
	// whether or not it holds the chunks its state refers to.
	promoteWithoutChunks bool
	// ackUnconfirmed: the proxy acknowledges a large file once its
	// manifest is chosen, without asking whether a majority still holds
	// its chunks.
	ackUnconfirmed bool
}

// maxDriftPerMille is MaxDriftPercent in the clocks' unit.
const maxDriftPerMille = MaxDriftPercent * 10

func simOptionsFor(seed uint64) simOptions {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	o := simOptions{
		nodes:       3 + 2*rng.IntN(2),
		res:         1,
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
	// The real-world faults.
	if rng.IntN(2) == 0 {
		o.lateRate = rng.Float64() * 0.02
		o.lateMax = 20 + rng.IntN(400)
	}
	if rng.IntN(2) == 0 {
		o.stallRate = rng.Float64() * 0.006
	}
	if rng.IntN(3) == 0 {
		o.resetRate = rng.Float64() * 0.02
	}
	if rng.IntN(4) > 0 {
		o.drift = maxDriftPerMille // the whole documented bound
		if rng.IntN(2) == 0 {
			o.drift = rng.IntN(maxDriftPerMille + 1)
		}
	}
	if rng.IntN(2) == 0 {
		o.diskDelay = 1 + rng.IntN(4)
	}
	if rng.IntN(2) == 0 {
		// A fine clock: a message takes a tenth of a tick or more.
		o.res = 10
		o.maxDelay = 1 + rng.IntN(40)
		o.diskDelay *= 1 + rng.IntN(10)
	}
	if rng.IntN(4) == 0 {
		// The node's own timing, where a lease of 40 ticks leaves a drift
		// window of several ticks, room for a whole election.
		o.slowTiming = true
		o.ticks *= 3
	}
	if rng.IntN(3) == 0 {
		o.fsyncFail = rng.Float64() * 0.003
	}
	if rng.IntN(3) == 0 {
		o.lossRate = rng.Float64() * 0.3
	}
	if rng.IntN(3) == 0 {
		o.rotRate = rng.Float64() * 0.3
	}
	if rng.IntN(3) == 0 {
		o.reconfRate = 0.005 + rng.Float64()*0.03
	}
	fileOptions(seed, &o)
	return o
}

// simConfig shortens the timeouts so a run covers many elections, unless
// the seed runs with the node's own timing. The lease keeps the drift
// margin Validate asks for.
func (o *simOptions) config(id NodeID, conf Configuration, rng *rand.Rand) Config {
	var learners []NodeID
	for _, m := range conf.Members {
		if !m.Voter {
			learners = append(learners, m.ID)
		}
	}
	c := Config{
		ID: id, Members: conf.Voters(), Learners: learners,
		HeartbeatTicks: 2, ElectionTicks: 12, LeaseTicks: 9,
		MaxEntriesPerMsg: 4, MaxInflight: 16, MaxUncommitted: 64, LogMembers: true,
		Rand: rng,
	}
	if o.slowTiming {
		c.HeartbeatTicks, c.ElectionTicks, c.LeaseTicks = 5, 50, 40
	}
	return c
}

type simMsg struct {
	m  Message
	at int
}

// simDisk is what a replica's data directory holds durably.
type simDisk struct {
	membership Membership // the learner marker
	snapSlot   uint64     // the snapshot covers every slot up to here
	snapConf   Configuration
	snapConfAt uint64 // the slot that chose snapConf
	promise    Ballot
	log        []Entry
	lastBatch  int // log[lastBatch:] is the last batch written
	committed  uint64
	// committedBefore is the commit hint before the last batch, which
	// carries its own: cutting the batch cuts its hint too.
	committedBefore uint64
	chunks          map[string]bool // large files' chunks held (simfiles_test.go)
}

// compact drops the entries a snapshot covers, up to slot.
func (d *simDisk) compact(slot uint64) {
	kept := d.log[:0]
	last := d.lastBatch
	for i, e := range d.log {
		if e.Slot > slot {
			kept = append(kept, e)
		} else if i < last {
			d.lastBatch--
		}
	}
	d.log = kept
}

// simWrite is a Ready handed to the disk: written, not yet synced.
type simWrite struct {
	rd  Ready
	due int // the step its fsync completes
}

// simNode is one replica process, its clock and its disk.
// describeNodes sums up every replica's state for a liveness failure: who
// is up, its role, chosen prefix, configuration and membership.
func (s *sim) describeNodes() string {
	var b strings.Builder
	for _, n := range s.nodes {
		if n.dormant && !n.alive {
			continue
		}
		fmt.Fprintf(&b, "[%d alive=%v %v committed=%d conf=%v@%d removed=%v %v] ",
			n.id, n.alive, n.r.role, n.r.committed, n.r.conf.cur, n.r.conf.curSlot, n.r.conf.removed, n.r.learn.membership)
	}
	return strings.TrimSpace(b.String())
}

type simNode struct {
	id      NodeID
	r       *Replica
	alive   bool
	downFor int
	// dormant: not a replica now (a spare not yet added, or one removed);
	// joinConf: the configuration it starts with when its disk has none.
	dormant  bool
	joinConf Configuration
	// joining: wiped, it restarts with --join, which asks for the
	// configuration in force when it starts and waits until one lists it
	// (askToJoin): it stays down until then.
	joining bool

	// The clock: it runs at rate per mille of real time, also while the
	// process is stopped; ticked is what the replica has been handed.
	rate         int
	clk          int64 // thousandths of a tick since the process started
	ticked       int64
	stalledUntil int // the process is stopped while the step is below this

	disk     simDisk
	unsynced []simWrite
	// phantom holds writes a failed fsync left in the page cache only: a
	// replica rebuilt from the page cache believes it holds them, the disk
	// does not (the retryFsync bug).
	phantom []simWrite

	// Volatile.
	applied    uint64
	appConf    Configuration // the configuration its state machine applied last
	appConfAt  uint64
	lastCommit uint64
	reads      map[uint64]simRead // read context -> read in progress

	// Large files (simfiles_test.go): the chunks of applied files it
	// lacks, when its fetcher next tries, the chunks it lost and does not
	// hold again yet (the harness's record), and whether it left the
	// cluster for good.
	missing    map[string]bool
	fetchAt    int
	lost       map[string]bool
	departed   bool
	lostSeen   map[string]int      // chunk -> fetch rounds in a row no member held it
	viewConf   Configuration       // the configuration in force it last saw (node.noteConfig)
	left       []NodeID            // members that configurations it saw in force dropped (node memberView.left)
	fetching   map[string]simFetch // chunks on their way to it
	handoffAt  int                 // removed and lingering: the step of its next handoff round
	wasLearner bool                // its core's membership was Learner last
}

func (n *simNode) stalled(now int) bool { return now < n.stalledUntil }

// up reports whether the process runs and can act now.
func (n *simNode) up(now int) bool { return n.alive && !n.stalled(now) }

type simRead struct {
	needSlot uint64 // every write acknowledged before the read began
	index    uint64
	granted  bool
}

type simClient struct {
	id       int
	seq      int
	pending  string     // command in flight, "" if none
	upload   *simUpload // its chunks, until a majority stored them
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
	net   map[int][]simMsg   // step -> messages due then
	cut   map[[2]NodeID]bool // directed links that drop everything
	slow  map[[2]NodeID]int  // directed links with extra delay, in steps

	// Global record, for the invariants.
	initial   Configuration
	confs     []simConf                             // configurations chosen (by the vote record), by slot
	quiet     bool                                  // the clients stopped: the run's end
	nextID    NodeID                                // the next spare to add
	proposals map[uint64]map[Ballot]string          // slot -> ballot -> the value its proposer gave it
	votes     map[uint64]map[Ballot]map[NodeID]bool // slot -> ballot -> who claimed a vote
	chosen    map[uint64]string                     // slot -> value chosen (by the vote record)
	applied   map[uint64]string                     // slot -> value some replica applied
	masters   map[Ballot]NodeID
	acked     map[string]uint64 // command -> slot, once its proposer applied it
	ackedMax  uint64
	proposed  map[string]NodeID // command -> proposer
	// Large files: the chunks each names, and the slot that chose it.
	fileChunks map[string][]string
	fileSlot   map[string]uint64
	fileChosen map[string]fileWait // files chosen, not yet acknowledged: the proxy confirms
	gaveUp     map[string]bool     // files chosen that the proxy never confirmed

	clients []*simClient
	nextCtx uint64
	trace   uint64
	stats   simStats
	err     *simViolation
	// debug, when set, receives a line per event (make sim SEED=n
	// SIMFLAGS=-sim.debug), for reading how a failing seed got there.
	debug func(string)
}

func (s *sim) logf(format string, args ...any) {
	if s.debug != nil {
		s.debug(fmt.Sprintf("%5d ", s.now) + fmt.Sprintf(format, args...))
	}
}

// simConf is a configuration the vote record found chosen at slot.
type simConf struct {
	slot uint64
	conf Configuration
}

// simViolation is a broken invariant; kind names which one, so a planted
// bug is known to be caught by the invariant it breaks.
type simViolation struct {
	kind string
	msg  string
}

func (v *simViolation) Error() string { return v.kind + ": " + v.msg }

// The invariants.
const (
	invAgreement  = "agreement"    // one value per slot, applied as chosen
	invStaleRead  = "stale read"   // a linearizable read sees every write acknowledged before it
	invOneMaster  = "one master"   // one master per ballot
	invApplyOrder = "apply order"  // slots applied in order, commit never goes back
	invProposal   = "one proposal" // a ballot proposes one value per slot
	invLiveness   = "liveness"     // pending proposals chosen once the faults stop
	invInternal   = "internal"     // the core panicked on a broken invariant, or the harness failed
)

type simStats struct {
	chosen, reads, elections, crashes, snapshots, wipes, handovers                      int
	stalls, late, resets, lossyCrashes, lostWrites, fsyncFails, losses, rots, reconfigs int
	files, fetches, unconfirmed                                                         int // large files acknowledged, chunks fetched from peers, files never confirmed
}

func (a *simStats) add(b simStats) {
	a.chosen += b.chosen
	a.reads += b.reads
	a.elections += b.elections
	a.crashes += b.crashes
	a.snapshots += b.snapshots
	a.wipes += b.wipes
	a.handovers += b.handovers
	a.stalls += b.stalls
	a.late += b.late
	a.resets += b.resets
	a.lossyCrashes += b.lossyCrashes
	a.lostWrites += b.lostWrites
	a.fsyncFails += b.fsyncFails
	a.losses += b.losses
	a.rots += b.rots
	a.reconfigs += b.reconfigs
	a.files += b.files
	a.fetches += b.fetches
	a.unconfirmed += b.unconfirmed
}

func valueKey(v Value) string {
	switch v.Kind {
	case ValueNoop:
		return "noop"
	case ValueConfig:
		c, err := ParseConfiguration(v)
		if err != nil {
			return "config?"
		}
		return "config " + c.String()
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
		rng:       rand.New(rand.NewPCG(seed, 0xfeed)),
		net:       map[int][]simMsg{},
		cut:       map[[2]NodeID]bool{},
		slow:      map[[2]NodeID]int{},
		proposals: map[uint64]map[Ballot]string{},
		votes:     map[uint64]map[Ballot]map[NodeID]bool{},
		chosen:    map[uint64]string{},
		applied:   map[uint64]string{},
		masters:   map[Ballot]NodeID{},
		acked:     map[string]uint64{},
		proposed:  map[string]NodeID{},

		fileChunks: map[string][]string{},
		fileSlot:   map[string]uint64{},
		fileChosen: map[string]fileWait{},
		gaveUp:     map[string]bool{},
	}
	var voters []NodeID
	for i := 1; i <= o.nodes; i++ {
		voters = append(voters, NodeID(i))
	}
	s.initial = NewConfiguration(voters, nil)
	spares := 0
	if o.reconfRate > 0 {
		spares = 4
	}
	for i := 1; i <= o.nodes+spares; i++ {
		s.ids = append(s.ids, NodeID(i))
		n := &simNode{id: NodeID(i), disk: simDisk{membership: Fresh}, joinConf: s.initial} // a new cluster: every directory empty
		s.nodes = append(s.nodes, n)
		if i <= o.nodes {
			s.start(n)
		} else {
			n.dormant = true
		}
	}
	s.nextID = NodeID(o.nodes + 1)
	for i := 0; i < o.clients; i++ {
		s.clients = append(s.clients, &simClient{id: i})
	}
	return s
}

// chance draws an event of probability p per tick for this step.
func (s *sim) chance(p float64) bool {
	return p > 0 && s.rng.Float64() < p/float64(s.o.res)
}

// steps converts ticks to simulation steps.
func (s *sim) steps(ticks int) int { return ticks * s.o.res }

func (s *sim) fail(kind, format string, args ...any) {
	if s.err == nil {
		s.err = &simViolation{kind: kind, msg: fmt.Sprintf("step %d: "+format, append([]any{s.now}, args...)...)}
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

// hardState is what a replica restores from: its disk, and with the
// retryFsync bug the writes only the page cache still shows.
func (n *simNode) hardState(skipPromise bool) HardState {
	d := n.disk
	d.log = slices.Clone(d.log)
	for _, w := range n.phantom {
		persistTo(&d, &w.rd)
	}
	hs := HardState{Promise: d.promise, Entries: d.log, Committed: d.committed, Applied: d.snapSlot, Membership: d.membership,
		Config: d.snapConf, ConfigSlot: d.snapConfAt}
	if skipPromise {
		hs.Promise = Ballot{}
	}
	return hs
}

// start boots n from its disk, with a fresh clock.
func (s *sim) start(n *simNode) {
	hs := n.hardState(s.o.bugs.skipPromiseOnCrash)
	cfg := s.o.config(n.id, n.joinConf, rand.New(rand.NewPCG(s.seed, uint64(n.id)<<32|uint64(s.now))))
	cfg.bugs = s.o.bugs
	cfg.SideState = s.o.fileRate > 0 && !s.o.node.promoteWithoutChunks
	cfg.Incarnation = uint64(s.now)<<8 | uint64(n.id) // unique per start, and no draw from the seed's stream
	r, err := New(cfg, hs)
	if err != nil {
		s.fail(invInternal, "start %d: %v", n.id, err)
		return
	}
	n.r, n.alive, n.applied, n.lastCommit = r, true, n.disk.snapSlot, 0
	n.appConf, n.appConfAt = n.disk.snapConf, n.disk.snapConfAt // the state machine's at the snapshot
	n.clk, n.ticked, n.stalledUntil = 0, 0, 0
	n.rate = 1000
	if s.o.drift > 0 {
		n.rate = 1000 - s.o.drift + s.rng.IntN(2*s.o.drift+1)
	}
	n.reads = map[uint64]simRead{}
	n.wasLearner = hs.Membership == Learner
	n.lostSeen = nil // the fetcher's memory
	n.viewConf, n.left, n.fetching = Configuration{}, nil, nil
	s.scanFiles(n)
}

// restart boots a crashed replica, first drawing the storage faults a
// restart can meet.
func (s *sim) restart(n *simNode) {
	if s.allVoters() && s.rng.Float64() < s.o.lossRate {
		s.losePiece(n)
	} else if s.allVoters() && s.rng.Float64() < s.o.rotRate && len(n.disk.log) > n.disk.lastBatch {
		// Bit rot in the last batch: its checksum fails. The batch may
		// have been acknowledged, so it is damage, not a torn write; the
		// node refuses to start until --repair cuts it, and then rejoins as
		// a learner.
		n.disk.log = n.disk.log[:n.disk.lastBatch]
		n.disk.lastBatch = len(n.disk.log)
		n.disk.committed = n.disk.committedBefore
		if !s.o.node.rotAsTorn {
			n.disk.membership = Learner
		}
		s.stats.rots++
		s.logf("node %d: last batch damaged", n.id)
		s.mix(22, uint64(n.id))
	}
	s.start(n)
	s.logf("node %d: restart: promise %v, %d log entries, membership %v", n.id, n.disk.promise, len(n.disk.log), n.disk.membership)
	s.mix(10, uint64(n.id))
}

// losePiece removes one piece of n's durable state, as a disk or an
// operator losing one file would; the storage layer notices and the
// replica rejoins as a learner.
func (s *sim) losePiece(n *simNode) {
	kinds := 3
	if s.o.fileRate > 0 {
		kinds = 4
	}
	switch s.rng.IntN(kinds) {
	case 0: // the acceptor file: the promise and the learner marker
		n.disk.promise = Ballot{}
		n.disk.membership = Voter
	case 1: // the log directory
		n.disk.log, n.disk.lastBatch, n.disk.committed = nil, 0, 0
	case 2: // the snapshot
		if n.disk.snapSlot == 0 {
			return
		}
		n.disk.snapSlot = 0
	case 3: // a chunk file: the node fetches it again, it does not stop voting
		if s.loseChunk(n) {
			s.stats.losses++
		}
		return
	}
	if !s.o.node.ignoreLoss {
		n.disk.membership = Learner
	}
	s.stats.losses++
	s.logf("node %d: lost a piece of durable state", n.id)
	s.mix(21, uint64(n.id))
}

// crash stops n. What reached the disk stays: every synced write, and a
// random prefix of the writes not yet synced (the page cache may have
// flushed them); the rest is lost, as in a power cut.
func (s *sim) crash(n *simNode) {
	// The peers' connections from n close (in the real node, TCP resets).
	for _, o := range s.nodes {
		if o.up(s.now) && o != n && !s.cut[[2]NodeID{n.id, o.id}] {
			o.r.PeerLost(n.id)
		}
	}
	kept := s.rng.IntN(len(n.unsynced) + 1)
	for i := 0; i < kept; i++ {
		persistTo(&n.disk, &n.unsynced[i].rd)
	}
	if lost := len(n.unsynced) - kept; lost > 0 {
		s.stats.lossyCrashes++
		s.stats.lostWrites += lost
	}
	n.unsynced, n.phantom = nil, nil
	n.alive = false
	n.r = nil
	n.downFor = s.steps(5 + s.rng.IntN(40))
	s.stats.crashes++
	s.logf("node %d: crash (kept %d of %d unsynced writes)", n.id, kept, kept+len(n.unsynced))
	s.mix(9, uint64(n.id), uint64(kept))
}

func (s *sim) node(id NodeID) *simNode { return s.nodes[id-1] }

// allVoters reports whether no replica is fresh or a learner: losses stay
// within the fault model (a minority forgets at a time).
func (s *sim) allVoters() bool {
	for _, n := range s.nodes {
		if n.dormant {
			continue
		}
		if n.disk.membership != Voter || (n.r != nil && n.r.learn.membership != Voter) || s.recovering(n) {
			return false
		}
	}
	return true
}

// wipe empties n's disk, as an operator deleting its data directory.
func (s *sim) wipe(n *simNode) {
	n.disk = simDisk{membership: Fresh}
	s.checkFiles()
	// A replica of the initial configuration starts from --peers; one
	// that joined later starts with --join (mayJoin).
	n.joining = !n.joinConf.Equal(s.initial)
	s.stats.wipes++
	s.logf("node %d: wiped", n.id)
	s.mix(19, uint64(n.id))
}

// mayJoin reports whether n may start now: a wiped replica that joins
// with --join asks a peer for the configuration in force (the newest
// chosen, by the vote record) and starts with it only once it lists n.
func (s *sim) mayJoin(n *simNode) bool {
	if !n.joining {
		return true
	}
	k := len(s.confs)
	if k == 0 {
		return false
	}
	c := s.confs[k-1]
	if _, ok := c.conf.Member(n.id); !ok {
		s.logf("node %d: --join: the configuration of slot %d does not list it yet", n.id, c.slot)
		return false
	}
	n.joining = false
	n.disk.snapConf, n.disk.snapConfAt = c.conf, c.slot
	s.logf("node %d: --join: starts with the configuration of slot %d: %v", n.id, c.slot, c.conf)
	return true
}

func (s *sim) send(from NodeID, msgs []Message) {
	for _, m := range msgs {
		if m.Type == MsgAccepted && !m.Reject {
			s.claim(from, m)
		}
		if s.cut[[2]NodeID{from, m.To}] || s.rng.Float64() < s.o.loss {
			continue
		}
		at := s.now + 1 + s.steps(s.slow[[2]NodeID{from, m.To}]) + s.rng.IntN(s.o.maxDelay)
		if s.o.lateRate > 0 && s.rng.Float64() < s.o.lateRate {
			at += s.steps(20 + s.rng.IntN(s.o.lateMax))
			s.stats.late++
			s.logf("late: %s, due at %d", fmtMsg(m), at)
		}
		s.enqueue(simMsg{m: m, at: at})
		if s.rng.Float64() < s.o.dup {
			s.enqueue(simMsg{m: m, at: s.now + 1 + s.rng.IntN(s.o.maxDelay+2)})
		}
	}
}

// enqueue puts m in the network, to be delivered at m.at.
func (s *sim) enqueue(m simMsg) {
	s.net[m.at] = append(s.net[m.at], m)
}

// persistTo writes rd's durable parts to d.
func persistTo(d *simDisk, rd *Ready) {
	if rd.MembershipChanged {
		d.membership = rd.Membership
	}
	if rd.PromiseChanged {
		d.promise = rd.Promise
	}
	if len(rd.Accepted) > 0 || rd.PersistCommit {
		d.lastBatch, d.committedBefore = len(d.log), d.committed
		d.log = append(d.log, rd.Accepted...)
		if rd.Committed > d.committed {
			d.committed = rd.Committed
		}
	}
}

// propose records the values a master gives slots under its own ballot.
func (s *sim) propose(n *simNode, rd *Ready) {
	for _, e := range rd.Accepted {
		if e.Ballot.Node != n.id {
			continue
		}
		byBallot := s.proposals[e.Slot]
		if byBallot == nil {
			byBallot = map[Ballot]string{}
			s.proposals[e.Slot] = byBallot
		}
		k := valueKey(e.Value)
		if prev, ok := byBallot[e.Ballot]; ok && prev != k {
			s.fail(invProposal, "slot %d ballot %v: proposed %q and %q", e.Slot, e.Ballot, prev, k)
		}
		byBallot[e.Ballot] = k
	}
}

// claim records the votes an Accepted message claims.
func (s *sim) claim(from NodeID, m Message) {
	for slot := m.Slot; slot <= m.Index; slot++ {
		s.vote(from, slot, m.Ballot)
	}
}

// vote records that id voted for slot under ballot b, and what that
// chooses.
func (s *sim) vote(id NodeID, slot uint64, b Ballot) {
	value, ok := s.proposals[slot][b]
	if !ok {
		s.fail(invProposal, "node %d voted for slot %d at %v, which its ballot never proposed", id, slot, b)
		return
	}
	byBallot := s.votes[slot]
	if byBallot == nil {
		byBallot = map[Ballot]map[NodeID]bool{}
		s.votes[slot] = byBallot
	}
	by := byBallot[b]
	if by == nil {
		by = map[NodeID]bool{}
		byBallot[b] = by
	}
	by[id] = true
	s.logf("vote: node %d slot %d at %v (%q)", id, slot, b, value)
	s.judge(slot, b)
}

// confAt returns the configuration that governs slot by the vote record:
// the one chosen at the highest configuration slot below it.
func (s *sim) confAt(slot uint64) Configuration {
	c := s.initial
	for _, sc := range s.confs {
		if sc.slot < slot {
			c = sc.conf
		}
	}
	return c
}

// judge decides whether the votes for slot under ballot b choose its
// value, counting the voters of the slot's own configuration. A
// configuration that becomes chosen changes which configuration governs
// the slots after it, so those are judged again.
func (s *sim) judge(slot uint64, b Ballot) {
	by := s.votes[slot][b]
	conf := s.confAt(slot)
	n := 0
	for id := range by {
		if conf.IsVoter(id) {
			n++
		}
	}
	if n < conf.Quorum() {
		return
	}
	value := s.proposals[slot][b]
	if c, ok := s.chosen[slot]; ok {
		if c != value {
			s.fail(invAgreement, "slot %d: chose %q and %q (at %v, by %v, configuration %v)", slot, c, value, b, keys(by), conf)
		}
		return
	}
	s.chosen[slot] = value
	if strings.HasPrefix(value, "config ") {
		c, err := parseConfigKey(value)
		if err != nil {
			return
		}
		s.confs = append(s.confs, simConf{slot: slot, conf: c})
		slices.SortFunc(s.confs, func(a, b simConf) int { return cmp.Compare(a.slot, b.slot) })
		later := make([]uint64, 0)
		for t := range s.votes {
			if t > slot {
				later = append(later, t)
			}
		}
		slices.Sort(later)
		for _, t := range later {
			for bb := range s.votes[t] {
				s.judge(t, bb)
			}
		}
	}
}

// parseConfigKey turns a valueKey of a configuration back into it.
func parseConfigKey(k string) (Configuration, error) {
	var c Configuration
	for _, f := range strings.Fields(strings.TrimPrefix(k, "config ")) {
		voter := !strings.HasPrefix(f, "+")
		id, err := strconv.ParseUint(strings.TrimPrefix(f, "+"), 10, 64)
		if err != nil {
			return c, err
		}
		c.Members = append(c.Members, Member{ID: NodeID(id), Voter: voter})
	}
	return c, nil
}

func keys(m map[NodeID]bool) []NodeID {
	var out []NodeID
	for id := range m {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// handleReady does what the node's event loop does: takes every Ready,
// sends its early messages, and hands the rest to the disk.
func (s *sim) handleReady(n *simNode) {
	for n.up(s.now) && n.r.HasReady() {
		rd := n.r.Ready()
		s.mix(uint64(n.id), uint64(len(rd.Messages)), uint64(len(rd.Accepted)), uint64(len(rd.Chosen)))
		if rd.SoftState != nil {
			s.logf("node %d: %s", n.id, fmtSoft(*rd.SoftState))
			if rd.SoftState.Removed {
				// The configuration in force does not include it: the node
				// exits, and is never started again.
				cur, at, _ := n.r.Configuration()
				s.crash(n)
				n.dormant, n.departed = true, true
				s.checkFiles()
				s.logf("node %d: removed by the configuration %v of slot %d; it stops", n.id, cur, at)
				return
			}
		}
		if rd.MembershipChanged {
			s.logf("node %d: membership %v", n.id, rd.Membership)
			if rd.Membership == Voter && n.wasLearner && s.o.fileRate > 0 {
				s.checkPromotedChunks(n)
			}
			n.wasLearner = rd.Membership == Learner
		}
		if rd.SoftState != nil && rd.SoftState.Role == Master {
			if other, ok := s.masters[rd.SoftState.Ballot]; ok && other != n.id {
				s.fail(invOneMaster, "ballot %v: two masters %d and %d", rd.SoftState.Ballot, other, n.id)
			}
			if _, ok := s.masters[rd.SoftState.Ballot]; !ok {
				s.stats.elections++
			}
			s.masters[rd.SoftState.Ballot] = n.id
		}
		s.propose(n, &rd)
		s.send(n.id, rd.Messages)
		if s.o.node.sendEarly {
			s.send(n.id, rd.MessagesAfterPersist) // planted bug (a)
			rd.MessagesAfterPersist = nil
		}
		due := s.now
		if s.o.diskDelay > 0 && rd.NeedsPersist() && !(rd.PersistCommit && !rd.PromiseChanged && !rd.MembershipChanged && len(rd.Accepted) == 0) {
			// (A commit hint alone draws no delay: the seeds found before
			// PersistCommit keep their schedules.)
			due += s.rng.IntN(s.o.diskDelay + 1)
		}
		n.unsynced = append(n.unsynced, simWrite{rd: rd, due: due})
		s.sync(n)
	}
}

// sync completes the fsyncs that are due, in order, and does what the
// persister does after each: sends the votes, applies, serves reads,
// advances the core.
func (s *sim) sync(n *simNode) {
	for n.up(s.now) && len(n.unsynced) > 0 && n.unsynced[0].due <= s.now && s.err == nil {
		w := n.unsynced[0]
		rd := &w.rd
		if rd.NeedsPersist() && s.o.fsyncFail > 0 && s.rng.Float64() < s.o.fsyncFail {
			s.fsyncFailed(n)
			return
		}
		n.unsynced = n.unsynced[1:]
		persistTo(&n.disk, rd)
		for _, e := range rd.Accepted {
			if e.Ballot.Node == n.id && e.Ballot == rd.ballot {
				s.vote(n.id, e.Slot, e.Ballot) // a master counts itself once synced
			}
		}
		s.send(n.id, rd.MessagesAfterPersist)
		s.apply(n, rd.Chosen)
		s.snapshot(n)
		if rd.NeedSnapshot != None {
			s.installSnapshot(n, s.node(rd.NeedSnapshot))
		}
		s.readStates(n, rd.ReadStates)
		n.r.Advance(*rd)
		s.noteLeft(n)
		if c := n.r.Committed(); c < n.lastCommit {
			s.fail(invApplyOrder, "node %d: commit index went back from %d to %d", n.id, n.lastCommit, c)
		} else {
			n.lastCommit = c
		}
		s.serveReads(n)
	}
}

// fsyncFailed handles a failed fsync. The node exits: what reached the disk
// of the writes not yet known durable is unknown, so the crash keeps a
// random prefix of them. With the retryFsync bug it instead rebuilds in
// place from the page cache, which shows every write, durable or not.
func (s *sim) fsyncFailed(n *simNode) {
	s.stats.fsyncFails++
	s.mix(23, uint64(n.id))
	if !s.o.node.retryFsync {
		s.crash(n)
		return
	}
	n.phantom = append(n.phantom, n.unsynced...)
	n.unsynced = nil
	s.start(n)
}

func (s *sim) apply(n *simNode, chosen []Entry) {
	for _, e := range chosen {
		if e.Slot <= n.applied && e.Slot <= n.disk.snapSlot {
			continue // a snapshot installed meanwhile covers it
		}
		if e.Slot != n.applied+1 {
			s.fail(invApplyOrder, "node %d: applied slot %d after %d", n.id, e.Slot, n.applied)
			return
		}
		n.applied = e.Slot
		if e.Value.Kind == ValueConfig {
			if c, err := ParseConfiguration(e.Value); err == nil {
				n.appConf, n.appConfAt = c, e.Slot
			}
		}
		k := valueKey(e.Value)
		if c, ok := s.chosen[e.Slot]; !ok || c != k {
			s.fail(invAgreement, "node %d applied %q at slot %d, but the votes chose %q (chosen=%v)", n.id, k, e.Slot, c, ok)
		}
		if prev, ok := s.applied[e.Slot]; ok && prev != k {
			s.fail(invAgreement, "node %d applied %q at slot %d where another applied %q", n.id, k, e.Slot, prev)
		}
		s.applied[e.Slot] = k
		if s.o.fileRate > 0 {
			s.appliedFile(n, e.Slot, e.Value)
		}
		if e.Value.Kind != ValueCmds {
			continue
		}
		for _, c := range e.Value.Cmds {
			cmd := string(c)
			if s.proposed[cmd] == n.id {
				if strings.HasPrefix(cmd, "f") && !s.o.node.ackUnconfirmed {
					// The proxy acknowledges a large file only once a
					// majority holds its chunks (confirmed).
					if _, ok := s.fileChosen[cmd]; !ok {
						s.fileChosen[cmd] = fileWait{slot: e.Slot, at: s.now}
					}
					continue
				}
				s.ack(cmd, e.Slot)
			}
		}
	}
}

// ack records that cmd's client heard OK for it, chosen at slot.
func (s *sim) ack(cmd string, slot uint64) {
	if _, ok := s.acked[cmd]; ok {
		return
	}
	s.acked[cmd] = slot
	s.stats.chosen++
	if strings.HasPrefix(cmd, "f") {
		s.stats.files++
	}
	if slot > s.ackedMax {
		s.ackedMax = slot
	}
}

// snapshot takes a snapshot every snapEvery applied slots and compacts the
// log behind it, keeping a window.
func (s *sim) snapshot(n *simNode) {
	if s.o.snapEvery == 0 || n.applied < n.disk.snapSlot+s.o.snapEvery {
		return
	}
	n.disk.snapSlot = n.applied
	if n.appConfAt >= n.disk.snapConfAt || len(n.disk.snapConf.Members) == 0 {
		// A replica that joined keeps the configuration it joined, until
		// it applies a newer one.
		n.disk.snapConf, n.disk.snapConfAt = n.appConf, n.appConfAt
	}
	if n.disk.snapSlot > s.o.window {
		upTo := n.disk.snapSlot - s.o.window
		n.r.Compact(upTo)
		n.disk.compact(upTo)
	}
	s.mix(17, uint64(n.id), n.disk.snapSlot)
}

// installSnapshot copies from's durable snapshot to n, if it is newer.
func (s *sim) installSnapshot(n, from *simNode) {
	if !from.up(s.now) || s.cut[[2]NodeID{from.id, n.id}] || from.disk.snapSlot <= n.applied {
		return
	}
	slot := from.disk.snapSlot
	if !n.r.RestoreSnapshot(slot, from.disk.snapConf, from.disk.snapConfAt) {
		return
	}
	n.disk.snapSlot, n.applied = slot, slot
	if from.disk.snapConfAt >= n.disk.snapConfAt {
		n.disk.snapConf, n.disk.snapConfAt = from.disk.snapConf, from.disk.snapConfAt
	}
	n.appConf, n.appConfAt = n.disk.snapConf, n.disk.snapConfAt
	n.disk.compact(slot)
	s.scanFiles(n)
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
			s.fail(invStaleRead, "node %d: linearizable read (ctx %d) served at slot %d with index %d, misses a write acknowledged at slot %d before it began",
				n.id, ctx, n.applied, rd.index, rd.needSlot)
		}
		s.stats.reads++
		delete(n.reads, ctx)
	}
}

// faults draws this step's crashes, restarts, stalls, resets and
// partitions.
func (s *sim) faults() {
	for _, n := range s.nodes {
		switch {
		case n.alive && s.chance(s.o.wipeRate) && s.allVoters():
			s.crash(n)
			s.wipe(n)
		case n.alive && s.chance(s.o.crashRate):
			s.crash(n)
		case n.up(s.now) && s.chance(s.o.stallRate):
			s.stall(n)
		case !n.alive && !n.dormant:
			n.downFor--
			if n.downFor <= 0 && s.mayJoin(n) {
				s.restart(n)
			}
		}
	}
	if m := s.masterNode(); m != nil && s.chance(s.o.reconfRate) {
		s.reconfigure(m)
	}
	if m := s.masterNode(); m != nil && s.chance(s.o.handRate) {
		if to, err := m.r.TransferMastership(); err == nil {
			s.stats.handovers++
			s.logf("node %d: hands over to %d", m.id, to)
			s.mix(20, uint64(m.id), uint64(to))
		}
	}
	if m := s.masterNode(); m != nil && m.alive && s.chance(s.o.resetRate/4) {
		// The master's host loses its network: every connection to it
		// resets, and it stays cut off for a while, still believing it
		// leads.
		for _, b := range s.nodes {
			if b != m && b.up(s.now) {
				b.r.PeerLost(m.id)
			}
			if b != m {
				s.cut[[2]NodeID{m.id, b.id}], s.cut[[2]NodeID{b.id, m.id}] = true, true
			}
		}
		s.stats.resets++
		s.logf("node %d: master's network lost", m.id)
		s.mix(26, uint64(m.id))
	}
	if s.chance(s.o.resetRate) {
		// A connection closes though both ends live; the receiver takes
		// its peer as lost. Often it is the master's.
		a, b := s.nodes[s.rng.IntN(len(s.nodes))], s.nodes[s.rng.IntN(len(s.nodes))]
		if m := s.masterNode(); m != nil && s.rng.IntN(2) == 0 {
			a = m
		}
		if a != b && a.alive && b.up(s.now) {
			b.r.PeerLost(a.id)
			s.stats.resets++
			s.logf("node %d: connection from %d reset", b.id, a.id)
			s.mix(24, uint64(a.id), uint64(b.id))
		}
	}
	if len(s.cut) > 0 && s.chance(s.o.healRate) {
		clear(s.cut)
		s.mix(11)
	}
	if len(s.cut) == 0 && s.chance(s.o.partRate) {
		s.partition()
	}
	if len(s.slow) > 0 && s.chance(s.o.healRate) {
		clear(s.slow)
		s.mix(15)
	}
	if len(s.slow) == 0 && s.chance(s.o.slowRate) {
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

// reconfigure has the master change the membership: add a spare as a
// learner, promote a learner that caught up, or remove a member, one
// change at a time. An added replica starts on an empty directory with the
// configuration it joins, as `synod node --join` does.
func (s *sim) reconfigure(m *simNode) {
	cur, _, next := m.r.Configuration()
	if next != nil || m.r.inFlight() {
		return
	}
	c := Configuration{Members: slices.Clone(cur.Members)}
	var spare *simNode
	switch k := s.rng.IntN(3); {
	case k == 0 && int(s.nextID) <= len(s.nodes): // add
		spare = s.node(s.nextID)
		c.Members = append(c.Members, Member{ID: spare.id})
		c.sort()
	case k == 1: // promote a learner
		var ls []int
		for i, mm := range c.Members {
			if !mm.Voter {
				ls = append(ls, i)
			}
		}
		if len(ls) == 0 {
			return
		}
		c.Members[ls[s.rng.IntN(len(ls))]].Voter = true
	default: // remove a member other than the master, keeping three voters
		i := s.rng.IntN(len(c.Members))
		if mm := c.Members[i]; mm.ID == m.id || (mm.Voter && len(c.Voters()) <= 3) {
			return
		}
		c.Members = slices.Delete(c.Members, i, i+1)
	}
	slot, err := m.r.ProposeConfig(c)
	s.logf("node %d: proposes configuration %v at slot %d: %v", m.id, c, slot, err)
	if err != nil {
		return
	}
	s.stats.reconfigs++
	s.mix(27, uint64(m.id), slot)
	if spare != nil {
		s.nextID++
		spare.dormant = false
		spare.joinConf = c
		// It never voted: nothing to forget. It knows the configuration it
		// joins, and the slot that will choose it.
		spare.disk = simDisk{membership: Voter, snapConf: c, snapConfAt: slot}
		s.start(spare)
	}
}

// stall stops n's process for a while: a short hiccup, about a lease, or
// many election timeouts. Often the master.
func (s *sim) stall(n *simNode) {
	if m := s.masterNode(); m != nil && s.rng.IntN(2) == 0 {
		n = m
	}
	var d int
	switch k := s.rng.IntN(10); {
	case k < 5:
		d = 1 + s.rng.IntN(4)
	case k < 8:
		d = 5 + s.rng.IntN(20)
	default:
		d = 12 + s.rng.IntN(120)
	}
	n.stalledUntil = s.now + s.steps(d)
	s.stats.stalls++
	s.logf("node %d: stalled for %d", n.id, d)
	s.mix(25, uint64(n.id), uint64(d))
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
		if m := s.masterNode(); m != nil {
			victim = m.id
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

// masterNode returns a replica that believes it is master (the one of the
// highest ballot if several do), nil if none.
func (s *sim) masterNode() *simNode {
	var best *simNode
	for _, n := range s.nodes {
		if n.alive && n.r.role == Master && (best == nil || best.r.masterBallot.Less(n.r.masterBallot)) {
			best = n
		}
	}
	return best
}

// clientsAct proposes and reads. A client keeps one command in flight and
// sends it again (same command) to whoever is master when it lingers.
func (s *sim) clientsAct() {
	if s.quiet {
		return
	}
	for _, c := range s.clients {
		if c.pending != "" {
			if _, ok := s.acked[c.pending]; ok {
				c.pending, c.upload = "", nil
			}
		}
		if c.pending != "" && s.confirmFile(c) {
			continue // chosen: the proxy waits for its chunks, sends nothing
		}
		if c.pending == "" {
			if !s.chance(s.o.proposeRate) {
				continue
			}
			c.seq++
			c.pending = fmt.Sprintf("c%d.%d", c.id, c.seq)
			if s.o.fileRate > 0 && s.rng.Float64() < s.o.fileRate {
				c.pending = fmt.Sprintf("f%d.%d", c.id, c.seq)
				c.upload = s.newUpload(c.pending)
			}
			c.sentAt = s.now
			c.lastSend = -1 << 30
		}
		if c.upload != nil && !c.upload.done {
			if !s.upload(c.upload) {
				continue
			}
			c.upload.done = true
		}
		if s.now-c.lastSend < s.steps(20) {
			continue
		}
		// Propose through a random replica; only a master takes it.
		n := s.nodes[s.rng.IntN(len(s.nodes))]
		if !n.up(s.now) {
			continue
		}
		if _, err := n.r.Propose([][]byte{[]byte(c.pending)}); err == nil {
			c.lastSend = s.now
			// A retry is acknowledged when the replica it went to applies it.
			s.proposed[c.pending] = n.id
			s.mix(13, uint64(n.id))
		}
	}
	if s.chance(s.o.readRate) {
		n := s.nodes[s.rng.IntN(len(s.nodes))]
		if n.up(s.now) {
			s.nextCtx++
			n.reads[s.nextCtx] = simRead{needSlot: s.ackedMax}
			n.r.ReadIndex(s.nextCtx)
			s.mix(14, uint64(n.id))
		}
	}
}

// clock runs every live replica's clock one step and hands a running
// replica every tick it is due, before it handles anything else: a replica
// that was stopped wakes up older (with the oldTicks bug it gets one tick,
// as a node counting timer wake-ups would).
func (s *sim) clock(n *simNode) {
	if !n.alive {
		return
	}
	n.clk += int64(n.rate)
	if n.stalled(s.now) {
		return
	}
	due := n.clk/int64(1000*s.o.res) - n.ticked
	if due <= 0 {
		return
	}
	if s.o.node.oldTicks && due > 1 {
		n.ticked += due - 1
		due = 1
	}
	n.ticked += due
	n.r.Elapse(int(due))
}

// step runs one step of real time: clocks, fsyncs, deliveries, clients,
// faults, Ready handling.
func (s *sim) step(faulty bool) {
	s.now++
	for _, n := range s.nodes {
		s.clock(n)
		s.handleReady(n)
		s.sync(n)
	}
	// Deliver what is due, in a random order. Messages to a stopped
	// process wait in its socket buffer until it runs again.
	var due []simMsg
	for _, m := range s.net[s.now] {
		if to := s.node(m.m.To); to.stalled(s.now) {
			m.at = to.stalledUntil
			s.enqueue(m)
		} else {
			due = append(due, m)
		}
	}
	delete(s.net, s.now)
	s.rng.Shuffle(len(due), func(i, j int) { due[i], due[j] = due[j], due[i] })
	for _, dm := range due {
		n := s.node(dm.m.To)
		if !n.alive {
			continue
		}
		s.mix(uint64(dm.m.Type), uint64(dm.m.From), uint64(dm.m.To), dm.m.Slot)
		if s.debug != nil {
			s.logf("%s", fmtMsg(dm.m))
		}
		n.r.Step(dm.m)
		s.handleReady(n)
		if s.err != nil {
			return
		}
	}
	s.clientsAct()
	for _, n := range s.nodes {
		s.fetchChunks(n)
		s.handOff(n)
		s.refusedRemoval(n)
	}
	if faulty {
		s.faults()
	} else {
		for _, n := range s.nodes {
			if !n.alive && !n.dormant && n.joining && s.mayJoin(n) {
				s.start(n) // a wiped replica whose configuration came in force
			}
		}
	}
	for _, n := range s.nodes {
		s.handleReady(n)
		s.sync(n)
	}
}

// heal ends every fault: links mended, processes running, replicas
// restarted, no loss.
func (s *sim) heal() {
	clear(s.cut)
	clear(s.slow)
	s.o.loss, s.o.dup, s.o.lateRate, s.o.fsyncFail = 0, 0, 0, 0
	for _, n := range s.nodes {
		n.stalledUntil = 0
		if !n.alive && !n.dormant && s.mayJoin(n) {
			s.start(n)
		}
	}
}

// run returns the first invariant violated, or nil.
func (s *sim) run() *simViolation {
	for s.now < s.steps(s.o.ticks) && s.err == nil {
		s.step(true)
	}
	if s.err != nil || !s.o.liveness {
		return s.err
	}
	s.heal()
	// Liveness: every client's pending command is chosen within a bounded
	// time: a learner's wait, then 10 election timeouts (the longest
	// timeout is 2*ElectionTicks).
	healed := s.now
	var waiting []string
	for _, c := range s.clients {
		if c.pending != "" {
			waiting = append(waiting, c.pending)
		}
	}
	cfg := s.o.config(1, s.initial, nil)
	limit := healed + s.steps(10*2*cfg.ElectionTicks+learnerWait(cfg))
	var stuck []string
	for s.now < limit && s.err == nil {
		s.step(false)
		stuck = stuck[:0]
		for _, cmd := range waiting {
			if _, ok := s.acked[cmd]; !ok && !s.gaveUp[cmd] {
				if _, chosen := s.fileChosen[cmd]; chosen && s.fileGone(cmd) {
					continue // written, its chunks lost: the proxy will answer TIMEOUT
				}
				stuck = append(stuck, cmd)
			}
		}
		if len(stuck) == 0 && s.masterNode() != nil {
			break
		}
	}
	if s.err != nil {
		return s.err
	}
	if len(stuck) > 0 || s.masterNode() == nil {
		return &simViolation{kind: invLiveness, msg: fmt.Sprintf("%d ticks after the faults stopped, still pending %v (master %v); %s",
			(s.now-healed)/s.o.res, stuck, s.masterNode() != nil, s.describeNodes())}
	}
	// And every member votes again and learns everything chosen, a wiped
	// one whatever configuration it started with: the clients stop
	// writing, and a member may take a learner's wait, then ten election
	// timeouts, then two ticks a slot it lacks to catch up.
	s.quiet = true
	var target, low uint64
	for _, n := range s.nodes {
		if n.alive {
			target = max(target, n.r.committed)
		}
	}
	low = target
	for _, n := range s.nodes {
		if n.alive && !n.dormant {
			low = min(low, n.r.committed)
		}
	}
	caughtUp := s.now
	limit = caughtUp + s.steps(10*2*cfg.ElectionTicks+learnerWait(cfg)+2*int(target-low))
	if s.o.fileRate > 0 && s.anyFileGone() {
		// A wiped learner waits that long for a chunk no member holds.
		limit += s.steps((simLostAfter + 1) * 10 * cfg.ElectionTicks)
	}
	var behind []string
	for s.now < limit && s.err == nil {
		s.step(false)
		if behind = s.membersBehind(target); len(behind) == 0 {
			return s.err
		}
	}
	if s.err != nil {
		return s.err
	}
	return &simViolation{kind: invLiveness, msg: fmt.Sprintf("%d ticks after the clients stopped, members %v still do not vote or lack slots up to %d",
		(s.now-caughtUp)/s.o.res, behind, target)}
}

// membersBehind lists the members of the configuration in force (by the
// vote record) that do not vote again, or have not learned every slot up to
// target, once the faults stop: a wiped replica, whatever it started
// with, must find the master and catch up.
func (s *sim) membersBehind(target uint64) []string {
	var behind []string
	conf := s.initial
	if k := len(s.confs); k > 0 {
		conf = s.confs[k-1].conf
	}
	for _, mm := range conf.Members {
		n := s.node(mm.ID)
		switch {
		case n.dormant:
		case !n.alive:
			behind = append(behind, fmt.Sprintf("%d (down)", n.id))
		case n.r.learn.membership != Voter || n.r.committed < target:
			behind = append(behind, fmt.Sprintf("%d (%v, chosen %d, settled %d, lacks %v)", n.id, n.r.learn.membership, n.r.committed, n.r.learn.settled, slices.Sorted(mapKeys(n.missing))))
		case s.chunksBehind(n) != "":
			behind = append(behind, s.chunksBehind(n))
		}
	}
	return behind
}
