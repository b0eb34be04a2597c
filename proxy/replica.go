package proxy

// replica.go: the proxy's two connections to one replica. The data
// connection carries requests and replies, many in flight: its reader
// goroutine (readLoop) hands each reply to the router, its writer goroutine
// (writeLoop) writes the queued requests, so no router step ever waits on
// the network. The poll connection carries STATUS only, used by the
// replica's poller goroutine (pollLoop) alone, so a poll never queues
// behind data and a slow poll never costs the requests in flight. A
// replica removed from the configuration (members.go) has its poller
// stopped and its connections closed.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"synod/wire"
)

// errNoConn is returned by replica.send when there is no connection to the
// replica: nothing was sent.
var errNoConn = errors.New("proxy: no connection to the replica")

// replica is the proxy's side of one replica: what the router knows of it
// (guarded by the router's mutex), the data connection (guarded by cmu) and
// the poll connection (the poller's).
type replica struct {
	id   uint64
	addr string
	rt   *router
	stop chan struct{} // closed (under rt.mu) when the replica leaves the configuration

	// Guarded by rt.mu.
	voter    bool         // a voter of the configuration; a learner gets no reads
	removed  bool         // no longer a member: nothing is routed here
	alive    bool         // connected, and the last poll answered
	ejected  bool         // a read failed here; lifted by the next good poll
	status   wire.Status  // last STATUS answer
	polled   bool         // status holds a real answer
	applied  uint64       // highest applied index seen in polls and replies
	inflight int          // ops sent here and not answered
	lat      replyLatency // read latency estimate (balance.go)
	picked   time.Time    // when a read was last routed here (balance.go: probes)

	reads      atomic.Uint64 // reads answered here for good
	watchPolls atomic.Uint64 // watch polls answered here
	writes     atomic.Uint64 // writes answered here for good
	ejections  atomic.Uint64

	// The data connection, guarded by cmu. The lock is only ever held for
	// map and slice updates, never across network I/O, and is taken after
	// rt.mu when both are held.
	cmu     sync.Mutex
	conn    *wire.Conn
	gen     uint64 // counts connections, so a dead one's goroutines leave a new one alone
	nextID  uint64
	pending map[uint64]*op // attempts awaiting their reply, by envelope id
	small   []outRequest   // requests the writer has not written yet: small ones,
	large   []outRequest   // which pass the large ones, so they do not wait behind megabytes
	kick    chan struct{}  // wakes the writer of the current connection

	pollc *wire.Conn    // the poll connection; the poller's alone
	nudge chan struct{} // asks the poller for a poll now (see router.lookForMaster)
}

// outRequest is a request waiting for the writer: a copy, because the op's
// own request changes when it is resent.
type outRequest struct {
	id  uint64
	req wire.Request
}

// lane says whether a request goes in the large lane: requests larger than
// smallRequest do, and so does any write queued behind a large write of
// its session, so a session's writes still leave in seq order.
type lane bool

const (
	smallLane lane = false
	largeLane lane = true
)

func newReplica(rt *router, id uint64, addr string, voter bool) *replica {
	return &replica{id: id, addr: addr, rt: rt, voter: voter, stop: make(chan struct{}), nudge: make(chan struct{}, 1)}
}

// stopped reports whether the replica left the configuration.
func (rp *replica) stopped() bool {
	select {
	case <-rp.stop:
		return true
	default:
		return false
	}
}

// closeData closes the data connection, if any; its reader then gives
// back everything that waited on it. Safe from any goroutine.
func (rp *replica) closeData() {
	rp.cmu.Lock()
	c := rp.conn
	rp.cmu.Unlock()
	if c != nil {
		c.Close()
	}
}

// connected reports whether a data connection is up.
func (rp *replica) connected() bool {
	rp.cmu.Lock()
	defer rp.cmu.Unlock()
	return rp.conn != nil
}

func (rp *replica) dialOptions() wire.Options {
	cfg := rp.rt.cfg
	return wire.Options{MaxFrame: cfg.maxFrame(), WriteTimeout: cfg.ProbeTimeout, HandshakeTimeout: cfg.ProbeTimeout, TLS: cfg.replicaTLS()}
}

func (rp *replica) dialConn(ctx context.Context, opts wire.Options) (*wire.Conn, error) {
	hello := wire.Hello{ClusterID: rp.rt.cfg.ClusterID, Role: wire.RoleProxy}
	c, _, err := wire.Dial(ctx, rp.addr, hello, opts)
	if err != nil {
		return nil, fmt.Errorf("proxy: dial replica %d at %s: %w", rp.id, rp.addr, err)
	}
	return c, nil
}

// askStatus sends one STATUS request on c and returns the answer. A
// failure leaves c unusable; the caller closes it.
func askStatus(c *wire.Conn) (wire.Status, error) {
	var st wire.Status
	if err := c.Send(wire.KindStatus, 1, &wire.StatusRequest{}); err != nil {
		return st, err
	}
	if err := c.Flush(); err != nil {
		return st, err
	}
	env, err := c.Recv()
	if err != nil {
		return st, err
	}
	if env.Kind != wire.KindStatusReply {
		return st, fmt.Errorf("answered %v", env.Kind)
	}
	if err := env.Decode(&st); err != nil {
		return st, err
	}
	return st, nil
}

// dial opens the data connection and starts its reader and writer.
func (rp *replica) dial(ctx context.Context) error {
	c, err := rp.dialConn(ctx, rp.dialOptions())
	if err != nil {
		return err
	}
	rp.cmu.Lock()
	rp.gen++
	gen := rp.gen
	rp.conn = c
	rp.pending = map[uint64]*op{}
	rp.small, rp.large = nil, nil
	kick := make(chan struct{}, 1)
	rp.kick = kick
	rp.cmu.Unlock()
	dead := make(chan struct{})
	rp.rt.wg.Add(2)
	go func() {
		defer rp.rt.wg.Done()
		rp.readLoop(c, gen)
		close(dead)
	}()
	go func() {
		defer rp.rt.wg.Done()
		rp.writeLoop(c, gen, kick, dead)
	}()
	return nil
}

// readLoop hands every reply to the router until the connection dies, then
// gives back every attempt left.
func (rp *replica) readLoop(c *wire.Conn, gen uint64) {
	for {
		env, err := c.Recv()
		if err != nil {
			c.Close()
			rp.lost(gen, err)
			return
		}
		if env.Kind != wire.KindReply {
			continue
		}
		rp.cmu.Lock()
		o := rp.pending[env.ID]
		delete(rp.pending, env.ID)
		if o != nil && o.timer != nil {
			o.timer.Stop()
		}
		rp.cmu.Unlock()
		if o == nil {
			continue // a reply after its attempt timed out or was given up: dropped
		}
		var rep wire.Reply
		if err := wire.DecodeReply(env.Body, &rep); err != nil {
			c.Close()
			rp.rt.attemptFailed(o, rp, fmt.Errorf("proxy: replica %d: bad %s body: %w", rp.id, env.Kind, err))
			continue // Recv now fails and the rest are given back in lost
		}
		rp.rt.answered(o, rp, rep)
	}
}

// writeLoop writes the queued requests whenever woken until the
// connection dies: every small one queued, else one large one, and a flush
// once nothing is left.
//
// Woken, it first yields once, so that the goroutines already runnable (the
// client readers the same network poll woke, most often) queue their
// requests before it takes the queue: the kick would otherwise run it next,
// ahead of them, and it would write one request per write(2). The yield
// costs no wait when nothing else is runnable.
func (rp *replica) writeLoop(c *wire.Conn, gen uint64, kick, dead <-chan struct{}) {
	var spare []outRequest // an emptied queue, handed back to the senders
	for {
		select {
		case <-kick:
		case <-dead:
			return
		}
		runtime.Gosched()
		for {
			rp.cmu.Lock()
			var q []outRequest
			if rp.gen == gen {
				switch {
				case len(rp.small) > 0:
					// The senders append to the queue written last time
					// (emptied), so a batch does not grow a slice anew.
					q, rp.small = rp.small, spare
					spare = nil
				case len(rp.large) > 0:
					q = []outRequest{rp.large[0]}
					rp.large[0] = outRequest{}
					rp.large = rp.large[1:]
				}
			}
			rp.cmu.Unlock()
			if len(q) == 0 {
				break
			}
			for i := range q {
				r := &q[i]
				if err := c.Send(wire.KindRequest, r.id, &r.req); err != nil {
					if errors.Is(err, wire.ErrFrameTooLarge) {
						// Only this request: answer it as the replica would.
						rp.tooLarge(r.id)
						continue
					}
					c.Close()
					return
				}
			}
			if cap(q) > 1 && cap(q) <= maxSpare {
				clear(q) // keep no request's value alive
				spare = q[:0]
			}
		}
		if err := c.Flush(); err != nil {
			c.Close()
			return
		}
	}
}

// maxSpare is the largest queue the writer hands back for reuse, so a burst
// does not pin its memory for the connection's life.
const maxSpare = 1024

// tooLarge fails the attempt id, whose request did not fit a frame.
func (rp *replica) tooLarge(id uint64) {
	rp.cmu.Lock()
	o := rp.pending[id]
	delete(rp.pending, id)
	if o != nil && o.timer != nil {
		o.timer.Stop()
	}
	rp.cmu.Unlock()
	if o != nil {
		rp.rt.answered(o, rp, wire.Reply{Code: wire.CodeTooLarge, Msg: "request too large for a frame", NotApplied: true})
	}
}

// lost forgets the connection of generation gen and gives back what was
// in flight on it.
func (rp *replica) lost(gen uint64, err error) {
	rp.cmu.Lock()
	if rp.gen != gen {
		rp.cmu.Unlock()
		return
	}
	rp.conn = nil
	ops := rp.takeLocked()
	rp.cmu.Unlock()
	rp.rt.connLost(rp, ops, err)
}

// abandon gives back every attempt in flight without closing the
// connection: the replica stopped answering polls, so its requests are
// tried elsewhere and its late replies dropped.
func (rp *replica) abandon(err error) {
	rp.cmu.Lock()
	ops := rp.takeLocked()
	rp.cmu.Unlock()
	if len(ops) > 0 {
		rp.rt.connLost(rp, ops, err)
	}
}

// takeLocked removes every pending attempt and queued request; a request
// still queued never left the proxy. cmu must be held.
func (rp *replica) takeLocked() []lostOp {
	unsent := make(map[uint64]bool, len(rp.small)+len(rp.large))
	for _, r := range rp.small {
		unsent[r.id] = true
	}
	for _, r := range rp.large {
		unsent[r.id] = true
	}
	rp.small, rp.large = nil, nil
	ops := make([]lostOp, 0, len(rp.pending))
	for id, o := range rp.pending {
		if o.timer != nil {
			o.timer.Stop()
		}
		ops = append(ops, lostOp{o: o, sent: !unsent[id]})
	}
	rp.pending = map[uint64]*op{}
	return ops
}

// takeMatching removes the pending attempts that match, and returns their
// ops; the connection stays. Requests still queued for the writer go out
// anyway, and their answers are dropped.
func (rp *replica) takeMatching(match func(*op) bool) []*op {
	rp.cmu.Lock()
	defer rp.cmu.Unlock()
	var ops []*op
	for id, o := range rp.pending {
		if match(o) {
			if o.timer != nil {
				o.timer.Stop()
			}
			delete(rp.pending, id)
			ops = append(ops, o)
		}
	}
	return ops
}

// close closes both connections, if any; the data connection's reader then
// gives back everything that waited on it.
func (rp *replica) close() {
	rp.cmu.Lock()
	c := rp.conn
	rp.cmu.Unlock()
	if c != nil {
		c.Close()
	}
	if rp.pollc != nil {
		rp.pollc.Close()
		rp.pollc = nil
	}
}

// send registers o and queues its request for the writer in lane l; it
// never waits on the network. The attempt is bounded by timeout. Called
// with rt.mu held.
func (rp *replica) send(o *op, timeout time.Duration, l lane) error {
	rp.cmu.Lock()
	defer rp.cmu.Unlock()
	if rp.conn == nil {
		return errNoConn
	}
	rp.nextID++
	id := rp.nextID
	rp.pending[id] = o
	if l == largeLane {
		rp.large = append(rp.large, outRequest{id: id, req: o.req})
	} else {
		rp.small = append(rp.small, outRequest{id: id, req: o.req})
	}
	o.sentAt = time.Now()
	o.timer = time.AfterFunc(timeout, func() { rp.timedOut(id) })
	select {
	case rp.kick <- struct{}{}:
	default:
	}
	return nil
}

// timedOut fails the attempt id if it is still unanswered.
func (rp *replica) timedOut(id uint64) {
	rp.cmu.Lock()
	o := rp.pending[id]
	delete(rp.pending, id)
	rp.cmu.Unlock()
	if o != nil {
		rp.rt.attemptFailed(o, rp, fmt.Errorf("proxy: replica %d did not answer in time", rp.id))
	}
}

// poll asks the replica for its status on the poll connection, within the
// probe timeout (a Recv past it fails and closes the connection).
func (rp *replica) poll(ctx context.Context) (wire.Status, error) {
	var st wire.Status
	cfg := rp.rt.cfg
	if rp.pollc == nil {
		opts := rp.dialOptions()
		opts.MaxFrame = wire.DefaultMaxFrame
		opts.ReadTimeout = cfg.ProbeTimeout
		c, err := rp.dialConn(ctx, opts)
		if err != nil {
			return st, err
		}
		rp.pollc = c
	}
	c := rp.pollc
	st, err := askStatus(c)
	if err != nil {
		c.Close()
		rp.pollc = nil
		return st, fmt.Errorf("proxy: poll replica %d: %w", rp.id, err)
	}
	return st, nil
}

// nudgeGap is the least time between two polls a nudge asks for, so a
// proxy that keeps losing its master cannot flood the replicas with STATUS.
const nudgeGap = 5 * time.Millisecond

// searchPoll is the poll interval while the proxy knows no master (at most
// cfg.Poll): the next master is found within this of being ready, not up
// to a whole interval later, and every request held through the failover
// waits that much less. It lasts only while there is no master; a cluster
// without a quorum for long gets a STATUS from each proxy this often.
const searchPoll = 10 * time.Millisecond

// pollLoop keeps the connections to the replica and polls its status every
// cfg.Poll (searchPoll while there is no master), and sooner when nudged,
// until the router closes or the replica leaves the configuration; then it
// closes both connections.
func (rp *replica) pollLoop() {
	cfg := rp.rt.cfg
	tick := time.NewTimer(cfg.Poll)
	defer tick.Stop()
	defer rp.close()
	var lastErr string
	var last time.Time
	for {
		last = time.Now()
		err := rp.pollOnce()
		if err != nil {
			rp.rt.pollFailed(rp)
			// A replica that cannot answer STATUS in time is taken for
			// down: what was sent to it is tried elsewhere.
			rp.abandon(err)
			if msg := err.Error(); msg != lastErr {
				rp.rt.log.Warn().Err(err).Uint64("replica", rp.id).Msg("replica unreachable")
				lastErr = msg
			}
		} else if lastErr != "" {
			rp.rt.log.Info().Uint64("replica", rp.id).Msg("replica reachable again")
			lastErr = ""
		}
		wait := cfg.Poll
		if !rp.rt.hasMaster() {
			wait = min(wait, searchPoll)
		}
		tick.Reset(max(wait-time.Since(last), 0))
		select {
		case <-rp.rt.ctx.Done():
			return
		case <-rp.stop:
			return
		case <-tick.C:
		case <-rp.nudge:
			if wait := nudgeGap - time.Since(last); wait > 0 {
				select {
				case <-rp.rt.ctx.Done():
					return
				case <-rp.stop:
					return
				case <-time.After(wait):
				}
			}
		}
	}
}

// askPoll asks the poller for a poll now; a poll already asked for covers
// it.
func (rp *replica) askPoll() {
	select {
	case rp.nudge <- struct{}{}:
	default:
	}
}

func (rp *replica) pollOnce() error {
	cfg := rp.rt.cfg
	ctx, cancel := context.WithTimeout(rp.rt.ctx, cfg.ProbeTimeout)
	defer cancel()
	st, err := rp.poll(ctx)
	if err != nil {
		return err
	}
	if !rp.connected() && !rp.stopped() {
		if err := rp.dial(ctx); err != nil {
			return err
		}
	}
	rp.rt.polled(rp, st)
	return nil
}
