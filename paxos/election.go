package paxos

// This file owns the roles and phase 1: every change of role goes through
// reset, a follower that stops hearing its master campaigns (a pre-prepare
// probe, then Prepare), acceptors promise, and a candidate with a quorum of
// promises takes office. Stickiness keeps a replica that heard a live
// master from helping anyone else take over, which is what makes the
// master's lease safe. Pure: no goroutines, called by the node's engine.

// candidacy is a candidate's phase 1.
type candidacy struct {
	preGrants map[NodeID]bool
	promises  map[NodeID]Message
	preparing bool   // past the probe: Prepare sent
	forced    uint64 // the handover this campaign answers; 0 if none
}

// reset enters role, following master at ballot b (or b as the own ballot
// of a candidate or master), and clears everything that belonged to the
// role left: the candidacy, the master's view of its followers (failing
// the reads it had not granted), the follower's view of its master
// (failing the reads forwarded to it), and the election timer.
func (r *Replica) reset(role Role, master NodeID, b Ballot) {
	if r.role == Master {
		r.failPendingReads()
	}
	r.failForwardedReads()
	r.role, r.master, r.masterBallot = role, master, b
	r.cand = candidacy{}
	r.lead = mastership{}
	r.fol = following{}
	r.resetElectionTimer()
	switch role {
	case Follower:
		r.step = stepFollower
	case Candidate:
		r.step = stepCandidate
	case Master:
		r.step = stepMaster
	}
}

// becomeFollower follows master (None if unknown) at ballot b.
func (r *Replica) becomeFollower(master NodeID, b Ballot) { r.reset(Follower, master, b) }

// becomeCandidate starts a campaign; the caller picks the ballot.
func (r *Replica) becomeCandidate() { r.reset(Candidate, None, Ballot{}) }

// stepFollower handles what only a follower answers.
func stepFollower(r *Replica, m Message) {
	switch m.Type {
	case MsgReadIndex:
		r.send(Message{Type: MsgReadIndexResp, To: m.From, Context: m.Context, Reject: true})
	case MsgTimeoutNow:
		r.handleTimeoutNow(m)
	}
}

// stepCandidate handles what only a candidate answers.
func stepCandidate(r *Replica, m Message) {
	switch m.Type {
	case MsgPrePromise:
		r.handlePrePromise(m)
	case MsgPromise:
		r.handlePromise(m)
	case MsgReadIndex:
		r.send(Message{Type: MsgReadIndexResp, To: m.From, Context: m.Context, Reject: true})
	}
}

// stepMaster handles what only a master answers.
func stepMaster(r *Replica, m Message) {
	switch m.Type {
	case MsgAccepted:
		r.handleAccepted(m)
	case MsgPromise:
		r.notePromiseOnMaster(m)
	case MsgHeartbeatResp:
		r.handleHeartbeatResp(m)
	case MsgReadIndex:
		r.addRead(m.From, m.Context)
	}
}

// campaign starts an election with the pre-prepare probe.
func (r *Replica) campaign() {
	r.becomeCandidate()
	r.cand.preGrants = map[NodeID]bool{r.id: true}
	next := Ballot{Round: r.maxRound + 1, Node: r.id}
	r.masterBallot = next
	if votersIn(r, r.cand.preGrants) >= r.conf.cur.Quorum() {
		r.prepare()
		return
	}
	for _, to := range r.others() {
		r.send(Message{Type: MsgPrePrepare, To: to, Ballot: next})
	}
}

// campaignForced starts phase 1 at once, skipping the probe: the master
// handed over to this replica in the handover named transfer.
func (r *Replica) campaignForced(transfer uint64) {
	r.becomeCandidate()
	r.cand.forced = transfer
	r.prepare()
}

// reprepare makes a master run phase 1 again under a higher ballot, so a
// learner sees a phase 1 it had no part in. Its followers grant it despite
// stickiness because it comes from their master.
func (r *Replica) reprepare() {
	r.becomeCandidate()
	r.prepare()
}

// prepare runs phase 1 for every slot from the first one not known chosen.
// A learner that asked for a phase 1 gets its token in its Prepare.
func (r *Replica) prepare() {
	b := Ballot{Round: r.maxRound + 1, Node: r.id}
	if b.Round <= r.promise.Round {
		b.Round = r.promise.Round + 1
	}
	r.seeRound(b)
	r.cand.preparing = true
	r.masterBallot = b
	r.promise = b
	r.promiseChanged = true
	from := r.committed + 1
	r.cand.promises = map[NodeID]Message{r.id: {From: r.id, Ballot: b, Slot: from, Commit: r.committed, Entries: r.entriesFrom(from)}}
	if votersIn(r, r.cand.promises) >= r.conf.cur.Quorum() {
		r.becomeMaster()
		return
	}
	for _, to := range r.others() {
		m := Message{Type: MsgPrepare, To: to, Ballot: b, Slot: from}
		if r.cand.forced != 0 {
			m.Force, m.Token = true, r.cand.forced
		} else {
			m.Token = r.learn.tokens[to]
		}
		r.sendAfterPersist(m)
	}
}

// handlePrePrepare answers a probe: granted only by a voter that is not
// sticky and would promise the ballot. It changes no state.
func (r *Replica) handlePrePrepare(m Message) {
	grant := !r.sticky() && r.promise.Less(m.Ballot) && r.learn.membership == Voter
	r.send(Message{Type: MsgPrePromise, To: m.From, Ballot: m.Ballot, Reject: !grant, Hint: r.promise, Commit: r.committed})
}

func (r *Replica) handlePrePromise(m Message) {
	if r.cand.preparing || m.Ballot != r.masterBallot {
		return
	}
	r.catchUpFrom(m)
	if m.Reject {
		return
	}
	r.cand.preGrants[m.From] = true
	if votersIn(r, r.cand.preGrants) >= r.conf.cur.Quorum() {
		r.prepare()
	}
}

func (r *Replica) handlePrepare(m Message) {
	if r.learn.membership != Voter {
		// A learner refuses, and remembers a phase 1 it took no part in:
		// that is what lets it vote again.
		r.learnerSawPrepare(m)
		r.send(Message{Type: MsgPromise, To: m.From, Ballot: m.Ballot, Reject: true, Hint: r.promise, Commit: r.committed})
		return
	}
	if m.Ballot == r.promise && m.From == r.master && m.Ballot == r.masterBallot {
		// The master asks again for the promise this replica gave it (or
		// that its Accepts raised): the extension of its phase 1 to a new
		// configuration. Saying it again changes nothing.
		r.sendAfterPersist(Message{Type: MsgPromise, To: m.From, Ballot: m.Ballot, Slot: m.Slot,
			Index: r.offset, Commit: r.committed, Entries: r.entriesFrom(m.Slot)})
		return
	}
	if !r.promise.Less(m.Ballot) || (r.sticky() && m.From != r.master && !r.grantsForce(m)) {
		r.send(Message{Type: MsgPromise, To: m.From, Ballot: m.Ballot, Reject: true, Hint: r.promise, Commit: r.committed})
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
	if !r.cand.preparing || m.Ballot != r.masterBallot {
		return
	}
	if m.Reject {
		r.catchUpFrom(m)
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
	r.cand.promises[m.From] = m
	if votersIn(r, r.cand.promises) >= r.conf.cur.Quorum() {
		r.becomeMaster()
	}
}

// catchUpFrom fetches, on a candidate, the chosen slots an answer says its
// sender holds beyond this replica's prefix: a configuration among them may
// change the quorum the campaign needs (the members that chose it may be
// gone, removed by it), and a candidate far behind wastes its campaign.
func (r *Replica) catchUpFrom(m Message) {
	if m.Commit > r.committed && r.fol.fetchWait == 0 {
		r.fol.fetchWait = 2 * r.cfg.HeartbeatTicks
		r.send(Message{Type: MsgFetch, To: m.From, Slot: r.committed + 1})
	}
}

// becomeMaster takes office after a quorum of promises: every slot from the
// first unchosen one up to the highest reported gets the value of the highest
// ballot reported for it, or a no-op, re-proposed under the own ballot; then
// a fresh no-op, whose choice makes the master ready to serve reads.
func (r *Replica) becomeMaster() {
	from := r.committed + 1
	best := map[uint64]Entry{}
	promised := map[NodeID][]Entry{}
	for id, p := range r.cand.promises {
		mergeBest(best, p.Entries, from)
		promised[id] = p.Entries
	}
	maxSlot := r.committed
	for s := range best {
		maxSlot = max(maxSlot, s)
	}
	r.reset(Master, r.id, r.masterBallot)
	r.timer.heartbeatElapsed, r.timer.quorumElapsed, r.timer.sinceMaster = 0, 0, 0
	r.lead.start = from
	r.lead.selfMatch = from - 1
	r.lead.lastSlot = from - 1
	r.lead.rc.promised = promised
	r.lead.prs = map[NodeID]*progress{}
	for _, id := range r.others() {
		r.lead.prs[id] = &progress{match: from - 1, next: from, active: true}
	}
	if from == 1 && maxSlot == 0 && r.cfg.LogMembers {
		// A new log starts with the configuration, so membership can
		// change through the log and snapshots carry it.
		best[1] = Entry{Slot: 1, Value: r.conf.cur.Value()}
	}
	r.repropose(from, best)
	r.broadcastHeartbeat()
}

// sticky reports whether this replica heard a live master recently enough
// that it must refuse to help anyone else take over. A follower that saw
// its master's connection close refuses only until that master's lease is
// surely over on any clock within the drift bound.
func (r *Replica) sticky() bool {
	if r.role == Master {
		return true
	}
	window := r.cfg.ElectionTicks
	if r.fol.masterLost {
		window = r.cfg.leaseOutlived()
		if r.cfg.bugs.earlyNoMargin {
			window = r.cfg.LeaseTicks
		}
	}
	return r.timer.sinceMaster < window
}

// PeerLost tells the replica that the connection from peer id closed, as it
// does when a process dies. If id is the master, the election may start as
// soon as the master's lease is surely over (counted with the drift
// margin) instead of after a whole election timeout (DESIGN.md, "Timing
// defaults"). A partition closes no connection, so it still waits the full
// timeout; a connection that closes for another reason costs at most an
// election that stickiness of the other followers refuses.
func (r *Replica) PeerLost(id NodeID) {
	if r.role != Follower || id != r.master || r.fol.masterLost {
		return
	}
	r.fol.masterLost = true
	wait := r.cfg.leaseOutlived()
	if r.cfg.bugs.earlyNoMargin {
		wait = r.cfg.LeaseTicks
	}
	// Spread the candidates a little so they do not split the vote.
	r.timer.electionTimeout = max(wait, 1) + r.cfg.Rand.IntN(max(r.cfg.ElectionTicks/4, 1))
}
