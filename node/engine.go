package node

// This file owns the engine: the event loop, the one goroutine that touches
// the paxos core. It turns the clock into ticks, steps peer messages,
// proposes client writes in batches, asks for read indexes, runs membership
// changes and handovers (calls), hands every Ready's durable part to the
// persister, and hears back from the persister, the applier and the
// transport through the mailbox, which never makes them wait.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"synod/paxos"
	"synod/wire"
)

// engine is the loop's own state. Run replaces it whole between two engine
// runs, when the disk failed and came back.
type engine struct {
	r           *paxos.Replica
	clock       *clock
	ticked      int64                 // ticks handed to the core
	tickCount   uint64                // ticker receives, for periodic work
	readBatches map[uint64][]*readReq // read index requests by context
	nextCtx     uint64
	// chosenIndex is the command index of the last slot the core handed
	// out as chosen: it starts at the index of the snapshot the core
	// starts from (at slot chosenSlot) and counts the commands of every
	// chosen slot after it.
	chosenSlot, chosenIndex uint64
	memberWaits             []memberWait // membership changes waiting to be in force
}

// newEngine is the engine for core r, which starts from a snapshot of slot
// whose command index is index.
func newEngine(r *paxos.Replica, c *clock, slot, index uint64) engine {
	return engine{r: r, clock: c, readBatches: map[uint64][]*readReq{}, chosenSlot: slot, chosenIndex: index}
}

// mailbox carries notices into the loop from goroutines that must never
// wait for it (the loop waits for the persister, the persister for the
// applier): each posts and signals; the loop takes everything at once.
type mailbox struct {
	mu  sync.Mutex
	box notices
	sig chan struct{}
}

// notices is what the mailbox holds.
type notices struct {
	advances []paxos.Ready  // persisted, from the persister, in order
	compact  uint64         // the slot the core may compact to, from the snapshotter
	restore  *restore       // the newest snapshot installed, from the applier
	lost     []paxos.NodeID // peers whose connection to us closed, from the transport
	// peerSlots: peers that refused this removed replica's handshake,
	// naming the configuration slot they hold (noteRefusal).
	peerSlots map[paxos.NodeID]peerSlot
	// handedOff: the configuration slot for which this removed replica
	// handed its chunks off to a majority (handoff.go).
	handedOff uint64
}

// restore is a snapshot the applier installed: the core skips to it.
type restore struct {
	slot, index uint64 // the snapshot's slot and command index
	conf        paxos.Configuration
	confSlot    uint64
}

// post changes the notices with f and wakes the loop.
func (m *mailbox) post(f func(*notices)) {
	m.mu.Lock()
	f(&m.box)
	m.mu.Unlock()
	signal(m.sig)
}

func (m *mailbox) dropAdvances() {
	m.mu.Lock()
	m.box.advances = nil
	m.mu.Unlock()
}

// take empties the mailbox.
func (m *mailbox) take() notices {
	m.mu.Lock()
	defer m.mu.Unlock()
	got := m.box
	m.box = notices{}
	return got
}

// signal wakes whoever waits on ch, without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// catchUp hands the core every tick that elapsed on the node's clock since
// the last call, however long the process was stopped: the loop calls it
// before it handles anything, so no decision rests on a stale clock
// (DESIGN.md, trap 8).
func (n *Node) catchUp() {
	e := &n.eng
	now := int64(e.clock.elapsed() / n.cfg.TickInterval)
	if d := now - e.ticked; d > 0 {
		e.ticked = now
		e.r.Elapse(int(d))
	}
}

// loop is the engine's goroutine.
func (n *Node) loop(ctx context.Context) {
	e := &n.eng
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	e.ticked = int64(e.clock.elapsed() / n.cfg.TickInterval) // a rebuilt core starts its own count
	// Every event first brings the core's clock up to date (catchUp), so a
	// loop that was stopped handles nothing on stale time.
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			n.catchUp()
			if slot, ok := n.debt.settled(); ok {
				e.r.SettledUpTo(slot)
			}
			if e.tickCount++; e.tickCount%100 == 0 {
				n.maybePromote()
			}
		case call := <-n.calls:
			n.catchUp()
			call()
		case m := <-n.inbox:
			n.catchUp()
			master := n.soft.Load().Master
			n.step(m, master)
			for i := 0; i < 256; i++ { // drain what is queued: one Ready for all of it
				select {
				case m = <-n.inbox:
					n.step(m, master)
					continue
				default:
				}
				break
			}
		case p := <-n.props:
			n.catchUp()
			n.propose(p)
		case rq := <-n.reads:
			n.catchUp()
			n.readIndex(rq)
		case <-n.mail.sig:
			n.catchUp()
			n.handleMail(n.mail.take())
		}
		if !e.r.HasReady() {
			continue
		}
		rd := e.r.Ready()
		n.sendTo(rd.Messages)
		rd.Messages = nil
		if rd.SoftState != nil {
			n.onSoftState(*rd.SoftState)
		}
		if rd.MembershipChanged {
			n.membership.Store(int32(rd.Membership))
			if rd.Membership == paxos.Learner {
				n.met.learnerRejoins.Inc()
			}
			n.log.Info().Str("membership", rd.Membership.String()).Msg(membershipNews[rd.Membership])
		}
		for _, en := range rd.Chosen {
			if en.Slot <= e.chosenSlot {
				panic(fmt.Sprintf("node: the core handed out slot %d as chosen again, after slot %d", en.Slot, e.chosenSlot))
			}
			e.chosenSlot = en.Slot
			if en.Value.Kind == paxos.ValueCmds {
				e.chosenIndex += uint64(len(en.Value.Cmds))
			}
		}
		n.commitIndex.raise(e.chosenIndex)
		ss, _ := e.r.Status()
		n.soft.Store(&ss)
		n.noteConfig()
		n.answerMemberWaits()
		if ss.Removed {
			signal(n.removedCh)
		}
		n.attachReads(&rd)
		if rd.NeedSnapshot != paxos.None && n.fetching.CompareAndSwap(false, true) {
			n.wg.Add(1)
			go func(from uint64) {
				defer n.wg.Done()
				defer n.fetching.Store(false)
				n.fetchSnapshot(ctx, from)
			}(uint64(rd.NeedSnapshot))
		}
		select {
		case n.persistQ <- rd:
		case <-ctx.Done():
			return
		}
	}
}

// step hands the core message m, noting when it came from master (the
// master this replica followed when the loop took m).
func (n *Node) step(m paxos.Message, master paxos.NodeID) {
	if m.From == master && master != paxos.None {
		n.met.lastMaster.Store(n.eng.ticked)
	}
	n.eng.r.Step(m)
}

// handleMail hands the core what the other goroutines reported.
func (n *Node) handleMail(m notices) {
	e := &n.eng
	for _, rd := range m.advances {
		e.r.Advance(rd)
		n.durable.Store(e.r.Durable())
	}
	if m.compact > 0 {
		e.r.Compact(m.compact)
	}
	if rs := m.restore; rs != nil && e.r.RestoreSnapshot(rs.slot, rs.conf, rs.confSlot) {
		// The core goes on from the snapshot: so does the count.
		e.chosenSlot, e.chosenIndex = rs.slot, rs.index
	}
	for _, id := range m.lost {
		e.r.PeerLost(id)
	}
	for id, ps := range m.peerSlots {
		e.r.PeerConfigSlot(id, ps.durable, ps.settled)
	}
	if m.handedOff > 0 {
		e.r.SideStateHandedOff(m.handedOff)
	}
}

var membershipNews = map[paxos.Membership]string{
	paxos.Voter:   "this replica votes",
	paxos.Learner: "rejoining as a learner: this replica may have forgotten votes, so it votes again only after a phase 1 without it",
	paxos.Fresh:   "new data directory: asking the peers whether the cluster is new",
}

func (n *Node) onSoftState(ss paxos.SoftState) {
	prev := n.soft.Load()
	if ss.Role == paxos.Candidate && prev.Role != paxos.Candidate {
		n.met.elections.Inc()
	}
	if ss.Master != prev.Master && ss.Master != paxos.None {
		n.met.masterChanges.Inc()
	}
	if ss.Role != prev.Role || ss.Master != prev.Master || ss.Ballot != prev.Ballot {
		n.log.Info().Str("role", ss.Role.String()).Uint64("master", uint64(ss.Master)).
			Str("ballot", ss.Ballot.String()).Msg("role changed")
	}
	if prev.Role == paxos.Master && ss.Role != paxos.Master {
		// Writes in flight may or may not be chosen by the next master;
		// the proxy retries them under their ids and the session table
		// applies each once.
		n.pending.failAll(wire.CodeNotMaster)
	}
}

// propose batches every queued write into one slot.
func (n *Node) propose(first *proposal) {
	batch := []*proposal{first}
	size := len(first.cmd)
	for size < n.cfg.MaxBatchBytes {
		select {
		case p := <-n.props:
			batch = append(batch, p)
			size += len(p.cmd)
			continue
		default:
		}
		break
	}
	cmds := make([][]byte, len(batch))
	for i, p := range batch {
		cmds[i] = p.cmd
	}
	slot, err := n.eng.r.Propose(cmds)
	if err != nil {
		for _, p := range batch {
			switch {
			case errors.Is(err, paxos.ErrBusy), errors.Is(err, paxos.ErrReconfiguring):
				// Still the master: the proxy retries here after a backoff.
				p.reply(wire.Reply{Code: wire.CodeBusy, Msg: err.Error(), NotApplied: true})
			default:
				n.notMaster(p.reply)
			}
		}
		return
	}
	n.stats.proposed.Add(uint64(len(batch)))
	n.met.proposals.Inc()
	n.met.batchCommands.Observe(float64(len(batch)))
	n.pending.add(slot, batch)
}

// readIndex asks the core for one read index shared by every queued read.
func (n *Node) readIndex(first *readReq) {
	e := &n.eng
	batch := []*readReq{first}
	for len(batch) < 4096 {
		select {
		case rq := <-n.reads:
			batch = append(batch, rq)
			continue
		default:
		}
		break
	}
	e.nextCtx++
	e.readBatches[e.nextCtx] = batch
	e.r.ReadIndex(e.nextCtx)
}

// attachReads turns the read states of rd into reads waiting for the
// applier to reach their slot.
func (n *Node) attachReads(rd *paxos.Ready) {
	e := &n.eng
	for _, rs := range rd.ReadStates {
		batch := e.readBatches[rs.Context]
		delete(e.readBatches, rs.Context)
		for _, rq := range batch {
			if rs.Failed {
				n.notMaster(rq.reply)
				continue
			}
			rq.slot = rs.Index
			n.wait(rq)
		}
	}
	rd.ReadStates = nil
}

// failReads refuses every read waiting for a read index; Run calls it with
// the engine stopped.
func (e *engine) failReads(n *Node) {
	for ctx, batch := range e.readBatches {
		for _, rq := range batch {
			n.notMaster(rq.reply)
		}
		delete(e.readBatches, ctx)
	}
}
