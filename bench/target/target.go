// Package target connects the load generator to synod: through a proxy with
// the line protocol (Line), as every client does, or straight to the master
// over the wire protocol (Direct), which leaves the proxy out of the
// measurement. Both reconnect by themselves after a failure, so a master kill
// costs the clients errors or a pause, never the run.
package target

// This file owns Line, the Target through a proxy, and what both targets
// share: the pause after a failed dial and the errors they report. A
// lineConn is used by one client goroutine only.

import (
	"context"
	"crypto/tls"
	"errors"
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
	c.c.Close()
	c.c = nil
	return connError(ctx, err)
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

func (c *lineConn) Close() error {
	if c.c == nil {
		return nil
	}
	err := c.c.Close()
	c.c = nil
	return err
}
