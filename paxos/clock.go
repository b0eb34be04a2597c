package paxos

// This file owns the replica's sense of time. The core reads no clock: the
// node turns its monotonic clock into ticks and hands the core every tick
// that elapsed, however long the process was stopped, before the core
// decides anything that rests on time (DESIGN.md, trap 8). A replica
// stopped for two seconds therefore wakes two seconds older: its lease has
// run out, its candidacy has timed out, and a learner's wait has passed.
// Pure: no goroutines; the node's engine calls Tick and Elapse.

// timers are the replica's clocks, in ticks.
type timers struct {
	now              int // ticks since this replica started
	electionElapsed  int // since this replica last heard its master or started a campaign
	sinceMaster      int // since it last heard a live master (stickiness)
	electionTimeout  int
	heartbeatElapsed int // master: since the last heartbeat round
	quorumElapsed    int // master: since the last check that a quorum answers
}

// Tick advances the replica's clock by one tick.
func (r *Replica) Tick() { r.Elapse(1) }

// Elapse advances the replica's clock by n ticks at once, as when the node
// finds that n ticks passed since it last looked (a stopped process, a long
// pause of its loop). Timers fire once for the whole stretch, not once per
// tick. A stretch longer than a heartbeat means the process may have been
// stopped for longer than its clock shows (a suspended VM whose clock did
// not count the suspension), so a master drops its lease.
func (r *Replica) Elapse(n int) {
	if n <= 0 {
		return
	}
	before := r.timer.now
	r.timer.now += n
	r.timer.sinceMaster += n
	if r.conf.removed {
		r.conf.removedFor += n
		r.probeDeparture(before)
	} else {
		r.conf.removedFor = 0
	}
	if r.role == Master {
		if n > r.cfg.HeartbeatTicks {
			r.lead.leaseUntil = 0
		}
		r.tickMaster(n)
		return
	}
	r.tickOthers(n)
}

// tickOthers runs the timers of a follower or candidate.
func (r *Replica) tickOthers(n int) {
	before := r.timer.electionElapsed
	r.timer.electionElapsed += n
	r.fol.fetchWait = max(r.fol.fetchWait-n, 0)
	r.expireForwardedReads()
	switch r.learn.membership {
	case Fresh:
		if h := r.cfg.HeartbeatTicks; before/h != r.timer.electionElapsed/h {
			for _, to := range r.others() {
				r.send(Message{Type: MsgProbe, To: to, Token: r.cfg.Incarnation})
			}
		}
	case Learner:
		r.maybeDrawToken()
	}
	if r.timer.electionElapsed >= r.timer.electionTimeout && r.mayCampaign() {
		r.campaign()
	}
}

// tickMaster runs a master's timers: the handover, the quorum check and the
// heartbeat.
func (r *Replica) tickMaster(n int) {
	r.timer.sinceMaster = 0
	r.forgetGone()
	if r.lead.transferTo != None {
		r.lead.transferElapsed += n
		if r.lead.transferElapsed >= r.cfg.ElectionTicks {
			r.abandonTransfer()
		} else {
			r.maybeSendTimeoutNow()
		}
	}
	r.timer.heartbeatElapsed += n
	r.timer.quorumElapsed += n
	if r.timer.quorumElapsed >= r.cfg.ElectionTicks {
		// A quorum must have answered within the last election timeout.
		// A stretch that long handled no message at all.
		silent := n >= r.cfg.ElectionTicks
		r.timer.quorumElapsed = 0
		active := 1
		for id, pr := range r.lead.prs {
			if pr.active && !silent && r.conf.cur.IsVoter(id) {
				active++
			}
			pr.active = false
		}
		if active < r.conf.cur.Quorum() {
			r.becomeFollower(None, Ballot{})
			return
		}
	}
	if r.timer.heartbeatElapsed >= r.cfg.HeartbeatTicks {
		for _, pr := range r.lead.prs {
			// A window that made no progress for a whole heartbeat lost a
			// message: send again from the first slot not acknowledged.
			if !pr.progressed && pr.next > pr.match+1 {
				pr.next = pr.match + 1
			}
			pr.progressed = false
		}
		if r.lead.rc.extending {
			r.lead.rc.sent = nil // ask again: a Prepare may have been lost
			r.maybeFinishExtension()
		}
		r.broadcastHeartbeat()
	}
}

func (r *Replica) resetElectionTimer() {
	r.timer.electionElapsed = 0
	r.timer.electionTimeout = r.cfg.ElectionTicks + r.cfg.Rand.IntN(r.cfg.ElectionTicks)
}
