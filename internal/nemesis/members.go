package nemesis

// This file owns the membership faults (replace-member, grow-shrink): the
// changes sent through a proxy with MEMBER REMOVE, ADD and PROMOTE, the
// removed replica's exit (and, restarted on its data directory, its
// refusal to run), the new replica joining on an empty directory behind a
// member listener of the relay, and the bookkeeping that makes a removed
// replica gone rather than dead. It runs on the nemesis goroutine
// (scene.go).

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"synod/wire"
	"synod/wire/line"
)

// The membership faults. Each runs as a scenario of its own while the
// clients run; the nemesis counts every change it made (Result.Details).
const (
	// ReplaceMember removes a replica (a follower, the master one time
	// in four: it hands over first) with MEMBER REMOVE through a proxy,
	// waits for it to exit by itself and, half the time, restarts it on
	// its data directory with its old flags, where it must refuse to run;
	// then it adds a new replica id at a new address (MEMBER ADD), starts
	// it with --join on an empty directory and waits until it is a voter:
	// promoted by the master once it caught up or, one time in three
	// (and after 30 s if the master has not), by MEMBER PROMOTE. The
	// cluster is back to as many voters as before.
	ReplaceMember FaultKind = "replace-member"
	// GrowShrink adds a new replica the same way, one voter more, lets
	// the clients write for a while, then removes a replica again: the
	// new one, or one time in three the master or a follower.
	GrowShrink FaultKind = "grow-shrink"
)

// Membership lists the membership faults.
var Membership = []FaultKind{ReplaceMember, GrowShrink}

// memberTimeout bounds each step of a change: a change answered, a removed
// replica's exit, a learner's promotion.
const memberTimeout = 30 * time.Second

// replaceMember removes a replica, then adds a new one in its place.
func (n *nemesis) replaceMember(ctx context.Context) {
	m, _ := n.master()
	victim := n.target(m, 4)
	if victim == 0 {
		return
	}
	a := n.begin(&active{kind: ReplaceMember, procs: []uint64{victim}, what: fmt.Sprintf("%s %d", ReplaceMember, victim)})
	if a == nil {
		return
	}
	defer n.end(a)
	if !n.removeMember(ctx, victim) {
		return
	}
	if !sleep(ctx, n.between(200*time.Millisecond, time.Second)) {
		return
	}
	n.addMember(ctx)
}

// growShrink adds a replica, waits, and removes one.
func (n *nemesis) growShrink(ctx context.Context) {
	a := n.begin(&active{kind: GrowShrink, what: fmt.Sprintf("%s (%d members)", GrowShrink, len(n.c.Nodes))})
	if a == nil {
		return
	}
	defer n.end(a)
	id := n.addMember(ctx)
	if id == 0 || !sleep(ctx, n.between(n.timing.HoldMin, 2*n.timing.HoldMax)) {
		return
	}
	m, _ := n.master()
	victim := id
	if n.rng.Intn(3) == 0 {
		victim = n.target(m, 2)
	}
	if victim == 0 {
		return
	}
	// Admitted like a kill: the replicas left must hold a connected
	// majority.
	b := n.begin(&active{kind: GrowShrink, step: true, procs: []uint64{victim}, what: fmt.Sprintf("%s: remove %d", GrowShrink, victim)})
	if b == nil {
		return
	}
	defer n.end(b)
	n.removeMember(ctx, victim)
}

// change sends one membership change through a proxy, again while the
// cluster answers with an error (another change under way, a majority not
// live, no master yet, a broken connection) for up to memberTimeout, and
// reports whether it was done. A change that never is fails the run.
func (n *nemesis) change(ctx context.Context, what string, do func(context.Context, *line.Client) (uint64, error)) bool {
	deadline := time.Now().Add(memberTimeout)
	var last error
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil {
			return false
		}
		if time.Now().After(deadline) {
			n.memberFail(fmt.Sprintf("%s: not done within %v (%d attempts): %v", what, memberTimeout, attempt, last))
			return false
		}
		proxy := n.proxyAddrs[n.rng.Intn(len(n.proxyAddrs))]
		octx, cancel := context.WithTimeout(ctx, 10*time.Second)
		cl, err := line.Dial(octx, proxy, line.Options{})
		if err == nil {
			var slot uint64
			slot, err = do(octx, cl)
			cl.Close()
			if err == nil {
				cancel()
				n.logf("nemesis: %s: configuration of slot %d in force", what, slot)
				return true
			}
		}
		cancel()
		if last == nil || err.Error() != last.Error() {
			n.logf("nemesis: %s: %v; again", what, err)
		}
		last = err
		sleep(ctx, 200*time.Millisecond)
	}
}

// removeMember removes replica id, waits for it to exit by itself and
// retires it; half the time it starts it again on its data directory,
// where it must refuse to run. It reports whether the removal was done.
func (n *nemesis) removeMember(ctx context.Context, id uint64) bool {
	m, ok := n.master()
	master := ok && m == id
	if !n.change(ctx, fmt.Sprintf("MEMBER REMOVE %d", id), func(ctx context.Context, cl *line.Client) (uint64, error) {
		return cl.MemberRemove(ctx, id)
	}) {
		return false
	}
	n.detail("member-removed")
	if master {
		n.detail("member-removed(master)")
	}
	p := n.c.Nodes[id]
	if err, ok := p.Wait(memberTimeout); !ok {
		n.memberFail(fmt.Sprintf("replica %d still runs %v after its removal", id, memberTimeout))
		p.Kill()
		p.Wait(5 * time.Second)
	} else {
		n.logf("nemesis: replica %d (the master: %v) exited after its removal (%v)", id, master, err)
	}
	n.retire(id)
	if n.rng.Intn(2) == 0 {
		// Its old flags, its data directory: it must see that it was
		// removed and exit, without disturbing the members.
		off := logSize(p.Log)
		p.Start()
		if err, ok := p.Wait(memberTimeout); !ok {
			n.memberFail(fmt.Sprintf("replica %d, removed, restarted on its data directory and still runs after %v", id, memberTimeout))
			p.Kill()
			p.Wait(5 * time.Second)
		} else {
			n.logf("nemesis: replica %d, removed, restarted on its data directory and exited (%v): %s", id, err, lastLine(logFrom(p.Log, off)))
			n.detail("member-restart-refused")
		}
	}
	return true
}

// retire forgets replica id: it is gone, not dead, so nothing waits for it
// or restarts it again, and no fault picks it.
func (n *nemesis) retire(id uint64) {
	n.gone[id] = n.c.Nodes[id]
	delete(n.c.Nodes, id)
	delete(n.joining, id)
	delete(n.learning, id)
	delete(n.mustLearn, id)
	n.rec.Note(fmt.Sprintf("replica %d removed from the cluster", id))
}

// addMember adds a new replica id at a new address behind a member
// listener of the relay, starts it on an empty directory with --join
// (through a running member), and waits until it is a voter. It returns
// the new id, or 0 if it could not be added.
func (n *nemesis) addMember(ctx context.Context) uint64 {
	id := n.nextID
	n.nextID++
	real := n.c.NewAddr(id)
	addr, err := n.relay.AddMember(id, real)
	if err != nil {
		n.logf("nemesis: member %d: %v", id, err)
		return 0
	}
	if !n.change(ctx, fmt.Sprintf("MEMBER ADD %d %s", id, addr), func(ctx context.Context, cl *line.Client) (uint64, error) {
		return cl.MemberAdd(ctx, id, addr)
	}) {
		return 0
	}
	n.detail("member-added")
	n.joining[id] = true
	m := n.joinVia(ctx, id)
	if m == 0 {
		return 0
	}
	p := n.c.JoinProc(id, m)
	n.baseArgs[id] = append([]string(nil), p.Args...)
	n.start(id, 0, -1)
	n.rec.Note(fmt.Sprintf("replica %d joins at %s (relay %s) through %d", id, real, addr, m))
	if n.rng.Intn(4) == 0 {
		// Killed while it joins: asking for the configuration, creating
		// its directory, or just after. It starts again on what it wrote.
		sleep(ctx, n.between(0, 300*time.Millisecond))
		n.sigkill(id)
		n.logf("nemesis: replica %d killed while joining: %s", id, lastLine(logFrom(p.Log, n.started[id])))
		n.detail("member-killed-joining")
		n.start(id, 0, -1)
	}
	// Half the time a single fault overlaps the new replica's catch-up
	// and its promotion: it may take the new replica itself (kill it,
	// wipe its directory, cut it off) or a minority of the voters. It
	// starts once the new replica serves: a SIGTERM before the process
	// handles it kills it outright, and a file lost before its directory
	// exists is lost state of nothing.
	var f *active
	var fEnd time.Time
	if n.rng.Intn(2) == 0 && n.waitServing(ctx, id, memberTimeout) {
		pool := n.overlapping()
		if f = n.begin(n.build(pool[n.rng.Intn(len(pool))])...); f != nil {
			fEnd = time.Now().Add(f.hold)
			n.detail("member-joined-under-fault")
		}
	}
	endFault := func() {
		if f != nil {
			sleep(ctx, time.Until(fEnd))
			n.end(f)
			f = nil
		}
	}
	defer endFault()
	promote := func() bool {
		return n.change(ctx, fmt.Sprintf("MEMBER PROMOTE %d", id), func(ctx context.Context, cl *line.Client) (uint64, error) {
			return cl.MemberPromote(ctx, id)
		})
	}
	if n.rng.Intn(3) == 0 {
		n.logf("nemesis: replica %d: promoting it by hand", id)
		if sleep(ctx, n.between(0, time.Second)) && promote() {
			delete(n.joining, id)
			n.detail("member-promoted(by hand)")
		}
		return id
	}
	endFault()
	if n.waitVoter(ctx, id, memberTimeout) {
		delete(n.joining, id)
		n.detail("member-promoted(auto)")
		return id
	}
	if ctx.Err() != nil {
		return id
	}
	n.memberFail(fmt.Sprintf("replica %d, added, was not promoted within %v of its start; promoting it by hand", id, memberTimeout))
	if promote() {
		delete(n.joining, id)
	}
	return id
}

// joinVia returns a running member for a new replica to join through,
// any of them: one that has not applied the MEMBER ADD yet answers with
// the configuration before it, and the new replica must then ask the
// master it names rather than exit (a bug the nemesis met, seed
// 2201612273451909050).
func (n *nemesis) joinVia(ctx context.Context, id uint64) uint64 {
	for deadline := time.Now().Add(memberTimeout); time.Now().Before(deadline); {
		var ids []uint64
		for i := range n.statuses() {
			ids = append(ids, i)
		}
		if len(ids) > 0 {
			slices.Sort(ids)
			return ids[n.rng.Intn(len(ids))]
		}
		if !sleep(ctx, 50*time.Millisecond) {
			return 0
		}
	}
	n.memberFail(fmt.Sprintf("no member answers to let replica %d join, %v after MEMBER ADD was in force", id, memberTimeout))
	return 0
}

// waitServing waits up to d for replica id's current run to say that it
// serves.
func (n *nemesis) waitServing(ctx context.Context, id uint64, d time.Duration) bool {
	p := n.c.Nodes[id]
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		if strings.Contains(logFrom(p.Log, n.started[id]), `"replica serving"`) {
			return true
		}
		if !sleep(ctx, 50*time.Millisecond) {
			return false
		}
	}
	n.logf("nemesis: replica %d does not serve %v after its start", id, d)
	return false
}

// waitVoter waits up to d for the configuration in force to make id a
// voter.
func (n *nemesis) waitVoter(ctx context.Context, id uint64, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		var slot uint64
		voter := false
		for _, st := range n.statuses() {
			if st.ConfigSlot < slot {
				continue
			}
			slot, voter = st.ConfigSlot, memberVoter(st.Members, id)
		}
		if voter {
			return true
		}
		if !sleep(ctx, 100*time.Millisecond) {
			return false
		}
	}
	return false
}

func memberVoter(ms []wire.Member, id uint64) bool {
	for _, m := range ms {
		if m.ID == id {
			return m.Voter
		}
	}
	return false
}

// memberFail records a membership change that did not go as synod
// promises: it fails the run.
func (n *nemesis) memberFail(msg string) {
	n.logf("nemesis: membership: %s", msg)
	n.mu.Lock()
	n.memberErrs = append(n.memberErrs, msg)
	n.mu.Unlock()
}

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	for len(s) > 0 && s[len(s)-1] == '\n' {
		s = s[:len(s)-1]
	}
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			return s[i+1:]
		}
	}
	return s
}
