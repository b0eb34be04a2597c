package paxos

// This file owns phase 2 and what follows it: the master fills each
// follower's pipeline window with Accepts, acceptors accept and answer, a
// slot is chosen once a quorum accepted it under the master's ballot, and
// every replica learns the chosen prefix from the master's commit notice
// (trap 1: only for values held under that master's ballot) or fetches it.
// Compaction and snapshot installs move the log's start. Pure: no
// goroutines, called by the node's engine.

import (
	"fmt"
	"slices"
)

// progress is the master's view of one follower.
type progress struct {
	match      uint64 // every slot from the master's start up to here accepted under its ballot
	next       uint64 // next slot to send
	progressed bool   // match moved since the last heartbeat
	active     bool   // heard from within the current check-quorum window
	readRound  uint64 // highest read round acknowledged
	learner    bool   // it may not vote yet: send it no Accepts
	heard      bool   // it answered under this ballot, so learner is known
	heardAt    int    // timer.now of its last answer under this ballot
}

// mastership is a master's state: its followers and its proposals, its
// heartbeat rounds and lease (reads.go), and a handover (handover.go).
type mastership struct {
	prs       map[NodeID]*progress
	selfMatch uint64 // own votes made durable (Advance)
	start     uint64 // first slot re-proposed under the own ballot
	noopSlot  uint64 // serving (read indexes) waits until this is chosen
	lastSlot  uint64 // highest slot proposed

	round        uint64      // heartbeat rounds broadcast under this ballot
	confirmed    uint64      // highest round a quorum acknowledged
	roundsSent   []roundSent // rounds not yet confirmed, with when they went out
	leaseUntil   int         // the lease holds while now < leaseUntil
	pendingReads []pendingRead

	transferTo      NodeID // handing over to this follower; None if not
	transferElapsed int
	transferID      uint64 // handovers started under this ballot; names the current one

	rc reconfig // a membership change under way (reconfig.go)
}

// following is a follower's view of the master it follows.
type following struct {
	masterLost   bool   // the master's connection closed since it was last heard
	masterCommit uint64 // the master's chosen prefix, from its Accepts and heartbeats
	fetchWait    int    // ticks until another fetch may be sent; 0 = none in flight
	masterStart  uint64 // the master's no-op slot, from its heartbeats
	transfer     transferNote
}

// Propose asks the master to choose cmds, as one batch in one slot. It
// returns the slot; the commands are applied when that slot is chosen, which
// a change of master can prevent (the caller retries under its own ids).
func (r *Replica) Propose(cmds [][]byte) (uint64, error) {
	if len(cmds) == 0 {
		return 0, ErrEmptyProposal
	}
	if r.role != Master || r.lead.transferTo != None {
		return 0, ErrNotMaster
	}
	if r.inFlight() && !r.cfg.bugs.configAtOnce {
		return 0, ErrReconfiguring
	}
	if r.lead.lastSlot-r.committed >= uint64(r.cfg.MaxUncommitted) {
		return 0, ErrBusy
	}
	return r.appendOwn(Value{Kind: ValueCmds, Cmds: cmds}), nil
}

// appendOwn accepts v in the next slot under the master's ballot.
func (r *Replica) appendOwn(v Value) uint64 {
	r.lead.lastSlot++
	s := r.slot(r.lead.lastSlot, true)
	*s = slotState{present: true, ballot: r.masterBallot, value: v}
	r.accepted = append(r.accepted, Entry{Slot: r.lead.lastSlot, Ballot: r.masterBallot, Value: v})
	return r.lead.lastSlot
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

// sendAccepts fills each follower's pipeline window from the log.
func (r *Replica) sendAccepts() {
	if r.role != Master {
		return
	}
	for _, id := range r.others() {
		pr := r.lead.prs[id]
		if pr.learner {
			continue
		}
		if pr.next < r.offset {
			pr.next = r.offset // below is compacted: the follower fetches a snapshot
		}
		for r.canSend(pr) {
			hi := min(r.lead.lastSlot, pr.next+uint64(r.cfg.MaxEntriesPerMsg)-1)
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
// The window counts from the compacted offset when the follower's
// acknowledgements are below it: those slots come to it in a snapshot, not
// in Accepts, so they can never fill the window (a follower that last
// answered before a compaction would otherwise get no Accept again).
func (r *Replica) canSend(pr *progress) bool {
	base := max(pr.match, r.offset-1)
	return !pr.learner && pr.next <= r.lead.lastSlot && pr.next-base-1 < uint64(r.cfg.MaxInflight)
}

// followMaster accepts m.From as master at m.Ballot if that ballot is
// current. It returns false (after refusing) when the ballot is below the
// promise.
func (r *Replica) followMaster(m Message, respType MsgType) bool {
	if m.Ballot.Less(r.promise) {
		r.send(Message{Type: respType, To: m.From, Ballot: m.Ballot, Reject: true, Hint: r.promise})
		return false
	}
	if r.role == Master && m.Ballot == r.masterBallot {
		// Step drops a message whose ballot is not its sender's, and drops
		// our own messages: another replica cannot lead under our ballot.
		panic(fmt.Sprintf("paxos: node %d: %v from %d at our own ballot %v", r.id, m.Type, m.From, m.Ballot))
	}
	if r.role != Follower || r.master != m.From || r.masterBallot != m.Ballot {
		r.becomeFollower(m.From, m.Ballot)
	}
	r.timer.electionElapsed = 0
	r.timer.sinceMaster = 0
	r.fol.masterLost = false
	return true
}

func (r *Replica) handleAccept(m Message) {
	if !r.followMaster(m, MsgAccepted) {
		return
	}
	if r.learn.membership != Voter {
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

// learnCommit advances the chosen prefix from the master's commit notice,
// which the caller has checked comes from the master at masterBallot. A
// held value counts as chosen only if it was accepted under that ballot
// (trap 1): under one ballot the master proposes one value per slot, so
// that is the value the notice speaks of. Anything else is fetched.
func (r *Replica) learnCommit(commit uint64) {
	if commit > r.fol.masterCommit {
		r.fol.masterCommit = commit
	}
	for r.committed < r.fol.masterCommit {
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
	r.scanConfigs()
	if r.committed < r.fol.masterCommit && r.fol.fetchWait == 0 && r.master != None {
		r.fol.fetchWait = 2 * r.cfg.HeartbeatTicks
		r.send(Message{Type: MsgFetch, To: r.master, Slot: r.committed + 1})
	}
}

// answerToMaster checks a follower's answer to this master: a refusal
// naming a higher promise deposes it; an answer under its own ballot returns
// the follower's progress, anything else nil.
func (r *Replica) answerToMaster(m Message) *progress {
	if m.Reject {
		if r.masterBallot.Less(m.Hint) {
			r.becomeFollower(None, Ballot{})
		}
		return nil
	}
	pr := r.lead.prs[m.From]
	if pr == nil || m.Ballot != r.masterBallot {
		return nil
	}
	pr.heard, pr.heardAt = true, r.timer.now
	return pr
}

// live reports whether the follower answered within the last election
// timeout, as a voter. Unlike active, which the check-quorum window clears
// when it turns over, it holds for a follower that answered a moment
// before that: a membership change and a handover must not be refused
// then.
func (r *Replica) live(pr *progress) bool {
	return pr != nil && pr.heard && !pr.learner && r.timer.now-pr.heardAt <= r.cfg.ElectionTicks
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
		if r.lead.transferTo == m.From {
			r.maybeSendTimeoutNow()
		}
	}
}

// maybeCommit advances the chosen prefix to the highest slot a quorum
// (the master counting itself only once persisted) accepted under its
// ballot, and reports whether it moved.
// Every slot above the chosen prefix is governed by the configuration in
// force: nothing is proposed after a configuration slot until it is chosen
// (RECONFIG.md).
func (r *Replica) maybeCommit() bool {
	q := r.quorumOver(r.conf.cur, func(pr *progress) uint64 { return pr.match }, r.lead.selfMatch)
	if p := r.lead.rc.pending; p != nil {
		q = min(q, r.lead.rc.pendingSlot) // the pipeline is drained there
	}
	if q <= r.committed {
		return false
	}
	for s := r.committed + 1; s <= q; s++ {
		r.slot(s, false).chosen = true
	}
	r.committed = q
	r.scanConfigs()
	return true
}

// handleFetch answers a catch-up request with chosen entries.
func (r *Replica) handleFetch(m Message) { r.sendChosen(m.From, m.Slot) }

// sendChosen sends to a peer the chosen entries from slot on, one
// message's worth, or, if they are compacted away, tells it to fetch this
// replica's snapshot.
func (r *Replica) sendChosen(to NodeID, slot uint64) {
	if slot < r.offset {
		r.send(Message{Type: MsgFetchResp, To: to, Reject: true, Index: r.offset, Commit: r.committed})
		return
	}
	var out []Entry
	for s := max(slot, r.offset); s <= r.committed && len(out) < r.cfg.MaxEntriesPerMsg; s++ {
		st := r.slot(s, false)
		out = append(out, Entry{Slot: s, Ballot: st.ballot, Value: st.value})
	}
	r.send(Message{Type: MsgFetchResp, To: to, Commit: r.committed, Entries: out})
}

// handleFetchResp stores chosen entries and advances the chosen prefix. The
// sender's commit index is not a commit notice: the sender may follow a
// newer master than the one this replica follows, and its chosen prefix
// speaks of that master's ballot, not of the values this replica holds
// under the ballot it follows.
func (r *Replica) handleFetchResp(m Message) {
	if r.role == Master {
		// A master's chosen prefix moves with its own quorum only; this
		// answers a fetch it sent before it took office.
		return
	}
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
	if r.cfg.bugs.fetchCommit && m.Commit > r.fol.masterCommit && m.From == r.master {
		r.fol.masterCommit = m.Commit
	}
	if r.committed > before {
		// Progress: ask for the next batch at once. A duplicate or stale
		// response makes none and waits for the timer, so duplicates
		// cannot multiply fetches.
		r.fol.fetchWait = 0
	}
	r.scanConfigs()
	if r.role == Follower {
		r.learnCommit(0)
	}
	r.maybePromote()
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
//
// conf is the configuration in force at slot and confSlot the slot that
// chose it (0 if the snapshot holds the one the cluster started with).
func (r *Replica) RestoreSnapshot(slot uint64, conf Configuration, confSlot uint64) bool {
	if slot <= r.committed {
		return false
	}
	if len(conf.Members) > 0 && confSlot >= r.conf.curSlot {
		r.conf.cur, r.conf.curSlot = conf, confSlot
		_, member := conf.Member(r.id)
		r.conf.removed = !member
	}
	r.conf.scanned = slot
	if slot+1 >= r.offset+uint64(len(r.log)) {
		r.log = r.log[:0]
	} else {
		r.log = slices.Delete(r.log, 0, int(slot+1-r.offset))
	}
	r.offset = slot + 1
	r.committed, r.delivered = slot, slot
	r.fol.fetchWait = 0
	if r.role == Follower {
		r.learnCommit(0)
	}
	return true
}
