package proxy

import (
	"time"

	"synod/wire"
)

// op is one client read or write on its way through the router. It is owned
// by one party at a time: the dispatcher, then the replica connection it was
// sent on (until answered, timed out or the connection died), then the hold
// queue, and so on. Ownership passes under a lock, which is what makes its
// plain fields safe.
type op struct {
	seq      uint64 // arrival order: the hold queue releases in this order
	req      wire.Request
	write    bool
	arrived  time.Time
	deadline time.Time // end of the hold window

	notBefore time.Time // retry backoff: not sent again before this
	tries     int       // attempts that failed
	sent      bool      // a write was handed to a connection at least once
	lastCode  wire.Code // last transient code a replica answered
	target    *replica  // where the current attempt goes
	sentAt    time.Time
	timer     *time.Timer // bounds the current attempt

	finish func(result) // called exactly once, by the router
}

// result is an op's final outcome.
type result struct {
	rep wire.Reply // the replica's answer, or one the proxy made up (UNAVAILABLE, BUSY, TIMEOUT)
	// abort: a write that may have reached a master, whose fate is still
	// unknown when its hold window ended. No reply is honest: not OK, and
	// not UNAVAILABLE either (which promises nothing was applied), so the
	// connection is closed, which clients read as "outcome unknown".
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
