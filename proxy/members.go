package proxy

// members.go: the router's side of membership (paxos/RECONFIG.md). It
// routes the membership ops (MEMBER LIST, and the changes, which go to the
// master like writes but belong to no session); it follows the
// configuration the replicas' STATUS carries, so replicas added get a
// poller and replicas removed lose theirs and their connections; and it
// runs the seed probes, one goroutine per address given without an id
// (seedLoop), until that replica has answered. Everything here but a
// probe's network I/O runs under the router's mutex, in whichever
// goroutine holds it: a poller, a probe, a replica's reader, an attempt's
// timer.

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"synod/wire"
)

// seed is an address given without an id: a replica the proxy asks for
// its STATUS until it answers, then knows by its id.
type seed struct {
	addr string
	done chan struct{} // closed, under the router's mutex, once the address is resolved
}

// pickMember chooses where a membership op goes: the master if one is
// known and up; a MEMBER LIST, when there is none, to any live replica (a
// voter first), since every replica answers it with the configuration in
// force. A change waits for a master, like a write. Called with mu held.
func (rt *router) pickMember(o *op) *replica {
	if m := rt.master; m != nil && m.alive {
		return m
	}
	if o.change() {
		return nil
	}
	var learner *replica
	for _, rp := range rt.reps {
		if !rp.alive || rp.ejected {
			continue
		}
		if rp.voter {
			return rp
		}
		if learner == nil {
			learner = rp
		}
	}
	return learner
}

// memberAnswered takes in rp's answer to membership op o and says whether
// o goes again, after what backoff. A change is sent again on not-master
// (to the master named, at once the first time), on BUSY (another change
// is under way) and on TIMEOUT, within its hold window: a change already
// in force answers OK, so sending it twice is harmless. UNAVAILABLE (the
// new majority is not live; the message names who is not) and every
// other answer are the client's. Called with mu held.
func (rt *router) memberAnswered(o *op, rp *replica, rep wire.Reply) (retry bool, backoff time.Duration) {
	next := retryBackoff(o.tries+1, rt.cfg.Poll)
	switch rep.Code {
	case wire.CodeNotMaster:
		o.lastCode, o.lastMsg = rep.Code, rep.Msg
		if rt.notMaster(rp, rep.MasterID) && o.tries == 0 {
			return true, 0
		}
		return true, next
	case wire.CodeBusy, wire.CodeTimeout:
		o.lastCode, o.lastMsg = rep.Code, rep.Msg
		if rep.Code == wire.CodeTimeout && o.change() {
			o.mayApplied = true // proposed, perhaps chosen: not known
		}
		return true, next
	case wire.CodeUnavailable:
		if !o.change() {
			// A MEMBER LIST is answered from local state: try another.
			o.lastCode, o.lastMsg = rep.Code, rep.Msg
			return true, next
		}
	}
	return false, 0
}

// memberExpired is the answer to a membership op whose hold window ended.
// A change that may have reached a master is not said to be unapplied: it
// may be in force, and the client is told how to find out. Called without
// mu.
func (rt *router) memberExpired(o *op) result {
	switch {
	case o.change() && o.mayApplied:
		return made(wire.CodeTimeout, fmt.Sprintf("no answer from the master within %v: the change may be in force (MEMBER LIST shows the configuration; sending the change again is safe)", rt.cfg.Hold))
	case o.lastCode == wire.CodeBusy || o.lastCode == wire.CodeTimeout:
		msg := o.lastMsg
		if msg == "" {
			msg = "the master was busy"
		}
		return made(o.lastCode, fmt.Sprintf("%s (for %v)", msg, rt.cfg.Hold))
	case o.change():
		return made(wire.CodeUnavailable, fmt.Sprintf("no master within %v", rt.cfg.Hold))
	}
	return made(wire.CodeUnavailable, fmt.Sprintf("no replica answered within %v", rt.cfg.Hold))
}

// learnConfigLocked adopts the configuration st carries if it is newer
// than the one in use (a higher configuration slot; the first one seen is
// always newer), and returns the master it dropped, if the proxy took a
// removed replica for the master (the caller runs masterLost for it once
// mu is released). A STATUS without members (a replica of an older
// version) changes nothing. Called with mu held.
func (rt *router) learnConfigLocked(st wire.Status) (lostMaster *replica) {
	if len(st.Members) == 0 || rt.closed || (rt.haveConf && st.ConfigSlot <= rt.confSlot) {
		return nil
	}
	want := make(map[uint64]wire.Member, len(st.Members))
	for _, m := range st.Members {
		if m.ID != 0 && m.Addr != "" {
			want[m.ID] = m
		}
	}
	if len(want) == 0 {
		return nil
	}
	if rt.haveConf {
		rt.log.Info().Uint64("slot", st.ConfigSlot).Uint64("from_replica", st.ID).Msg("configuration changed")
	}
	rt.haveConf, rt.confSlot, rt.conf = true, st.ConfigSlot, want
	for _, rp := range slices.Clone(rt.reps) {
		m, ok := want[rp.id]
		if !ok {
			lostMaster = cmp.Or(rt.retireLocked(rp, "no longer a member"), lostMaster)
			continue
		}
		// A member keeps its address for the cluster's life (an id is
		// never added at a second address, nor added again once
		// removed), so another address here names the same replica
		// (a host name for an IP, a relay): the one the proxy reaches
		// it at stays.
		rp.voter = m.Voter
	}
	ids := make([]uint64, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if rt.byID[id] == nil {
			rt.addReplicaLocked(id, want[id].Addr, want[id].Voter)
		}
	}
	rt.resolveSeedsLocked()
	return lostMaster
}

// addReplicaLocked starts using replica id at addr: it is polled from now
// on and, once it answers, routed to. Called with mu held.
func (rt *router) addReplicaLocked(id uint64, addr string, voter bool) *replica {
	rp := newReplica(rt, id, addr, voter)
	i, _ := slices.BinarySearchFunc(rt.reps, id, func(r *replica, id uint64) int { return cmp.Compare(r.id, id) })
	rt.reps = slices.Insert(rt.reps, i, rp)
	rt.byID[id] = rp
	if rt.started {
		rt.startPollerLocked(rp)
	}
	rt.cnt.membersAdded.Add(1)
	rt.log.Info().Uint64("replica", id).Str("addr", addr).Bool("voter", voter).Msg("member added")
	return rp
}

// retireLocked stops using rp: nothing is routed there from now on, its
// poller stops and its connections close, so what was in flight there
// comes back (connLost) and is tried elsewhere. It returns rp if the
// proxy took it for the master, nil otherwise. Called with mu held.
func (rt *router) retireLocked(rp *replica, why string) *replica {
	rp.removed, rp.alive = true, false
	rt.reps = slices.DeleteFunc(rt.reps, func(x *replica) bool { return x == rp })
	if rt.byID[rp.id] == rp {
		delete(rt.byID, rp.id)
	}
	var lost *replica
	if rt.master == rp {
		rt.master, lost = nil, rp
	}
	close(rp.stop)
	rp.closeData() // rt.mu, then cmu: the documented order
	rt.cnt.membersRemoved.Add(1)
	rt.log.Info().Uint64("replica", rp.id).Str("addr", rp.addr).Str("why", why).Msg("member removed")
	return lost
}

// startPollerLocked starts rp's poller. Called with mu held, so that it
// is counted before close waits for the router's goroutines.
func (rt *router) startPollerLocked(rp *replica) {
	rt.wg.Add(1)
	go func() {
		defer rt.wg.Done()
		rp.pollLoop()
	}()
}

// resolveSeedsLocked drops the seeds whose address is a known member's.
// Called with mu held.
func (rt *router) resolveSeedsLocked() {
	rt.seeds = slices.DeleteFunc(rt.seeds, func(sd *seed) bool {
		known := slices.ContainsFunc(rt.reps, func(rp *replica) bool { return rp.addr == sd.addr })
		if known {
			close(sd.done)
		}
		return known
	})
}

// seedLoop asks the replica at a seed address for its STATUS, every
// cfg.Poll, until it answers (or another replica's configuration names the
// address), then hands the answer to the router. It runs on a goroutine of
// its own.
func (rt *router) seedLoop(sd *seed) {
	tick := time.NewTicker(rt.cfg.Poll)
	defer tick.Stop()
	var lastErr string
	for {
		st, err := rt.probe(sd.addr)
		if err == nil {
			if rt.seeded(sd, st) {
				return
			}
			err = fmt.Errorf("proxy: seed %s answered without a replica id", sd.addr)
		}
		if msg := err.Error(); msg != lastErr {
			rt.log.Warn().Err(err).Str("seed", sd.addr).Msg("seed unreachable")
			lastErr = msg
		}
		select {
		case <-rt.ctx.Done():
			return
		case <-sd.done:
			return
		case <-tick.C:
		}
	}
}

// probe asks the replica at addr for its STATUS on a connection of its
// own, within the probe timeout.
func (rt *router) probe(addr string) (wire.Status, error) {
	cfg := rt.cfg
	ctx, cancel := context.WithTimeout(rt.ctx, cfg.ProbeTimeout)
	defer cancel()
	opts := wire.Options{WriteTimeout: cfg.ProbeTimeout, ReadTimeout: cfg.ProbeTimeout, HandshakeTimeout: cfg.ProbeTimeout, TLS: cfg.replicaTLS()}
	c, _, err := wire.Dial(ctx, addr, wire.Hello{ClusterID: cfg.ClusterID, Role: wire.RoleProxy}, opts)
	if err != nil {
		return wire.Status{}, fmt.Errorf("proxy: dial seed %s: %w", addr, err)
	}
	defer c.Close()
	st, err := askStatus(c)
	if err != nil {
		return st, fmt.Errorf("proxy: status of seed %s: %w", addr, err)
	}
	return st, nil
}

// seeded takes in a seed's STATUS: the replica, by its id, at the seed's
// address, and the configuration it carries. It reports whether the seed
// is done with.
func (rt *router) seeded(sd *seed, st wire.Status) bool {
	if st.ID == 0 {
		return false
	}
	rt.mu.Lock()
	select {
	case <-sd.done:
		rt.mu.Unlock()
		return true // resolved meanwhile
	default:
	}
	if rt.closed {
		rt.mu.Unlock()
		return true
	}
	close(sd.done)
	rt.seeds = slices.DeleteFunc(rt.seeds, func(x *seed) bool { return x == sd })
	rt.log.Info().Str("seed", sd.addr).Uint64("replica", st.ID).Int("members", len(st.Members)).Msg("seed answered")
	// The replica is known at the address that reached it, unless the
	// configuration in use says it is no member; the configuration it
	// reports may then remove it, or add the others.
	if m, member := rt.conf[st.ID]; rt.byID[st.ID] == nil && (!rt.haveConf || member) {
		rt.addReplicaLocked(st.ID, sd.addr, !rt.haveConf || m.Voter)
	}
	lost := rt.learnConfigLocked(st)
	rt.mu.Unlock()
	if lost != nil {
		rt.masterLost(lost)
	}
	rt.wake()
	return true
}
