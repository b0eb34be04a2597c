package proxy

// router.go: where each request goes. The router's state is under its
// mutex and touched by every goroutine that routes: connection readers
// submitting, replica readers and attempt timers taking answers in,
// pollers and seed probes taking STATUS in (and with it the configuration,
// members.go), and the drainer goroutine (drainLoop), which sends what was
// held once it can go.

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"synod/wire"
	"synod/wire/line"
)

// router sends client ops to replicas: writes to the master, in order per
// connection (see session), reads by power of two choices over the
// followers of the current master, and everything that cannot go yet into
// the hold queue (reads) or its session (writes). It learns the cluster
// from STATUS polls, from not-master hints and from connections that die;
// which replicas there are, from the configuration STATUS carries.
type router struct {
	cfg *Config
	log zerolog.Logger
	cnt *counters

	prom *promMetrics // what the request path observes (metrics.go)

	ctx    context.Context // ends when the router closes
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{} // wakes the drainer

	clientBase uint64        // random per proxy, so proxies need not coordinate ids
	clients    atomic.Uint64 // client ids handed out

	mu        sync.Mutex
	reps      []*replica // the members, by id
	byID      map[uint64]*replica
	seeds     []*seed                // addresses given without an id, not reached yet
	haveConf  bool                   // a configuration was learned from a STATUS
	confSlot  uint64                 // the slot that chose it
	conf      map[uint64]wire.Member // its members, by id
	started   bool                   // pollers run: a replica added from now on gets one at once
	master    *replica               // nil: none known
	last      uint64                 // the last master a poll confirmed, for counting failovers
	queue     holdQueue
	waiting   map[*session]struct{} // sessions with writes waiting for a master, a backoff or a deadline
	held      int                   // requests waiting: reads in queue, writes not out
	heldBytes int64
	rnd       *rand.Rand
	seq       uint64
	closed    bool
	scr       []*replica // scratch for pickRead

	inflight atomic.Int64 // admitted ops not yet finished
}

func newRouter(cfg *Config, cnt *counters) *router {
	ctx, cancel := context.WithCancel(context.Background())
	rt := &router{
		cfg: cfg, log: cfg.Logger, cnt: cnt, prom: newPromMetrics(),
		clientBase: rand.Uint64(),
		ctx:        ctx, cancel: cancel,
		kick:    make(chan struct{}, 1),
		byID:    map[uint64]*replica{},
		waiting: map[*session]struct{}{},
		rnd:     rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
	for id, addr := range cfg.Nodes {
		rp := newReplica(rt, id, addr, true)
		rt.reps = append(rt.reps, rp)
		rt.byID[id] = rp
	}
	slices.SortFunc(rt.reps, func(a, b *replica) int { return cmp.Compare(a.id, b.id) })
	for _, addr := range cfg.Seeds {
		rt.seeds = append(rt.seeds, &seed{addr: addr, done: make(chan struct{})})
	}
	return rt
}

// newClientID returns a client id no session of this proxy had before: the
// per-proxy random base plus a counter, skipping 0 (no session).
func (rt *router) newClientID() uint64 {
	for {
		if id := rt.clientBase + rt.clients.Add(1); id != 0 {
			return id
		}
	}
}

// start starts the pollers, the seed probes and the drainer.
func (rt *router) start() {
	rt.mu.Lock()
	rt.started = true
	for _, rp := range rt.reps {
		rt.startPollerLocked(rp)
	}
	for _, sd := range rt.seeds {
		rt.wg.Add(1)
		go func() {
			defer rt.wg.Done()
			rt.seedLoop(sd)
		}()
	}
	rt.mu.Unlock()
	rt.wg.Add(1)
	go func() {
		defer rt.wg.Done()
		rt.drainLoop()
	}()
}

// close fails everything still held or in flight and waits for the
// router's goroutines.
func (rt *router) close() {
	var fx effects
	rt.mu.Lock()
	if rt.closed {
		rt.mu.Unlock()
		return
	}
	rt.closed = true
	for _, o := range rt.queue.drain() {
		rt.unhold(o)
		fx.end(o, rt.shutdownResult(o))
	}
	for s := range rt.waiting {
		rt.shutdownSession(s, &fx)
	}
	rt.mu.Unlock()
	rt.finishAll(&fx)
	rt.cancel() // pollers close their connections; what was in flight comes back through connLost
	rt.wg.Wait()
}

func (rt *router) shutdownResult(o *op) result {
	if o.write && o.mayApplied {
		return result{abort: true}
	}
	return made(wire.CodeUnavailable, "proxy shutting down")
}

// made is a reply the proxy makes up itself.
func made(code wire.Code, msg string) result {
	return result{rep: wire.Reply{Code: code, Msg: msg}}
}

// hold counts o among the requests waiting to be sent.
func (rt *router) hold(o *op) {
	if rt.master == nil && o.heldAt.IsZero() {
		o.heldAt = time.Now() // held for a failover: see promMetrics.observe
	}
	if !o.held {
		o.held = true
		rt.held++
		rt.heldBytes += o.size
		if o.sess != nil {
			o.sess.held++
		}
	}
}

func (rt *router) unhold(o *op) {
	if o.held {
		o.held = false
		rt.held--
		rt.heldBytes -= o.size
		if o.sess != nil {
			o.sess.held--
		}
	}
}

// holdFull reports whether o, which must wait, does not fit the hold
// queue's bounds. Called with mu held.
func (rt *router) holdFull(o *op) bool {
	return rt.held >= rt.cfg.QueueSize || rt.heldBytes+o.size > rt.cfg.QueueBytes
}

// submit admits a new op from a client connection and sends it, or holds it.
func (rt *router) submit(o *op) {
	if rt.inflight.Add(1) > int64(rt.cfg.MaxInflight) {
		rt.inflight.Add(-1)
		rt.cnt.busy.Add(1)
		rt.prom.replies[wire.CodeBusy].Add(1)
		o.finish(made(wire.CodeBusy, "too many requests in flight"))
		return
	}
	now := time.Now()
	o.arrived, o.deadline = now, now.Add(rt.cfg.Hold)
	o.size = int64(len(o.req.Key) + len(o.req.Value) + 64)
	var fx effects
	rt.mu.Lock()
	if rt.closed {
		rt.mu.Unlock()
		rt.end(o, rt.shutdownResult(o))
		return
	}
	rt.seq++
	o.seq = rt.seq
	if o.write {
		s := o.sess
		m := rt.master
		goesNow := !s.dead && !s.rewind && !s.hole && !s.queued() && m != nil && m.alive && !now.Before(s.notBefore)
		if !goesNow && !s.dead && rt.holdFull(o) {
			rt.mu.Unlock()
			rt.cnt.bufferOverflows.Add(1)
			rt.end(o, made(wire.CodeUnavailable, "request queue full"))
			return
		}
		rt.addWrite(o, now, &fx)
		rt.mu.Unlock()
		rt.finishAll(&fx)
		rt.wake()
		return
	}
	t := rt.pick(o)
	if t == nil && o.watch() {
		// A watch poll is never held, so watches cannot crowd writes out
		// of the hold queue: its pump asks again, from the same index.
		rt.mu.Unlock()
		rt.end(o, made(wire.CodeUnavailable, "no replica can serve the watch now"))
		return
	}
	if t == nil {
		if rt.holdFull(o) {
			rt.mu.Unlock()
			rt.cnt.bufferOverflows.Add(1)
			rt.end(o, made(wire.CodeUnavailable, "request queue full"))
			return
		}
		rt.queue.push(o)
		rt.hold(o)
		rt.mu.Unlock()
		rt.wake()
		return
	}
	rt.sendRead(o, t)
	rt.mu.Unlock()
}

func (rt *router) wake() {
	select {
	case rt.kick <- struct{}{}:
	default:
	}
}

// attemptTimeout bounds one attempt of a read or membership op: a change
// is answered once it is chosen and in force, as a write is.
func (rt *router) attemptTimeout(o *op) time.Duration {
	if o.change() {
		return rt.cfg.Hold
	}
	return rt.cfg.ReadTimeout
}

// pick chooses where a read or a membership op goes: a change to the
// master, a MEMBER LIST to the master or else any live replica, a read by
// pickRead. Called with mu held.
func (rt *router) pick(o *op) *replica {
	if !o.memberOp() {
		return rt.pickRead(o)
	}
	return rt.pickMember(o)
}

// sendRead sends read (or membership op) o to t, or holds it if t has no
// connection. Called with mu held.
func (rt *router) sendRead(o *op, t *replica) {
	if err := t.send(o, rt.attemptTimeout(o), smallLane); err != nil {
		// The connection is gone: the replica is down until its poller
		// reconnects, so retries do not spin on it.
		t.alive = false
		if rt.master == t {
			rt.master = nil
		}
		rt.queue.push(o)
		rt.hold(o)
		rt.wake()
		return
	}
	t.inflight++
	o.target = t
}

// pickRead chooses a replica for a read: two distinct eligible followers
// drawn at random, the cheaper one; the master only if no follower can.
// Called with mu held.
func (rt *router) pickRead(o *op) *replica {
	need := o.req.MinIndex
	m := rt.master
	if m != nil && !m.alive {
		m = nil
	}
	if o.req.Consistency == wire.Linearizable {
		if m == nil {
			return nil // a follower could not get a read index either
		}
		// The read index will be at least the master's commit: a follower
		// far behind that would make the read wait for its catch-up.
		need = max(need, m.status.Commit)
	}
	cands := rt.scr[:0]
	for _, rp := range rt.reps {
		if rp != m && rt.eligible(rp, m, o.req.Consistency, need) && !slices.Contains(o.avoid, rp.id) {
			cands = append(cands, rp)
		}
	}
	rt.scr = cands
	now := time.Now()
	if i := pickTwo(len(cands), func(i int) choice {
		rp := cands[i]
		return choice{
			latMs:    rp.lat.value(now, rt.peerLatency(rp)),
			inflight: rp.inflight,
			due:      rp.inflight == 0 && now.Sub(rp.picked) >= probeAfter,
		}
	}, rt.rnd); i >= 0 {
		cands[i].picked = now
		return cands[i]
	}
	if m != nil && rt.eligible(m, m, o.req.Consistency, need) && !slices.Contains(o.avoid, m.id) {
		return m
	}
	return nil
}

// peerLatency returns the mean latency estimate of the followers other
// than rp that have one (0 if none): what rp's estimate drifts toward while
// it gets no samples (balance.go). Called with mu held.
func (rt *router) peerLatency(rp *replica) float64 {
	var sum float64
	n := 0
	for _, p := range rt.reps {
		if p != rp && p != rt.master && !p.lat.at.IsZero() {
			sum += p.lat.ms
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// eligible reports whether rp may serve a read at level c that needs
// applied index need, m being the current master (nil if none). A read
// that needs the master's commit (linearizable, or a session read above
// rp's applied index) goes only to the master and to the replicas that
// follow it: not to one that claims mastership itself at a lower ballot,
// one still electing itself, or one following another master, all of which
// follow nobody (DESIGN.md, "Reads go to followers of the current
// master"). Called with mu held.
func (rt *router) eligible(rp, m *replica, c wire.Consistency, need uint64) bool {
	if !rp.alive || rp.ejected || !rp.voter || (need > rp.applied && need-rp.applied > rt.cfg.MaxLag) {
		return false
	}
	needsMaster := c == wire.Linearizable || (c == wire.Session && need > rp.applied)
	return !needsMaster || m == nil || follows(rp, m)
}

// follows reports whether rp, as last polled, follows master m.
func follows(rp, m *replica) bool {
	if rp == m {
		return true
	}
	st := rp.status
	return rp.polled && st.Role != wire.NodeMaster && st.Role != wire.NodeCandidate && st.MasterID == m.id
}

// answered handles a replica's reply to o.
func (rt *router) answered(o *op, rp *replica, rep wire.Reply) {
	now := time.Now()
	var fx effects
	rt.mu.Lock()
	rp.inflight--
	rp.applied = max(rp.applied, rep.Applied)
	if o.write {
		before := rt.master
		rt.writeAnswered(o, rp, rep, now, &fx)
		moved := rt.master != before && rt.master != nil
		rt.mu.Unlock()
		rt.finishAll(&fx)
		if moved {
			rt.wake() // the sessions waiting for a master may go
		}
		return
	}
	o.target = nil
	if o.memberOp() {
		retry, backoff := rt.memberAnswered(o, rp, rep)
		rt.mu.Unlock()
		if retry {
			rt.retryRead(o, backoff)
			return
		}
		rt.end(o, result{rep: rep, node: rp.id})
		return
	}
	if !o.watch() {
		rp.lat.observe(now.Sub(o.sentAt), now)
	}
	final := true
	switch rep.Code {
	case wire.CodeNotMaster, wire.CodeTimeout, wire.CodeBusy, wire.CodeUnavailable:
		final = false
		o.lastCode = rep.Code
		rt.eject(rp)
		if rep.Code == wire.CodeNotMaster && rt.master == rp {
			// The master stepped down: as for a refused write, go to the
			// master it names, or look for the next one now rather than
			// at the next poll (writes wait for it too).
			rt.notMaster(rp, rep.MasterID)
		}
	}
	rt.mu.Unlock()
	if !final {
		rt.retryRead(o, 0)
		return
	}
	if o.watch() {
		rp.watchPolls.Add(1)
	} else {
		rp.reads.Add(1)
	}
	rt.end(o, result{rep: rep, node: rp.id})
}

// notMaster takes in a not-master answer from rp that names hint as the
// master, and reports whether it switched to another replica to try at
// once. Called with mu held.
func (rt *router) notMaster(rp *replica, hint uint64) bool {
	if rt.master == rp {
		rt.master = nil
	}
	if h := rt.byID[hint]; h != nil && h != rp && h.alive {
		if rt.master != h {
			rt.log.Debug().Uint64("replica", h.id).Uint64("hint_from", rp.id).Msg("trying the master a replica named")
		}
		rt.master = h
		return true
	}
	rt.lookForMaster()
	return false
}

// hasMaster reports whether a live master is known.
func (rt *router) hasMaster() bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.master != nil && rt.master.alive
}

// lookForMaster has every replica polled now rather than at its next
// tick: the master the proxy knew is gone and no replica it can reach has
// named another, so writes wait until a poll finds one. Called with mu
// held.
func (rt *router) lookForMaster() {
	for _, rp := range rt.reps {
		rp.askPoll()
	}
}

// eject keeps reads away from rp until its next good poll. Called with mu
// held.
func (rt *router) eject(rp *replica) {
	if !rp.ejected {
		rp.ejected = true
		rp.ejections.Add(1)
	}
}

// attemptFailed handles an attempt that got no usable answer in time.
func (rt *router) attemptFailed(o *op, rp *replica, err error) {
	rt.log.Debug().Err(err).Uint64("replica", rp.id).Msg("attempt failed")
	var fx effects
	now := time.Now()
	rt.mu.Lock()
	rp.inflight--
	if o.write {
		if rt.master == rp {
			rt.master = nil
		}
		rt.writeLost(o, true, now, &fx)
		rt.mu.Unlock()
		rt.finishAll(&fx)
		return
	}
	o.target = nil
	if o.memberOp() {
		// A change that got no answer may be in force; sending it again
		// is safe (a change in force answers OK). The replica is not
		// ejected: that keeps reads away, and a change is no read.
		o.mayApplied = o.mayApplied || o.change()
		rt.mu.Unlock()
		rt.retryRead(o, retryBackoff(o.tries+1, rt.cfg.Poll))
		return
	}
	o.lastCode = wire.CodeTimeout
	rt.eject(rp)
	rt.mu.Unlock()
	rt.retryRead(o, 0)
}

// lostOp is an op whose attempt a replica connection gave back unanswered,
// and whether its request may have left the proxy.
type lostOp struct {
	o    *op
	sent bool
}

// connLost handles the ops given back by rp's connection (it died, or its
// replica stopped answering polls), in the order they were sent.
func (rt *router) connLost(rp *replica, ops []lostOp, err error) {
	slices.SortFunc(ops, func(a, b lostOp) int { return cmp.Compare(a.o.seq, b.o.seq) })
	var fx effects
	var reads []*op
	now := time.Now()
	rt.mu.Lock()
	rp.inflight -= len(ops)
	rp.alive = false
	lost := rt.master == rp
	if lost {
		rt.master = nil
		rt.lookForMaster() // and from then on every searchPoll (replica.go)
		if !rt.closed {
			rt.log.Warn().Uint64("replica", rp.id).Err(err).Int("in_flight", len(ops)).Msg("lost the master; holding writes")
		}
	}
	for _, l := range ops {
		if l.o.write {
			rt.writeLost(l.o, l.sent, now, &fx)
		} else {
			l.o.target = nil
			if l.sent && l.o.change() {
				l.o.mayApplied = true
			}
			reads = append(reads, l.o)
		}
	}
	rt.mu.Unlock()
	rt.finishAll(&fx)
	for _, o := range reads {
		rt.retryRead(o, 0)
	}
	if lost {
		rt.masterLost(rp)
	}
	rt.wake()
}

// retryRead puts read o back in the hold queue to be sent again after
// backoff, or ends it if its hold window is over.
func (rt *router) retryRead(o *op, backoff time.Duration) {
	rt.cnt.retries.Add(1)
	if o.watch() {
		// Not held either (see submit): the pump asks elsewhere.
		rt.end(o, made(wire.CodeUnavailable, "the replica asked for the watch did not answer"))
		return
	}
	now := time.Now()
	rt.mu.Lock()
	o.tries++
	if rt.closed {
		rt.mu.Unlock()
		rt.end(o, rt.shutdownResult(o))
		return
	}
	if !now.Before(o.deadline) {
		rt.mu.Unlock()
		rt.end(o, rt.readExpired(o))
		return
	}
	o.notBefore = now.Add(backoff)
	rt.queue.push(o) // admitted already: not refused for a full queue
	rt.hold(o)
	rt.mu.Unlock()
	rt.wake()
}

// readExpired is the result of a read (or membership op) whose hold
// window ended.
func (rt *router) readExpired(o *op) result {
	if o.memberOp() {
		return rt.memberExpired(o)
	}
	if o.lastCode == wire.CodeTimeout {
		return made(wire.CodeTimeout, "no replica reached the requested index in time")
	}
	rt.mu.Lock()
	var applied uint64
	alive := false
	for _, rp := range rt.reps {
		if rp.alive {
			alive = true
			applied = max(applied, rp.applied)
		}
	}
	rt.mu.Unlock()
	if alive && o.req.MinIndex > applied {
		return made(wire.CodeTimeout, fmt.Sprintf("no replica reached index %d within %v", o.req.MinIndex, rt.cfg.Hold))
	}
	return made(wire.CodeUnavailable, fmt.Sprintf("no replica could serve the read within %v", rt.cfg.Hold))
}

// end finishes o. Called without mu.
func (rt *router) end(o *op, res result) {
	rt.inflight.Add(-1)
	took := time.Since(o.arrived)
	switch {
	case o.write:
		rt.cnt.writeLat.record(took)
	case !o.change() && !o.watch(): // a change waits for consensus and catch-up, a watch poll for a change: no read's latency
		rt.cnt.readLat.record(took)
	}
	if !o.watch() {
		rt.prom.observe(o, res, took)
	}
	switch {
	case res.node != 0 && o.watch():
		rt.cnt.watchPolls.Add(1)
	case res.abort:
		rt.cnt.aborts.Add(1)
	case res.node != 0 && o.change():
		rt.cnt.memberChanges.Add(1)
	case res.node != 0 && o.write:
		rt.cnt.writes.Add(1)
	case res.node != 0:
		rt.cnt.reads.Add(1)
	case res.rep.Code == wire.CodeUnavailable:
		rt.cnt.unavailable.Add(1)
	case res.rep.Code == wire.CodeTimeout:
		rt.cnt.timeouts.Add(1)
	}
	o.finish(res)
}

// drainLoop sends held ops whenever something changed or a deadline or
// backoff ends.
func (rt *router) drainLoop() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-rt.ctx.Done():
			return
		case <-rt.kick:
		case <-timer.C:
		}
		timer.Stop()
		if next := rt.drain(); !next.IsZero() {
			timer.Reset(max(time.Until(next), time.Millisecond))
		}
	}
}

// drain sends every held read that can go, ends the expired ones, and
// pumps every session waiting to send. It returns when it should run again
// if nothing else happens.
func (rt *router) drain() time.Time {
	now := time.Now()
	var fx effects
	rt.mu.Lock()
	if rt.closed {
		rt.mu.Unlock()
		return time.Time{}
	}
	var unsent []*op
	send, expired, next := rt.queue.take(now, func(o *op) bool {
		t := rt.pick(o)
		if t == nil {
			return false
		}
		t.inflight++ // so the next picks see it
		o.target = t
		return true
	})
	for _, o := range expired {
		rt.unhold(o)
	}
	for _, o := range send {
		rt.unhold(o)
		if t := o.target; t.send(o, rt.attemptTimeout(o), smallLane) != nil {
			t.inflight--
			t.alive = false
			if rt.master == t {
				rt.master = nil
			}
			o.target = nil
			unsent = append(unsent, o)
		}
	}
	for _, o := range unsent {
		rt.queue.push(o)
		rt.hold(o)
	}
	for s := range rt.waiting {
		rt.pump(s, now, &fx)
	}
	soonest := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if len(unsent) > 0 {
		soonest(now.Add(time.Millisecond))
	}
	for s := range rt.waiting {
		if now.Before(s.notBefore) {
			soonest(s.notBefore)
		}
		if len(s.writes) > 0 {
			soonest(s.writes[0].deadline)
		}
	}
	rt.mu.Unlock()
	rt.finishAll(&fx)
	for _, o := range expired {
		rt.cnt.bufferExpired.Add(1)
		rt.end(o, rt.readExpired(o))
	}
	return next
}

// polled takes in rp's STATUS answer, and the configuration it carries.
func (rt *router) polled(rp *replica, st wire.Status) {
	rt.mu.Lock()
	if rp.removed {
		rt.mu.Unlock()
		return // a late answer from a replica that left the configuration
	}
	rp.status, rp.polled, rp.alive, rp.ejected = st, true, true, false
	rp.applied = max(rp.applied, st.Applied)
	m := rt.master
	switch {
	case st.Role == wire.NodeMaster:
		if m == nil || m == rp || m.status.Role != wire.NodeMaster || ballotLess(m.status, st) {
			rt.master = rp
			if rt.last != rp.id {
				if rt.last != 0 {
					rt.cnt.failovers.Add(1)
				}
				rt.last = rp.id
				rt.log.Info().Uint64("replica", rp.id).Uint64("round", st.Round).Msg("master")
			}
		}
	case m == rp:
		rt.master = nil // it stepped down, or is not ready yet
		rt.lookForMaster()
	}
	lost := rt.learnConfigLocked(st)
	rt.mu.Unlock()
	if lost != nil {
		rt.masterLost(lost)
	}
	rt.wake()
}

// pollFailed marks rp down after a failed poll.
func (rt *router) pollFailed(rp *replica) {
	rt.mu.Lock()
	if rp.removed {
		rt.mu.Unlock()
		return
	}
	rp.alive = false
	lost := rt.master == rp
	if lost {
		rt.master = nil
		rt.lookForMaster()
	}
	rt.mu.Unlock()
	if lost {
		rt.masterLost(rp)
	}
}

// masterLost gives back the linearizable reads in flight at the other
// replicas: they wait for a read index from the master that is gone, and
// may never hear (issue 21.3), so they are sent again once a master is
// known rather than left to their attempt's timeout. Reads change nothing,
// so asking twice is harmless; a late answer to the first ask is dropped.
// Called without mu.
func (rt *router) masterLost(old *replica) {
	rt.mu.Lock()
	reps := slices.Clone(rt.reps)
	rt.mu.Unlock()
	for _, rp := range reps {
		if rp == old {
			continue
		}
		if ops := rp.takeMatching(func(o *op) bool {
			return !o.write && !o.memberOp() && o.req.Consistency == wire.Linearizable
		}); len(ops) > 0 {
			rt.readsBack(rp, ops)
		}
	}
}

// readsBack takes in reads rp gave back unanswered (its replica is fine):
// they are held for their next attempt.
func (rt *router) readsBack(rp *replica, ops []*op) {
	rt.mu.Lock()
	rp.inflight -= len(ops)
	for _, o := range ops {
		o.target = nil
	}
	rt.mu.Unlock()
	for _, o := range ops {
		rt.retryRead(o, 0)
	}
}

// ballotLess orders two replicas' ballots.
func ballotLess(a, b wire.Status) bool {
	if a.Round != b.Round {
		return a.Round < b.Round
	}
	return a.BallotNode < b.BallotNode
}

// nodes is the STATUS reply: every replica as the router sees it.
func (rt *router) nodes() []line.NodeStatus {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	out := make([]line.NodeStatus, 0, len(rt.reps))
	for _, rp := range rt.reps {
		st := rp.status
		ns := line.NodeStatus{ID: rp.id, Addr: rp.addr, Commit: st.Commit, Applied: max(rp.applied, st.Applied)}
		if rp.polled {
			ns.Ballot = fmt.Sprintf("%d.%d", st.Round, st.BallotNode)
		}
		extra := map[string]string{}
		switch {
		case !rp.alive:
			ns.Role = "down"
		case rp == rt.master:
			ns.Role = "master"
		default:
			ns.Role = "follower"
		}
		if rp.alive && string(st.Role) != ns.Role {
			extra["state"] = string(st.Role) // candidate, learner, or a stale master claim
		}
		if rp.ejected {
			extra["ejected"] = "true"
		}
		if !rp.voter {
			extra["member"] = "learner"
		}
		if len(extra) > 0 {
			ns.Extra = extra
		}
		out = append(out, ns)
	}
	// Addresses given without an id that have not answered yet: the
	// proxy does not know which replica they are.
	for _, sd := range rt.seeds {
		out = append(out, line.NodeStatus{Addr: sd.addr, Role: "down", Extra: map[string]string{"seed": "unreached"}})
	}
	return out
}

// stats appends the router's STATS lines.
func (rt *router) stats(out []line.Stat) []line.Stat {
	now := time.Now()
	rt.mu.Lock()
	master := uint64(0)
	if rt.master != nil {
		master = rt.master.id
	}
	out = append(out,
		line.Stat{Name: "master", Value: strconv.FormatUint(master, 10)},
		line.Stat{Name: "buffered", Value: strconv.Itoa(rt.held)},
		line.Stat{Name: "buffered_bytes", Value: strconv.FormatInt(rt.heldBytes, 10)},
		line.Stat{Name: "members", Value: strconv.Itoa(len(rt.reps))},
		line.Stat{Name: "config_slot", Value: strconv.FormatUint(rt.confSlot, 10)},
		line.Stat{Name: "seeds_unreached", Value: strconv.Itoa(len(rt.seeds))},
	)
	type nodeFig struct {
		id        uint64
		inflight  int
		ewma      float64
		alive, ej bool
		applied   uint64
		rep       *replica
	}
	figs := make([]nodeFig, 0, len(rt.reps))
	for _, rp := range rt.reps {
		figs = append(figs, nodeFig{id: rp.id, inflight: rp.inflight, ewma: rp.lat.value(now, rt.peerLatency(rp)),
			alive: rp.alive, ej: rp.ejected, applied: rp.applied, rep: rp})
	}
	rt.mu.Unlock()
	out = append(out,
		line.Stat{Name: "inflight", Value: strconv.FormatInt(rt.inflight.Load(), 10)},
		line.Stat{Name: "client_ids", Value: strconv.FormatUint(rt.clients.Load(), 10)},
		line.Stat{Name: "session_rebases", Value: strconv.FormatUint(rt.cnt.rebases.Load(), 10)},
	)
	for _, f := range figs {
		p := "node." + strconv.FormatUint(f.id, 10) + "."
		out = append(out,
			line.Stat{Name: p + "up", Value: boolDigit(f.alive)},
			line.Stat{Name: p + "ejected", Value: boolDigit(f.ej)},
			line.Stat{Name: p + "applied", Value: strconv.FormatUint(f.applied, 10)},
			line.Stat{Name: p + "reads", Value: strconv.FormatUint(f.rep.reads.Load(), 10)},
			line.Stat{Name: p + "watch_polls", Value: strconv.FormatUint(f.rep.watchPolls.Load(), 10)},
			line.Stat{Name: p + "writes", Value: strconv.FormatUint(f.rep.writes.Load(), 10)},
			line.Stat{Name: p + "inflight", Value: strconv.Itoa(f.inflight)},
			line.Stat{Name: p + "ewma_ms", Value: fmtMs(f.ewma)},
			line.Stat{Name: p + "ejections", Value: strconv.FormatUint(f.rep.ejections.Load(), 10)},
		)
	}
	return out
}

func boolDigit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
