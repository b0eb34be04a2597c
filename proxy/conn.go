package proxy

// conn.go: one client connection. Its reader goroutine (readLoop) parses
// and starts requests and owns the pipeline's order; its writer goroutine
// (writeLoop) writes the replies in request order; the router's goroutines
// hand results in through each op's finish callback. The byte budgets of
// the connection live here too.

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"synod/wire"
	"synod/wire/line"
	"synod/wire/resp"
)

// call is one client request awaiting its reply, in the connection's order.
type call struct {
	req    line.Request
	level  line.Level               // reads: the consistency asked for
	done   chan struct{}            // closed once the reply below is known
	res    result                   // reads and writes
	perr   *line.ProtoError         // a request the parser refused
	nodes  []line.NodeStatus        // STATUS
	stats  []line.Stat              // STATS
	close  bool                     // close the connection after this reply
	custom func(*line.Writer) error // the auth layer's reply (auth.go), instead of the above
	filter func(string) bool        // LIST: the keys the connection may see

	backup *backupCall // SNAPSHOT: streamed by the writer (backup.go)

	confirm *wire.Manifest // PUTFILE: an OK waits until a majority holds these chunks (upload.go)

	rc *respCmd // RESP: the command this call is part of (resp.go); nil for the line protocol
	// waited: the reader waits for this reply itself (a RESP command that
	// needs it for its next request), so it is never redone (monotonic).
	waited bool

	charge  int64 // bytes counted in the connection's pipeline budget, under budget.mu
	gcharge int64 // bytes counted in the server's in-flight budget, under budget.mu
}

// runKind is what a run of a pipeline holds (see conn.order).
type runKind uint8

const (
	runRead runKind = iota
	runWrite
	runMember // one MEMBER request, alone in its run
)

func kindOf(cmd line.Cmd) runKind {
	switch {
	case cmd.IsWrite():
		return runWrite
	case cmd.IsMember():
		return runMember
	}
	return runRead
}

// memberReplyBytes is what a membership reply may cost: a MEMBERS list of
// a few dozen lines at most.
const memberReplyBytes = 4 << 10

// answered is the done channel of calls answered on the spot.
var answered = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

func isDone(cl *call) bool {
	select {
	case <-cl.done:
		return true
	default:
		return false
	}
}

// smallRequest is the size up to which a request is bounded by counts
// alone (MaxInflight), not by the in-flight byte budget: so a budget full of
// large values still lets small requests through.
const smallRequest = 4 << 10

// replyOverhead is what a reply costs besides its value and keys.
const replyOverhead = 64

// budget is one connection's share of the byte bounds: its pipeline bytes
// (requests not yet answered, counted at their size, reads at the largest
// reply they may get, and replies not yet written) and its part of the
// server's in-flight bytes. Every change to the latter goes through here,
// so a closed connection gives all of its part back at once (gone) and
// late answers to its requests count nothing.
type budget struct {
	mu     sync.Mutex
	used   int64 // pipeline bytes
	global int64 // this connection's part of Server.mem
	gone   bool
	room   chan struct{} // signalled when used goes down or the connection goes
}

// conn serves one client connection. Its reader goroutine (readLoop) parses
// requests and starts them, so requests of one connection run concurrently
// (pipelining); its writer goroutine (writeLoop) writes the replies
// strictly in request order, each once its call is done, and flushes
// whenever the next reply is not ready yet. Replies to its requests are
// taken in by the router's goroutines (the finish callbacks).
type conn struct {
	s     *Server
	nc    net.Conn
	calls chan *call    // to the writer, in request order; its capacity bounds the pipeline
	wdone chan struct{} // closed when the writer has stopped

	// Reader-owned.
	level     line.Level
	run       []*call      // the current run of reads, of writes or one membership op, not known to be finished
	runKind   runKind      // what run holds
	sess      *session     // this connection's writes, once it wrote (router-owned inside)
	blockGot  int64        // in-flight bytes the current request's block was admitted with
	user      string       // the user AUTH authenticated, "" before (auth.go)
	authFails int          // failed AUTHs on this connection
	lr        *line.Reader // the request reader, for PUTFILE's bytes (upload.go)

	// Writer-owned.
	written uint64       // the newest state a reply written so far showed (applied index)
	rw      *resp.Writer // RESP replies (resp.go), on the same buffer as the line writer

	watches watchSet // the connection's watches (watch.go)

	lastIndex atomic.Uint64 // newest state this connection saw, for session reads
	aborted   atomic.Bool   // a write's outcome is unknown: the connection closes, nothing more starts
	mem       budget

	mu       sync.Mutex // orders stopReading against the reader arming its deadline
	stopping bool
	stop     chan struct{} // closed by stopReading
	readDL   deadline      // the read deadline armed, under mu

	writeDL deadline // the write deadline armed, writer-owned
}

// deadlineSlack is how close, as a fraction of its timeout, a deadline
// armed already must be to the one asked for to stand for it: 1/1024, so
// the idle timeout (5 minutes by default) may end up to 0.3 s and the
// write timeout (30 s) up to 29 ms early. A busy connection then resets
// its deadlines about once per slack instead of twice per request, each
// reset a lock and a timer heap update in the runtime.
const deadlineSlack = 1024

// deadline is what was last armed on one side of a client connection.
// Whatever else arms that side may only arm a later deadline.
type deadline struct {
	at    time.Time // zero: none
	armed bool      // at was armed; false: unknown
}

// arm sets the deadline to at (zero: none) with set, unless the one armed
// is at most timeout/deadlineSlack earlier than at, or both are none.
func (d *deadline) arm(at time.Time, timeout time.Duration, set func(time.Time) error) {
	if d.armed && d.at.IsZero() == at.IsZero() {
		if at.IsZero() {
			return
		}
		if early := at.Sub(d.at); early >= 0 && early < timeout/deadlineSlack {
			return
		}
	}
	set(at)
	d.at, d.armed = at, true
}

func newConn(s *Server, nc net.Conn) *conn {
	return &conn{
		s: s, nc: nc, calls: make(chan *call, s.cfg.MaxPipeline), wdone: make(chan struct{}),
		mem: budget{room: make(chan struct{}, 1)}, stop: make(chan struct{}),
		watches: watchSet{wake: make(chan struct{}, 1)},
	}
}

// serve runs the connection until the client leaves, an error closes it or
// the server stops it.
func (c *conn) serve() {
	if !c.handshakeTLS() {
		c.nc.Close()
		c.release()
		return
	}
	go c.writeLoop()
	c.readLoop()
	c.endWatches()
	close(c.calls)
	<-c.wdone
	c.watches.wg.Wait()
	c.dropWatches()
	c.release()
}

// release gives the connection's part of the in-flight bytes back; answers
// that come later count nothing.
func (c *conn) release() {
	c.mem.mu.Lock()
	c.mem.gone = true
	c.s.mem.Add(-c.mem.global)
	c.mem.global, c.mem.used = 0, 0
	c.mem.mu.Unlock()
	signal(c.mem.room)
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// stopReading makes the reader stop at once; replies to requests already
// read are still written. For a graceful shutdown.
func (c *conn) stopReading() {
	c.mu.Lock()
	if !c.stopping {
		c.stopping = true
		close(c.stop)
	}
	c.readDL.arm(time.Unix(1, 0), 0, c.nc.SetReadDeadline)
	c.mu.Unlock()
}

// armRead sets the idle deadline for the next request, unless stopping.
// A connection with a watch open is never idle: it has no deadline.
func (c *conn) armRead() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		return false
	}
	if c.watching() {
		c.readDL.arm(time.Time{}, 0, c.nc.SetReadDeadline)
	} else {
		c.readDL.arm(time.Now().Add(c.s.cfg.IdleTimeout), c.s.cfg.IdleTimeout, c.nc.SetReadDeadline)
	}
	return true
}

// armIdle sets the idle deadline again once the last watch has ended,
// unless stopping. Any goroutine.
func (c *conn) armIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.stopping {
		c.readDL.arm(time.Now().Add(c.s.cfg.IdleTimeout), c.s.cfg.IdleTimeout, c.nc.SetReadDeadline)
	}
}

// admitBlock is the line reader's admission of a value block: it takes the
// block's bytes from the server's in-flight budget, or refuses the block
// (it is drained unread and answered ERR BUSY) when they do not fit.
func (c *conn) admitBlock(n int) error {
	if !c.chargeGlobal(int64(n), n > smallRequest) {
		c.s.cnt.memBusy.Add(1)
		c.s.cnt.busy.Add(1)
		return fmt.Errorf("proxy in-flight byte budget (%d bytes) full", c.s.cfg.MaxInflightBytes)
	}
	c.blockGot += int64(n)
	return nil
}

// chargeGlobal adds n bytes to this connection's part of the server's
// in-flight bytes; if bounded, only if they fit the budget.
func (c *conn) chargeGlobal(n int64, bounded bool) bool {
	c.mem.mu.Lock()
	defer c.mem.mu.Unlock()
	if c.mem.gone {
		return !bounded
	}
	if bounded && !c.s.tryCharge(n) {
		return false
	}
	if !bounded {
		c.s.mem.Add(n)
	}
	c.mem.global += n
	return true
}

// take waits until cl's charge fits the connection's pipeline budget (or
// nothing else is charged), then takes it. It returns false if the connection is stopping or its writer gone: a client
// that does not read its replies stalls here, and TCP pushes back on it.
func (c *conn) take(cl *call) bool {
	for stalled := false; ; stalled = true {
		c.mem.mu.Lock()
		if c.mem.gone {
			c.mem.mu.Unlock()
			return false
		}
		if c.mem.used == 0 || c.mem.used+cl.charge <= c.s.cfg.MaxPipelineBytes {
			c.mem.used += cl.charge
			c.mem.mu.Unlock()
			return true
		}
		c.mem.mu.Unlock()
		if !stalled {
			c.s.cnt.stalls.Add(1)
		}
		select {
		case <-c.mem.room:
		case <-c.wdone:
			return false
		case <-c.stop:
			return false
		}
	}
}

// replied recharges cl for its reply: the reply's bytes replace a read's
// reservation and are added for a write, until the writer has written it.
func (c *conn) replied(cl *call, res result) {
	rb := int64(len(res.rep.Value) + len(res.rep.Msg) + replyOverhead)
	for _, k := range res.rep.Keys {
		rb += int64(len(k) + 2)
	}
	for _, m := range res.rep.Members {
		rb += int64(len(m.Addr) + 48)
	}
	c.mem.mu.Lock()
	defer c.mem.mu.Unlock()
	if c.mem.gone {
		return
	}
	charge := rb
	if cl.req.Cmd.IsWrite() {
		charge += requestBytes(cl.req)
	}
	old := cl.charge
	c.mem.used += charge - old
	cl.charge = charge
	c.mem.global += rb
	c.s.mem.Add(rb)
	cl.gcharge += rb
	if charge < old {
		signal(c.mem.room)
	}
}

// uncharge gives back cl's bytes once its reply is out.
func (c *conn) uncharge(cl *call) {
	c.mem.mu.Lock()
	if !c.mem.gone {
		c.mem.used -= cl.charge
		c.mem.global -= cl.gcharge
		c.s.mem.Add(-cl.gcharge)
	}
	cl.charge, cl.gcharge = 0, 0
	c.mem.mu.Unlock()
	signal(c.mem.room)
}

// requestBytes is what a request costs while it waits: its key and value.
func requestBytes(req line.Request) int64 {
	return int64(len(req.Key) + len(req.Prefix) + len(req.Value) + replyOverhead)
}

func (c *conn) readLoop() {
	br := bufio.NewReaderSize(c.nc, 4096)
	if c.sniffRESP(br) {
		c.readRESP(br)
		return
	}
	r := line.NewReader(br, c.s.cfg.limits())
	r.SetAdmit(c.admitBlock)
	c.lr = r
	for c.armRead() {
		c.blockGot = 0
		req, err := r.ReadRequest()
		if err != nil {
			c.chargeGlobal(-c.blockGot, false)
			var pe *line.ProtoError
			if !errors.As(err, &pe) {
				// End of input, a stall past the idle timeout, a broken
				// connection: nobody to answer.
				return
			}
			c.s.cnt.requests.Add(1)
			if pe.Code != line.CodeBusy {
				c.s.cnt.badRequests.Add(1)
			}
			if !c.push(&call{perr: pe, done: answered, close: pe.Fatal}) || pe.Fatal {
				return
			}
			continue
		}
		c.s.cnt.requests.Add(1)
		if !c.handle(req) {
			return
		}
	}
}

// push queues cl for the writer; false if the writer has stopped.
func (c *conn) push(cl *call) bool {
	select {
	case <-c.wdone:
		return false
	default:
	}
	select {
	case c.calls <- cl:
		return true
	case <-c.wdone:
		return false
	}
}

// handle starts one request and reports whether to read on.
func (c *conn) handle(req line.Request) bool {
	if cl, more := c.gate(req); cl != nil {
		if req.Cmd == line.CmdPutFile {
			// Refused before its bytes were read: they cannot be
			// told from requests, so the connection ends here.
			cl.close = true
		}
		return c.push(cl) && more && !cl.close
	}
	cl := &call{req: req, done: answered}
	if req.Cmd == line.CmdList {
		cl.filter = c.listFilter()
	}
	switch req.Cmd {
	case line.CmdPing, line.CmdHelp:
	case line.CmdQuit:
		cl.close = true
		c.push(cl)
		return false
	case line.CmdConsistency:
		c.level = req.Level
	case line.CmdStatus:
		cl.nodes = c.s.rt.nodes()
	case line.CmdStats:
		cl.stats = c.s.stats()
	case line.CmdSnapshot:
		return c.snapshot(cl)
	case line.CmdWatch:
		return c.startWatch(cl)
	case line.CmdUnwatch:
		return c.unwatch(cl)
	case line.CmdPutFile:
		return c.putFile(cl)
	default:
		return c.remote(cl)
	}
	return c.push(cl)
}

// remote starts a read or write: it takes the request's bytes from the
// budgets (a large one the in-flight budget has no room for is answered
// BUSY), waits for room in the connection's pipeline, keeps the pipeline's
// order, and hands the request to the router.
func (c *conn) remote(cl *call) bool {
	kind := kindOf(cl.req.Cmd)
	write := kind == runWrite
	size := requestBytes(cl.req)
	// A block's bytes were admitted before it was read; an inline value
	// (at most a request line) is admitted now.
	extra := size - c.blockGot
	if !c.chargeGlobal(extra, c.blockGot == 0 && size > smallRequest) {
		c.s.cnt.memBusy.Add(1)
		c.s.cnt.busy.Add(1)
		cl.res = made(wire.CodeBusy, fmt.Sprintf("proxy in-flight byte budget (%d bytes) full", c.s.cfg.MaxInflightBytes))
		return c.push(cl)
	}
	cl.gcharge = size
	switch {
	case write:
		cl.charge = size
	case cl.req.Cmd == line.CmdStat:
		cl.charge = size + replyOverhead
	case kind == runMember:
		cl.charge = size + memberReplyBytes
	case cl.req.Cmd == line.CmdGetRange:
		cl.charge = size + int64(cl.req.Length) + replyOverhead
	default: // GET, LIST: the largest reply they may get
		cl.charge = size + int64(c.s.cfg.MaxValue) + replyOverhead
	}
	if !c.take(cl) {
		c.chargeGlobal(-size, false)
		return false
	}
	cl.done = make(chan struct{})
	cl.level = c.level
	if !c.push(cl) {
		c.uncharge(cl)
		return false
	}
	c.order(cl, kind)
	o := c.newOp(cl)
	if c.aborted.Load() {
		// A write before this request has an unknown outcome and the
		// connection is closing: nothing read after it is started.
		cl.res = result{abort: true}
		close(cl.done)
		return false
	}
	if write {
		if c.sess == nil {
			c.sess = c.s.rt.newSession()
		}
		o.sess = c.sess
	}
	c.s.rt.submit(o)
	return true
}

// newOp makes cl's op for the router, at the connection's level: a session
// read asks for the newest state the connection saw.
func (c *conn) newOp(cl *call) *op {
	o := &op{req: toWire(cl.req, cl.level), write: cl.req.Cmd.IsWrite()}
	if !o.write && !o.memberOp() && cl.level == line.LevelSession {
		o.req.MinIndex = max(o.req.MinIndex, c.lastIndex.Load())
	}
	o.finish = func(res result) {
		if m := cl.confirm; m != nil && res.node != 0 && res.rep.Code == wire.CodeOK {
			// Not on the router's goroutine: the answers may take a while.
			cl.confirm = nil
			go func() {
				if err := c.s.rt.confirmChunks(m); err != nil {
					c.s.log.Warn().Err(err).Str("key", cl.req.Key).Uint64("index", res.rep.Index).Msg("large file written but not confirmed")
					// TIMEOUT, not UNAVAILABLE (which promises nothing
					// was applied): the file is in the store, at risk.
					res.rep = wire.Reply{Code: wire.CodeTimeout, Index: res.rep.Index, Msg: fmt.Sprintf("file written at index %d but not acknowledged: %v", res.rep.Index, err)}
				}
				o.finish(res)
			}()
			return
		}
		switch {
		case res.abort:
			c.aborted.Store(true)
		case res.node != 0 && o.write:
			c.noteIndex(res.rep.Index)
		case res.node != 0:
			// A read shows the replica's state at its applied index:
			// later session reads must not see an older one.
			c.noteIndex(res.rep.Applied)
		}
		c.replied(cl, res)
		cl.res = res
		close(cl.done)
	}
	return o
}

// order keeps a pipeline's semantics those of one request after the other:
// consecutive writes run together (the session keeps them in order),
// consecutive reads run together, but a read starts only once the writes
// before it are answered, and a write only once the reads before it are,
// so no read sees a later write or misses an earlier one. A MEMBER request
// belongs to no session: it starts once everything before it is answered,
// and everything after it waits for its answer. The reader waits here,
// which is also the pipeline's backpressure.
func (c *conn) order(cl *call, kind runKind) {
	if len(c.run) > 0 && (c.runKind != kind || kind == runMember) {
		for _, prev := range c.run {
			<-prev.done
		}
		clear(c.run)
		c.run = c.run[:0]
	}
	c.runKind = kind
	if len(c.run) >= 64 {
		c.run = c.prune(c.run)
	}
	c.run = append(c.run, cl)
}

// prune drops the finished calls.
func (c *conn) prune(ws []*call) []*call {
	kept := ws[:0]
	for _, w := range ws {
		if !isDone(w) {
			kept = append(kept, w)
		}
	}
	clear(ws[len(kept):])
	return kept
}

// noteIndex raises the connection's session index to idx.
func (c *conn) noteIndex(idx uint64) {
	for {
		cur := c.lastIndex.Load()
		if idx <= cur || c.lastIndex.CompareAndSwap(cur, idx) {
			return
		}
	}
}

var wireOps = map[line.Cmd]wire.Op{
	line.CmdPut: wire.OpPut, line.CmdAppend: wire.OpAppend, line.CmdCAS: wire.OpCAS,
	line.CmdDel: wire.OpDel, line.CmdGet: wire.OpGet, line.CmdStat: wire.OpStat, line.CmdList: wire.OpList,
	line.CmdMemberList: wire.OpMembers, line.CmdMemberAdd: wire.OpMemberAdd,
	line.CmdMemberRemove: wire.OpMemberRemove, line.CmdMemberPromote: wire.OpMemberPromote,
	line.CmdPutFile: wire.OpPutFile, line.CmdGetRange: wire.OpGetRange,
}

// toWire translates a parsed request for the replicas. A MEMBER request
// carries no consistency level: every replica answers MEMBER LIST with the
// configuration in force, and a change goes to the master.
func toWire(req line.Request, level line.Level) wire.Request {
	if req.Cmd.IsMember() {
		return wire.Request{Op: wireOps[req.Cmd], MemberID: req.MemberID, MemberAddr: req.MemberAddr}
	}
	w := wire.Request{
		Op: wireOps[req.Cmd], Key: req.Key, Value: req.Value, Version: req.Version,
		Consistency: wire.Consistency(level), MinIndex: req.MinIndex,
		Offset: req.Offset, Length: req.Length,
	}
	if req.Cmd == line.CmdList {
		w.Key = req.Prefix
	}
	if req.Cmd == line.CmdPutFile && req.CAS {
		w.Op = wire.OpCASFile
	}
	return w
}

// writeLoop writes replies in request order until the reader is done and
// every reply is out, or the connection must close.
func (c *conn) writeLoop() {
	defer close(c.wdone)
	defer c.nc.Close()
	bw := bufio.NewWriterSize(c.nc, 8192)
	w := line.NewWriter(bw)
	c.rw = resp.NewWriter(bw)
	var next *call
	for {
		cl := next
		next = nil
		for cl == nil {
			var ok bool
			select {
			case cl, ok = <-c.calls:
				if !ok {
					c.flush(w)
					return
				}
			case <-c.watches.wake:
				if c.writeWatches(w) != nil || c.flush(w) != nil {
					return
				}
			}
		}
		for waiting := true; waiting; {
			select {
			case <-cl.done:
				waiting = false
			case <-c.watches.wake:
				if c.writeWatches(w) != nil || c.flush(w) != nil {
					return
				}
			}
		}
		c.monotonic(cl)
		if cl.res.abort {
			c.s.log.Warn().Str("client", c.nc.RemoteAddr().String()).
				Msg("closing a client connection: a write's outcome is unknown")
			c.flush(w)
			return
		}
		c.armWrite()
		err := c.reply(w, cl)
		c.uncharge(cl)
		if cl.rc == nil && !cl.waited {
			// The reader's run of reads keeps up to 64 calls for
			// ordering: written, their values (up to 8 MiB a RANGE)
			// must not stay with them.
			cl.res.rep.Value = nil
		}
		if err != nil {
			return
		}
		if cl.close {
			c.flush(w)
			return
		}
		select {
		case n, ok := <-c.calls:
			if !ok {
				c.flush(w)
				return
			}
			next = n
		default:
		}
		if (next == nil || !isDone(next)) && c.flush(w) != nil {
			return
		}
	}
}

// maxRedos bounds how often one session read is asked again.
const maxRedos = 3

// monotonic keeps a connection's session reads monotonic in request order:
// pipelined reads run concurrently and may land on replicas at different
// points, so a reply showing an older state than a reply already written
// is asked again, at least that far. Writer-owned.
func (c *conn) monotonic(cl *call) {
	for redo := 0; ; redo++ {
		rep := cl.res.rep
		if cl.res.node == 0 || cl.waited || cl.req.Cmd.IsWrite() || cl.req.Cmd.IsMember() || cl.level != line.LevelSession ||
			rep.Applied == 0 || rep.Applied >= c.written || redo == maxRedos || c.aborted.Load() {
			break
		}
		c.s.cnt.readRedos.Add(1)
		cl.done = make(chan struct{})
		o := c.newOp(cl)
		o.req.MinIndex = max(o.req.MinIndex, c.written)
		c.s.rt.submit(o)
		<-cl.done
	}
	if cl.res.node != 0 {
		c.written = max(c.written, cl.res.rep.Applied)
		if cl.req.Cmd.IsWrite() {
			c.written = max(c.written, cl.res.rep.Index)
		}
	}
}

func (c *conn) flush(w *line.Writer) error {
	if w.Buffered() == 0 {
		return nil
	}
	c.armWrite()
	return w.Flush()
}

// armWrite sets the write deadline for the replies about to be written.
// Writer-owned.
func (c *conn) armWrite() {
	c.writeDL.arm(time.Now().Add(c.s.cfg.WriteTimeout), c.s.cfg.WriteTimeout, c.nc.SetWriteDeadline)
}

// reply writes cl's reply.
func (c *conn) reply(w *line.Writer, cl *call) error {
	if cl.rc != nil {
		return c.replyRESP(cl)
	}
	if cl.perr != nil {
		return w.ReplyError(cl.perr)
	}
	if cl.custom != nil {
		return cl.custom(w)
	}
	switch cl.req.Cmd {
	case line.CmdPing:
		return w.Pong()
	case line.CmdHelp:
		return w.Help()
	case line.CmdQuit:
		return w.Bye()
	case line.CmdConsistency:
		return w.OK()
	case line.CmdStatus:
		return w.Nodes(cl.nodes)
	case line.CmdStats:
		return w.Stats(cl.stats)
	case line.CmdSnapshot:
		return c.writeBackup(w, cl)
	}
	rep := cl.res.rep
	if cl.req.Cmd.IsMember() {
		return replyMember(w, cl.req.Cmd, rep)
	}
	switch rep.Code {
	case wire.CodeOK:
		switch cl.req.Cmd {
		case line.CmdGet:
			return w.Value(rep.Value, rep.Version)
		case line.CmdStat:
			return w.Stat(rep.Size, rep.Version)
		case line.CmdGetRange:
			return w.Range(rep.Value, rep.Version, rep.Size, rep.Sum)
		case line.CmdList:
			if cl.filter != nil {
				return w.Keys(slices.DeleteFunc(rep.Keys, func(k string) bool { return !cl.filter(k) }))
			}
			return w.Keys(rep.Keys)
		default:
			return w.OKIndex(rep.Index)
		}
	case wire.CodeNotFound:
		return w.NotFound()
	case wire.CodeConflict:
		return w.Conflict(rep.Version)
	}
	msg := rep.Msg
	if msg == "" {
		msg = "replica refused the request"
	}
	return w.Err(lineCode(rep.Code), msg)
}

// replyMember writes the reply to a MEMBER request: the configuration in
// force for LIST, its slot for a change, or the error. CONFLICT here is
// the master's refusal, written with its message (it has no file version).
func replyMember(w *line.Writer, cmd line.Cmd, rep wire.Reply) error {
	switch {
	case rep.Code == wire.CodeOK && cmd == line.CmdMemberList:
		ms := make([]line.Member, 0, len(rep.Members))
		for _, m := range rep.Members {
			ms = append(ms, line.Member{ID: m.ID, Addr: m.Addr, Voter: m.Voter})
		}
		slices.SortFunc(ms, func(a, b line.Member) int { return cmp.Compare(a.ID, b.ID) })
		return w.Members(ms, rep.ConfigSlot)
	case rep.Code == wire.CodeOK:
		return w.OKIndex(rep.ConfigSlot)
	case rep.Code == wire.CodeNotFound:
		return w.NotFound()
	}
	msg := rep.Msg
	if msg == "" {
		msg = "replica refused the request"
	}
	return w.Err(lineCode(rep.Code), msg)
}

// lineCode maps a replica's error code to the line protocol's.
func lineCode(code wire.Code) string {
	switch code {
	case wire.CodeConflict:
		return line.CodeConflict
	case wire.CodeUnavailable:
		return line.CodeUnavailable
	case wire.CodeBusy:
		return line.CodeBusy
	case wire.CodeTimeout:
		return line.CodeTimeout
	case wire.CodeBadRequest:
		return line.CodeBadRequest
	case wire.CodeTooLarge:
		return line.CodeTooLarge
	}
	// CodeNotMaster never gets here (the router retries it); anything else
	// is a bug somewhere.
	return line.CodeInternal
}
