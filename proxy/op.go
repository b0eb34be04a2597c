package proxy

// op.go: one client request on its way through the router. Ops are owned
// by the router: every field below is read and written under the router's
// mutex, by whichever goroutine holds it (a connection's reader submitting,
// a replica's reader answering, a timer, the drainer).

import (
	"time"

	"synod/wire"
)

// op is one client read or write on its way through the router. It is owned
// by one party at a time: the router while it is held or being routed, the
// replica connection it was sent on until that attempt comes back (answered,
// timed out or the connection lost). Ownership passes under the router's
// mutex, which is what makes its plain fields safe.
type op struct {
	seq      uint64 // arrival order: the hold queue releases reads in this order
	req      wire.Request
	write    bool
	size     int64 // key and value bytes, for the hold queue's byte bound
	arrived  time.Time
	deadline time.Time // end of the hold window

	notBefore time.Time // reads: retry backoff, not sent again before this
	tries     int       // attempts that failed
	lastCode  wire.Code // last transient code a replica answered
	lastMsg   string    // and its message (membership changes answer it at the end)
	target    *replica  // where the current attempt goes
	sentAt    time.Time
	timer     *time.Timer // bounds the current attempt
	held      bool        // counted in the router's held requests
	heldAt    time.Time   // when it was first held with no master known; zero if never

	// Writes: the session the write belongs to (its connection's), its
	// place in it, and what its attempts so far tell of its fate.
	sess       *session
	wseq       uint64 // the write's seq in sess (renumbered when sess moves to a fresh id)
	out        bool   // an attempt is on its way
	mayApplied bool   // an attempt may have been proposed (writes: resend as a retry; if lost, outcome unknown; changes: may be in force)
	unknown    bool   // the last attempt found the session unknown

	// avoid names replicas a watch poll must not go to: they answered
	// COMPACTED for its index, and another may still have it.
	avoid []uint64

	finish func(result) // called exactly once, by the router
}

// watch reports whether o is a watch poll: a read that may wait for a
// change for as long as it asked, so its time is no read latency.
func (o *op) watch() bool { return o.req.Op == wire.OpWatch }

// memberOp reports whether o reads (MEMBER LIST) or changes the
// membership. Such an op belongs to no session: a change is safe to send
// again, since one already in force answers OK.
func (o *op) memberOp() bool { return o.req.Op == wire.OpMembers || o.req.Op.IsMemberChange() }

// change reports whether o changes the membership.
func (o *op) change() bool { return o.req.Op.IsMemberChange() }

// result is an op's final outcome.
type result struct {
	rep wire.Reply // the replica's answer, or one the proxy made up (UNAVAILABLE, BUSY, TIMEOUT)
	// abort: a write that may have reached a master, whose fate is still
	// unknown when its hold window ended (or whose session the replicas
	// lost). No reply is honest: not OK, and not UNAVAILABLE either (which
	// promises nothing was applied), so the connection is closed, which
	// clients read as "outcome unknown".
	abort bool
	node  uint64 // the replica that answered, 0 if none
}

// retryBackoff is how long an op waits before its next attempt after a
// replica turned it away (not master, busy): 5 ms doubling, at most ceil.
func retryBackoff(tries int, ceil time.Duration) time.Duration {
	d := 5 * time.Millisecond
	for i := 1; i < tries && d < ceil; i++ {
		d *= 2
	}
	return min(d, ceil)
}
