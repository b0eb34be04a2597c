package paxos

// This file owns read indexes and what confirms them: a master grants a
// read index once its own no-op is chosen (trap 4), at its commit index of
// the moment asked, after a heartbeat round sent since then was
// acknowledged by a quorum, or at once under a valid lease, which runs from
// when the confirming round was sent (trap 5). A follower forwards reads to
// its master and fails them when it stops following that master or no
// answer comes within four election timeouts, so no read waits on a master
// that is gone. Pure: no goroutines, called by the node's engine.

import "slices"

// roundSent remembers when a heartbeat round went out: a lease counts from
// there, never from when the acknowledgements arrived. A round sent during
// a handover never renews the lease: its heartbeats told the followers that
// the handover's forced election may pass their stickiness.
type roundSent struct {
	round    uint64
	at       int
	transfer bool
}

// pendingRead is a read index waiting for a confirming round.
type pendingRead struct {
	from    NodeID
	context uint64
	index   uint64
	round   uint64
}

// readIndexes are the reads a follower forwarded to its master, oldest
// first, with when they were sent.
type readIndexes struct {
	forwarded []forwardedRead
}

type forwardedRead struct {
	context uint64
	at      int
}

// isReady reports whether this replica is a master whose own no-op is chosen.
func (r *Replica) isReady() bool {
	return r.role == Master && ((r.lead.noopSlot != 0 && r.committed >= r.lead.noopSlot) || r.cfg.bugs.serveBeforeNoop)
}

// ReadIndex asks for a read index under context, answered in a later Ready's
// ReadStates. On a follower the master is asked; with no master known, or on
// a master not yet ready, the read fails at once.
func (r *Replica) ReadIndex(context uint64) {
	switch {
	case r.role == Master:
		r.addRead(r.id, context)
	case r.role == Follower && r.master != None:
		r.ri.forwarded = append(r.ri.forwarded, forwardedRead{context: context, at: r.timer.now})
		r.send(Message{Type: MsgReadIndex, To: r.master, Context: context})
	default:
		r.answerRead(r.id, context, 0, true)
	}
}

// handleReadIndexResp hands the master's answer to a forwarded read to the
// application, unless that read was failed already.
func (r *Replica) handleReadIndexResp(m Message) {
	if m.From != r.master {
		return
	}
	for i, f := range r.ri.forwarded {
		if f.context == m.Context {
			r.ri.forwarded = slices.Delete(r.ri.forwarded, i, i+1)
			r.readStates = append(r.readStates, ReadState{Context: m.Context, Index: m.Index, Failed: m.Reject})
			return
		}
	}
}

// expireForwardedReads fails the forwarded reads that four election
// timeouts left unanswered: the request or its answer was lost (a master
// that changes or goes away fails them at once, through reset). A loaded
// master may take a while; the node's read timeout is the client's bound.
func (r *Replica) expireForwardedReads() {
	n := 0
	for _, f := range r.ri.forwarded {
		if r.timer.now-f.at < 4*r.cfg.ElectionTicks {
			break
		}
		r.readStates = append(r.readStates, ReadState{Context: f.context, Failed: true})
		n++
	}
	r.ri.forwarded = slices.Delete(r.ri.forwarded, 0, n)
}

// failForwardedReads fails every read forwarded to the master this replica
// stops following.
func (r *Replica) failForwardedReads() {
	for _, f := range r.ri.forwarded {
		r.readStates = append(r.readStates, ReadState{Context: f.context, Failed: true})
	}
	r.ri.forwarded = nil
}

// failPendingReads refuses every read index this master had not yet granted.
func (r *Replica) failPendingReads() {
	for _, pr := range r.lead.pendingReads {
		r.answerRead(pr.from, pr.context, 0, true)
	}
	r.lead.pendingReads = nil
}

func (r *Replica) answerRead(to NodeID, context, index uint64, failed bool) {
	if to == r.id {
		r.readStates = append(r.readStates, ReadState{Context: context, Index: index, Failed: failed})
		return
	}
	r.send(Message{Type: MsgReadIndexResp, To: to, Context: context, Index: index, Reject: failed})
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
	if r.cfg.bugs.readWithoutQuorum || (len(r.conf.cur.Voters()) == 1 && !r.inFlight()) || r.leaseValid() {
		r.answerRead(from, context, r.committed, false)
		return
	}
	r.lead.pendingReads = append(r.lead.pendingReads, pendingRead{from: from, context: context, index: r.committed, round: r.lead.round + 1})
	if r.lead.confirmed == r.lead.round {
		r.broadcastHeartbeat()
	}
}

// leaseValid reports whether this master may answer reads alone: a quorum
// acknowledged a heartbeat sent less than LeaseTicks ago, and each of them
// refuses other candidates for longer than that on any clock within the
// drift bound.
func (r *Replica) leaseValid() bool {
	return r.cfg.LeaseTicks > 0 && r.isReady() && r.lead.transferTo == None && !r.inFlight() && r.timer.now < r.lead.leaseUntil
}

// broadcastHeartbeat starts a heartbeat round: followers echo the round, and
// a round a quorum echoed confirms this master and extends its lease. It
// carries the handover under way, if any.
func (r *Replica) broadcastHeartbeat() {
	r.timer.heartbeatElapsed = 0
	r.lead.round++
	transfer := r.lead.transferTo != None
	r.lead.roundsSent = append(r.lead.roundsSent, roundSent{round: r.lead.round, at: r.timer.now, transfer: transfer})
	for _, to := range r.others() {
		m := Message{Type: MsgHeartbeat, To: to, Ballot: r.masterBallot, Commit: r.committed, Context: r.lead.round, Index: r.lead.noopSlot}
		if transfer {
			m.Transfer, m.Token = r.lead.transferTo, r.lead.transferID
		}
		r.send(m)
	}
}

// maybeConfirm advances the highest round a quorum acknowledged, extends the
// lease from when that round was sent (trap 5), and grants the reads it
// covers.
func (r *Replica) maybeConfirm() {
	// A majority of the configuration in force confirms, and while a change
	// is under way a majority of the other one too.
	readRound := func(pr *progress) uint64 { return pr.readRound }
	q := r.quorumOver(r.conf.cur, readRound, r.lead.round)
	if p := r.lead.rc.pending; p != nil {
		q = min(q, r.quorumOver(*p, readRound, r.lead.round))
	}
	if r.lead.rc.extending {
		q = min(q, r.quorumOver(r.lead.rc.prev, readRound, r.lead.round))
	}
	if q <= r.lead.confirmed {
		return
	}
	r.lead.confirmed = q
	sentAt, found, transfer := 0, false, false
	for len(r.lead.roundsSent) > 0 && r.lead.roundsSent[0].round <= q {
		if rs := r.lead.roundsSent[0]; rs.round == q {
			sentAt, found, transfer = rs.at, true, rs.transfer
		}
		r.lead.roundsSent = r.lead.roundsSent[1:]
	}
	if r.cfg.bugs.leaseFromAcks {
		sentAt, found = r.timer.now, true
	}
	if r.cfg.bugs.looseTimeoutNow {
		transfer = false
	}
	if until := sentAt + r.cfg.LeaseTicks; found && !transfer && r.lead.transferTo == None && !r.inFlight() && until > r.lead.leaseUntil {
		r.lead.leaseUntil = until
	}
	kept := r.lead.pendingReads[:0]
	for _, pr := range r.lead.pendingReads {
		if pr.round <= q {
			r.answerRead(pr.from, pr.context, pr.index, false)
		} else {
			kept = append(kept, pr)
		}
	}
	r.lead.pendingReads = kept
	if len(kept) > 0 && r.lead.confirmed == r.lead.round {
		r.broadcastHeartbeat()
	}
}

// handleHeartbeat follows the master, learns its commit index and the
// handover under way, and echoes the round.
func (r *Replica) handleHeartbeat(m Message) {
	if !r.followMaster(m, MsgHeartbeatResp) {
		return
	}
	r.fol.masterStart = m.Index
	r.noteTransfer(m)
	r.learnCommit(m.Commit)
	r.maybePromote()
	resp := Message{Type: MsgHeartbeatResp, To: m.From, Ballot: m.Ballot, Context: m.Context}
	if r.learn.membership != Voter {
		resp.Learner, resp.Hint, resp.Token = true, r.learn.sawPrepare, r.learn.token
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
		// A learner neither counts for the quorum nor confirms reads.
		r.learnerAsks(m)
		return
	}
	delete(r.learn.tokens, m.From)
	pr.active = true
	if m.Context > pr.readRound {
		pr.readRound = m.Context
	}
	r.maybeConfirm()
}
