// Package paxos is synod's Multi-Paxos core: a pure, deterministic state
// machine in the manner of etcd's raft. It takes ticks, messages, proposals
// and read requests, and hands back a Ready that says what to persist, what
// to send and what was chosen. It starts no goroutines, does no I/O, reads no
// clock and draws randomness only from Config.Rand, so a simulator can replay
// every schedule of messages from a seed.
//
// Every replica is proposer, acceptor and learner. One of them, the master,
// has run phase 1 for every slot from its first unchosen one on and serves
// new proposals with phase 2 alone. See DESIGN.md, "Multi-Paxos".
package paxos

import (
	"errors"
	"slices"
	"strconv"
)

// Errors returned to callers of Propose and ReadIndex.
var (
	// ErrNotMaster is returned by Propose on a replica that is not the
	// master, or whose mastership is being handed over.
	ErrNotMaster = errors.New("paxos: not master")
	// ErrNoTarget is returned by TransferMastership when no follower can
	// take over.
	ErrNoTarget = errors.New("paxos: no follower to hand over to")
	// ErrBusy is returned by Propose when too many slots wait to be chosen.
	ErrBusy = errors.New("paxos: too many proposals in flight")
	// ErrEmptyProposal is returned by Propose when given no commands.
	ErrEmptyProposal = errors.New("paxos: empty proposal")
)

// slotState is what this replica holds for one slot.
type slotState struct {
	present bool
	chosen  bool // the held value is the chosen one
	ballot  Ballot
	value   Value
}

// progress is the master's view of one follower.
type progress struct {
	match      uint64 // every slot from the master's start up to here accepted under its ballot
	next       uint64 // next slot to send
	progressed bool   // match moved since the last heartbeat
	active     bool   // heard from within the current check-quorum window
	readRound  uint64 // highest read round acknowledged
	learner    bool   // it may not vote yet: send it no Accepts
}

// roundSent remembers when a heartbeat round went out: a lease counts from
// there, never from when the acknowledgements arrived.
type roundSent struct {
	round uint64
	at    int
}

// pendingRead is a read index waiting for a confirming round.
type pendingRead struct {
	from    NodeID
	context uint64
	index   uint64
	round   uint64
}

// Replica is one member's Paxos state. It is not safe for concurrent use.
type Replica struct {
	cfg    Config
	id     NodeID
	quorum int

	promise      Ballot
	maxRound     uint64 // highest round seen anywhere, to pick the next ballot
	role         Role
	master       NodeID
	masterBallot Ballot // ballot of the master followed, or own as candidate/master

	log       []slotState // log[i] is slot offset+i
	offset    uint64
	committed uint64
	delivered uint64 // chosen slots handed out in a Ready

	// Timers, in ticks.
	now              int // ticks since this replica started
	electionElapsed  int // since this replica last heard its master or started a campaign
	sinceMaster      int // since it last heard a live master (stickiness)
	electionTimeout  int
	heartbeatElapsed int
	quorumElapsed    int

	// Candidate state.
	preGrants map[NodeID]bool
	promises  map[NodeID]Message
	preparing bool
	forced    bool // the Prepare about to be sent is a handover's

	// Master state.
	transferTo      NodeID // handing over to this follower; None if not
	transferElapsed int
	prs             map[NodeID]*progress
	selfMatch       uint64
	start           uint64      // first slot re-proposed under the own ballot
	noopSlot        uint64      // serving (read indexes) waits until this is chosen
	lastSlot        uint64      // highest slot proposed
	round           uint64      // heartbeat rounds broadcast under this ballot
	confirmed       uint64      // highest round a quorum acknowledged
	roundsSent      []roundSent // rounds not yet confirmed, with when they went out
	leaseUntil      int         // the lease holds while now < leaseUntil
	pendingReads    []pendingRead

	// Membership state.
	membership        Membership
	membershipChanged bool
	freshAcks         map[NodeID]bool // Fresh: peers that answered they are fresh too
	sawPrepare        Ballot          // Learner: newest ballot whose Prepare it refused
	masterStart       uint64          // Learner: the master's no-op slot, from its heartbeats

	// Follower state.
	masterLost   bool   // the master's connection closed since it was last heard
	needSnapshot NodeID // a peer that compacted what this replica lacks
	masterCommit uint64
	fetchWait    int // ticks until another fetch may be sent; 0 = none in flight

	// Outputs gathered for the next Ready.
	msgs           []Message
	msgsAfter      []Message
	accepted       []Entry
	promiseChanged bool
	readStates     []ReadState
	prevSoft       SoftState
}

// New returns a Replica restored from hs (the zero HardState for a new one).
// The promise restored is the highest of hs.Promise and every ballot in the
// log: an Accept raises the promise through the entry it persists.
func New(cfg Config, hs HardState) (*Replica, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Replica{
		cfg:       cfg,
		id:        cfg.ID,
		quorum:    len(cfg.Members)/2 + 1,
		promise:   hs.Promise,
		offset:    hs.Applied + 1, // a snapshot covers everything up to Applied
		committed: hs.Committed,
		delivered: hs.Applied,
	}
	for _, e := range hs.Entries {
		if r.promise.Less(e.Ballot) {
			r.promise = e.Ballot
		}
		if e.Slot < r.offset {
			continue
		}
		s := r.slot(e.Slot, true)
		s.present, s.ballot, s.value = true, e.Ballot, e.Value
	}
	// The committed hint only covers slots actually held.
	for s := r.delivered + 1; s <= r.committed; s++ {
		st := r.slot(s, false)
		if st == nil || !st.present {
			r.committed = s - 1
			break
		}
	}
	for s := r.offset; s <= r.committed; s++ {
		if st := r.slot(s, false); st != nil {
			st.chosen = true
		}
	}
	if r.delivered > r.committed {
		r.committed = r.delivered
	}
	r.maxRound = r.promise.Round
	r.membership = hs.Membership
	if cfg.bugs.wipedVotes && r.membership != Voter {
		r.setMembership(Voter)
	}
	r.becomeFollower(None, Ballot{})
	r.prevSoft = r.softState()
	return r, nil
}

// slot returns the state of slot s, growing the log when grow is set; nil if
// s is not held and grow is false.
func (r *Replica) slot(s uint64, grow bool) *slotState {
	if s < r.offset {
		return nil
	}
	i := s - r.offset
	if i >= uint64(len(r.log)) {
		if !grow {
			return nil
		}
		r.log = append(r.log, make([]slotState, i+1-uint64(len(r.log)))...)
	}
	return &r.log[i]
}

func (r *Replica) lastHeld() uint64 { return r.offset + uint64(len(r.log)) - 1 }

// Status returns the replica's soft state and indexes.
func (r *Replica) Status() (SoftState, uint64) { return r.softState(), r.committed }

// Committed returns the chosen prefix known to this replica.
func (r *Replica) Committed() uint64 { return r.committed }

// Promise returns the highest ballot this replica promised.
func (r *Replica) Promise() Ballot { return r.promise }

func (r *Replica) softState() SoftState {
	return SoftState{Role: r.role, Master: r.master, Ballot: r.masterBallot, Ready: r.isReady(), Transfer: r.transferTo}
}

// isReady reports whether this replica is a master whose own no-op is chosen.
func (r *Replica) isReady() bool {
	return r.role == Master && (r.committed >= r.noopSlot || r.cfg.bugs.serveBeforeNoop)
}

func (r *Replica) send(m Message) {
	m.From = r.id
	r.msgs = append(r.msgs, m)
}

func (r *Replica) sendAfterPersist(m Message) {
	m.From = r.id
	r.msgsAfter = append(r.msgsAfter, m)
}

func (r *Replica) others() []NodeID {
	out := make([]NodeID, 0, len(r.cfg.Members)-1)
	for _, m := range r.cfg.Members {
		if m != r.id {
			out = append(out, m)
		}
	}
	return out
}

func (r *Replica) isMember(id NodeID) bool { return slices.Contains(r.cfg.Members, id) }

func (r *Replica) seeRound(b Ballot) {
	if b.Round > r.maxRound {
		r.maxRound = b.Round
	}
}

func (r *Replica) resetElectionTimer() {
	r.electionElapsed = 0
	r.electionTimeout = r.cfg.ElectionTicks + r.cfg.Rand.IntN(r.cfg.ElectionTicks)
}

// becomeFollower follows master (None if unknown) at ballot b.
func (r *Replica) becomeFollower(master NodeID, b Ballot) {
	if r.role == Master {
		r.failPendingReads()
	}
	r.role = Follower
	r.transferTo = None
	r.master = master
	r.masterBallot = b
	r.preGrants, r.promises, r.preparing = nil, nil, false
	r.prs = nil
	r.masterCommit = 0
	r.fetchWait = 0
	r.masterLost = false
	r.resetElectionTimer()
}

// failPendingReads refuses every read index this master had not yet granted.
func (r *Replica) failPendingReads() {
	for _, pr := range r.pendingReads {
		r.answerRead(pr.from, pr.context, 0, true)
	}
	r.pendingReads = nil
}

func (r *Replica) answerRead(to NodeID, context, index uint64, failed bool) {
	if to == r.id {
		r.readStates = append(r.readStates, ReadState{Context: context, Index: index, Failed: failed})
		return
	}
	r.send(Message{Type: MsgReadIndexResp, To: to, Context: context, Index: index, Reject: failed})
}

// Tick advances the replica's logical clock by one tick.
func (r *Replica) Tick() {
	r.now++
	r.sinceMaster++
	if r.role == Master {
		r.tickMaster()
		return
	}
	r.electionElapsed++
	if r.fetchWait > 0 {
		r.fetchWait--
	}
	if r.membership == Fresh && r.electionElapsed%r.cfg.HeartbeatTicks == 0 {
		for _, to := range r.others() {
			r.send(Message{Type: MsgProbe, To: to})
		}
	}
	if r.electionElapsed >= r.electionTimeout && r.membership == Voter {
		r.campaign()
	}
}

// isFresh reports whether this replica has never promised or accepted.
func (r *Replica) isFresh() bool {
	return r.membership == Fresh || (r.membership == Voter && r.promise.IsZero() && r.offset == 1 && len(r.log) == 0)
}

func (r *Replica) setMembership(m Membership) {
	r.membership = m
	r.membershipChanged = true
}

// handleProbeResp decides what a replica on an empty directory is: if every
// other member is fresh too, the cluster is new and nothing was ever chosen,
// so it may vote; if anyone is not, its directory was wiped. A quorum of
// fresh answers is not enough: a member that never took part answers fresh
// too, and with the wiped one it would make a quorum that knows nothing.
func (r *Replica) handleProbeResp(m Message) {
	if r.membership != Fresh {
		return
	}
	if m.Reject {
		r.setMembership(Learner)
		return
	}
	if r.freshAcks == nil {
		r.freshAcks = map[NodeID]bool{}
	}
	r.freshAcks[m.From] = true
	if len(r.freshAcks) == len(r.cfg.Members)-1 {
		r.setMembership(Voter)
	}
}

// maybePromote lets a learner vote again once the master it follows ran its
// phase 1 without it (it refused that Prepare) and the learner has caught up
// past everything that phase re-proposed.
func (r *Replica) maybePromote() {
	if r.membership != Learner || r.master == None || r.masterBallot != r.sawPrepare || r.masterStart == 0 {
		return
	}
	if r.committed < r.masterStart {
		return
	}
	if r.promise.Less(r.masterBallot) {
		r.promise = r.masterBallot
		r.promiseChanged = true
	}
	r.setMembership(Voter)
}

func (r *Replica) tickMaster() {
	r.sinceMaster = 0
	if r.transferTo != None {
		r.transferElapsed++
		if r.transferElapsed >= r.cfg.ElectionTicks {
			r.transferTo = None // the target did not take over: serve again
		} else {
			r.maybeSendTimeoutNow()
		}
	}
	r.heartbeatElapsed++
	r.quorumElapsed++
	if r.quorumElapsed >= r.cfg.ElectionTicks {
		r.quorumElapsed = 0
		active := 1
		for _, pr := range r.prs {
			if pr.active {
				active++
			}
			pr.active = false
		}
		if active < r.quorum {
			r.becomeFollower(None, Ballot{})
			return
		}
	}
	if r.heartbeatElapsed >= r.cfg.HeartbeatTicks {
		r.heartbeatElapsed = 0
		for _, pr := range r.prs {
			// A window that made no progress for a whole heartbeat lost a
			// message: send again from the first slot not acknowledged.
			if !pr.progressed && pr.next > pr.match+1 {
				pr.next = pr.match + 1
			}
			pr.progressed = false
		}
		r.broadcastHeartbeat()
	}
}

// campaign starts an election with the pre-prepare probe.
func (r *Replica) campaign() {
	r.role = Candidate
	r.master = None
	r.preparing = false
	r.promises = nil
	r.prs = nil
	r.resetElectionTimer()
	r.preGrants = map[NodeID]bool{r.id: true}
	next := Ballot{Round: r.maxRound + 1, Node: r.id}
	r.masterBallot = next
	if len(r.preGrants) >= r.quorum {
		r.prepare()
		return
	}
	for _, to := range r.others() {
		r.send(Message{Type: MsgPrePrepare, To: to, Ballot: next})
	}
}

// campaignForced starts phase 1 at once, skipping the probe: the master
// handed over to this replica.
func (r *Replica) campaignForced() {
	r.role = Candidate
	r.master = None
	r.prs = nil
	r.resetElectionTimer()
	r.forced = true
	r.prepare()
	r.forced = false
}

// reprepare makes a master run phase 1 again under a higher ballot, so a
// learner sees a phase 1 it had no part in. Its followers grant it despite
// stickiness because it comes from their master.
func (r *Replica) reprepare() {
	r.failPendingReads()
	r.role = Candidate
	r.prs = nil
	r.resetElectionTimer()
	r.prepare()
}

// prepare runs phase 1 for every slot from the first one not known chosen.
func (r *Replica) prepare() {
	b := Ballot{Round: r.maxRound + 1, Node: r.id}
	if b.Round <= r.promise.Round {
		b.Round = r.promise.Round + 1
	}
	r.seeRound(b)
	r.preparing = true
	r.masterBallot = b
	r.promise = b
	r.promiseChanged = true
	from := r.committed + 1
	r.promises = map[NodeID]Message{r.id: {From: r.id, Ballot: b, Slot: from, Commit: r.committed, Entries: r.entriesFrom(from)}}
	if len(r.promises) >= r.quorum {
		r.becomeMaster()
		return
	}
	for _, to := range r.others() {
		r.sendAfterPersist(Message{Type: MsgPrepare, To: to, Ballot: b, Slot: from, Force: r.forced})
	}
}

// entriesFrom returns every accepted entry held at or after slot from.
func (r *Replica) entriesFrom(from uint64) []Entry {
	var out []Entry
	if from < r.offset {
		from = r.offset
	}
	for s := from; s <= r.lastHeld(); s++ {
		st := r.slot(s, false)
		if st.present {
			out = append(out, Entry{Slot: s, Ballot: st.ballot, Value: st.value})
		}
	}
	return out
}

// becomeMaster takes office after a quorum of promises: every slot from the
// first unchosen one up to the highest reported gets the value of the highest
// ballot reported for it, or a no-op, re-proposed under the own ballot; then
// a fresh no-op, whose choice makes the master ready to serve reads.
func (r *Replica) becomeMaster() {
	from := r.committed + 1
	best := map[uint64]Entry{}
	maxSlot := r.committed
	for _, p := range r.promises {
		for _, e := range p.Entries {
			if e.Slot < from {
				continue
			}
			if cur, ok := best[e.Slot]; !ok || cur.Ballot.Less(e.Ballot) {
				best[e.Slot] = e
			}
			if e.Slot > maxSlot {
				maxSlot = e.Slot
			}
		}
	}
	r.role = Master
	r.master = r.id
	r.preparing = false
	r.promises, r.preGrants = nil, nil
	r.heartbeatElapsed, r.quorumElapsed = 0, 0
	r.sinceMaster = 0
	r.start = from
	r.round, r.confirmed, r.roundsSent, r.leaseUntil = 0, 0, nil, 0
	r.selfMatch = from - 1
	r.lastSlot = from - 1
	r.prs = map[NodeID]*progress{}
	for _, id := range r.others() {
		r.prs[id] = &progress{match: from - 1, next: from, active: true}
	}
	if from == 1 && maxSlot == 0 && r.cfg.LogMembers {
		// A new log starts with the member list, so membership can later
		// change through the log and snapshots carry it.
		r.appendOwn(r.configValue())
	}
	for s := from; s <= maxSlot; s++ {
		v := Value{Kind: ValueNoop}
		if e, ok := best[s]; ok {
			v = e.Value
		}
		r.appendOwn(v)
	}
	r.noopSlot = r.appendOwn(Value{Kind: ValueNoop})
	r.broadcastHeartbeat()
}

// configValue encodes the member list as a config value: one decimal id
// per command, readable in the log.
func (r *Replica) configValue() Value {
	v := Value{Kind: ValueConfig}
	for _, m := range r.cfg.Members {
		v.Cmds = append(v.Cmds, strconv.AppendUint(nil, uint64(m), 10))
	}
	return v
}

// appendOwn accepts v in the next slot under the master's ballot.
func (r *Replica) appendOwn(v Value) uint64 {
	r.lastSlot++
	s := r.slot(r.lastSlot, true)
	*s = slotState{present: true, ballot: r.masterBallot, value: v}
	r.accepted = append(r.accepted, Entry{Slot: r.lastSlot, Ballot: r.masterBallot, Value: v})
	return r.lastSlot
}

// Propose asks the master to choose cmds, as one batch in one slot. It
// returns the slot; the commands are applied when that slot is chosen, which
// a change of master can prevent (the caller retries under its own ids).
func (r *Replica) Propose(cmds [][]byte) (uint64, error) {
	if len(cmds) == 0 {
		return 0, ErrEmptyProposal
	}
	if r.role != Master || r.transferTo != None {
		return 0, ErrNotMaster
	}
	if r.lastSlot-r.committed >= uint64(r.cfg.MaxUncommitted) {
		return 0, ErrBusy
	}
	return r.appendOwn(Value{Kind: ValueCmds, Cmds: cmds}), nil
}

// ReadIndex asks for a read index under context, answered in a later Ready's
// ReadStates. On a follower the master is asked; with no master known, or on
// a master not yet ready, the read fails at once.
func (r *Replica) ReadIndex(context uint64) {
	switch {
	case r.role == Master:
		r.addRead(r.id, context)
	case r.master != None:
		r.send(Message{Type: MsgReadIndex, To: r.master, Context: context})
	default:
		r.answerRead(r.id, context, 0, true)
	}
}

// addRead records a read index request on the master. The index is the
// commit index now (trap 4). Under a valid lease it is granted at once;
// otherwise once a heartbeat round that starts after this moment is
// acknowledged by a quorum. Reads arriving while a round is out wait for the
// next one, so one round serves them all.
func (r *Replica) addRead(from NodeID, context uint64) {
	if !r.isReady() {
		r.answerRead(from, context, 0, true)
		return
	}
	if r.cfg.bugs.readWithoutQuorum || r.quorum == 1 || r.leaseValid() {
		r.answerRead(from, context, r.committed, false)
		return
	}
	r.pendingReads = append(r.pendingReads, pendingRead{from: from, context: context, index: r.committed, round: r.round + 1})
	if r.confirmed == r.round {
		r.broadcastHeartbeat()
	}
}

// leaseValid reports whether this master may answer reads alone: a quorum
// acknowledged a heartbeat sent less than LeaseTicks ago, and a quorum of
// followers refuses other candidates for ElectionTicks after receiving it.
func (r *Replica) leaseValid() bool {
	return r.cfg.LeaseTicks > 0 && r.isReady() && r.transferTo == None && r.now < r.leaseUntil
}

// broadcastHeartbeat starts a heartbeat round: followers echo the round, and
// a round a quorum echoed confirms this master and extends its lease.
func (r *Replica) broadcastHeartbeat() {
	r.heartbeatElapsed = 0
	r.round++
	r.roundsSent = append(r.roundsSent, roundSent{round: r.round, at: r.now})
	for _, to := range r.others() {
		r.send(Message{Type: MsgHeartbeat, To: to, Ballot: r.masterBallot, Commit: r.committed, Context: r.round, Index: r.noopSlot})
	}
}

// maybeConfirm advances the highest round a quorum acknowledged, extends the
// lease from when that round was sent (trap 5), and grants the reads it
// covers.
func (r *Replica) maybeConfirm() {
	acked := make([]uint64, 0, len(r.prs)+1)
	acked = append(acked, r.round)
	for _, pr := range r.prs {
		acked = append(acked, pr.readRound)
	}
	slices.Sort(acked)
	q := acked[len(acked)-r.quorum]
	if q <= r.confirmed {
		return
	}
	r.confirmed = q
	sentAt := r.now
	for len(r.roundsSent) > 0 && r.roundsSent[0].round <= q {
		if r.roundsSent[0].round == q {
			sentAt = r.roundsSent[0].at
		}
		r.roundsSent = r.roundsSent[1:]
	}
	if r.cfg.bugs.leaseFromAcks {
		sentAt = r.now
	}
	if until := sentAt + r.cfg.LeaseTicks; until > r.leaseUntil && r.transferTo == None {
		r.leaseUntil = until
	}
	kept := r.pendingReads[:0]
	for _, pr := range r.pendingReads {
		if pr.round <= q {
			r.answerRead(pr.from, pr.context, pr.index, false)
		} else {
			kept = append(kept, pr)
		}
	}
	r.pendingReads = kept
	if len(kept) > 0 && r.confirmed == r.round {
		r.broadcastHeartbeat()
	}
}

// Step feeds one message from a peer into the replica. Messages from
// non-members and to other replicas are dropped.
func (r *Replica) Step(m Message) {
	if m.To != r.id || m.From == r.id || !r.isMember(m.From) {
		return
	}
	r.seeRound(m.Ballot)
	r.seeRound(m.Hint)
	switch m.Type {
	case MsgPrePrepare:
		r.sendPrePromise(m)
	case MsgPrePromise:
		r.handlePrePromise(m)
	case MsgPrepare:
		r.handlePrepare(m)
	case MsgPromise:
		r.handlePromise(m)
	case MsgAccept:
		r.handleAccept(m)
	case MsgAccepted:
		r.handleAccepted(m)
	case MsgHeartbeat:
		r.handleHeartbeat(m)
	case MsgHeartbeatResp:
		r.handleHeartbeatResp(m)
	case MsgReadIndex:
		if r.role == Master {
			r.addRead(m.From, m.Context)
		} else {
			r.send(Message{Type: MsgReadIndexResp, To: m.From, Context: m.Context, Reject: true})
		}
	case MsgReadIndexResp:
		r.readStates = append(r.readStates, ReadState{Context: m.Context, Index: m.Index, Failed: m.Reject})
	case MsgFetch:
		r.handleFetch(m)
	case MsgFetchResp:
		r.handleFetchResp(m)
	case MsgTimeoutNow:
		if m.From == r.master && m.Ballot == r.masterBallot && r.membership == Voter && r.role == Follower {
			r.campaignForced()
		}
	case MsgProbe:
		r.send(Message{Type: MsgProbeResp, To: m.From, Reject: !r.isFresh()})
	case MsgProbeResp:
		r.handleProbeResp(m)
	}
}

// sticky reports whether this replica heard a live master recently enough
// that it must refuse to help anyone else take over.
func (r *Replica) sticky() bool {
	if r.role == Master {
		return true
	}
	if r.masterLost && r.sinceMaster >= r.cfg.LeaseTicks {
		// The master's process is gone and any lease it held has run
		// out: the lease counts from sending, and this counts from later.
		return false
	}
	return r.sinceMaster < r.cfg.ElectionTicks
}

// PeerLost tells the replica that the connection from peer id closed, as it
// does when a process dies. If id is the master, the election may start as
// soon as the master's lease has run out instead of after a whole election
// timeout (DESIGN.md, "Timing defaults"). A partition closes no connection,
// so it still waits the full timeout: a replica merely cut off cannot
// depose a healthy master this way.
func (r *Replica) PeerLost(id NodeID) {
	if r.role != Follower || id != r.master || r.masterLost {
		return
	}
	r.masterLost = true
	// Spread the candidates a little so they do not split the vote.
	r.electionTimeout = max(r.cfg.LeaseTicks, 1) + r.cfg.Rand.IntN(max(r.cfg.ElectionTicks/4, 1))
}

func (r *Replica) sendPrePromise(m Message) {
	grant := !r.sticky() && r.promise.Less(m.Ballot) && r.membership == Voter
	r.send(Message{Type: MsgPrePromise, To: m.From, Ballot: m.Ballot, Reject: !grant, Hint: r.promise})
}

func (r *Replica) handlePrePromise(m Message) {
	if r.role != Candidate || r.preparing || m.Ballot != r.masterBallot {
		return
	}
	if m.Reject {
		return
	}
	r.preGrants[m.From] = true
	if len(r.preGrants) >= r.quorum {
		r.prepare()
	}
}

func (r *Replica) handlePrepare(m Message) {
	if r.membership != Voter {
		// A learner refuses, and remembers: a phase 1 it took no part in is
		// what lets it vote again.
		if r.sawPrepare.Less(m.Ballot) {
			r.sawPrepare = m.Ballot
		}
		r.send(Message{Type: MsgPromise, To: m.From, Ballot: m.Ballot, Reject: true, Hint: r.promise})
		return
	}
	if !r.promise.Less(m.Ballot) || (r.sticky() && m.From != r.master && !m.Force) {
		r.send(Message{Type: MsgPromise, To: m.From, Ballot: m.Ballot, Reject: true, Hint: r.promise})
		return
	}
	r.promise = m.Ballot
	r.promiseChanged = true
	if r.role != Follower || r.master != None {
		r.becomeFollower(None, Ballot{})
	} else {
		r.resetElectionTimer()
	}
	r.sendAfterPersist(Message{Type: MsgPromise, To: m.From, Ballot: m.Ballot, Slot: m.Slot,
		Index: r.offset, Commit: r.committed, Entries: r.entriesFrom(m.Slot)})
}

func (r *Replica) handlePromise(m Message) {
	if r.role != Candidate || !r.preparing || m.Ballot != r.masterBallot {
		return
	}
	if m.Reject {
		if r.masterBallot.Less(m.Hint) {
			r.becomeFollower(None, Ballot{})
		}
		return
	}
	if m.Index > m.Slot {
		// The acceptor compacted slots this candidate has not seen chosen:
		// their values are gone from its promise, so no value for them can
		// be picked safely. Catch up from it first, then try again.
		r.becomeFollower(None, Ballot{})
		r.send(Message{Type: MsgFetch, To: m.From, Slot: r.committed + 1})
		return
	}
	r.promises[m.From] = m
	if len(r.promises) >= r.quorum {
		r.becomeMaster()
	}
}

// follow accepts m.From as master at m.Ballot if that ballot is current. It
// returns false (after refusing) when the ballot is below the promise.
func (r *Replica) follow(m Message, respType MsgType) bool {
	if m.Ballot.Less(r.promise) {
		r.send(Message{Type: respType, To: m.From, Ballot: m.Ballot, Reject: true, Hint: r.promise})
		return false
	}
	if r.role == Master && m.Ballot == r.masterBallot {
		return false // cannot happen: one master per ballot
	}
	if r.role != Follower || r.master != m.From || r.masterBallot != m.Ballot {
		r.becomeFollower(m.From, m.Ballot)
	}
	r.electionElapsed = 0
	r.sinceMaster = 0
	r.masterLost = false
	return true
}

func (r *Replica) handleAccept(m Message) {
	if !r.follow(m, MsgAccepted) {
		return
	}
	if r.membership != Voter {
		r.learnCommit(m.Commit) // no vote: it learns chosen values by fetching
		return
	}
	if r.promise.Less(m.Ballot) {
		r.promise = m.Ballot // persisted through the entries' ballot
	}
	if len(m.Entries) == 0 {
		r.learnCommit(m.Commit)
		return
	}
	lo, hi := m.Entries[0].Slot, m.Entries[0].Slot
	for _, e := range m.Entries {
		if e.Slot == 0 || e.Slot < r.offset {
			continue
		}
		if e.Slot > hi {
			hi = e.Slot
		}
		st := r.slot(e.Slot, true)
		if st.chosen || (st.present && st.ballot == m.Ballot) {
			// A chosen value is the only one any later ballot proposes, and a
			// ballot proposes one value per slot: nothing new to persist.
			continue
		}
		*st = slotState{present: true, ballot: m.Ballot, value: e.Value}
		r.accepted = append(r.accepted, Entry{Slot: e.Slot, Ballot: m.Ballot, Value: e.Value})
	}
	// Report the longest run accepted under this ballot, so a reordered
	// window needs no retransmission.
	for {
		st := r.slot(hi+1, false)
		if st == nil || !st.present || st.ballot != m.Ballot {
			break
		}
		hi++
	}
	r.sendAfterPersist(Message{Type: MsgAccepted, To: m.From, Ballot: m.Ballot, Slot: lo, Index: hi})
	r.learnCommit(m.Commit)
}

// learnCommit advances the chosen prefix from the master's commit notice. A
// held value counts as chosen only if it was accepted under the master's
// ballot (trap 1): under one ballot the master proposes one value per slot,
// so that is the value the notice speaks of. Anything else is fetched.
func (r *Replica) learnCommit(commit uint64) {
	if commit > r.masterCommit {
		r.masterCommit = commit
	}
	for r.committed < r.masterCommit {
		st := r.slot(r.committed+1, false)
		if st == nil || !st.present {
			break
		}
		if !st.chosen && st.ballot != r.masterBallot && !r.cfg.bugs.applyOlderBallot {
			break
		}
		st.chosen = true
		r.committed++
	}
	if r.committed < r.masterCommit && r.fetchWait == 0 && r.master != None {
		r.fetchWait = 2 * r.cfg.HeartbeatTicks
		r.send(Message{Type: MsgFetch, To: r.master, Slot: r.committed + 1})
	}
}

// answerToMaster checks a follower's answer to this master: a refusal
// naming a higher promise deposes it; an answer under its own ballot returns
// the follower's progress, anything else nil.
func (r *Replica) answerToMaster(m Message) *progress {
	if r.role != Master {
		return nil
	}
	if m.Reject {
		if r.masterBallot.Less(m.Hint) {
			r.becomeFollower(None, Ballot{})
		}
		return nil
	}
	pr := r.prs[m.From]
	if pr == nil || m.Ballot != r.masterBallot {
		return nil
	}
	return pr
}

func (r *Replica) handleAccepted(m Message) {
	pr := r.answerToMaster(m)
	if pr == nil {
		return
	}
	pr.active = true
	// Slots below the compacted offset are chosen; a follower gets them
	// from a snapshot, so its acks count from there.
	if m.Slot <= max(pr.match+1, r.offset) && m.Index > pr.match {
		pr.match = m.Index
		pr.progressed = true
		if pr.next <= pr.match {
			pr.next = pr.match + 1
		}
		r.maybeCommit()
		if r.transferTo == m.From {
			r.maybeSendTimeoutNow()
		}
	}
}

// maybeCommit advances the chosen prefix to the highest slot a quorum
// (the master counting itself only once persisted) accepted under its ballot.
func (r *Replica) maybeCommit() bool {
	matches := make([]uint64, 0, len(r.prs)+1)
	matches = append(matches, r.selfMatch)
	for _, pr := range r.prs {
		matches = append(matches, pr.match)
	}
	slices.Sort(matches)
	q := matches[len(matches)-r.quorum]
	if q <= r.committed {
		return false
	}
	for s := r.committed + 1; s <= q; s++ {
		r.slot(s, false).chosen = true
	}
	r.committed = q
	return true
}

func (r *Replica) handleHeartbeat(m Message) {
	if !r.follow(m, MsgHeartbeatResp) {
		return
	}
	r.masterStart = m.Index
	r.learnCommit(m.Commit)
	r.maybePromote()
	resp := Message{Type: MsgHeartbeatResp, To: m.From, Ballot: m.Ballot, Context: m.Context}
	if r.membership != Voter {
		resp.Learner, resp.Hint = true, r.sawPrepare
	}
	r.send(resp)
}

func (r *Replica) handleHeartbeatResp(m Message) {
	pr := r.answerToMaster(m)
	if pr == nil {
		return
	}
	pr.learner = m.Learner
	if m.Learner {
		// A learner neither counts for the quorum nor confirms reads. If it
		// has not yet refused a Prepare of this ballot, run phase 1 again
		// without it so it can become a voter.
		if m.Hint.Less(r.masterBallot) {
			r.reprepare()
		}
		return
	}
	pr.active = true
	if m.Context > pr.readRound {
		pr.readRound = m.Context
	}
	r.maybeConfirm()
}

// handleFetch answers a catch-up request with chosen entries.
func (r *Replica) handleFetch(m Message) {
	if m.Slot < r.offset {
		// Compacted away: the asker needs this replica's snapshot.
		r.send(Message{Type: MsgFetchResp, To: m.From, Reject: true, Index: r.offset, Commit: r.committed})
		return
	}
	var out []Entry
	for s := max(m.Slot, r.offset); s <= r.committed && len(out) < r.cfg.MaxEntriesPerMsg; s++ {
		st := r.slot(s, false)
		out = append(out, Entry{Slot: s, Ballot: st.ballot, Value: st.value})
	}
	r.send(Message{Type: MsgFetchResp, To: m.From, Commit: r.committed, Entries: out})
}

// handleFetchResp stores chosen entries and advances the chosen prefix.
func (r *Replica) handleFetchResp(m Message) {
	if m.Reject {
		if m.Index > r.committed+1 {
			r.needSnapshot = m.From
		}
		return
	}
	for _, e := range m.Entries {
		if e.Slot <= r.committed || e.Slot < r.offset {
			continue
		}
		st := r.slot(e.Slot, true)
		if st.chosen {
			continue
		}
		b := e.Ballot
		if st.present && b.Less(st.ballot) {
			b = st.ballot // keep the higher vote: it carries the same value
		}
		*st = slotState{present: true, chosen: true, ballot: b, value: e.Value}
		r.accepted = append(r.accepted, Entry{Slot: e.Slot, Ballot: b, Value: e.Value})
	}
	before := r.committed
	for {
		st := r.slot(r.committed+1, false)
		if st == nil || !st.chosen {
			break
		}
		r.committed++
	}
	if m.Commit > r.masterCommit && m.From == r.master {
		r.masterCommit = m.Commit
	}
	if r.committed > before {
		// Progress: ask for the next batch at once. A duplicate or stale
		// response makes none and waits for the timer, so duplicates
		// cannot multiply fetches.
		r.fetchWait = 0
	}
	r.learnCommit(0)
	r.maybePromote()
}

// sendAccepts fills each follower's pipeline window from the log.
func (r *Replica) sendAccepts() {
	if r.role != Master {
		return
	}
	for _, id := range r.others() {
		pr := r.prs[id]
		if pr.learner {
			continue
		}
		if pr.next < r.offset {
			pr.next = r.offset // below is compacted: the follower fetches a snapshot
		}
		for r.canSend(pr) {
			hi := min(r.lastSlot, pr.next+uint64(r.cfg.MaxEntriesPerMsg)-1)
			ents := make([]Entry, 0, hi-pr.next+1)
			for s := pr.next; s <= hi; s++ {
				st := r.slot(s, false)
				ents = append(ents, Entry{Slot: s, Ballot: r.masterBallot, Value: st.value})
			}
			r.send(Message{Type: MsgAccept, To: id, Ballot: r.masterBallot, Commit: r.committed, Entries: ents})
			pr.next = hi + 1
		}
	}
}

// canSend reports whether the follower has slots to send within its window.
func (r *Replica) canSend(pr *progress) bool {
	return !pr.learner && pr.next <= r.lastSlot && pr.next-pr.match-1 < uint64(r.cfg.MaxInflight)
}

// HasReady reports whether Ready would ask anything of the application.
func (r *Replica) HasReady() bool {
	if r.role == Master {
		for _, pr := range r.prs {
			if r.canSend(pr) {
				return true
			}
		}
	}
	return len(r.msgs) > 0 || len(r.msgsAfter) > 0 || len(r.accepted) > 0 || r.promiseChanged ||
		r.delivered < r.committed || len(r.readStates) > 0 || r.softState() != r.prevSoft ||
		r.needSnapshot != None || r.membershipChanged
}

// Ready returns what the application must do now, and hands over ownership
// of it: the next Ready starts empty. Call Advance once it is done.
func (r *Replica) Ready() Ready {
	r.sendAccepts()
	rd := Ready{
		Messages:             r.msgs,
		PromiseChanged:       r.promiseChanged,
		Promise:              r.promise,
		Accepted:             r.accepted,
		Committed:            r.committed,
		MessagesAfterPersist: r.msgsAfter,
		ReadStates:           r.readStates,
		NeedSnapshot:         r.needSnapshot,
		MembershipChanged:    r.membershipChanged,
		Membership:           r.membership,
		ballot:               r.masterBallot,
	}
	r.needSnapshot = None
	r.membershipChanged = false
	if r.role == Master {
		for _, e := range r.accepted {
			if e.Ballot == r.masterBallot && e.Slot > rd.lastAccepted {
				rd.lastAccepted = e.Slot
			}
		}
	}
	for s := r.delivered + 1; s <= r.committed; s++ {
		st := r.slot(s, false)
		rd.Chosen = append(rd.Chosen, Entry{Slot: s, Ballot: st.ballot, Value: st.value})
	}
	r.delivered = r.committed
	if ss := r.softState(); ss != r.prevSoft {
		rd.SoftState = &ss
		r.prevSoft = ss
	}
	r.msgs, r.msgsAfter, r.accepted, r.readStates = nil, nil, nil, nil
	r.promiseChanged = false
	return rd
}

// TransferMastership starts handing mastership over to the most caught-up
// voting follower: the master stops taking proposals and gives up its lease
// at once, and tells the target to campaign as soon as it has accepted every
// slot. If the target has not taken over within an election timeout, the
// master serves again. It returns the target.
func (r *Replica) TransferMastership() (NodeID, error) {
	if r.role != Master {
		return None, ErrNotMaster
	}
	best, bestMatch := None, uint64(0)
	for _, id := range r.others() {
		pr := r.prs[id]
		if pr.learner || !pr.active {
			continue
		}
		if best == None || pr.match > bestMatch {
			best, bestMatch = id, pr.match
		}
	}
	if best == None {
		return None, ErrNoTarget
	}
	r.transferTo, r.transferElapsed = best, 0
	r.leaseUntil = 0
	r.maybeSendTimeoutNow()
	return best, nil
}

// maybeSendTimeoutNow tells the transfer target to campaign once it holds
// every slot this master proposed.
func (r *Replica) maybeSendTimeoutNow() {
	pr := r.prs[r.transferTo]
	if pr == nil || pr.match < r.lastSlot {
		return
	}
	r.send(Message{Type: MsgTimeoutNow, To: r.transferTo, Ballot: r.masterBallot})
}

// Compact forgets the log up to and including slot, which the application
// holds in a durable snapshot. Only applied slots can be compacted; a peer
// that needs them later is told to fetch a snapshot.
func (r *Replica) Compact(slot uint64) {
	slot = min(slot, r.delivered, r.committed)
	if slot < r.offset {
		return
	}
	r.log = slices.Delete(r.log, 0, int(slot+1-r.offset))
	r.offset = slot + 1
}

// RestoreSnapshot tells the replica the application installed a snapshot
// of every slot up to slot. A snapshot never rolls a replica back: one at
// or below the chosen prefix is ignored and RestoreSnapshot returns false.
func (r *Replica) RestoreSnapshot(slot uint64) bool {
	if slot <= r.committed {
		return false
	}
	if slot+1 >= r.offset+uint64(len(r.log)) {
		r.log = r.log[:0]
	} else {
		r.log = slices.Delete(r.log, 0, int(slot+1-r.offset))
	}
	r.offset = slot + 1
	r.committed, r.delivered = slot, slot
	r.fetchWait = 0
	r.learnCommit(0)
	return true
}

// Advance tells the replica that rd was handled: persisted, sent, applied.
// A master counts its own vote for the slots rd persisted only now.
func (r *Replica) Advance(rd Ready) {
	if r.role == Master && rd.ballot == r.masterBallot && rd.lastAccepted > r.selfMatch {
		r.selfMatch = rd.lastAccepted
		r.maybeCommit()
	}
}
