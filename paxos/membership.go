package paxos

// This file owns who may vote. A replica on an empty directory is Fresh
// until its peers tell it whether the cluster is new. A replica that lost
// durable state (a wiped directory, a missing file, a repaired log) is a
// Learner: it may have forgotten votes and promises it gave, so it neither
// promises nor accepts until that cannot matter (trap 7):
//
//  1. It waits out every phase 1 that began before the loss: one that
//     counted a promise it forgot and completes later could otherwise pass
//     a vote it gives after promotion. A candidate gives up its phase 1
//     within two election timeouts of its own clock, so the learner waits
//     that long on its clock, with the drift margin, from its start
//     (learnerWait), then draws a promotion token.
//  2. It sends the token in its heartbeat answers; the master runs a fresh
//     phase 1 (reprepare) whose Prepare to the learner carries the token.
//     That Prepare was made after the master learned the token, so after
//     the wait: every phase 1 that counted a forgotten promise had either
//     completed by then (and a quorum of the others holds promises at
//     least that high, so the fresh phase 1, whose quorum excludes the
//     learner, is at a higher ballot) or will never complete.
//  3. It refuses that Prepare, so the phase 1 ran without it and found
//     every value chosen with its forgotten votes; once it follows the
//     master of that ballot and has caught up past everything the phase 1
//     re-proposed, it votes again, with that ballot as its promise: above
//     any promise it might have given before the loss.
//
// Pure: no goroutines, called by the node's engine.

// learning is the state of a replica that may not vote yet, and the
// promotion tokens a master has heard from its learners.
type learning struct {
	membership Membership
	changed    bool
	freshAcks  map[NodeID]bool // Fresh: peers that answered they are fresh too
	// Learner: its promotion token (0 until the wait is over), and the
	// newest ballot whose Prepare carrying that token it refused.
	token      uint64
	sawPrepare Ballot
	// settled: the application holds the state it keeps beside the log
	// (large files' chunks) for every slot up to here (SettledUpTo).
	settled uint64
	// Master: the learners' tokens, to put in the Prepares of the next
	// phase 1.
	tokens map[NodeID]uint64
}

// isFresh reports whether this replica has never promised or accepted.
func (r *Replica) isFresh() bool {
	return r.learn.membership == Fresh || (r.learn.membership == Voter && r.promise.IsZero() && r.offset == 1 && len(r.log) == 0)
}

func (r *Replica) setMembership(m Membership) {
	r.learn.membership = m
	r.learn.changed = true
}

// handleProbeResp decides what a replica on an empty directory is: if every
// other member is fresh too, the cluster is new and nothing was ever chosen,
// so it may vote; if anyone is not, its directory was wiped. A quorum of
// fresh answers is not enough: a member that never took part answers fresh
// too, and with the wiped one it would make a quorum that knows nothing.
func (r *Replica) handleProbeResp(m Message) {
	r.noteApplied(m.From, m.Index, m.Slot) // what it knows durably (see durable), how far its side state is settled
	r.teachDeparture(m)
	if r.learn.membership != Fresh || m.Token != r.cfg.Incarnation {
		// Not an answer to this run's probes: one held up since an
		// earlier run may say fresh of a peer that voted since.
		return
	}
	if m.Reject {
		r.setMembership(Learner)
		return
	}
	if r.learn.freshAcks == nil {
		r.learn.freshAcks = map[NodeID]bool{}
	}
	r.learn.freshAcks[m.From] = true
	if len(r.learn.freshAcks) == len(r.others()) {
		r.setMembership(Voter)
	}
}

// maybeDrawToken ends a learner's wait: once it has run for learnerWait
// ticks it draws the token a master's phase 1 must carry to promote it.
func (r *Replica) maybeDrawToken() {
	if r.learn.token != 0 || (r.timer.now < learnerWait(r.cfg) && !r.cfg.bugs.promoteEarly) {
		return
	}
	for r.learn.token == 0 {
		r.learn.token = uint64(r.cfg.Rand.IntN(1 << 62))
	}
}

// learnerSawPrepare records, on a learner, a Prepare it refuses: it counts
// toward promotion only if it carries the learner's token.
func (r *Replica) learnerSawPrepare(m Message) {
	if r.learn.membership != Learner {
		return
	}
	if !r.cfg.bugs.promoteEarly && (r.learn.token == 0 || m.Token != r.learn.token) {
		return
	}
	if r.learn.sawPrepare.Less(m.Ballot) {
		r.learn.sawPrepare = m.Ballot
	}
}

// learnerAsks handles a learner's heartbeat answer on the master: once the
// learner has a token and has not refused a Prepare of this ballot carrying
// it, the master runs phase 1 again without it.
func (r *Replica) learnerAsks(m Message) {
	if m.Token == 0 {
		return // still waiting out promises it may have forgotten
	}
	if r.learn.tokens == nil {
		r.learn.tokens = map[NodeID]uint64{}
	}
	r.learn.tokens[m.From] = m.Token
	if m.Hint.Less(r.masterBallot) {
		r.reprepare()
	}
}

// maybePromote lets a learner vote again once the master it follows ran its
// phase 1 without it (it refused that Prepare, which carried its token) and
// the learner has caught up past everything that phase re-proposed. Its
// promise becomes that master's ballot.
func (r *Replica) maybePromote() {
	if r.learn.membership != Learner || r.master == None || r.masterBallot != r.learn.sawPrepare || r.fol.masterStart == 0 {
		return
	}
	if r.committed < r.fol.masterStart || (r.cfg.SideState && r.learn.settled < r.fol.masterStart) {
		return
	}
	if r.promise.Less(r.masterBallot) {
		r.promise = r.masterBallot
		r.promiseChanged = true
	}
	r.learn.token, r.learn.sawPrepare = 0, Ballot{}
	r.setMembership(Voter)
}

// SettledUpTo tells the replica that the application holds, for every
// slot up to slot, the state it keeps beside the log (with
// Config.SideState): the chunks of the large files those slots wrote,
// which the node stores apart and fetches from peers. A learner votes
// again only once that reaches the slots its promotion waits for: a
// quorum counting it must hold every chunk a majority held when the file
// was chosen, or a second loss could take the last copy. It never goes
// back; a learner otherwise ready is promoted at once.
func (r *Replica) SettledUpTo(slot uint64) {
	if slot <= r.learn.settled {
		return
	}
	r.learn.settled = slot
	r.maybePromote()
}

// mayCampaign reports whether this replica may run for master: a voter of
// the configuration in force that has not lost state it needs, and that has
// caught up to the slot that chose that configuration (a replica that
// joined knows its configuration before it holds the slots before it, and
// those slots are governed by older ones).
func (r *Replica) mayCampaign() bool {
	return r.learn.membership == Voter && r.conf.cur.IsVoter(r.id) && !r.conf.removed && r.committed >= r.conf.curSlot
}

// votersIn counts the voters of the configuration in force among set's
// keys: only their promises and grants count.
func votersIn[V any](r *Replica, set map[NodeID]V) int {
	n := 0
	for id := range set {
		if r.conf.cur.IsVoter(id) {
			n++
		}
	}
	return n
}
