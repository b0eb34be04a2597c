package node

// This file owns the applier goroutine: the one writer of the state
// machine. It applies the chosen entries the persister hands it, in slot
// order; answers the writes this replica proposed for them (pendingWrites);
// serves the reads waiting for their slot or command index; installs the
// snapshots the fetcher brings; records the configuration the log chose;
// and starts a snapshot every SnapshotEvery commands. Server goroutines
// read the state machine and add waiting reads under app.mu; the applier
// takes it for writing only to change them.

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"synod/filestore"
	"synod/paxos"
	"synod/wire"
)

// applier is the state the applier goroutine owns.
type applier struct {
	mu        sync.RWMutex        // readers: the server; writer: the applier
	fsm       *filestore.Machine  // under mu
	slot      uint64              // the last slot applied, under mu
	conf      paxos.Configuration // the configuration applied last, under mu
	confSlot  uint64              // and the slot that chose it
	waiting   []*readReq          // reads waiting for their slot or index, under mu
	snapIndex uint64              // the applier's own: the newest snapshot's command index
}

// applyWork is one job for the applier: entries chosen, or a snapshot to
// install.
type applyWork struct {
	chosen  []paxos.Entry
	install *fetched
}

// fetched is a snapshot received from a peer, validated and kept on disk.
type fetched struct {
	fsm      *filestore.Machine
	meta     filestore.SnapshotMeta
	conf     paxos.Configuration
	confSlot uint64
}

// replyFunc sends one answer on the connection a request came in on.
type replyFunc func(wire.Reply)

// proposal is one client write on its way through the core.
type proposal struct {
	cmd   []byte
	reply replyFunc
}

// pendingWrites maps a proposed slot to the writes it carries: the engine
// adds them when it proposes, the applier takes them when the slot is
// applied, and whoever sees mastership lost fails the rest.
type pendingWrites struct {
	mu     sync.Mutex
	bySlot map[uint64][]*proposal
}

func (p *pendingWrites) add(slot uint64, props []*proposal) {
	p.mu.Lock()
	if p.bySlot == nil {
		p.bySlot = map[uint64][]*proposal{}
	}
	p.bySlot[slot] = props
	p.mu.Unlock()
}

func (p *pendingWrites) take(slot uint64) []*proposal {
	p.mu.Lock()
	defer p.mu.Unlock()
	props := p.bySlot[slot]
	delete(p.bySlot, slot)
	return props
}

// failAll answers every pending write with code: the proxy retries them.
func (p *pendingWrites) failAll(code wire.Code) {
	p.mu.Lock()
	all := p.bySlot
	p.bySlot = nil
	p.mu.Unlock()
	for _, props := range all {
		for _, pr := range props {
			pr.reply(wire.Reply{Code: code, Msg: "mastership changed before the write was chosen"})
		}
	}
}

// readReq is one read waiting for its turn.
type readReq struct {
	req      wire.Request
	reply    replyFunc
	slot     uint64 // linearizable: the read index (a slot)
	deadline time.Time
	// then, if set, is called instead of serving the read once the state
	// machine is far enough (a backup clones it then: backup.go).
	then func()
}

// runApplier is the applier's goroutine; it runs as long as the node.
func (n *Node) runApplier(ctx context.Context) {
	expire := time.NewTicker(10 * n.cfg.TickInterval)
	defer expire.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-expire.C:
			n.expireReads(now)
		case w := <-n.applyQ:
			if w.install != nil {
				n.install(w.install)
			} else {
				n.apply(w.chosen)
			}
			n.maybeSnapshot(ctx)
		}
	}
}

// apply applies chosen entries in order, answers the writes this replica
// proposed for them, and serves the reads that can now go.
func (n *Node) apply(chosen []paxos.Entry) {
	a := &n.app
	type answer struct {
		props   []*proposal
		results []filestore.Result
		ok      bool
		inDoubt bool // the slot's value is not known here: it may hold these writes
	}
	var answers []answer
	var events []wire.Event
	a.mu.Lock()
	for _, e := range chosen {
		if e.Slot <= a.slot {
			// Already in the state: a snapshot covered it, or the core was
			// rebuilt from the disk and hands slots out again.
			if props := n.pending.take(e.Slot); props != nil {
				answers = append(answers, answer{props: props, inDoubt: true})
			}
			continue
		}
		var results []filestore.Result
		switch e.Value.Kind {
		case paxos.ValueCmds:
			for _, cmd := range e.Value.Cmds {
				index := a.fsm.Applied() + 1
				res, ch := a.fsm.ApplyChange(index, cmd)
				results = append(results, res)
				if ev, ok := changeEvent(index, ch); ok {
					events = append(events, ev)
				}
				if res.Code == wire.CodeOK && res.Index == index && (bytes.HasPrefix(cmd, putfilePrefix) || bytes.HasPrefix(cmd, casfilePrefix)) {
					n.queueChunkCheck(cmd)
				}
			}
		case paxos.ValueConfig:
			a.applyConfigLocked(e.Slot, e.Value)
		}
		a.slot = e.Slot
		if props := n.pending.take(e.Slot); props != nil {
			ok := e.Value.Kind == paxos.ValueCmds && len(props) == len(e.Value.Cmds)
			for i := 0; ok && i < len(props); i++ {
				ok = bytes.Equal(props[i].cmd, e.Value.Cmds[i])
			}
			answers = append(answers, answer{props: props, results: results, ok: ok})
		}
	}
	n.stats.applied.Store(a.fsm.Applied())
	n.debt.applied.Store(a.slot) // after the slots' chunk checks are queued
	ready := a.readyReadsLocked()
	applied := a.fsm.Applied()
	slot := a.slot
	a.mu.Unlock()
	n.refs.releaseThrough(slot) // after the state holds them: chunkgc.go
	n.hist.record(events, applied)
	for _, an := range answers {
		for i, p := range an.props {
			switch {
			case an.inDoubt:
				// Whether the slot held these writes is unknown here:
				// the proxy retries them, marked as retries.
				p.reply(wire.Reply{Code: wire.CodeNotMaster, Msg: "the slot was applied from a snapshot"})
			case !an.ok:
				// Another master's value took the slot: retry elsewhere.
				n.notMaster(p.reply)
			default:
				p.reply(writeReply(an.results[i]))
			}
		}
	}
	for _, rq := range ready {
		n.serveRead(rq)
	}
}

// applyConfigLocked records the configuration chosen at slot. a.mu is held.
func (a *applier) applyConfigLocked(slot uint64, v paxos.Value) {
	c, err := paxos.ParseConfiguration(v)
	if err != nil || slot <= a.confSlot {
		return // the core ignores a value that does not decode, alike
	}
	a.conf, a.confSlot = c, slot
}

// install swaps the state machine for a fetched snapshot if it is ahead
// (a snapshot never rolls a replica back), then tells the engine, which
// moves the core on to it.
func (n *Node) install(f *fetched) {
	a := &n.app
	// The snapshot's large files: their chunks may be missing here. Asked
	// before the applied slot moves, so the state is not taken as settled
	// before the scan.
	n.scanChunks()
	a.mu.Lock()
	installed := f.meta.Slot > a.slot
	if installed {
		a.fsm, a.slot, a.snapIndex = f.fsm, f.meta.Slot, f.fsm.Applied()
		n.hist.reset(f.fsm.Applied())
		if f.confSlot >= a.confSlot && len(f.conf.Members) > 0 {
			a.conf, a.confSlot = f.conf, f.confSlot
		}
	}
	rs := &restore{slot: f.meta.Slot, index: f.fsm.Applied(), conf: a.conf, confSlot: a.confSlot}
	n.stats.applied.Store(a.fsm.Applied())
	n.debt.applied.Store(a.slot)
	ready := a.readyReadsLocked()
	slot := a.slot
	a.mu.Unlock()
	n.refs.releaseThrough(slot)
	for _, rq := range ready {
		n.serveRead(rq)
	}
	if !installed {
		return
	}
	n.met.snapInstalls.Inc()
	// Every command up to the snapshot's index was chosen.
	n.commitIndex.raise(rs.index)
	n.log.Info().Uint64("slot", rs.slot).Uint64("index", rs.index).Msg("installed a snapshot from a peer")
	n.mail.post(func(m *notices) {
		if m.restore == nil || m.restore.slot < rs.slot {
			m.restore = rs
		}
	})
}

// wait serves rq now if the state machine is far enough, or parks it for
// the applier. Any goroutine may call it.
func (n *Node) wait(rq *readReq) {
	a := &n.app
	a.mu.Lock()
	if a.slot >= rq.slot && a.fsm.Applied() >= rq.req.MinIndex {
		a.mu.Unlock()
		n.serveRead(rq)
		return
	}
	a.waiting = append(a.waiting, rq)
	a.mu.Unlock()
}

// readyReadsLocked takes the waiting reads the state now satisfies. a.mu
// must be held.
func (a *applier) readyReadsLocked() []*readReq {
	var ready []*readReq
	kept := a.waiting[:0]
	for _, rq := range a.waiting {
		if a.slot >= rq.slot && a.fsm.Applied() >= rq.req.MinIndex {
			ready = append(ready, rq)
		} else {
			kept = append(kept, rq)
		}
	}
	a.waiting = kept
	return ready
}

// expireReads answers TIMEOUT to reads past their deadline.
func (n *Node) expireReads(now time.Time) {
	a := &n.app
	var expired []*readReq
	a.mu.Lock()
	kept := a.waiting[:0]
	for _, rq := range a.waiting {
		if now.After(rq.deadline) {
			expired = append(expired, rq)
		} else {
			kept = append(kept, rq)
		}
	}
	a.waiting = kept
	a.mu.Unlock()
	for _, rq := range expired {
		rq.reply(wire.Reply{Code: wire.CodeTimeout, Msg: "replica did not reach the requested index in time"})
	}
}

// failWaiting answers every waiting read with code; Run calls it once the
// applier stopped.
func (n *Node) failWaiting(code wire.Code) {
	a := &n.app
	a.mu.Lock()
	w := a.waiting
	a.waiting = nil
	a.mu.Unlock()
	for _, rq := range w {
		rq.reply(wire.Reply{Code: code, Msg: "replica stopping"})
	}
}

// serveRead answers a read from the state machine, on whichever goroutine
// found it ready.
func (n *Node) serveRead(rq *readReq) {
	if rq.then != nil {
		rq.then()
		return
	}
	a := &n.app
	n.stats.reads.Add(1)
	var rep wire.Reply
	a.mu.RLock()
	rep.Applied = a.fsm.Applied()
	switch rq.req.Op {
	case wire.OpGet:
		v, ver, ok := a.fsm.Get(rq.req.Key)
		switch {
		case ok && a.fsm.IsLarge(rq.req.Key):
			size, _, _ := a.fsm.Stat(rq.req.Key)
			rep.Code, rep.Version = wire.CodeTooLarge, ver
			rep.Msg = fmt.Sprintf("a large file of %d bytes: read it with GET <key> RANGE <offset> <length>", size)
		case ok:
			rep.Value, rep.Version = bytes.Clone(v), ver
		default:
			rep.Code = wire.CodeNotFound
		}
	case wire.OpGetRange:
		v, ver, ok := a.fsm.Get(rq.req.Key)
		switch {
		case ok && a.fsm.IsLarge(rq.req.Key):
			rep.Version = ver
			manifest := bytes.Clone(v)
			a.mu.RUnlock()
			n.startRange(rq, rep, manifest)
			return
		case ok:
			rep.Version = ver
			rangeOfSmall(&rep, rq.req, v)
		default:
			rep.Code = wire.CodeNotFound
		}
	case wire.OpStat:
		size, ver, ok := a.fsm.Stat(rq.req.Key)
		if ok {
			rep.Size, rep.Version = size, ver
		} else {
			rep.Code = wire.CodeNotFound
		}
	case wire.OpList:
		rep.Keys = a.fsm.List(rq.req.Key, MaxListKeys)
	}
	a.mu.RUnlock()
	if d := n.cfg.ReadDelay; d > 0 {
		time.AfterFunc(d, func() { rq.reply(rep) })
		return
	}
	rq.reply(rep)
}

// writeReply turns the state machine's result into the proxy's answer: the
// codes are the same; a refusal (the state machine turned this attempt
// down, and remembers nothing of it) says NotApplied and why.
func writeReply(res filestore.Result) wire.Reply {
	rep := wire.Reply{Code: res.Code, Index: res.Index, Version: res.Version, Msg: resultNotes[res.Code]}
	if res.Err != nil {
		rep.Msg = res.Err.Error()
	}
	switch res.Code {
	case wire.CodeBadRequest, wire.CodeOutOfOrder, wire.CodeSessionUnknown:
		rep.NotApplied = true
	}
	return rep
}

// resultNotes explain the state machine's outcomes that need a word.
var resultNotes = map[wire.Code]string{
	wire.CodeTooLarge:       "value would exceed the maximum size",
	wire.CodeOutOfOrder:     "an earlier write of the session is not applied yet",
	wire.CodeSessionUnknown: "the session is unknown here (expired, evicted or never started)",
	wire.CodeAnswered:       "the write was applied and its reply acknowledged: its outcome cannot be repeated",
}
