// Package target connects the load generator to synod: through a proxy with
// the line protocol (Line), as every client does, or straight to the master
// over the wire protocol (Direct), which leaves the proxy out of the
// measurement. Both reconnect by themselves after a failure, so a master kill
// costs the clients errors or a pause, never the run.
package target

// This file owns Line, the Target through a proxy, and what both targets
// share: the pause after a failed dial and the errors they report. A
// lineConn is used by one client goroutine only; a pipelined one (Start)
// also has a receiver goroutine of its own that reads the replies in order
// and hands each to its request's callback.

import (
	"context"
	"crypto/tls"
	"errors"
	"os"
	"strings"
	"time"

	"synod/bench"
	"synod/wire/line"
)

// retryPause is how long a client waits after failing to connect before its
// next operation may try again, so a cluster without a master is not flooded
// with dials that only inflate the error count.
const retryPause = 50 * time.Millisecond

// ErrConsistency is returned for a read level synod does not have.
var ErrConsistency = errors.New("target: unknown consistency")

// pause waits retryPause or until ctx ends.
func pause(ctx context.Context) {
	t := time.NewTimer(retryPause)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// connError names a failure that broke or never made a connection.
func connError(ctx context.Context, err error) error {
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		return &bench.OpError{Kind: "timeout", Err: err}
	}
	return &bench.OpError{Kind: "conn", Err: err}
}

// Line reaches synod through a proxy, one line-protocol connection per
// client.
type Line struct {
	addr  string
	level line.Level
	// TLS, if set, makes every connection speak TLS; User and Password,
	// if User is set, authenticate it (AUTH) first.
	TLS            *tls.Config
	User, Password string
	// PutFileAbove is the size above which a file (bench.FileConn) goes
	// up with PUTFILE rather than PUT: 0 means DefaultPutFileAbove,
	// negative every file.
	PutFileAbove int64
}

// NewLine returns a Target for the proxy at addr whose reads use
// consistency ("linearizable", "session" or "stale").
func NewLine(addr, consistency string) (*Line, error) {
	level, err := line.ParseLevel(consistency)
	if err != nil {
		return nil, errors.Join(ErrConsistency, err)
	}
	return &Line{addr: addr, level: level}, nil
}

// Connect dials the proxy for client i.
func (t *Line) Connect(ctx context.Context, i int) (bench.Conn, error) {
	c := &lineConn{t: t}
	if err := c.dial(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

type lineConn struct {
	t *Line
	c *line.Client // nil after a failure broke it
	// sent queues the requests Start sent, oldest first, for the receiver
	// goroutine (receive) of c; nil until the first Start on c.
	sent chan pending
}

// pending is a request sent on a pipelined connection, awaiting its reply.
type pending struct {
	deadline time.Time // the reply must come by then; zero: no bound
	get      bool      // a GET, for which NOT_FOUND is an answer, not an error
	done     func(error)
}

func (c *lineConn) dial(ctx context.Context) error {
	cl, err := line.Dial(ctx, c.t.addr, line.Options{TLS: c.t.TLS})
	if err != nil {
		return connError(ctx, err)
	}
	if c.t.User != "" {
		if _, err := cl.Do(ctx, line.Request{Cmd: line.CmdAuth, Name: c.t.User, Password: c.t.Password}); err != nil {
			cl.Close()
			return connError(ctx, err)
		}
	}
	if c.t.level != line.LevelLinearizable {
		if err := cl.SetConsistency(ctx, c.t.level); err != nil {
			cl.Close()
			return connError(ctx, err)
		}
	}
	c.c = cl
	return nil
}

// ready makes sure there is a connection, redialling a broken one.
func (c *lineConn) ready(ctx context.Context) error {
	if c.c != nil {
		return nil
	}
	if err := c.dial(ctx); err != nil {
		pause(ctx)
		return err
	}
	return nil
}

// fail classifies err; any error but the server's own answer leaves the
// stream out of step, so the connection is dropped.
func (c *lineConn) fail(ctx context.Context, err error) error {
	var se *line.ServerError
	if errors.As(err, &se) {
		return &bench.OpError{Kind: strings.ToLower(se.Code), Err: err}
	}
	c.drop()
	return connError(ctx, err)
}

// drop closes the connection; a receiver fails every request still
// awaiting its reply and ends.
func (c *lineConn) drop() error {
	if c.c == nil {
		return nil
	}
	if c.sent != nil {
		close(c.sent)
		c.sent = nil
	}
	err := c.c.Close()
	c.c = nil
	return err
}

// Start sends op without waiting for its reply, for a pipelined client: the
// receiver goroutine, started with the first Start on a connection, reads
// the replies in request order and calls each request's done. A failed
// connection fails what it had sent and is dialled afresh by the next
// Start.
func (c *lineConn) Start(ctx context.Context, op bench.Op, done func(error)) {
	if err := c.ready(ctx); err != nil {
		done(err)
		return
	}
	if c.sent == nil {
		c.sent = make(chan pending, bench.MaxPipeline)
		go receive(c.c, c.sent)
	}
	req := line.Request{Cmd: line.CmdGet, Key: op.Key}
	if op.Write {
		req = line.Request{Cmd: line.CmdPut, Key: op.Key, Value: op.Value}
	}
	if err := c.c.Send(req); err != nil {
		if errors.Is(err, line.ErrBadRequest) {
			done(&bench.OpError{Kind: "bad_request", Err: err})
			return
		}
		c.drop()
		done(connError(ctx, err))
		return
	}
	deadline, _ := ctx.Deadline()
	c.sent <- pending{deadline: deadline, get: !op.Write, done: done}
	if err := c.c.Flush(); err != nil {
		c.drop() // the receiver fails the request
	}
}

// receive reads cl's replies in order, one per request queued on sent, and
// hands each outcome to its callback, until sent is closed and drained. It
// runs on a goroutine of its own per pipelined connection.
func receive(cl *line.Client, sent <-chan pending) {
	for p := range sent {
		if !p.deadline.IsZero() {
			_ = cl.SetDeadline(p.deadline) // a failure shows in Recv
		}
		_, err := cl.Recv()
		var se *line.ServerError
		switch {
		case err == nil || p.get && errors.Is(err, line.ErrNotFound):
			p.done(nil)
		case errors.As(err, &se):
			p.done(&bench.OpError{Kind: strings.ToLower(se.Code), Err: err})
		case errors.Is(err, os.ErrDeadlineExceeded):
			p.done(&bench.OpError{Kind: "timeout", Err: err})
		default:
			p.done(&bench.OpError{Kind: "conn", Err: err})
		}
	}
}

func (c *lineConn) Put(ctx context.Context, key string, value []byte) error {
	if err := c.ready(ctx); err != nil {
		return err
	}
	if _, err := c.c.Put(ctx, key, value); err != nil {
		return c.fail(ctx, err)
	}
	return nil
}

func (c *lineConn) Get(ctx context.Context, key string) error {
	if err := c.ready(ctx); err != nil {
		return err
	}
	if _, _, err := c.c.Get(ctx, key, 0); err != nil && !errors.Is(err, line.ErrNotFound) {
		return c.fail(ctx, err)
	}
	return nil
}

func (c *lineConn) Close() error { return c.drop() }
