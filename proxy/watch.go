package proxy

// watch.go owns a connection's watches (WATCH, UNWATCH). Each watch has a
// pump goroutine (runWatch) that polls the replicas through the router,
// as reads go, from the index it has delivered up to, and queues what
// comes back on the watch; the connection's writer goroutine writes the
// queued lines between replies (writeWatches). The connection's reader
// starts and ends watches. A watch's position (next) lives in its pump
// alone, so a poll lost with its replica is simply asked again of another
// one from the same index: nothing is lost or sent twice. A client that
// does not read fills its watch's bounded buffer; the pump then stops
// polling, and after WatchStall cuts the watch with a CANCELED line naming
// the index to resume from. The replicas never wait for a watcher.

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"synod/wire"
	"synod/wire/line"
)

// watchItem is one line of a watch's stream waiting for the writer.
type watchItem struct {
	kind  line.WatchKind // WatchEvent, WatchProgress or WatchCanceled
	ev    line.Event
	index uint64 // PROGRESS: the index; CANCELED: where to resume
	code  string
	msg   string
	size  int64
}

// watch is one WATCH of a connection.
type watch struct {
	id     uint64
	req    line.Request
	filter func(string) bool // the keys this connection may see
	ctx    context.Context
	cancel context.CancelFunc
	room   chan struct{} // the writer took items

	mu      sync.Mutex
	items   []watchItem
	bytes   int64 // of items, also charged to the server's in-flight bytes
	started bool  // WATCHING is written: items may go out
	ended   bool  // cut or unwatched: nothing more is queued
}

// watchSet is a connection's watches, by id, under mu: the reader adds
// them, the writer removes them once their last line is out.
type watchSet struct {
	mu   sync.Mutex
	byID map[uint64]*watch
	next uint64
	wg   sync.WaitGroup // the pumps
	wake chan struct{}  // the writer: items were queued
}

// startWatch answers WATCH: it opens the watch within the bounds and
// starts its pump, which answers cl once the first poll says where the
// watch starts (or that it cannot).
func (c *conn) startWatch(cl *call) bool {
	ws := &c.watches
	cfg := c.s.cfg
	ws.mu.Lock()
	n := len(ws.byID)
	ws.mu.Unlock()
	switch {
	case n >= cfg.MaxWatches:
		cl.res = made(wire.CodeBusy, fmt.Sprintf("too many watches on this connection (%d)", cfg.MaxWatches))
		return c.push(cl)
	case c.s.cnt.watches.Add(1) > int64(cfg.MaxWatchesTotal):
		c.s.cnt.watches.Add(-1)
		cl.res = made(wire.CodeBusy, fmt.Sprintf("too many watches on this proxy (%d)", cfg.MaxWatchesTotal))
		return c.push(cl)
	}
	c.s.cnt.watchesTotal.Add(1)
	ctx, cancel := context.WithCancel(context.Background())
	wt := &watch{req: cl.req, filter: c.listFilter(), ctx: ctx, cancel: cancel, room: make(chan struct{}, 1)}
	ws.mu.Lock()
	if ws.byID == nil {
		ws.byID = map[uint64]*watch{}
	}
	ws.next++
	wt.id = ws.next
	ws.byID[wt.id] = wt
	ws.mu.Unlock()
	cl.done = make(chan struct{})
	if !c.push(cl) {
		c.dropWatch(wt)
		return false
	}
	ws.wg.Add(1)
	go func() {
		defer ws.wg.Done()
		c.runWatch(wt, cl)
	}()
	return true
}

// unwatch answers UNWATCH: the pump stops now, and the writer drops what
// is still queued when it writes the reply, after which no line of the
// watch follows.
func (c *conn) unwatch(cl *call) bool {
	ws := &c.watches
	ws.mu.Lock()
	wt := ws.byID[cl.req.WatchID]
	ws.mu.Unlock()
	id := cl.req.WatchID
	if wt == nil {
		cl.custom = func(w *line.Writer) error {
			return w.Err(line.CodeBadRequest, "no watch "+strconv.FormatUint(id, 10)+" on this connection")
		}
		return c.push(cl)
	}
	wt.mu.Lock()
	wt.ended = true
	wt.mu.Unlock()
	wt.cancel()
	cl.custom = func(w *line.Writer) error {
		c.dropWatch(wt)
		return w.Unwatched(id)
	}
	return c.push(cl)
}

// dropWatch forgets wt and gives back what it still held.
func (c *conn) dropWatch(wt *watch) {
	wt.cancel()
	ws := &c.watches
	ws.mu.Lock()
	_, ok := ws.byID[wt.id]
	delete(ws.byID, wt.id)
	left := len(ws.byID)
	ws.mu.Unlock()
	if !ok {
		return
	}
	c.s.cnt.watches.Add(-1)
	wt.mu.Lock()
	freed := wt.bytes
	wt.items, wt.bytes, wt.ended = nil, 0, true
	wt.mu.Unlock()
	c.chargeGlobal(-freed, false)
	if left == 0 {
		c.armIdle()
	}
}

// dropWatches forgets every watch once the pumps and the writer are done:
// the connection is closed.
func (c *conn) dropWatches() {
	for _, wt := range c.watches.all() {
		c.dropWatch(wt)
	}
}

// endWatches stops every pump; the connection is closing.
func (c *conn) endWatches() {
	for _, wt := range c.watches.all() {
		wt.cancel()
	}
}

// all returns the watches open now.
func (ws *watchSet) all() []*watch {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	all := make([]*watch, 0, len(ws.byID))
	for _, wt := range ws.byID {
		all = append(all, wt)
	}
	return all
}

// watching reports whether the connection has a watch open.
func (c *conn) watching() bool {
	ws := &c.watches
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return len(ws.byID) > 0
}

// queue adds items to wt's stream; false if the watch ended.
func (c *conn) queue(wt *watch, items ...watchItem) bool {
	wt.mu.Lock()
	if wt.ended {
		wt.mu.Unlock()
		return false
	}
	for _, it := range items {
		wt.bytes += it.size
		if it.kind == line.WatchCanceled {
			wt.ended = true
		}
	}
	wt.items = append(wt.items, items...)
	wt.mu.Unlock()
	signal(c.watches.wake)
	return true
}

// cut ends wt with a CANCELED line: resume FROM next.
func (c *conn) cut(wt *watch, next uint64, code, msg string) {
	c.queue(wt, watchItem{kind: line.WatchCanceled, index: next, code: code, msg: msg})
	wt.cancel()
}

// waitRoom returns how many bytes the next poll may bring: the room left
// in wt's buffer, once at least a quarter of it is free. It waits for the
// writer for up to WatchStall, then cuts the watch (false); false too
// when the watch ends.
func (c *conn) waitRoom(wt *watch, next uint64) (int64, bool) {
	buf := int64(c.s.cfg.WatchBuffer)
	var stall *time.Timer
	defer func() {
		if stall != nil {
			stall.Stop()
		}
	}()
	for {
		wt.mu.Lock()
		room := buf - wt.bytes
		wt.mu.Unlock()
		if room >= buf/4 && room > 0 {
			return room, true
		}
		if stall == nil {
			stall = time.NewTimer(c.s.cfg.WatchStall)
		}
		select {
		case <-wt.room:
		case <-stall.C:
			c.s.cnt.watchCuts.Add(1)
			c.cut(wt, next, line.CodeSlow, fmt.Sprintf("the client did not read this watch's events for %v with %d bytes of them buffered", c.s.cfg.WatchStall, buf-room))
			return 0, false
		case <-wt.ctx.Done():
			return 0, false
		}
	}
}

// poll asks the router for wt's changes from index from (0: from now),
// waiting for one up to wait; false if the watch ended first.
func (c *conn) poll(wt *watch, from uint64, wait time.Duration, maxBytes int64, avoid []uint64) (result, bool) {
	done := make(chan result, 1)
	o := &op{
		req: wire.Request{
			Op: wire.OpWatch, Key: wt.req.Key, Consistency: wire.Stale,
			Watch: &wire.WatchPoll{Prefix: wt.req.WatchPrefix, From: from, Prev: wt.req.Prev,
				Wait: uint32(wait / time.Millisecond), MaxBytes: uint32(min(maxBytes, 1<<31))},
		},
		avoid:  avoid,
		finish: func(res result) { done <- res },
	}
	if from > 0 && from-1 <= c.s.rt.maxApplied() {
		// Only to replicas that are not far behind (MaxLag). An index
		// no replica has reached yet goes anywhere, to wait there.
		o.req.MinIndex = from - 1
	}
	c.s.rt.submit(o)
	select {
	case res := <-done:
		return res, true
	case <-wt.ctx.Done():
		return result{}, false
	}
}

// runWatch is wt's pump: it answers the WATCH call cl once the first poll
// is back, then polls on from where the last answer ended, queueing the
// events it gets (and a PROGRESS after a poll that waited in vain), until
// the watch is cut, unwatched or its connection closes.
func (c *conn) runWatch(wt *watch, cl *call) {
	first := true
	defer func() {
		if first {
			// Ended before it started (the connection is closing).
			cl.custom = func(w *line.Writer) error {
				c.dropWatch(wt)
				return w.Err(line.CodeUnavailable, "the watch ended before it started")
			}
			close(cl.done)
		}
	}()
	refuse := func(code, msg string) {
		cl.custom = func(w *line.Writer) error {
			c.dropWatch(wt)
			return w.Err(code, msg)
		}
		first = false
		close(cl.done)
	}
	cfg := c.s.cfg
	next := wt.req.From // 0 until the first answer says where "now" is
	var avoid []uint64
	tries := 0
	began := time.Now()
	for {
		maxBytes, ok := c.waitRoom(wt, next)
		if !ok {
			return
		}
		wait := cfg.WatchProgress
		if first {
			wait = 0
		}
		res, ok := c.poll(wt, next, wait, maxBytes, avoid)
		if !ok {
			return
		}
		rep := res.rep
		switch {
		case res.node != 0 && rep.Code == wire.CodeCompacted:
			// Another replica's history may reach further back.
			avoid = append(avoid, res.node)
			if c.s.rt.canServe(avoid, next) {
				c.s.cnt.watchMoves.Add(1)
				continue
			}
			msg := fmt.Sprintf("%d is the oldest index a watch can start from: read the state, then watch from there", rep.Oldest)
			if first {
				refuse(line.CodeCompacted, msg)
				return
			}
			c.cut(wt, next, line.CodeCompacted, msg)
			return
		case res.node != 0 && rep.Code == wire.CodeBadRequest:
			if first {
				refuse(line.CodeBadRequest, rep.Msg)
				return
			}
			c.cut(wt, next, line.CodeInternal, rep.Msg)
			return
		case res.node == 0 || rep.Code != wire.CodeOK:
			// No replica could answer (none is up, or the one asked
			// failed): the watch waits for one, a new WATCH for at most
			// the hold window.
			tries++
			if first && time.Since(began) >= cfg.Hold {
				refuse(lineCode(rep.Code), "no replica could serve the watch: "+rep.Msg)
				return
			}
			select {
			case <-time.After(retryBackoff(tries, cfg.Poll)):
				continue
			case <-wt.ctx.Done():
				return
			}
		}
		tries, avoid = 0, nil
		if next == 0 {
			next = rep.Through + 1
		}
		start := next
		items := make([]watchItem, 0, len(rep.Events)+1)
		for _, ev := range rep.Events {
			if ev.Index < next || ev.Index > rep.Through {
				continue // never twice, whatever a replica says
			}
			if !wt.filter(ev.Key) {
				continue
			}
			le := line.Event{Index: ev.Index, Op: eventOps[ev.Op], Key: ev.Key, Value: ev.Value,
				WithPrev: wt.req.Prev, HadPrev: ev.HadPrev, Prev: ev.Prev}
			items = append(items, watchItem{kind: line.WatchEvent, ev: le,
				size: int64(len(ev.Key) + len(ev.Value) + len(ev.Prev) + replyOverhead)})
		}
		if rep.Through+1 > next {
			next = rep.Through + 1
		}
		if len(rep.Events) == 0 && wait > 0 {
			items = append(items, watchItem{kind: line.WatchProgress, index: next - 1, size: replyOverhead})
		}
		var size int64
		for _, it := range items {
			size += it.size
		}
		if !c.chargeGlobal(size, size > smallRequest) {
			c.cut(wt, items0(items, next), line.CodeBusy, fmt.Sprintf("proxy in-flight byte budget (%d bytes) full", cfg.MaxInflightBytes))
			return
		}
		if first {
			cl.custom = func(w *line.Writer) error {
				wt.mu.Lock()
				wt.started = true
				wt.mu.Unlock()
				signal(c.watches.wake)
				return w.Watching(wt.id, start)
			}
			first = false
			if !c.queue(wt, items...) {
				c.chargeGlobal(-size, false)
			}
			close(cl.done)
			continue
		}
		if !c.queue(wt, items...) {
			c.chargeGlobal(-size, false)
			return
		}
	}
}

// items0 is where a watch resumes if items are not sent: at the first
// event's index, or next if there is none.
func items0(items []watchItem, next uint64) uint64 {
	for _, it := range items {
		if it.kind == line.WatchEvent {
			return it.ev.Index
		}
	}
	return next
}

var eventOps = map[wire.Op]line.EventOp{wire.OpPut: line.EventPut, wire.OpAppend: line.EventAppend, wire.OpDel: line.EventDel}

// writeWatches writes every started watch's queued lines. The writer
// goroutine calls it between replies.
func (c *conn) writeWatches(w *line.Writer) error {
	ws := &c.watches
	ws.mu.Lock()
	all := make([]*watch, 0, len(ws.byID))
	for _, wt := range ws.byID {
		all = append(all, wt)
	}
	ws.mu.Unlock()
	for _, wt := range all {
		wt.mu.Lock()
		if !wt.started || len(wt.items) == 0 {
			wt.mu.Unlock()
			continue
		}
		items := wt.items
		wt.items = nil
		wt.mu.Unlock()
		c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
		var written int64
		var err error
		last := false
		for _, it := range items {
			switch it.kind {
			case line.WatchEvent:
				err = w.Event(wt.id, it.ev)
				c.s.cnt.watchEvents.Add(1)
			case line.WatchProgress:
				err = w.Progress(wt.id, it.index)
			case line.WatchCanceled:
				err = w.Canceled(wt.id, it.index, it.code, it.msg)
				last = true
			}
			written += it.size
			if err != nil {
				break
			}
		}
		wt.mu.Lock()
		wt.bytes -= written
		wt.mu.Unlock()
		c.chargeGlobal(-written, false)
		signal(wt.room)
		if last {
			c.dropWatch(wt)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// maxApplied is the highest index a replica is known to have applied.
func (rt *router) maxApplied() uint64 {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var m uint64
	for _, rp := range rt.reps {
		m = max(m, rp.applied)
	}
	return m
}

// canServe reports whether a live replica not in avoid may serve a watch
// poll from index from. Called without mu.
func (rt *router) canServe(avoid []uint64, from uint64) bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for _, rp := range rt.reps {
		need := uint64(0)
		if from > 0 {
			need = from - 1
		}
		if !rt.eligible(rp, nil, wire.Stale, need) {
			continue
		}
		avoided := false
		for _, id := range avoid {
			avoided = avoided || id == rp.id
		}
		if !avoided {
			return true
		}
	}
	return false
}
