package node

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"synod/filestore"
	"synod/paxos"
	"synod/wire"
)

// MaxListKeys bounds the keys one LIST answer carries.
const MaxListKeys = 10000

// testHookReplyBackpressure, when set (by tests only), is called each time
// a client connection stops reading requests because its replies are
// queued past the byte bound.
var testHookReplyBackpressure atomic.Pointer[func()]

// replyFunc sends one answer on the connection a request came in on.
type replyFunc func(wire.Reply)

// proposal is one client write on its way through the core.
type proposal struct {
	cmd   []byte
	reply replyFunc
}

// pendingWrites maps a proposed slot to the writes it carries, so the
// applier can answer them.
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
}

type outFrame struct {
	kind wire.Kind
	id   uint64
	body any
	size int // estimated bytes, for the queue's bound
}

// maxQueuedReplyBytes bounds, roughly, the replies queued on one client
// connection: past it the connection's requests are not read until the
// writer catches up. The bound is soft: replies to requests already read
// are always queued (an applier never waits for a slow proxy), so it can
// be exceeded by what those requests return.
const maxQueuedReplyBytes = 16 << 20

// frameOverhead is what a frame costs besides its variable-length fields.
const frameOverhead = 64

func replySize(r *wire.Reply) int {
	n := frameOverhead + len(r.Value) + len(r.Msg) + len(r.MasterAddr)
	for _, k := range r.Keys {
		n += len(k) + 2
	}
	return n
}

// replyQueue holds one connection's replies on their way out. Any
// goroutine may add to it without blocking; the connection's writer takes
// them in batches; the reader waits for room before it reads the next
// request. So a proxy that reads its replies slowly slows its own requests
// down (TCP then pushes back on it) instead of growing the node's memory,
// and its connection is never closed for it.
type replyQueue struct {
	mu     sync.Mutex
	frames []outFrame
	bytes  int
	closed bool
	wake   chan struct{} // the writer: frames were added or the queue closed
	room   chan struct{} // the reader: bytes went down or the queue closed
}

func newReplyQueue() *replyQueue {
	return &replyQueue{wake: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// push queues f; after close it is dropped.
func (q *replyQueue) push(f outFrame) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.frames = append(q.frames, f)
	q.bytes += f.size
	q.mu.Unlock()
	signal(q.wake)
}

// take waits for frames and returns them all, with their bytes still
// counted (release them once written); nil once the queue is closed.
func (q *replyQueue) take() ([]outFrame, int) {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return nil, 0
		}
		if len(q.frames) > 0 {
			fs := q.frames
			q.frames = nil
			n := 0
			for _, f := range fs {
				n += f.size
			}
			q.mu.Unlock()
			return fs, n
		}
		q.mu.Unlock()
		<-q.wake
	}
}

// release uncounts n bytes written out.
func (q *replyQueue) release(n int) {
	q.mu.Lock()
	q.bytes -= n
	q.mu.Unlock()
	signal(q.room)
}

// waitRoom returns once the queue is below its bound, false if it closed
// or ctx ended first.
func (q *replyQueue) waitRoom(ctx context.Context) bool {
	for stalled := false; ; stalled = true {
		q.mu.Lock()
		closed, full := q.closed, q.bytes > maxQueuedReplyBytes
		q.mu.Unlock()
		switch {
		case closed:
			return false
		case !full:
			return true
		}
		if hook := testHookReplyBackpressure.Load(); !stalled && hook != nil {
			(*hook)()
		}
		select {
		case <-q.room:
		case <-ctx.Done():
			return false
		}
	}
}

// close drops everything queued and everything pushed from now on.
func (q *replyQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.frames = nil
	q.mu.Unlock()
	signal(q.wake)
	signal(q.room)
}

// serveClient answers a proxy's (or a client's) requests. Replies go through
// one writer goroutine that flushes once per batch of queued replies; the
// reader (this goroutine) reads the next request only while the replies
// queued are below their bound.
func (n *Node) serveClient(ctx context.Context, c *wire.Conn) {
	q := newReplyQueue()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		n.writeReplies(c, q)
	}()
	defer wg.Wait()
	defer q.close()
	send := q.push
	for q.waitRoom(ctx) {
		env, err := c.Recv()
		if err != nil {
			return
		}
		id := env.ID
		switch env.Kind {
		case wire.KindPing:
			send(outFrame{kind: wire.KindPong, id: id, size: frameOverhead})
		case wire.KindStatus:
			st := n.Status()
			send(outFrame{kind: wire.KindStatusReply, id: id, body: &st, size: 4 * frameOverhead})
		case wire.KindSnapshotAck:
			var req wire.SnapshotAck
			if err := wire.Unmarshal(env.Body, &req); err != nil {
				return
			}
			if req.Offset > 0 && n.cutOnce.CompareAndSwap(true, false) {
				return // test knob: break the first transfer after one chunk
			}
			ch := n.serveSnapshotChunk(req)
			send(outFrame{kind: wire.KindSnapshotChunk, id: id, body: &ch, size: frameOverhead + len(ch.Data)})
		case wire.KindRequest:
			var req wire.Request
			reply := func(r wire.Reply) {
				send(outFrame{kind: wire.KindReply, id: id, body: &r, size: replySize(&r)})
			}
			if err := wire.Unmarshal(env.Body, &req); err != nil {
				reply(wire.Reply{Code: wire.CodeBadRequest, Msg: "undecodable request", NotApplied: true})
				continue
			}
			n.handleRequest(ctx, req, reply)
		}
	}
}

// writeReplies writes q's frames out, one flush per batch, until q closes
// or the connection fails (then it closes both).
func (n *Node) writeReplies(c *wire.Conn, q *replyQueue) {
	for {
		fs, size := q.take()
		if fs == nil {
			return
		}
		for _, f := range fs {
			if err := c.Send(f.kind, f.id, f.body); err != nil {
				c.Close()
				q.close()
				return
			}
		}
		if err := c.Flush(); err != nil {
			c.Close()
			q.close()
			return
		}
		q.release(size)
	}
}

// notMaster refuses a request this replica cannot serve as master, naming
// the master it knows; during a handover, the replica it hands over to,
// so the proxy goes there at once. The request was not proposed: for a
// write the refusal is definitive.
func (n *Node) notMaster(reply replyFunc) {
	si := n.soft.Load()
	hint := si.Master
	if si.Transfer != paxos.None {
		hint = si.Transfer
	}
	reply(wire.Reply{Code: wire.CodeNotMaster, Msg: "not the master", NotApplied: true,
		MasterID: uint64(hint), MasterAddr: n.addrOf(uint64(hint))})
}

func (n *Node) handleRequest(ctx context.Context, req wire.Request, reply replyFunc) {
	if req.Op == wire.OpMembers || req.Op.IsMemberChange() {
		n.handleMembers(ctx, req, reply)
		return
	}
	if req.Op != wire.OpList {
		if err := filestore.ValidateKey(req.Key); err != nil {
			reply(wire.Reply{Code: wire.CodeBadRequest, Msg: err.Error(), NotApplied: true})
			return
		}
	}
	switch {
	case req.Op.IsWrite():
		n.handleWrite(ctx, req, reply)
	case req.Op == wire.OpGet || req.Op == wire.OpStat || req.Op == wire.OpList:
		n.handleRead(ctx, req, reply)
	default:
		reply(wire.Reply{Code: wire.CodeBadRequest, Msg: "unknown operation", NotApplied: true})
	}
}

var writeOps = map[wire.Op]filestore.Op{
	wire.OpPut: filestore.OpPut, wire.OpAppend: filestore.OpAppend,
	wire.OpCAS: filestore.OpCAS, wire.OpDel: filestore.OpDel,
}

// The state machine keeps at least as many replies per session as a proxy
// may have writes of one session unresolved (a negative constant does not
// compile).
const _ = uint(filestore.DefaultSessionWindow - wire.MaxSessionWindow)

// handleWrite proposes a client write, or refuses it before it is proposed
// (every such refusal says NotApplied). The command carries the request's
// session fields as they came: the state machine orders and deduplicates.
func (n *Node) handleWrite(ctx context.Context, req wire.Request, reply replyFunc) {
	refuse := func(code wire.Code, msg string) {
		reply(wire.Reply{Code: code, Msg: msg, NotApplied: true})
	}
	if n.degraded.Load() {
		refuse(wire.CodeUnavailable, "this replica's disk is failing")
		return
	}
	if si := n.soft.Load(); si.Role != paxos.Master || si.Transfer != 0 {
		n.notMaster(reply)
		return
	}
	if len(req.Value) > n.cfg.MaxValue {
		refuse(wire.CodeTooLarge, "value exceeds the maximum size")
		return
	}
	if req.ClientID != 0 && (req.Seq == 0 || req.Ack > req.Seq) {
		refuse(wire.CodeBadRequest, "a session write needs seq >= 1 and ack <= seq")
		return
	}
	cmd := filestore.EncodeCommand(nil, filestore.Command{
		Op: writeOps[req.Op], ClientID: req.ClientID, Seq: req.Seq, Ack: req.Ack, Retry: req.Retry,
		Stamp: time.Now().UnixMilli(), Key: req.Key, Version: req.Version, Value: req.Value,
	})
	select {
	case n.props <- &proposal{cmd: cmd, reply: reply}:
	case <-ctx.Done():
		refuse(wire.CodeUnavailable, "replica stopping")
	default:
		refuse(wire.CodeBusy, "too many writes queued")
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
	slot, err := n.r.Propose(cmds)
	if err != nil {
		code := wire.CodeNotMaster
		if err == paxos.ErrBusy {
			code = wire.CodeBusy
		}
		for _, p := range batch {
			p.reply(wire.Reply{Code: code, Msg: err.Error(), NotApplied: true})
		}
		return
	}
	n.stats.proposed.Add(uint64(len(batch)))
	n.pending.add(slot, batch)
}

func (n *Node) handleRead(ctx context.Context, req wire.Request, reply replyFunc) {
	rq := &readReq{req: req, reply: reply, deadline: time.Now().Add(n.cfg.ReadTimeout)}
	if req.Consistency == wire.Linearizable && n.cfg.UnsafeFollowerReads && n.soft.Load().Role != paxos.Master {
		n.wait(rq) // planted bug: no read index, so possibly stale
		return
	}
	if req.Consistency == wire.Linearizable {
		if n.degraded.Load() {
			n.notMaster(reply) // no consensus here now: read elsewhere
			return
		}
		select {
		case n.reads <- rq:
		case <-ctx.Done():
			reply(wire.Reply{Code: wire.CodeUnavailable, Msg: "replica stopping"})
		default:
			reply(wire.Reply{Code: wire.CodeBusy, Msg: "too many reads queued"})
		}
		return
	}
	n.wait(rq) // session and stale: only MinIndex to wait for
}

// readIndex asks the core for one read index shared by every queued read.
func (n *Node) readIndex(first *readReq) {
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
	n.nextCtx++
	n.readBatches[n.nextCtx] = batch
	n.r.ReadIndex(n.nextCtx)
}

// attachReads turns the read states of rd into waiting reads.
func (n *Node) attachReads(rd *paxos.Ready) {
	for _, rs := range rd.ReadStates {
		batch := n.readBatches[rs.Context]
		delete(n.readBatches, rs.Context)
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

// wait serves rq now if the state machine is far enough, or parks it.
func (n *Node) wait(rq *readReq) {
	n.mu.Lock()
	if n.appliedSlot >= rq.slot && n.fsm.Applied() >= rq.req.MinIndex {
		n.mu.Unlock()
		n.serveRead(rq)
		return
	}
	n.waiting = append(n.waiting, rq)
	n.mu.Unlock()
}

// readyReadsLocked takes the waiting reads the state now satisfies. n.mu
// must be held.
func (n *Node) readyReadsLocked() []*readReq {
	var ready []*readReq
	kept := n.waiting[:0]
	for _, rq := range n.waiting {
		if n.appliedSlot >= rq.slot && n.fsm.Applied() >= rq.req.MinIndex {
			ready = append(ready, rq)
		} else {
			kept = append(kept, rq)
		}
	}
	n.waiting = kept
	return ready
}

// expireReads answers TIMEOUT to reads past their deadline.
func (n *Node) expireReads(now time.Time) {
	var expired []*readReq
	n.mu.Lock()
	kept := n.waiting[:0]
	for _, rq := range n.waiting {
		if now.After(rq.deadline) {
			expired = append(expired, rq)
		} else {
			kept = append(kept, rq)
		}
	}
	n.waiting = kept
	n.mu.Unlock()
	for _, rq := range expired {
		rq.reply(wire.Reply{Code: wire.CodeTimeout, Msg: "replica did not reach the requested index in time"})
	}
}

func (n *Node) failWaiting(code wire.Code) {
	n.mu.Lock()
	w := n.waiting
	n.waiting = nil
	n.mu.Unlock()
	for _, rq := range w {
		rq.reply(wire.Reply{Code: code, Msg: "replica stopping"})
	}
}

func (n *Node) serveRead(rq *readReq) {
	n.stats.reads.Add(1)
	var rep wire.Reply
	n.mu.RLock()
	rep.Applied = n.fsm.Applied()
	switch rq.req.Op {
	case wire.OpGet:
		v, ver, ok := n.fsm.Get(rq.req.Key)
		if ok {
			rep.Value, rep.Version = bytes.Clone(v), ver
		} else {
			rep.Code = wire.CodeNotFound
		}
	case wire.OpStat:
		size, ver, ok := n.fsm.Stat(rq.req.Key)
		if ok {
			rep.Size, rep.Version = uint64(size), ver
		} else {
			rep.Code = wire.CodeNotFound
		}
	case wire.OpList:
		rep.Keys = n.fsm.List(rq.req.Key, MaxListKeys)
	}
	n.mu.RUnlock()
	if d := n.cfg.ReadDelay; d > 0 {
		time.AfterFunc(d, func() { rq.reply(rep) })
		return
	}
	rq.reply(rep)
}

// apply applies chosen entries in order, answers the writes this replica
// proposed for them, and serves the reads that can now go.
func (n *Node) apply(chosen []paxos.Entry) {
	if len(chosen) == 0 {
		return
	}
	type answer struct {
		props   []*proposal
		results []filestore.Result
		ok      bool
		inDoubt bool // the slot's value is not known here: it may hold these writes
	}
	var answers []answer
	var ready []*readReq
	n.mu.Lock()
	for _, e := range chosen {
		if e.Slot <= n.appliedSlot {
			// Already in the state: a snapshot covered it, or the core was
			// rebuilt from the disk and hands slots out again.
			if props := n.pending.take(e.Slot); props != nil {
				answers = append(answers, answer{props: props, inDoubt: true})
			}
			continue
		}
		var results []filestore.Result
		if e.Value.Kind != paxos.ValueCmds {
			n.appliedSlot = e.Slot
			if e.Value.Kind == paxos.ValueConfig {
				n.applyConfigLocked(e.Slot, e.Value)
			}
			if props := n.pending.take(e.Slot); props != nil {
				answers = append(answers, answer{props: props})
			}
			continue
		}
		for _, cmd := range e.Value.Cmds {
			results = append(results, n.fsm.Apply(n.fsm.Applied()+1, cmd))
		}
		n.appliedSlot = e.Slot
		if props := n.pending.take(e.Slot); props != nil {
			ok := e.Value.Kind == paxos.ValueCmds && len(props) == len(e.Value.Cmds)
			for i := 0; ok && i < len(props); i++ {
				ok = bytes.Equal(props[i].cmd, e.Value.Cmds[i])
			}
			answers = append(answers, answer{props: props, results: results, ok: ok})
		}
	}
	n.stats.applied.Store(n.fsm.Applied())
	ready = n.readyReadsLocked()
	n.mu.Unlock()
	for _, a := range answers {
		for i, p := range a.props {
			switch {
			case a.inDoubt:
				// Whether the slot held these writes is unknown here:
				// the proxy retries them, marked as retries.
				p.reply(wire.Reply{Code: wire.CodeNotMaster, Msg: "the slot was applied from a snapshot"})
			case !a.ok:
				// Another master's value took the slot: retry elsewhere.
				n.notMaster(p.reply)
			default:
				p.reply(writeReply(a.results[i]))
			}
		}
	}
	for _, rq := range ready {
		n.serveRead(rq)
	}
}

// writeReply turns the state machine's result into the proxy's answer. The
// refusals say NotApplied: the state machine turned this attempt down.
func writeReply(res filestore.Result) wire.Reply {
	rep := wire.Reply{Index: res.Index, Version: res.Version}
	switch res.Code {
	case filestore.CodeOK:
		rep.Code = wire.CodeOK
	case filestore.CodeNotFound:
		rep.Code = wire.CodeNotFound
	case filestore.CodeConflict:
		rep.Code = wire.CodeConflict
	case filestore.CodeTooLarge:
		rep.Code = wire.CodeTooLarge
		rep.Msg = "value would exceed the maximum size"
	case filestore.CodeOutOfOrder:
		rep = wire.Reply{Code: wire.CodeOutOfOrder, Msg: "an earlier write of the session is not applied yet", NotApplied: true}
	case filestore.CodeSessionUnknown:
		rep = wire.Reply{Code: wire.CodeSessionUnknown, Msg: "the session is unknown here (expired, evicted or never started)", NotApplied: true}
	case filestore.CodeAnswered:
		rep = wire.Reply{Code: wire.CodeAnswered, Msg: "the write was applied and its reply acknowledged: its outcome cannot be repeated"}
	case filestore.CodeStale:
		rep = wire.Reply{Code: wire.CodeBadRequest, Msg: "sequence number older than the client's last write", NotApplied: true}
	default:
		rep = wire.Reply{Code: wire.CodeBadRequest, NotApplied: true}
		if res.Err != nil {
			rep.Msg = res.Err.Error()
		}
	}
	return rep
}

// freeDisk returns the bytes available to the node in dir, 0 if unknown.
func freeDisk(dir string) uint64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0
	}
	return st.Bavail * uint64(st.Bsize)
}
