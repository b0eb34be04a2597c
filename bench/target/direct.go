package target

// This file owns Direct, the Target that talks to the master over the wire
// protocol: finding the master, and each client's connection with its own
// session. A directConn is used by one client goroutine only; Direct's
// master hint is shared by them all under Direct.mu.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"

	"synod/bench"
	"synod/wire"
	"synod/wire/line"
)

// ErrNoMaster is returned by Direct when no replica names a master.
var ErrNoMaster = errors.New("target: no master")

// Direct reaches synod's master itself over the wire protocol, one
// connection per client, the way a proxy does. Every client has its own
// exactly-once identity: a replica applies an identity's writes in seq
// order, so clients sharing one would hold each other's writes back.
type Direct struct {
	addrs   []string
	cluster string
	level   wire.Consistency

	mu     sync.Mutex
	master string // the master's address as last learned; "" if unknown
}

// NewDirect returns a Target for the replicas at addrs of cluster whose reads
// use consistency.
func NewDirect(addrs []string, cluster, consistency string) (*Direct, error) {
	if len(addrs) == 0 {
		return nil, errors.New("target: no replica addresses")
	}
	level, err := line.ParseLevel(consistency)
	if err != nil {
		return nil, errors.Join(ErrConsistency, err)
	}
	return &Direct{addrs: addrs, cluster: cluster, level: wire.Consistency(level)}, nil
}

func (t *Direct) hello() wire.Hello {
	return wire.Hello{ClusterID: t.cluster, Role: wire.RoleClient}
}

func (t *Direct) hint() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.master
}

// learn records where the master is, or forgets it ("") when that replica
// failed or said it is not the master any more.
func (t *Direct) learn(was, now string) {
	t.mu.Lock()
	if t.master == was {
		t.master = now
	}
	t.mu.Unlock()
}

// FindMaster asks each replica in turn for its status and returns the
// address of the first that is a ready master, or that a replica names as
// master.
func (t *Direct) FindMaster(ctx context.Context) (string, error) {
	var errs []error
	for _, addr := range t.addrs {
		cl, err := wire.DialClient(ctx, addr, t.hello(), wire.Options{})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		st, err := cl.Status(ctx)
		cl.Close()
		switch {
		case err != nil:
			errs = append(errs, err)
		case st.Role == wire.NodeMaster:
			return addr, nil
		case st.MasterAddr != "" && st.MasterID != st.ID:
			return st.MasterAddr, nil
		}
	}
	return "", fmt.Errorf("%w: %w", ErrNoMaster, errors.Join(errs...))
}

// Connect opens client i's connection to the master.
func (t *Direct) Connect(ctx context.Context, i int) (bench.Conn, error) {
	c := &directConn{t: t}
	if err := c.dial(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

type directConn struct {
	t    *Direct
	cl   *wire.Client // nil after a failure
	addr string
	id   uint64 // exactly-once identity, new for every connection
	seq  uint64
}

func (c *directConn) dial(ctx context.Context) error {
	addr := c.t.hint()
	if addr == "" {
		var err error
		if addr, err = c.t.FindMaster(ctx); err != nil {
			return connError(ctx, err)
		}
		c.t.learn("", addr)
	}
	cl, err := wire.DialClient(ctx, addr, c.t.hello(), wire.Options{})
	if err != nil {
		c.t.learn(addr, "")
		return connError(ctx, err)
	}
	// A fresh identity: a write of the old one may still be in flight
	// somewhere, and one identity may have only one.
	c.cl, c.addr, c.id, c.seq = cl, addr, rand.Uint64()|1, 0
	return nil
}

// settle keeps the session's seqs gapless after a write that did not
// succeed: a replica applies a session's writes only in seq order, so a seq
// that was never applied must be sent again, or every later write of the
// identity waits forever (OUT_OF_ORDER). A write refused before it was
// applied gives its seq back; one whose outcome is unknown may have taken
// it, so the connection moves to a fresh identity.
func (c *directConn) settle(rep wire.Reply) {
	switch {
	case rep.Code == wire.CodeNotFound || rep.Code == wire.CodeConflict:
		// Applied: a DEL of nothing, a CAS that lost. The seq is used.
	case rep.NotApplied:
		c.seq--
	default:
		c.id, c.seq = rand.Uint64()|1, 0
	}
}

func (c *directConn) drop() {
	if c.cl != nil {
		c.cl.Close()
		c.cl = nil
	}
}

func (c *directConn) do(ctx context.Context, req *wire.Request) error {
	if c.cl == nil {
		if err := c.dial(ctx); err != nil {
			pause(ctx)
			return err
		}
	}
	if req.Op.IsWrite() {
		c.seq++
		req.ClientID, req.Seq = c.id, c.seq
	}
	rep, err := c.cl.Do(ctx, req)
	if err != nil {
		c.drop()
		c.t.learn(c.addr, "")
		return connError(ctx, err)
	}
	if req.Op.IsWrite() && rep.Code != wire.CodeOK {
		c.settle(rep)
	}
	switch rep.Code {
	case wire.CodeOK:
		return nil
	case wire.CodeNotFound:
		if req.Op == wire.OpGet {
			return nil
		}
	case wire.CodeNotMaster:
		c.drop()
		c.t.learn(c.addr, rep.MasterAddr)
		return &bench.OpError{Kind: "not_master", Err: errors.New(rep.Msg)}
	}
	return &bench.OpError{Kind: strings.ToLower(rep.Code.String()), Err: fmt.Errorf("%s: %s", rep.Code, rep.Msg)}
}

func (c *directConn) Put(ctx context.Context, key string, value []byte) error {
	return c.do(ctx, &wire.Request{Op: wire.OpPut, Key: key, Value: value})
}

func (c *directConn) Get(ctx context.Context, key string) error {
	return c.do(ctx, &wire.Request{Op: wire.OpGet, Key: key, Consistency: c.t.level})
}

func (c *directConn) Close() error {
	c.drop()
	return nil
}
