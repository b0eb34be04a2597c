package node

// This file owns the client side of the server: one goroutine per client
// (proxy) connection reads requests and answers them, and one more writes
// its replies. Writes, linearizable read indexes and membership changes go
// to the engine; the reads ready now are served here from the state
// machine, under the applier's read lock. STATUS is answered from what the
// engine and the applier publish.

import (
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

type outFrame struct {
	kind wire.Kind
	id   uint64
	body any
	// rep is the body of a KindReply (body nil): held here, in the
	// queue's slice, instead of allocated per reply.
	rep  wire.Reply
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
	for i := range r.Events {
		n += int(eventBytes(&r.Events[i]))
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
	spare  []outFrame // the last batch written, emptied: the next one fills it
	bytes  int
	closed bool
	wake   chan struct{} // the writer: frames were added or the queue closed
	room   chan struct{} // the reader: bytes went down or the queue closed
}

func newReplyQueue() *replyQueue {
	return &replyQueue{wake: make(chan struct{}, 1), room: make(chan struct{}, 1)}
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
			q.frames, q.spare = q.spare, nil
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

// release uncounts n bytes written out, and takes back fs, the batch
// take returned, to be filled again.
func (q *replyQueue) release(n int, fs []outFrame) {
	clear(fs) // keep no reply's value alive
	q.mu.Lock()
	q.bytes -= n
	if cap(fs) <= maxSpareFrames {
		q.spare = fs[:0]
	}
	q.mu.Unlock()
	signal(q.room)
}

// maxSpareFrames is the largest batch a replyQueue keeps for reuse, so a
// burst does not pin its memory for the connection's life.
const maxSpareFrames = 1024

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
	defer n.dropBackups(c)
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
		case wire.KindChunkPut:
			ack := n.servePutChunk(env.Body)
			send(outFrame{kind: wire.KindChunkAck, id: id, body: &ack, size: frameOverhead})
		case wire.KindChunkGet:
			d := n.serveGetChunk(env.Body)
			send(outFrame{kind: wire.KindChunkData, id: id, body: &d, size: frameOverhead + len(d.Data)})
		case wire.KindChunkHas:
			h := n.serveHasChunks(env.Body)
			send(outFrame{kind: wire.KindChunkHeld, id: id, body: &h, size: frameOverhead + len(h.Held)})
		case wire.KindBackup, wire.KindBackupAsk:
			if !n.serveBackup(ctx, c, env, send) {
				return
			}
		case wire.KindRequest:
			var req wire.Request
			reply := func(r wire.Reply) {
				send(outFrame{kind: wire.KindReply, id: id, rep: r, size: replySize(&r)})
			}
			if err := wire.DecodeRequest(env.Body, &req); err != nil {
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
		for i := range fs {
			f := &fs[i]
			body := f.body
			if f.kind == wire.KindReply && body == nil {
				body = &f.rep
			}
			if err := c.Send(f.kind, f.id, body); err != nil {
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
		q.release(size, fs)
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
	if req.Op == wire.OpWatch {
		n.handleWatch(ctx, req, reply)
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
	case req.Op == wire.OpGet || req.Op == wire.OpStat || req.Op == wire.OpList || req.Op == wire.OpGetRange:
		n.handleRead(ctx, req, reply)
	default:
		reply(wire.Reply{Code: wire.CodeBadRequest, Msg: "unknown operation", NotApplied: true})
	}
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
	if req.Op == wire.OpPutFile || req.Op == wire.OpCASFile {
		if _, err := wire.ParseManifest(req.Value); err != nil {
			refuse(wire.CodeBadRequest, err.Error())
			return
		}
	}
	if req.ClientID != 0 && (req.Seq == 0 || req.Ack > req.Seq) {
		refuse(wire.CodeBadRequest, "a session write needs seq >= 1 and ack <= seq")
		return
	}
	cmd := filestore.EncodeCommand(nil, filestore.Command{
		Op: req.Op, ClientID: req.ClientID, Seq: req.Seq, Ack: req.Ack, Retry: req.Retry,
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

// Status describes this replica for proxies and operators.
func (n *Node) Status() wire.Status {
	si := n.soft.Load()
	st := wire.Status{
		ID:         n.cfg.ID,
		Addr:       n.addrOf(n.cfg.ID),
		Role:       wire.NodeFollower,
		Round:      si.Ballot.Round,
		BallotNode: uint64(si.Ballot.Node),
		MasterID:   uint64(si.Master),
		MasterAddr: n.addrOf(uint64(si.Master)),
		Commit:     n.commitIndex.load(),
		FreeDisk:   freeDisk(n.cfg.Dir),
		Transfer:   uint64(si.Transfer),
	}
	v := n.members()
	st.ConfigSlot = v.slot
	for _, m := range v.conf.Members {
		st.Members = append(st.Members, wire.Member{ID: uint64(m.ID), Addr: m.Addr, Voter: m.Voter})
	}
	switch {
	case n.degraded.Load():
		st.Role = wire.NodeDegraded
	case si.Role == paxos.Master && si.Ready:
		st.Role = wire.NodeMaster
	case si.Role == paxos.Master || si.Role == paxos.Candidate:
		st.Role = wire.NodeCandidate
	case !v.conf.IsVoter(paxos.NodeID(n.cfg.ID)) || paxos.Membership(n.membership.Load()) != paxos.Voter:
		// Not a voter of the configuration, or one that lost state and
		// does not vote yet (on a fresh directory, or rejoining).
		st.Role = wire.NodeLearner
	}
	// A read lock: the digest is cached per applied index (computed at
	// most once per change, under its own lock), so a poll neither
	// blocks reads nor re-hashes files, ten times a second per proxy.
	n.app.mu.RLock()
	st.Applied = n.app.fsm.Applied()
	st.Digest = n.app.fsm.Digest()
	n.app.mu.RUnlock()
	return st
}

// freeDisk returns the bytes available to the node in dir, 0 if unknown.
func freeDisk(dir string) uint64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0
	}
	return st.Bavail * uint64(st.Bsize)
}

// handleMembers answers OpMembers from this replica's view, and queues the
// changes for the loop (the master's).
func (n *Node) handleMembers(ctx context.Context, req wire.Request, reply replyFunc) {
	if req.Op == wire.OpMembers {
		reply(n.memberReply(wire.CodeOK, ""))
		return
	}
	if si := n.soft.Load(); si.Role != paxos.Master || !si.Ready {
		n.notMaster(reply)
		return
	}
	select {
	case n.calls <- func() { n.changeMembers(&memberReq{req: req, reply: reply}) }:
	case <-ctx.Done():
		reply(wire.Reply{Code: wire.CodeUnavailable, Msg: "replica stopping", NotApplied: true})
	default:
		reply(wire.Reply{Code: wire.CodeBusy, Msg: "too many membership changes queued", NotApplied: true})
	}
}
