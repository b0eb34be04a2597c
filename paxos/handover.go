package paxos

// This file owns mastership handover. The master stops taking proposals,
// gives up its lease, tells every follower in its heartbeats which handover
// is under way, and tells the target to campaign (TimeoutNow) once the
// target has accepted every slot; the target's Prepare is forced past the
// other followers' stickiness. A handover is bound to itself (trap 9): the
// followers let a forced Prepare pass only for the handover their newest
// heartbeat names, the target campaigns only on the TimeoutNow of that
// handover, and no heartbeat round sent during a handover renews the lease.
// So once a handover is abandoned and the master has a lease again, every
// follower of the quorum that granted it knows the handover ended, and a
// TimeoutNow delivered late forces nothing. Pure: no goroutines, called by
// the node's engine.

// transferNote is what a follower knows of its master's handover: the one
// named by the newest heartbeat round it received.
type transferNote struct {
	round uint64 // the heartbeat round it came from
	to    NodeID // the target; None if no handover is under way
	id    uint64 // which handover of this master
}

// TransferMastership starts handing mastership over to the most caught-up
// voting follower: the master stops taking proposals and gives up its lease
// at once, and tells the target to campaign as soon as it has accepted every
// slot. If the target has not taken over within an election timeout, the
// master serves again. It returns the target.
func (r *Replica) TransferMastership() (NodeID, error) {
	if r.role != Master || r.inFlight() {
		return None, ErrNotMaster
	}
	best, bestMatch := None, uint64(0)
	for _, id := range r.conf.cur.Voters() {
		pr := r.lead.prs[id]
		if id == r.id || !r.live(pr) {
			continue
		}
		if best == None || pr.match > bestMatch {
			best, bestMatch = id, pr.match
		}
	}
	if best == None {
		return None, ErrNoTarget
	}
	r.lead.transferID++
	r.lead.transferTo, r.lead.transferElapsed = best, 0
	r.lead.leaseUntil = 0
	r.broadcastHeartbeat() // the followers learn of the handover first
	r.maybeSendTimeoutNow()
	return best, nil
}

// maybeSendTimeoutNow tells the transfer target to campaign once it holds
// every slot this master proposed.
func (r *Replica) maybeSendTimeoutNow() {
	pr := r.lead.prs[r.lead.transferTo]
	if pr == nil || pr.match < r.lead.lastSlot {
		return
	}
	r.send(Message{Type: MsgTimeoutNow, To: r.lead.transferTo, Ballot: r.masterBallot, Token: r.lead.transferID})
}

// abandonTransfer gives up a handover whose target did not take over: the
// master serves again, and its next heartbeat tells the followers the
// handover is over.
func (r *Replica) abandonTransfer() {
	r.lead.transferTo = None
}

// noteTransfer records the handover a heartbeat of the followed master
// names, unless a newer round was seen already (heartbeats can arrive out
// of order).
func (r *Replica) noteTransfer(m Message) {
	if m.Context <= r.fol.transfer.round {
		return
	}
	r.fol.transfer = transferNote{round: m.Context, to: m.Transfer, id: m.Token}
	if m.Transfer == None {
		r.fol.transfer.id = 0
	}
}

// handleTimeoutNow starts the forced campaign of a handover to this
// replica, if its master's newest heartbeat names that handover.
func (r *Replica) handleTimeoutNow(m Message) {
	if m.From != r.master || m.Ballot != r.masterBallot || !r.mayCampaign() {
		return
	}
	if !r.cfg.bugs.looseTimeoutNow && (m.Token == 0 || r.fol.transfer.to != r.id || r.fol.transfer.id != m.Token) {
		return
	}
	r.campaignForced(m.Token)
}

// grantsForce reports whether a forced Prepare may pass this replica's
// stickiness: it comes from the target of the handover its master runs now.
func (r *Replica) grantsForce(m Message) bool {
	if !m.Force {
		return false
	}
	if r.cfg.bugs.looseTimeoutNow {
		return true
	}
	if m.Token == 0 {
		return false
	}
	if r.role == Master {
		return r.lead.transferTo == m.From && r.lead.transferID == m.Token
	}
	return r.fol.transfer.to == m.From && r.fol.transfer.id == m.Token
}
