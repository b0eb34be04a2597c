package wire

// This file owns Client, a connection to a replica with many calls in
// flight. Its methods may be called from any goroutine (sends under wmu);
// the one goroutine it starts, readLoop, reads every reply and hands it to
// the waiting call, and fails them all when the connection breaks.

import (
	"context"
	"fmt"
	"sync"
)

// Client is one connection to a replica with many calls in flight, matched
// by request id. Its methods are safe for concurrent use. A Client whose
// connection broke stays broken (every call returns the error); dial a new
// one.
type Client struct {
	conn  *Conn
	calls Calls
	wmu   sync.Mutex
	done  chan struct{}
	peer  Hello
}

// DialClient connects to addr and says hello as role.
func DialClient(ctx context.Context, addr string, hello Hello, opts Options) (*Client, error) {
	c, peer, err := Dial(ctx, addr, hello, opts)
	if err != nil {
		return nil, err
	}
	cl := &Client{conn: c, done: make(chan struct{}), peer: peer}
	go cl.readLoop()
	return cl, nil
}

// Peer returns the hello the replica answered with.
func (cl *Client) Peer() Hello { return cl.peer }

func (cl *Client) readLoop() {
	defer close(cl.done)
	for {
		env, err := cl.conn.Recv()
		if err != nil {
			cl.calls.Fail(err)
			return
		}
		cl.calls.Deliver(env)
	}
}

// Call sends body as kind and decodes the reply into out (which may be nil).
func (cl *Client) Call(ctx context.Context, kind Kind, body, out any) error {
	id, ch, err := cl.calls.Start()
	if err != nil {
		return err
	}
	cl.wmu.Lock()
	err = cl.conn.Send(kind, id, body)
	if err == nil {
		err = cl.conn.Flush()
	}
	cl.wmu.Unlock()
	if err != nil {
		cl.calls.Cancel(id)
		cl.conn.Close()
		return err
	}
	select {
	case res := <-ch:
		if res.Err != nil {
			return res.Err
		}
		if out == nil {
			return nil
		}
		if err := Unmarshal(res.Env.Body, out); err != nil {
			return fmt.Errorf("wire: reply to %v: %w", kind, err)
		}
		return nil
	case <-ctx.Done():
		cl.calls.Cancel(id)
		return ctx.Err()
	}
}

// Do sends a client request and returns the replica's reply.
func (cl *Client) Do(ctx context.Context, req *Request) (Reply, error) {
	var rep Reply
	err := cl.Call(ctx, KindRequest, req, &rep)
	return rep, err
}

// Status asks the replica for its status.
func (cl *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := cl.Call(ctx, KindStatus, &StatusRequest{}, &st)
	return st, err
}

// Done is closed once the connection has died.
func (cl *Client) Done() <-chan struct{} { return cl.done }

// Close closes the connection and waits for its reader to end.
func (cl *Client) Close() error {
	err := cl.conn.Close()
	<-cl.done
	return err
}
