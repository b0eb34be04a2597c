package proxy

import (
	"bufio"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"synod/wire"
	"synod/wire/line"
)

// call is one client request awaiting its reply, in the connection's order.
type call struct {
	req   line.Request
	done  chan struct{}     // closed once the reply below is known
	res   result            // reads and writes
	perr  *line.ProtoError  // a request the parser refused
	nodes []line.NodeStatus // STATUS
	stats []line.Stat       // STATS
	close bool              // close the connection after this reply
}

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

// conn serves one client connection. Its reader goroutine parses requests
// and starts them, so requests of one connection run concurrently
// (pipelining); its writer goroutine writes the replies strictly in request
// order, each once its call is done, and flushes whenever the next reply is
// not ready yet.
type conn struct {
	s     *Server
	nc    net.Conn
	calls chan *call    // to the writer, in request order; its capacity bounds the pipeline
	wdone chan struct{} // closed when the writer has stopped

	// Reader-owned.
	level    line.Level
	run      []*call // the current run of reads or of writes, not known to be finished
	runWrite bool    // whether run holds writes

	lastIndex atomic.Uint64 // index of this connection's latest write, for session reads

	mu       sync.Mutex // orders stopReading against the reader arming its deadline
	stopping bool
}

func newConn(s *Server, nc net.Conn) *conn {
	return &conn{s: s, nc: nc, calls: make(chan *call, s.cfg.MaxPipeline), wdone: make(chan struct{})}
}

// serve runs the connection until the client leaves, an error closes it or
// the server stops it.
func (c *conn) serve() {
	go c.writeLoop()
	c.readLoop()
	close(c.calls)
	<-c.wdone
}

// stopReading makes the reader stop at once; replies to requests already
// read are still written. For a graceful shutdown.
func (c *conn) stopReading() {
	c.mu.Lock()
	c.stopping = true
	c.nc.SetReadDeadline(time.Unix(1, 0))
	c.mu.Unlock()
}

// armRead sets the idle deadline for the next request, unless stopping.
func (c *conn) armRead() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		return false
	}
	c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
	return true
}

func (c *conn) readLoop() {
	r := line.NewReader(bufio.NewReaderSize(c.nc, 4096), c.s.cfg.limits())
	for c.armRead() {
		req, err := r.ReadRequest()
		if err != nil {
			var pe *line.ProtoError
			if !errors.As(err, &pe) {
				// End of input, a stall past the idle timeout, a broken
				// connection: nobody to answer.
				return
			}
			c.s.cnt.requests.Add(1)
			c.s.cnt.badRequests.Add(1)
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
	case c.calls <- cl:
		return true
	case <-c.wdone:
		return false
	}
}

// handle starts one request and reports whether to read on.
func (c *conn) handle(req line.Request) bool {
	cl := &call{req: req, done: answered}
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
	default:
		return c.remote(cl)
	}
	return c.push(cl)
}

// remote starts a read or write.
func (c *conn) remote(cl *call) bool {
	cl.done = make(chan struct{})
	o := &op{req: toWire(cl.req, c.level), write: cl.req.Cmd.IsWrite()}
	o.finish = func(res result) {
		if o.write && res.node != 0 {
			c.noteIndex(res.rep.Index)
		}
		cl.res = res
		close(cl.done)
	}
	if !c.push(cl) {
		return false
	}
	c.order(cl, o.write)
	if !o.write && c.level == line.LevelSession {
		o.req.MinIndex = max(o.req.MinIndex, c.lastIndex.Load())
	}
	c.s.rt.submit(o)
	return true
}

// order keeps a pipeline's semantics those of one request after the other:
// consecutive writes run together (they reach the master in order, so they
// apply in order), consecutive reads run together, but a read starts only
// once the writes before it are answered, and a write only once the reads
// before it are, so no read sees a later write or misses an earlier one.
// The reader waits here, which is also the pipeline's backpressure.
func (c *conn) order(cl *call, write bool) {
	if len(c.run) > 0 && c.runWrite != write {
		for _, prev := range c.run {
			<-prev.done
		}
		clear(c.run)
		c.run = c.run[:0]
	}
	c.runWrite = write
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
}

// toWire translates a parsed request for the replicas.
func toWire(req line.Request, level line.Level) wire.Request {
	w := wire.Request{
		Op: wireOps[req.Cmd], Key: req.Key, Value: req.Value, Version: req.Version,
		Consistency: wire.Consistency(level), MinIndex: req.MinIndex,
	}
	if req.Cmd == line.CmdList {
		w.Key = req.Prefix
	}
	return w
}

// writeLoop writes replies in request order until the reader is done and
// every reply is out, or the connection must close.
func (c *conn) writeLoop() {
	defer close(c.wdone)
	defer c.nc.Close()
	w := line.NewWriter(bufio.NewWriterSize(c.nc, 8192))
	var next *call
	for {
		cl := next
		next = nil
		if cl == nil {
			var ok bool
			if cl, ok = <-c.calls; !ok {
				c.flush(w)
				return
			}
		}
		<-cl.done
		if cl.res.abort {
			c.s.log.Warn().Str("client", c.nc.RemoteAddr().String()).
				Msg("closing a client connection: a write's outcome is unknown after the hold window")
			c.flush(w)
			return
		}
		c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
		if c.reply(w, cl) != nil {
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

func (c *conn) flush(w *line.Writer) error {
	if w.Buffered() == 0 {
		return nil
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
	return w.Flush()
}

// reply writes cl's reply.
func (c *conn) reply(w *line.Writer, cl *call) error {
	if cl.perr != nil {
		return w.ReplyError(cl.perr)
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
	}
	rep := cl.res.rep
	switch rep.Code {
	case wire.CodeOK:
		switch cl.req.Cmd {
		case line.CmdGet:
			return w.Value(rep.Value, rep.Version)
		case line.CmdStat:
			return w.Stat(rep.Size, rep.Version)
		case line.CmdList:
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

// lineCode maps a replica's error code to the line protocol's.
func lineCode(code wire.Code) string {
	switch code {
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
