package paxos

// This file owns membership change through the log (RECONFIG.md): which
// configuration governs which slot, the master's drain at a configuration
// slot, the extension of its phase 1 to a new configuration's voters, and
// the quorums that confirm it while a change is under way. Pure: no
// goroutines, called by the node's engine.

import (
	"errors"
	"fmt"
	"maps"
	"slices"
)

// Errors of ProposeConfig, and of Propose during a change.
var (
	// ErrConfigInFlight is returned by ProposeConfig while another change
	// is under way: one change at a time.
	ErrConfigInFlight = errors.New("paxos: a membership change is under way")
	// ErrReconfiguring is returned by Propose while the master waits for
	// a configuration to be chosen and its new voters to promise: nothing
	// is proposed after a configuration slot until then. Retry shortly.
	ErrReconfiguring = errors.New("paxos: membership change under way; retry")
	// ErrRemoveMaster is returned by ProposeConfig for a configuration in
	// which the master is not a voter: hand mastership over first.
	ErrRemoveMaster = errors.New("paxos: the master cannot remove itself; hand over first")
	// ErrNotLive is wrapped by *NotLiveError.
	ErrNotLive = errors.New("paxos: the new configuration's majority is not live")
)

// NotLiveError is returned by ProposeConfig when fewer than a majority of
// the new configuration's voters answered this master within the last
// election timeout (etcd's strict reconfiguration check).
type NotLiveError struct {
	Unreachable []NodeID
	Need, Have  int
}

func (e *NotLiveError) Error() string {
	return fmt.Sprintf("%v: %d of its voters answer, it needs %d; not reachable: %v", ErrNotLive, e.Have, e.Need, e.Unreachable)
}

// Unwrap returns ErrNotLive.
func (e *NotLiveError) Unwrap() error { return ErrNotLive }

// confState is what a replica knows of configurations.
type confState struct {
	cur     Configuration // in force: it governs every slot after curSlot
	curSlot uint64        // the slot that chose it; 0 for the one given at start
	scanned uint64        // chosen slots up to here were looked at for configurations
	removed bool          // cur does not include this replica
	// removedFor counts the ticks since it was removed: it lingers a while
	// (removalGrace), never campaigning but answering as an acceptor and
	// serving fetches, so the members that must learn of the change can
	// learn it from it too; then SoftState.Removed tells the node to stop.
	removedFor int
	// departAcks are the voters of cur (the configuration that removed
	// this replica) known to have applied it: they answered its probe
	// with a configuration or a chosen prefix at least curSlot, or (the
	// node's handshake) refused it naming such a configuration. It leaves
	// once they are a majority (mayDepart).
	departAcks map[NodeID]bool
	// handedOff is the newest configuration slot for which the
	// application made sure (SideStateHandedOff) that a majority of that
	// configuration's voters holds the side state this replica holds:
	// with side state, a removed replica leaves only then.
	handedOff uint64
	// guests are replicas outside cur whose messages this replica takes,
	// because they know a newer configuration (admits): the slot that chose
	// it, by sender. A replica restarted on its --peers list after its
	// directory was wiped knows only that list; a master added since is
	// one, and so is a member added while this one was down.
	guests map[NodeID]uint64
}

// removalGrace is how long a removed replica lingers before it reports
// itself removed.
func removalGrace(c Config) int { return 4 * c.ElectionTicks }

// reconfig is a master's membership change under way.
type reconfig struct {
	pending     *Configuration // a configuration value proposed at pendingSlot, not yet chosen
	pendingSlot uint64
	// extending: pending was chosen (it is cur now); waiting for a majority
	// of its voters to have promised this ballot. prev is the configuration
	// before it, whose quorum confirms reads meanwhile too.
	extending bool
	prev      Configuration
	// promised holds what every replica that promised this ballot
	// reported, in phase 1, late, or when the extension asked: a promise
	// counted for a configuration's quorum is a report merged for the
	// slots that configuration governs.
	promised map[NodeID][]Entry
	extFrom  uint64          // the first slot the extension prepares
	sent     map[NodeID]bool // extension Prepares sent
	// gone holds the members the last change removed, with the tick it
	// took effect: the master goes on sending them the log and heartbeats
	// for removalGrace, so they learn the change is chosen and stop.
	gone map[NodeID]int
}

// Configuration returns the configuration in force, the slot that chose it
// (0 for the one the replica started with), and the one a master is
// changing to, if any.
func (r *Replica) Configuration() (cur Configuration, slot uint64, next *Configuration) {
	if r.role == Master && r.lead.rc.pending != nil {
		p := *r.lead.rc.pending
		next = &p
	}
	return r.conf.cur, r.conf.curSlot, next
}

// inFlight reports whether a master is in the middle of a change.
func (r *Replica) inFlight() bool {
	return r.role == Master && (r.lead.rc.pending != nil || r.lead.rc.extending)
}

// scanConfigs applies the configurations among the chosen slots not yet
// looked at, in slot order.
func (r *Replica) scanConfigs() {
	for s := max(r.conf.scanned+1, r.offset); s <= r.committed; s++ {
		st := r.slot(s, false)
		if st != nil && st.value.Kind == ValueConfig {
			r.applyConfig(s, st.value)
		}
	}
	r.conf.scanned = max(r.conf.scanned, r.committed)
}

// applyConfig puts the configuration chosen at slot in force. A value that
// does not decode governs nothing: every replica ignores it alike.
func (r *Replica) applyConfig(slot uint64, v Value) {
	c, err := ParseConfiguration(v)
	if err != nil || slot <= r.conf.curSlot {
		return
	}
	prev := r.conf.cur
	r.conf.cur, r.conf.curSlot = c, slot
	r.conf.departAcks = nil
	maps.DeleteFunc(r.conf.guests, func(_ NodeID, s uint64) bool { return s <= slot })
	_, member := c.Member(r.id)
	r.conf.removed = !member
	if r.role != Master {
		return
	}
	rc := &r.lead.rc
	if rc.pending != nil && rc.pendingSlot == slot {
		rc.pending = nil
		rc.extending, rc.prev, rc.extFrom = true, prev, slot+1
	}
	for _, m := range prev.Members {
		if _, ok := c.Member(m.ID); !ok {
			if rc.gone == nil {
				rc.gone = map[NodeID]int{}
			}
			rc.gone[m.ID] = r.timer.now
		}
	}
	r.syncProgress()
	r.maybeFinishExtension()
}

// syncProgress gives a master a progress entry for every member it talks
// to, and drops those of members it no longer does.
func (r *Replica) syncProgress() {
	others := r.others()
	for _, id := range others {
		if r.lead.prs[id] == nil {
			// Slots up to the chosen prefix are chosen: it fetches them, and
			// Accepts start after them.
			r.lead.prs[id] = &progress{match: r.committed, next: r.committed + 1}
		}
	}
	for id := range r.lead.prs {
		if !slices.Contains(others, id) {
			delete(r.lead.prs, id)
		}
	}
}

// maybeFinishExtension ends the extension once a majority of the new
// configuration's voters promised this ballot, or asks the ones missing.
func (r *Replica) maybeFinishExtension() {
	rc := &r.lead.rc
	if !rc.extending {
		return
	}
	have := 0
	for _, id := range r.conf.cur.Voters() {
		if _, ok := rc.promised[id]; ok {
			have++
		}
	}
	if have < r.conf.cur.Quorum() {
		for _, id := range r.conf.cur.Voters() {
			if _, ok := rc.promised[id]; !ok && !rc.sent[id] {
				if rc.sent == nil {
					rc.sent = map[NodeID]bool{}
				}
				rc.sent[id] = true
				r.send(Message{Type: MsgPrepare, To: id, Ballot: r.masterBallot, Slot: rc.extFrom})
			}
		}
		return
	}
	// Everything the promises reported after the configuration slot is
	// re-proposed, the highest ballot per slot.
	best := map[uint64]Entry{}
	for _, ents := range rc.promised {
		mergeBest(best, ents, rc.extFrom)
	}
	rc.extending, rc.prev, rc.sent = false, Configuration{}, nil
	r.syncProgress()
	r.repropose(rc.extFrom, best)
}

// repropose proposes, from slot from on, the value best holds for each
// slot up to the highest (a no-op for a gap), under the own ballot, then
// the master's no-op if it has none yet. It stops after a configuration
// value: nothing after it is proposed until it is chosen, and what best
// holds beyond waits.
func (r *Replica) repropose(from uint64, best map[uint64]Entry) {
	maxSlot := from - 1
	for s := range best {
		maxSlot = max(maxSlot, s)
	}
	for s := from; s <= maxSlot; s++ {
		v := Value{Kind: ValueNoop}
		if e, ok := best[s]; ok {
			v = e.Value
		}
		if r.lead.lastSlot+1 != s {
			panic(fmt.Sprintf("paxos: node %d re-proposes slot %d after %d", r.id, s, r.lead.lastSlot))
		}
		r.appendOwn(v)
		if v.Kind == ValueConfig && s > 1 {
			if c, err := ParseConfiguration(v); err == nil && !r.cfg.bugs.configAtOnce {
				// What best holds beyond waits: the extension re-proposes
				// it, with what the new voters report.
				r.lead.rc.pending, r.lead.rc.pendingSlot = &c, s
				r.syncProgress()
				return
			}
		}
	}
	if r.lead.noopSlot == 0 {
		r.lead.noopSlot = r.appendOwn(Value{Kind: ValueNoop})
	}
}

// notePromiseOnMaster records, on a master, a promise of its own ballot:
// a late one from phase 1, or one the extension asked for.
func (r *Replica) notePromiseOnMaster(m Message) {
	rc := &r.lead.rc
	if m.Ballot != r.masterBallot {
		return
	}
	if m.Reject {
		if r.masterBallot.Less(m.Hint) {
			r.becomeFollower(None, Ballot{})
		}
		return
	}
	if rc.promised == nil {
		rc.promised = map[NodeID][]Entry{}
	}
	rc.promised[m.From] = m.Entries // the newest report: it holds what the older did
	r.maybeFinishExtension()
}

// mergeBest puts in best, for every slot from from on, the entry of the
// highest ballot among best's and ents'.
func mergeBest(best map[uint64]Entry, ents []Entry, from uint64) {
	for _, e := range ents {
		if e.Slot < from {
			continue
		}
		if cur, ok := best[e.Slot]; !ok || cur.Ballot.Less(e.Ballot) {
			best[e.Slot] = e
		}
	}
}

// ProposeConfig asks the master to change the membership to c. The master
// proposes c in its next slot and proposes nothing more until c is chosen
// and a majority of c's voters promised its ballot. It refuses while
// another change is under way, when it would not be a voter of c, and when
// fewer than a majority of c's voters answered it within the last election
// timeout.
func (r *Replica) ProposeConfig(c Configuration) (uint64, error) {
	if r.role != Master || r.lead.transferTo != None {
		return 0, ErrNotMaster
	}
	if err := c.Validate(); err != nil {
		return 0, err
	}
	if r.inFlight() {
		return 0, ErrConfigInFlight
	}
	if !c.IsVoter(r.id) {
		return 0, ErrRemoveMaster
	}
	live := &NotLiveError{Need: c.Quorum()}
	for _, id := range c.Voters() {
		if id == r.id || r.live(r.lead.prs[id]) {
			live.Have++
		} else {
			live.Unreachable = append(live.Unreachable, id)
		}
	}
	if live.Have < live.Need {
		return 0, live
	}
	if r.lead.lastSlot-r.committed >= uint64(r.cfg.MaxUncommitted) {
		return 0, ErrBusy
	}
	r.lead.leaseUntil = 0
	slot := r.appendOwn(c.Value())
	if !r.cfg.bugs.configAtOnce {
		r.lead.rc.pending, r.lead.rc.pendingSlot = &c, slot
	} else {
		r.applyConfigAtOnce(slot, c)
	}
	r.syncProgress()
	return slot, nil
}

// applyConfigAtOnce is planted bug (l): the new configuration governs the
// slots after its own at once, before it is chosen, and the master goes on
// proposing.
func (r *Replica) applyConfigAtOnce(slot uint64, c Configuration) {
	r.conf.cur, r.conf.curSlot = c, slot
}

// quorumOver returns what a majority of c's voters reached, by of for the
// followers and self for the master.
func (r *Replica) quorumOver(c Configuration, of func(pr *progress) uint64, self uint64) uint64 {
	vals := r.scratch[:0]
	for _, id := range c.Voters() {
		switch pr := r.lead.prs[id]; {
		case id == r.id:
			vals = append(vals, self)
		case pr == nil:
			vals = append(vals, 0)
		default:
			vals = append(vals, of(pr))
		}
	}
	q := quorumValue(vals, c.Quorum())
	r.scratch = vals
	return q
}

// members returns every member of the configurations a replica talks to
// now: the one in force and, on a master changing it, the next one.
func (r *Replica) members() []NodeID {
	ids := r.conf.cur.IDs()
	if r.role == Master {
		if p := r.lead.rc.pending; p != nil {
			for _, id := range p.IDs() {
				if !slices.Contains(ids, id) {
					ids = append(ids, id)
				}
			}
		}
		if r.lead.rc.extending {
			for _, id := range r.lead.rc.prev.IDs() {
				if !slices.Contains(ids, id) {
					ids = append(ids, id)
				}
			}
		}
		for id := range r.lead.rc.gone {
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
	}
	return ids
}

// forgetGone stops sending to the members removed more than removalGrace
// ago.
func (r *Replica) forgetGone() {
	changed := false
	for id, at := range r.lead.rc.gone {
		if r.timer.now-at >= removalGrace(r.cfg) {
			delete(r.lead.rc.gone, id)
			changed = true
		}
	}
	if changed {
		r.syncProgress()
	}
}

// InFlight reports whether this master is in the middle of a membership
// change: a configuration proposed and not yet chosen, or chosen and its new
// voters' promises not all in.
func (r *Replica) InFlight() bool { return r.inFlight() }

// CaughtUpLearners returns, on a master, the learners of the configuration
// in force that have accepted every slot up to within maxLag of the chosen
// prefix and answered under this ballot: the ones worth promoting.
func (r *Replica) CaughtUpLearners(maxLag uint64) []NodeID {
	if r.role != Master {
		return nil
	}
	var out []NodeID
	for _, m := range r.conf.cur.Members {
		pr := r.lead.prs[m.ID]
		if m.Voter || pr == nil || !pr.heard || pr.learner {
			continue
		}
		if pr.match+maxLag >= r.committed {
			out = append(out, m.ID)
		}
	}
	return out
}

// Peers returns the replicas this one sends to now, itself excluded: the
// members of the configuration in force, and on a master also those of the
// one it is changing to and those the last change removed, for a while.
func (r *Replica) Peers() []NodeID {
	ids := r.others()
	for id, slot := range r.conf.guests {
		if slot > r.conf.curSlot && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// mayDepart reports whether a removed replica may stop: a majority of the
// configuration that removed it applied that configuration (and, with side
// state, holds it up to what this replica knows chosen, and the side state
// this replica holds was handed off to a majority). Before that
// the members of the old configuration may still need its vote for the
// slots up to the removal (the new configuration governs only the slots
// after it), and without it, with one more of them lost, those slots
// could never be decided again.
func (r *Replica) mayDepart() bool {
	if r.cfg.bugs.departEarly {
		return true
	}
	if r.cfg.SideState && r.conf.handedOff < r.conf.curSlot && !r.cfg.bugs.departSansChunks {
		return false
	}
	return votersIn(r, r.conf.departAcks) > len(r.conf.cur.Voters())/2
}

// SideStateHandedOff tells a removed replica that the application made
// sure a majority of the voters of the configuration chosen at slot holds
// the side state this replica holds (the large files' chunks it holds):
// it may hold a chunk's last copy, so it leaves only once this is said
// for the configuration that removed it. Called on a replica that was not
// removed, or for an older configuration, it changes nothing.
func (r *Replica) SideStateHandedOff(slot uint64) {
	r.conf.handedOff = max(r.conf.handedOff, slot)
}

// probeDeparture asks, every heartbeat, the voters that have not applied
// the configuration that removed this replica yet whether they have.
func (r *Replica) probeDeparture(before int) {
	if !r.conf.removed || r.mayDepart() {
		return
	}
	if h := r.cfg.HeartbeatTicks; before/h == r.timer.now/h {
		return
	}
	for _, id := range r.conf.cur.Voters() {
		if id != r.id && !r.conf.departAcks[id] {
			r.send(Message{Type: MsgProbe, To: id, Commit: r.conf.curSlot})
		}
	}
}

// teachDeparture sends, on a removed replica that lingers, the chosen
// slots a voter of the configuration that removed it lacks, when its probe
// answer shows it has not learned that configuration yet. A voter far
// behind may still be in a configuration where it is a learner and whose
// voters are all gone or removed; if every voter of the new configuration
// is behind like that, or has lost its state and waits to be promoted,
// only the removed replicas know the configuration in force, and without
// this no one would ever campaign. Chosen values are facts: telling them
// changes no vote.
func (r *Replica) teachDeparture(m Message) {
	if !r.conf.removed || !r.conf.cur.IsVoter(m.From) ||
		max(m.ConfSlot, m.Commit) >= r.conf.curSlot || m.Commit >= r.committed {
		return
	}
	r.sendChosen(m.From, m.Commit+1)
}

// noteApplied records that voter id durably knows the slots chosen up to
// slot, the configuration that removed this replica among them: it
// answered a probe so, or (PeerConfigSlot) the node's handshake learned
// it. What a voter knows only in memory does not count: after a crash it
// may know less, and with this replica gone no one might tell it. With
// side state (Config.SideState), the voter must also hold it for every
// slot this replica knows chosen (settled): until a majority of the new
// configuration holds every chunk of the large files chosen so far, this
// replica may hold the last copy of one, and it stays to serve it.
func (r *Replica) noteApplied(id NodeID, slot, settled uint64) {
	if !r.conf.removed || slot < r.conf.curSlot || !r.conf.cur.IsVoter(id) {
		return
	}
	if r.cfg.SideState && settled < r.committed && !r.cfg.bugs.departSansChunks {
		return
	}
	if r.conf.departAcks == nil {
		r.conf.departAcks = map[NodeID]bool{}
	}
	r.conf.departAcks[id] = true
}

// PeerConfigSlot tells a removed replica that replica id durably knows the
// slots chosen up to slot, and holds its side state up to settled (the
// node learns both from a handshake that replica refused: it does not
// know a replica outside its configuration).
func (r *Replica) PeerConfigSlot(id NodeID, slot, settled uint64) { r.noteApplied(id, slot, settled) }

// admits reports whether Step takes m from its sender: a replica this one
// talks to (members), or one that knows a configuration newer than the one
// in force here, which may well include it. Only members' votes and
// promises count toward a quorum (votersIn), so hearing a guest changes
// whom this replica learns from and answers, never what a quorum is; and a
// removed replica knows no configuration newer than the one that removed
// it, so a replica that applied that one does not hear it.
func (r *Replica) admits(m Message) bool {
	if r.isMember(m.From) {
		return true
	}
	if m.ConfSlot <= r.conf.curSlot {
		return false
	}
	if r.conf.guests == nil {
		r.conf.guests = map[NodeID]uint64{}
	}
	r.conf.guests[m.From] = max(r.conf.guests[m.From], m.ConfSlot)
	return true
}
