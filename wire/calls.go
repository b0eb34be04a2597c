package wire

// This file owns Calls, the table that matches replies to requests on one
// connection by envelope id. Safe for concurrent use under Calls.mu: any
// goroutine starts, waits on and cancels calls, and the connection's
// reader goroutine delivers replies and fails them all when it dies.

import (
	"context"
	"fmt"
	"sync"
)

// Result is what a call started with Calls receives: the reply envelope,
// whose Body the caller owns, or the error that ended the call.
type Result struct {
	Env Envelope
	Err error
}

// Calls matches replies to requests on one connection by envelope ID. The
// sender allocates an ID with Start, sends its request with that ID and
// waits on the channel; the connection's reader goroutine hands every reply
// to Deliver; when the connection dies the reader calls Fail, which ends
// every pending call and every later Start.
//
// The zero value is ready to use. Its methods are safe for concurrent use.
type Calls struct {
	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan Result
	err     error
}

// Start allocates a request ID and registers the call. The channel
// receives exactly one Result, unless the call is cancelled first. It
// returns the error given to Fail if the connection already died.
func (cs *Calls) Start() (uint64, <-chan Result, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.err != nil {
		return 0, nil, cs.err
	}
	if cs.pending == nil {
		cs.pending = make(map[uint64]chan Result)
	}
	cs.next++
	if cs.next == 0 { // 0 means one-way; skip it if the counter ever wraps
		cs.next++
	}
	ch := make(chan Result, 1) // Deliver and Fail never block
	cs.pending[cs.next] = ch
	return cs.next, ch, nil
}

// Deliver hands env to the call waiting for env.ID, copying its Body so
// the reader may reuse its buffer. It reports false, and drops env, if no
// call waits for that ID: a reply after Cancel, or a bogus ID.
func (cs *Calls) Deliver(env Envelope) bool {
	cs.mu.Lock()
	ch, ok := cs.pending[env.ID]
	delete(cs.pending, env.ID)
	cs.mu.Unlock()
	if !ok {
		return false
	}
	ch <- Result{Env: env.Clone()}
	return true
}

// Cancel forgets the call with id, for a caller that stopped waiting.
func (cs *Calls) Cancel(id uint64) {
	cs.mu.Lock()
	delete(cs.pending, id)
	cs.mu.Unlock()
}

// Fail ends every pending call with err, and makes every later Start
// return it. A nil err means ErrClosed. Only the first Fail's error
// sticks.
func (cs *Calls) Fail(err error) {
	if err == nil {
		err = ErrClosed
	}
	cs.mu.Lock()
	if cs.err == nil {
		cs.err = err
	}
	pending := cs.pending
	cs.pending = nil
	cs.mu.Unlock()
	for _, ch := range pending {
		ch <- Result{Err: err}
	}
}

// Len returns the number of calls waiting for a reply.
func (cs *Calls) Len() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.pending)
}

// Call sends body as kind with a fresh ID on c, flushes, and waits for the
// reply, ctx, or the connection's end. Someone must be reading c and
// handing replies to Deliver. It flushes per call: senders that batch use
// Start and Send themselves and flush once per batch.
func (cs *Calls) Call(ctx context.Context, c *Conn, kind Kind, body any) (Envelope, error) {
	id, ch, err := cs.Start()
	if err != nil {
		return Envelope{}, err
	}
	if err := c.Send(kind, id, body); err != nil {
		cs.Cancel(id)
		return Envelope{}, err
	}
	if err := c.Flush(); err != nil {
		cs.Cancel(id)
		return Envelope{}, err
	}
	select {
	case r := <-ch:
		return r.Env, r.Err
	case <-ctx.Done():
		cs.Cancel(id)
		return Envelope{}, fmt.Errorf("wire: %s call %d: %w", kind, id, ctx.Err())
	}
}
