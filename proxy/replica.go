package proxy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"synod/wire"
)

// errNoConn is returned by replica.send when there is no connection to the
// replica: nothing was sent.
var errNoConn = errors.New("proxy: no connection to the replica")

// replica is the proxy's side of one replica: what the router knows of it
// (guarded by the router's mutex) and one wire connection carrying polls
// and requests, many in flight, matched by envelope id.
type replica struct {
	id   uint64
	addr string
	rt   *router

	// Guarded by rt.mu.
	alive    bool        // connected, and the last poll answered
	ejected  bool        // a read failed here; lifted by the next good poll
	status   wire.Status // last STATUS answer
	polled   bool        // status holds a real answer
	applied  uint64      // highest applied index seen in polls and replies
	inflight int         // ops sent here and not answered
	lat      ewma

	reads     atomic.Uint64 // reads answered here for good
	writes    atomic.Uint64 // writes answered here for good
	ejections atomic.Uint64

	// Guarded by cmu.
	cmu     sync.Mutex
	conn    *wire.Conn
	gen     uint64 // counts connections, so a dead one's reader leaves a new one alone
	nextID  uint64
	pending map[uint64]*waiter
	kick    chan struct{} // wakes the flusher of the current connection
}

// waiter is a request awaiting its reply: a client op, or a poll.
type waiter struct {
	op     *op
	status chan wire.Envelope // poll: receives the reply, closed if the connection died
}

// connected reports whether a connection is up.
func (rp *replica) connected() bool {
	rp.cmu.Lock()
	defer rp.cmu.Unlock()
	return rp.conn != nil
}

// dial connects to the replica and starts the connection's reader and
// flusher.
func (rp *replica) dial(ctx context.Context) error {
	cfg := rp.rt.cfg
	opts := wire.Options{MaxFrame: cfg.maxFrame(), WriteTimeout: cfg.ProbeTimeout, HandshakeTimeout: cfg.ProbeTimeout}
	hello := wire.Hello{ClusterID: cfg.ClusterID, Role: wire.RoleProxy}
	c, _, err := wire.Dial(ctx, rp.addr, hello, opts)
	if err != nil {
		return fmt.Errorf("proxy: dial replica %d at %s: %w", rp.id, rp.addr, err)
	}
	rp.cmu.Lock()
	rp.gen++
	gen := rp.gen
	rp.conn = c
	rp.pending = map[uint64]*waiter{}
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
		rp.flushLoop(c, kick, dead)
	}()
	return nil
}

// readLoop hands every reply to its waiter until the connection dies, then
// fails every waiter left.
func (rp *replica) readLoop(c *wire.Conn, gen uint64) {
	for {
		env, err := c.Recv()
		if err != nil {
			c.Close()
			rp.lost(gen, err)
			return
		}
		rp.cmu.Lock()
		w := rp.pending[env.ID]
		delete(rp.pending, env.ID)
		if w != nil && w.op != nil && w.op.timer != nil {
			w.op.timer.Stop()
		}
		rp.cmu.Unlock()
		switch {
		case w == nil:
			// A reply after its attempt timed out: dropped.
		case w.status != nil:
			w.status <- env.Clone()
		default:
			var rep wire.Reply
			if err := env.Decode(&rep); err != nil || env.Kind != wire.KindReply {
				c.Close()
				rp.rt.attemptFailed(w.op, rp, fmt.Errorf("proxy: replica %d: bad reply: %v", rp.id, err))
				continue // Recv now fails and the rest are failed in lost
			}
			rp.rt.answered(w.op, rp, rep)
		}
	}
}

// lost forgets the connection of generation gen and fails what waited on it.
func (rp *replica) lost(gen uint64, err error) {
	rp.cmu.Lock()
	if rp.gen != gen {
		rp.cmu.Unlock()
		return
	}
	rp.conn = nil
	pending := rp.pending
	rp.pending = nil
	var ops []*op
	for _, w := range pending {
		if w.status != nil {
			close(w.status)
			continue
		}
		if w.op.timer != nil {
			w.op.timer.Stop()
		}
		ops = append(ops, w.op)
	}
	rp.cmu.Unlock()
	rp.rt.connLost(rp, ops, err)
}

// flushLoop writes buffered requests out whenever woken, so requests sent
// close together share one write.
func (rp *replica) flushLoop(c *wire.Conn, kick, dead <-chan struct{}) {
	for {
		select {
		case <-kick:
			if err := c.Flush(); err != nil {
				c.Close()
				return
			}
		case <-dead:
			return
		}
	}
}

// close closes the current connection, if any; its reader then fails
// everything that waited on it.
func (rp *replica) close() {
	rp.cmu.Lock()
	c := rp.conn
	rp.cmu.Unlock()
	if c != nil {
		c.Close()
	}
}

// send registers o and buffers its request; the flusher writes it. The
// attempt is bounded by timeout.
func (rp *replica) send(o *op, timeout time.Duration) error {
	rp.cmu.Lock()
	if rp.conn == nil {
		rp.cmu.Unlock()
		return errNoConn
	}
	rp.nextID++
	id := rp.nextID
	rp.pending[id] = &waiter{op: o}
	o.sentAt = time.Now()
	// From here on a write may reach the replica, and its fate may stay
	// unknown (see result.abort).
	o.sent = o.sent || o.write
	o.timer = time.AfterFunc(timeout, func() { rp.timedOut(id) })
	err := rp.conn.Send(wire.KindRequest, id, &o.req)
	if err != nil {
		delete(rp.pending, id)
		o.timer.Stop()
		rp.conn.Close()
	}
	kick := rp.kick
	rp.cmu.Unlock()
	if err != nil {
		return fmt.Errorf("proxy: send to replica %d: %w", rp.id, err)
	}
	select {
	case kick <- struct{}{}:
	default:
	}
	return nil
}

// timedOut fails the attempt id if it is still unanswered.
func (rp *replica) timedOut(id uint64) {
	rp.cmu.Lock()
	w := rp.pending[id]
	delete(rp.pending, id)
	rp.cmu.Unlock()
	if w != nil {
		rp.rt.attemptFailed(w.op, rp, fmt.Errorf("proxy: replica %d did not answer in time", rp.id))
	}
}

// poll asks the replica for its status within timeout.
func (rp *replica) poll(timeout time.Duration) (wire.Status, error) {
	var st wire.Status
	ch := make(chan wire.Envelope, 1)
	rp.cmu.Lock()
	if rp.conn == nil {
		rp.cmu.Unlock()
		return st, errNoConn
	}
	rp.nextID++
	id := rp.nextID
	rp.pending[id] = &waiter{status: ch}
	c, kick := rp.conn, rp.kick
	err := c.Send(wire.KindStatus, id, &wire.StatusRequest{})
	if err != nil {
		delete(rp.pending, id)
	}
	rp.cmu.Unlock()
	if err != nil {
		c.Close()
		return st, fmt.Errorf("proxy: poll replica %d: %w", rp.id, err)
	}
	select {
	case kick <- struct{}{}:
	default:
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case env, ok := <-ch:
		if !ok {
			return st, fmt.Errorf("proxy: poll replica %d: connection lost", rp.id)
		}
		if env.Kind != wire.KindStatusReply {
			c.Close()
			return st, fmt.Errorf("proxy: poll replica %d: answered %v", rp.id, env.Kind)
		}
		if err := env.Decode(&st); err != nil {
			c.Close()
			return st, fmt.Errorf("proxy: poll replica %d: %w", rp.id, err)
		}
		return st, nil
	case <-t.C:
		rp.cmu.Lock()
		delete(rp.pending, id)
		rp.cmu.Unlock()
		// A replica that cannot answer STATUS in time is taken for dead:
		// closing fails everything sent to it, which is then retried.
		c.Close()
		return st, fmt.Errorf("proxy: poll replica %d: no answer within %v", rp.id, timeout)
	}
}

// pollLoop keeps a connection to the replica and polls its status every
// cfg.Poll until stop closes.
func (rp *replica) pollLoop(stop <-chan struct{}) {
	cfg := rp.rt.cfg
	tick := time.NewTicker(cfg.Poll)
	defer tick.Stop()
	defer rp.close()
	var lastErr string
	for {
		err := rp.pollOnce()
		if err != nil {
			rp.rt.pollFailed(rp)
			if msg := err.Error(); msg != lastErr {
				rp.rt.log.Warn().Err(err).Uint64("replica", rp.id).Msg("replica unreachable")
				lastErr = msg
			}
		} else if lastErr != "" {
			rp.rt.log.Info().Uint64("replica", rp.id).Msg("replica reachable again")
			lastErr = ""
		}
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

func (rp *replica) pollOnce() error {
	cfg := rp.rt.cfg
	if !rp.connected() {
		ctx, cancel := context.WithTimeout(rp.rt.ctx, cfg.ProbeTimeout)
		err := rp.dial(ctx)
		cancel()
		if err != nil {
			return err
		}
	}
	st, err := rp.poll(cfg.ProbeTimeout)
	if err != nil {
		return err
	}
	rp.rt.polled(rp, st)
	return nil
}
