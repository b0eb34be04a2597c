package proxy

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

// router sends client ops to replicas: writes to the master, reads by power
// of two choices over the followers, and everything that cannot go yet into
// the hold queue. It learns the cluster from STATUS polls, from not-master
// hints and from connections that die.
type router struct {
	cfg *Config
	log zerolog.Logger
	ids *idPool
	cnt *counters

	ctx    context.Context // ends when the router closes
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{} // wakes the drainer

	// sendMu is held from choosing a write's target until it is buffered on
	// the connection, by the drainer and by new writes alike, so writes
	// reach the master in the order they were admitted.
	sendMu sync.Mutex

	mu     sync.Mutex
	reps   []*replica // by id
	byID   map[uint64]*replica
	master *replica // nil: none known
	last   uint64   // the last master a poll confirmed, for counting failovers
	queue  holdQueue
	rnd    *rand.Rand
	seq    uint64
	closed bool
	scr    []*replica // scratch for pickRead

	inflight atomic.Int64 // admitted ops not yet finished
}

func newRouter(cfg *Config, cnt *counters) *router {
	ctx, cancel := context.WithCancel(context.Background())
	rt := &router{
		cfg: cfg, log: cfg.Logger, cnt: cnt,
		ids: newIDPool(rand.Uint64()),
		ctx: ctx, cancel: cancel,
		kick:  make(chan struct{}, 1),
		byID:  map[uint64]*replica{},
		queue: holdQueue{max: cfg.QueueSize},
		rnd:   rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
	for id, addr := range cfg.Nodes {
		rp := &replica{id: id, addr: addr, rt: rt}
		rt.reps = append(rt.reps, rp)
		rt.byID[id] = rp
	}
	slices.SortFunc(rt.reps, func(a, b *replica) int { return cmp.Compare(a.id, b.id) })
	return rt
}

// start starts the pollers and the drainer.
func (rt *router) start() {
	for _, rp := range rt.reps {
		rt.wg.Add(1)
		go func() {
			defer rt.wg.Done()
			rp.pollLoop(rt.ctx.Done())
		}()
	}
	rt.wg.Add(1)
	go func() {
		defer rt.wg.Done()
		rt.drainLoop()
	}()
}

// close fails everything still held or in flight and waits for the
// router's goroutines.
func (rt *router) close() {
	rt.mu.Lock()
	if rt.closed {
		rt.mu.Unlock()
		return
	}
	rt.closed = true
	held := rt.queue.drain()
	rt.mu.Unlock()
	rt.cancel() // pollers close their connections; what was in flight comes back through connLost
	for _, o := range held {
		rt.end(o, rt.shutdownResult(o))
	}
	rt.wg.Wait()
}

func (rt *router) shutdownResult(o *op) result {
	if o.write && o.sent {
		return result{abort: true}
	}
	return made(wire.CodeUnavailable, "proxy shutting down")
}

// made is a reply the proxy makes up itself.
func made(code wire.Code, msg string) result {
	return result{rep: wire.Reply{Code: code, Msg: msg}}
}

// submit admits a new op from a client connection and sends it, or holds it.
func (rt *router) submit(o *op) {
	if rt.inflight.Add(1) > int64(rt.cfg.MaxInflight) {
		rt.inflight.Add(-1)
		rt.cnt.busy.Add(1)
		o.finish(made(wire.CodeBusy, "too many requests in flight"))
		return
	}
	now := time.Now()
	o.arrived, o.deadline = now, now.Add(rt.cfg.Hold)
	if o.write {
		o.req.ClientID, o.req.Seq = rt.ids.get()
		rt.sendMu.Lock()
		defer rt.sendMu.Unlock()
	}
	rt.mu.Lock()
	if rt.closed {
		rt.mu.Unlock()
		rt.end(o, rt.shutdownResult(o))
		return
	}
	rt.seq++
	o.seq = rt.seq
	var t *replica
	if !o.write || rt.queue.writes == 0 { // a write never overtakes a held one
		t = rt.pick(o)
	}
	if t == nil {
		if rt.queue.full() {
			rt.mu.Unlock()
			rt.cnt.bufferOverflows.Add(1)
			rt.end(o, made(wire.CodeUnavailable, "request queue full"))
			return
		}
		rt.queue.push(o)
		rt.mu.Unlock()
		rt.wake()
		return
	}
	t.inflight++
	o.target = t
	rt.mu.Unlock()
	rt.sendAttempt(o)
}

func (rt *router) wake() {
	select {
	case rt.kick <- struct{}{}:
	default:
	}
}

// sendAttempt sends o to o.target, whose inflight count already includes it.
func (rt *router) sendAttempt(o *op) {
	t := o.target
	timeout := rt.cfg.ReadTimeout
	if o.write {
		// The master answers every write once it is chosen or lost; the
		// bound is only for a master that hangs while its polls succeed.
		timeout = rt.cfg.Hold
	}
	if err := t.send(o, timeout); err != nil {
		// The connection is gone: the replica is down until its poller
		// reconnects, so retries do not spin on it.
		rt.mu.Lock()
		t.inflight--
		t.alive = false
		if rt.master == t {
			rt.master = nil
		}
		rt.mu.Unlock()
		rt.log.Debug().Err(err).Uint64("replica", t.id).Msg("send failed")
		rt.retry(o, 0)
	}
}

// pick chooses where o goes now, nil if nowhere yet. Called with mu held.
func (rt *router) pick(o *op) *replica {
	if o.write {
		if m := rt.master; m != nil && m.alive {
			return m
		}
		return nil
	}
	return rt.pickRead(o)
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
		if rp != m && rt.eligible(rp, need) {
			cands = append(cands, rp)
		}
	}
	rt.scr = cands
	now := time.Now()
	if i := pickTwo(len(cands), func(i int) float64 {
		return cost(cands[i].lat.value(now), cands[i].inflight)
	}, rt.rnd); i >= 0 {
		return cands[i]
	}
	if m != nil && rt.eligible(m, need) {
		return m
	}
	return nil
}

// eligible reports whether rp may serve a read that needs applied index
// need. Called with mu held.
func (rt *router) eligible(rp *replica, need uint64) bool {
	return rp.alive && !rp.ejected && (need <= rp.applied || need-rp.applied <= rt.cfg.MaxLag)
}

// answered handles a replica's reply to o.
func (rt *router) answered(o *op, rp *replica, rep wire.Reply) {
	now := time.Now()
	final := true
	var backoff time.Duration
	rt.mu.Lock()
	rp.inflight--
	rp.applied = max(rp.applied, rep.Applied)
	if o.write {
		if rep.Code == wire.CodeOK {
			rp.applied = max(rp.applied, rep.Index) // the master applied it before answering
		}
		switch rep.Code {
		case wire.CodeNotMaster:
			final = false
			// A fresh hint is tried at once; hints that keep bouncing back
			// and forth back off like any other refusal.
			if !rt.notMaster(rp, rep.MasterID) || o.tries > 0 {
				backoff = retryBackoff(o.tries+1, rt.cfg.Poll)
			}
		case wire.CodeUnavailable, wire.CodeBusy:
			final = false
			o.lastCode = rep.Code
			backoff = retryBackoff(o.tries+1, rt.cfg.Poll)
		}
	} else {
		rp.lat.observe(now.Sub(o.sentAt), now)
		switch rep.Code {
		case wire.CodeNotMaster, wire.CodeTimeout, wire.CodeBusy, wire.CodeUnavailable:
			final = false
			o.lastCode = rep.Code
			rt.eject(rp)
			if rep.Code == wire.CodeNotMaster && rt.master == rp {
				rt.master = nil
			}
		}
	}
	rt.mu.Unlock()
	if !final {
		rt.retry(o, backoff)
		return
	}
	if o.write {
		rp.writes.Add(1)
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
	return false
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
	rt.mu.Lock()
	rp.inflight--
	if o.write {
		if rt.master == rp {
			rt.master = nil
		}
	} else {
		o.lastCode = wire.CodeTimeout
		rt.eject(rp)
	}
	rt.mu.Unlock()
	rt.log.Debug().Err(err).Uint64("replica", rp.id).Msg("attempt failed")
	rt.retry(o, 0)
}

// connLost handles the death of rp's connection, with the ops that were
// waiting on it.
func (rt *router) connLost(rp *replica, ops []*op, err error) {
	rt.mu.Lock()
	rp.inflight -= len(ops)
	rp.alive = false
	if rt.master == rp {
		rt.master = nil
		if !rt.closed {
			rt.log.Warn().Uint64("replica", rp.id).Err(err).Int("in_flight", len(ops)).Msg("lost the master's connection; holding writes")
		}
	}
	rt.mu.Unlock()
	slices.SortFunc(ops, func(a, b *op) int { return cmp.Compare(a.seq, b.seq) })
	for _, o := range ops {
		rt.retry(o, 0)
	}
}

// retry puts o back in the hold queue to be sent again after backoff, or
// ends it if its hold window is over.
func (rt *router) retry(o *op, backoff time.Duration) {
	rt.cnt.retries.Add(1)
	now := time.Now()
	rt.mu.Lock()
	o.tries++
	o.target = nil
	if rt.closed {
		rt.mu.Unlock()
		rt.end(o, rt.shutdownResult(o))
		return
	}
	if !now.Before(o.deadline) {
		rt.mu.Unlock()
		rt.end(o, rt.expired(o))
		return
	}
	o.notBefore = now.Add(backoff)
	rt.queue.push(o) // admitted already: not refused for a full queue
	rt.mu.Unlock()
	rt.wake()
}

// expired is the result of an op whose hold window ended.
func (rt *router) expired(o *op) result {
	switch {
	case o.write && o.sent:
		return result{abort: true}
	case o.write:
		return made(wire.CodeUnavailable, fmt.Sprintf("no master within %v", rt.cfg.Hold))
	case o.lastCode == wire.CodeTimeout:
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

// end finishes o.
func (rt *router) end(o *op, res result) {
	rt.inflight.Add(-1)
	if o.write {
		if res.abort {
			rt.ids.retire()
		} else {
			rt.ids.put(o.req.ClientID, o.req.Seq)
		}
	}
	lat := rt.cnt.readLat
	if o.write {
		lat = rt.cnt.writeLat
	}
	lat.record(time.Since(o.arrived))
	switch {
	case res.abort:
		rt.cnt.aborts.Add(1)
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

// drain sends every held op that can go now and ends the expired ones. It
// returns when it should run again if nothing else happens.
func (rt *router) drain() time.Time {
	rt.sendMu.Lock()
	defer rt.sendMu.Unlock()
	rt.mu.Lock()
	if rt.closed {
		rt.mu.Unlock()
		return time.Time{}
	}
	send, expired, next := rt.queue.take(time.Now(), func(o *op) bool {
		t := rt.pick(o)
		if t == nil {
			return false
		}
		t.inflight++
		o.target = t
		return true
	})
	rt.mu.Unlock()
	for _, o := range expired {
		rt.cnt.bufferExpired.Add(1)
		rt.end(o, rt.expired(o))
	}
	for _, o := range send {
		rt.sendAttempt(o)
	}
	return next
}

// polled takes in rp's STATUS answer.
func (rt *router) polled(rp *replica, st wire.Status) {
	rt.mu.Lock()
	rp.status, rp.polled, rp.alive, rp.ejected = st, true, true, false
	rp.applied = max(rp.applied, st.Applied)
	m := rt.master
	switch {
	case st.Role == "master":
		if m == nil || m == rp || m.status.Role != "master" || ballotLess(m.status, st) {
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
	}
	rt.mu.Unlock()
	rt.wake()
}

// pollFailed marks rp down after a failed poll.
func (rt *router) pollFailed(rp *replica) {
	rt.mu.Lock()
	rp.alive = false
	if rt.master == rp {
		rt.master = nil
	}
	rt.mu.Unlock()
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
		if rp.alive && st.Role != ns.Role {
			extra["state"] = st.Role // candidate, learner, or a stale master claim
		}
		if rp.ejected {
			extra["ejected"] = "true"
		}
		if len(extra) > 0 {
			ns.Extra = extra
		}
		out = append(out, ns)
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
		line.Stat{Name: "buffered", Value: strconv.Itoa(rt.queue.len())},
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
		figs = append(figs, nodeFig{id: rp.id, inflight: rp.inflight, ewma: rp.lat.value(now),
			alive: rp.alive, ej: rp.ejected, applied: rp.applied, rep: rp})
	}
	rt.mu.Unlock()
	inUse, idle, retired := rt.ids.counts()
	out = append(out,
		line.Stat{Name: "inflight", Value: strconv.FormatInt(rt.inflight.Load(), 10)},
		line.Stat{Name: "client_ids_in_use", Value: strconv.Itoa(inUse)},
		line.Stat{Name: "client_ids_idle", Value: strconv.Itoa(idle)},
		line.Stat{Name: "client_ids_retired", Value: strconv.FormatUint(retired, 10)},
	)
	for _, f := range figs {
		p := "node." + strconv.FormatUint(f.id, 10) + "."
		out = append(out,
			line.Stat{Name: p + "up", Value: boolDigit(f.alive)},
			line.Stat{Name: p + "ejected", Value: boolDigit(f.ej)},
			line.Stat{Name: p + "applied", Value: strconv.FormatUint(f.applied, 10)},
			line.Stat{Name: p + "reads", Value: strconv.FormatUint(f.rep.reads.Load(), 10)},
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
