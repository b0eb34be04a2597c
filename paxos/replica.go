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
//
// The code is split by concern: this file holds the Replica, its
// restoration, Step and Ready; clock.go time (ticks, timers, stalls);
// election.go the roles and phase 1; replication.go phase 2, commit and
// catch-up; reads.go read indexes, heartbeat rounds and the lease;
// handover.go mastership transfer; membership.go fresh replicas and
// learners; reconfig.go membership change through the log and the member
// list; quorum.go what a majority has reached. Everything runs on the
// caller's goroutine (the node's event loop).
package paxos

// This file owns the Replica: its state, New (restoration from a hard
// state), Step's dispatch by role, and the Ready it hands back. Pure: no
// goroutines; node.New builds it (Run rebuilds it after a disk failure,
// with the engine stopped), and only the node's engine goroutine calls it.

import (
	"errors"
	"fmt"
	"slices"
)

// Errors returned to callers of Propose and TransferMastership.
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

// stepFunc handles the messages only one role answers.
type stepFunc func(r *Replica, m Message)

// Replica is one member's Paxos state. It is not safe for concurrent use.
type Replica struct {
	cfg Config
	id  NodeID

	// Acceptor state: what the disk holds.
	promise   Ballot
	log       []slotState // log[i] is slot offset+i
	offset    uint64
	committed uint64
	delivered uint64 // chosen slots handed out in a Ready
	// durable: the chosen prefix the disk knows (a snapshot's slot, or a
	// commit hint persisted with entries): what this replica knows of the
	// chosen slots whatever a crash loses. A removed replica counts only
	// that from the voters it waits for (noteApplied).
	durable     uint64
	commitAsked uint64 // the configuration slot a Ready last asked to persist the commit hint for

	// Role state, set by reset.
	role         Role
	step         stepFunc
	master       NodeID
	masterBallot Ballot // ballot of the master followed, or own as candidate/master
	maxRound     uint64 // highest round seen anywhere, to pick the next ballot

	timer timers      // clock.go
	cand  candidacy   // election.go: a candidate's phase 1
	lead  mastership  // replication.go, reads.go, handover.go: a master's view of its followers
	fol   following   // replication.go, handover.go: a follower's view of its master
	learn learning    // membership.go: fresh and learner state
	ri    readIndexes // reads.go: reads forwarded to the master
	conf  confState   // reconfig.go: the configuration in force

	scratch []uint64 // for quorum computations

	// Outputs gathered for the next Ready.
	msgs           []Message
	msgsAfter      []Message
	accepted       []Entry
	promiseChanged bool
	readStates     []ReadState
	needSnapshot   NodeID // a peer that compacted what this replica lacks
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
	r.durable = r.committed
	// The configuration in force: the snapshot's, or the one given, then
	// every configuration among the chosen slots held.
	r.conf.cur, r.conf.curSlot = cfg.configuration(), 0
	if len(hs.Config.Members) > 0 {
		r.conf.cur, r.conf.curSlot = hs.Config, hs.ConfigSlot
	}
	r.conf.scanned = hs.Applied
	r.scanConfigs()
	_, member := r.conf.cur.Member(r.id)
	r.conf.removed = !member
	r.maxRound = r.promise.Round
	r.learn.membership = hs.Membership
	if cfg.bugs.wipedVotes && r.learn.membership != Voter {
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

// Status returns the replica's soft state and chosen prefix.
func (r *Replica) Status() (SoftState, uint64) { return r.softState(), r.committed }

// Durable returns the chosen prefix this replica's disk knows (see
// Replica.durable).
func (r *Replica) Durable() uint64 { return r.durable }

// Committed returns the chosen prefix known to this replica.
func (r *Replica) Committed() uint64 { return r.committed }

// Promise returns the highest ballot this replica promised.
func (r *Replica) Promise() Ballot { return r.promise }

func (r *Replica) softState() SoftState {
	return SoftState{Role: r.role, Master: r.master, Ballot: r.masterBallot, Ready: r.isReady(), Transfer: r.lead.transferTo,
		Removed: r.conf.removed && r.conf.removedFor >= removalGrace(r.cfg) && r.mayDepart(), ConfigSlot: r.conf.curSlot}
}

func (r *Replica) send(m Message) {
	m.From, m.ConfSlot = r.id, r.conf.curSlot
	r.msgs = append(r.msgs, m)
}

func (r *Replica) sendAfterPersist(m Message) {
	m.From, m.ConfSlot = r.id, r.conf.curSlot
	r.msgsAfter = append(r.msgsAfter, m)
}

// others returns every member this replica talks to, itself excluded.
func (r *Replica) others() []NodeID {
	return slices.DeleteFunc(r.members(), func(id NodeID) bool { return id == r.id })
}

func (r *Replica) isMember(id NodeID) bool { return slices.Contains(r.members(), id) }

func (r *Replica) seeRound(b Ballot) {
	if b.Round > r.maxRound {
		r.maxRound = b.Round
	}
}

// wellFormed reports whether m's ballot belongs to whom it must: a
// proposer's messages carry its own ballot, the answers the ballot of the
// proposer they answer. Anything else did not come from a correct replica.
func (r *Replica) wellFormed(m Message) bool {
	switch m.Type {
	case MsgPrePrepare, MsgPrepare, MsgAccept, MsgHeartbeat, MsgTimeoutNow:
		return m.Ballot.Node == m.From
	case MsgPrePromise, MsgPromise, MsgAccepted, MsgHeartbeatResp:
		return m.Ballot.Node == r.id
	}
	return true
}

// Step feeds one message from a peer into the replica. Messages to other
// replicas, with a ballot that is not the sender's (or, for answers, ours),
// or from a replica outside the configuration that knows no newer one
// (admits) are dropped. Every replica is an acceptor
// and a learner whatever its role, so those messages are handled here; the
// rest go to the role's step function.
func (r *Replica) Step(m Message) {
	if m.To != r.id || m.From == r.id {
		return
	}
	if m.Type == MsgProbe {
		// Answered whoever asks: a replica on an empty directory asking
		// whether the cluster is new, or a removed one asking whether
		// the configuration that removed it is in force here. The answer
		// tells nothing else.
		r.send(Message{Type: MsgProbeResp, To: m.From, Reject: !r.isFresh(), Commit: r.committed, Token: m.Token, Index: r.durable, Slot: r.learn.settled})
		return
	}
	if !r.admits(m) || !r.wellFormed(m) {
		return
	}
	r.seeRound(m.Ballot)
	r.seeRound(m.Hint)
	switch m.Type {
	case MsgPrePrepare:
		r.handlePrePrepare(m)
	case MsgPrepare:
		r.handlePrepare(m)
	case MsgAccept:
		r.handleAccept(m)
	case MsgHeartbeat:
		r.handleHeartbeat(m)
	case MsgFetch:
		r.handleFetch(m)
	case MsgFetchResp:
		r.handleFetchResp(m)
	case MsgProbeResp:
		r.handleProbeResp(m)
	case MsgReadIndexResp:
		r.handleReadIndexResp(m)
	default:
		r.step(r, m)
	}
}

// HasReady reports whether Ready would ask anything of the application.
func (r *Replica) HasReady() bool {
	if r.role == Master {
		for _, pr := range r.lead.prs {
			if r.canSend(pr) {
				return true
			}
		}
	}
	return len(r.msgs) > 0 || len(r.msgsAfter) > 0 || len(r.accepted) > 0 || r.promiseChanged ||
		r.delivered < r.committed || len(r.readStates) > 0 || r.softState() != r.prevSoft ||
		r.needSnapshot != None || r.learn.changed || r.commitToPersist()
}

// commitToPersist reports whether the chosen prefix covers the slot of the
// configuration in force while the disk does not know it yet, and no Ready
// asked to persist it yet.
func (r *Replica) commitToPersist() bool {
	return r.conf.curSlot > r.durable && r.committed >= r.conf.curSlot && r.commitAsked < r.conf.curSlot
}

// Ready returns what the application must do now, and hands over ownership
// of it: the next Ready starts empty. Call Advance once it is done; several
// Readies may be outstanding, advanced in order.
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
		MembershipChanged:    r.learn.changed,
		Membership:           r.learn.membership,
		ballot:               r.masterBallot,
	}
	r.needSnapshot = None
	r.learn.changed = false
	if r.commitToPersist() {
		rd.PersistCommit, r.commitAsked = true, r.conf.curSlot
	}
	if r.role == Master {
		for _, e := range r.accepted {
			if e.Ballot == r.masterBallot && e.Slot > rd.lastAccepted {
				rd.lastAccepted = e.Slot
			}
		}
	}
	for s := r.delivered + 1; s <= r.committed; s++ {
		st := r.slot(s, false)
		if st == nil || !st.chosen {
			panic(fmt.Sprintf("paxos: node %d: slot %d is within the chosen prefix %d but not held as chosen (offset %d, delivered %d)",
				r.id, s, r.committed, r.offset, r.delivered))
		}
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

// Advance tells the replica that rd was handled: persisted, sent, applied.
// A master counts its own vote for the slots rd persisted only now.
func (r *Replica) Advance(rd Ready) {
	if len(rd.Accepted) > 0 || rd.PersistCommit {
		// The commit hint is written with the entries (alone it is not
		// worth an fsync, unless asked), so it is durable now.
		r.durable = max(r.durable, rd.Committed)
	}
	if r.role == Master && rd.ballot == r.masterBallot && rd.lastAccepted > r.lead.selfMatch {
		r.lead.selfMatch = rd.lastAccepted
		r.maybeCommit()
	}
}
