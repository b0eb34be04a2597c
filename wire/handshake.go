package wire

// This file owns the handshake: ProtocolVersion, Hello and the roles, Dial
// and Accept, which exchange hellos and refuse a peer of another version or
// cluster. Both run on the caller's goroutine (a dialer, or the server's
// per-connection goroutine) before the Conn is handed to anything else;
// cancelling Dial's ctx moves the deadline from context.AfterFunc's.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// ProtocolVersion is the version of this package's protocol. It changes
// whenever the frame format, the envelope, a Kind's meaning or a message's
// encoding does; peers of different versions refuse each other.
//
// Version 2 appended Request.Ack, Request.Retry and Reply.NotApplied and the
// session refusal codes (ordered, exactly-once sessions). Version 3 appended
// paxos.Message.ConfSlot and gave replicas' hellos Addr and ConfigSlot (a
// replica hears a member it has not heard of yet).
const ProtocolVersion uint32 = 3

// Roles a peer announces in its Hello.
const (
	RoleReplica = "replica"
	RoleProxy   = "proxy"
	RoleClient  = "client"
)

const (
	// MaxClusterIDLen bounds Hello.ClusterID, in bytes.
	MaxClusterIDLen = 256
	// MaxAddrLen bounds Hello.Addr, in bytes.
	MaxAddrLen = 256

	// handshakeMaxFrame bounds handshake frames, whatever MaxFrame is: a
	// peer that has not identified itself gets little memory.
	handshakeMaxFrame = 4 << 10

	// maxReasonLen bounds a refusal's reason so it fits its frame.
	maxReasonLen = 1 << 10
)

// Hello is what each side of a connection says first. It is encoded as a
// msgpack map, not an array, and its fields keep their names and types
// forever, so a peer of any version can read another's version and refuse
// it cleanly.
type Hello struct {
	Version   uint32 `msgpack:"version"`    // ProtocolVersion; 0 in Dial/Accept means this package's
	ClusterID string `msgpack:"cluster_id"` // must be equal on both sides
	NodeID    uint64 `msgpack:"node_id"`    // replicas: their id; others: 0 or any id they like
	Role      string `msgpack:"role"`       // RoleReplica, RoleProxy or RoleClient
	// Replicas only: where the sender listens (its address in the
	// configuration), and the slot that chose its configuration in force.
	// A replica whose own configuration is older admits a sender it does
	// not know, and dials it back at Addr.
	Addr       string `msgpack:"addr,omitempty"`
	ConfigSlot uint64 `msgpack:"config_slot,omitempty"`
}

// Validate reports whether h is well formed: a known role, a cluster id
// within MaxClusterIDLen and an address within MaxAddrLen. It does not compare h with anything.
func (h Hello) Validate() error {
	switch h.Role {
	case RoleReplica, RoleProxy, RoleClient:
	default:
		return fmt.Errorf("wire: hello: unknown role %q", truncate(h.Role, 32))
	}
	if len(h.ClusterID) > MaxClusterIDLen {
		return fmt.Errorf("wire: hello: cluster id of %d bytes, max %d", len(h.ClusterID), MaxClusterIDLen)
	}
	if len(h.Addr) > MaxAddrLen {
		return fmt.Errorf("wire: hello: address of %d bytes, max %d", len(h.Addr), MaxAddrLen)
	}
	return nil
}

func (h Hello) withVersion() Hello {
	if h.Version == 0 {
		h.Version = ProtocolVersion
	}
	return h
}

// refusal is the body of KindRefuse.
type refusal struct {
	Code   refuseCode `msgpack:"code"`
	Reason string     `msgpack:"reason"`
}

// Dial connects to addr over TCP and performs the client side of the
// handshake: it sends hello and expects KindWelcome with the peer's Hello,
// which it returns. A refusal gives a *RefusedError (matching ErrRefused).
// A welcome from another version or cluster gives ErrVersion or
// ErrClusterMismatch. Connecting and the handshake together end within
// opts.HandshakeTimeout or when ctx ends, whichever comes first; ctx does
// not bound the Conn after that.
func Dial(ctx context.Context, addr string, hello Hello, opts Options) (*Conn, Hello, error) {
	if err := opts.Validate(); err != nil {
		return nil, Hello{}, err
	}
	hello = hello.withVersion()
	if err := hello.Validate(); err != nil {
		return nil, Hello{}, err
	}
	opts = opts.withDefaults()
	deadline := time.Now().Add(opts.HandshakeTimeout)
	d := net.Dialer{Deadline: deadline}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, Hello{}, fmt.Errorf("wire: dial %s: %w", addr, err)
	}
	if opts.TLS != nil {
		tc, err := tlsHandshake(ctx, nc, opts.TLS, addr, false, deadline)
		if err == nil {
			// Every wire server is a replica.
			err = certGrants(tc, RoleReplica)
		}
		if err != nil {
			nc.Close()
			if ctx.Err() != nil {
				err = fmt.Errorf("%w (%w)", ctx.Err(), err)
			}
			return nil, Hello{}, fmt.Errorf("wire: dial %s: %w", addr, err)
		}
		nc = tc
	}
	c := NewConn(nc, opts)
	peer, err := c.clientHandshake(ctx, hello, deadline)
	if err != nil {
		c.Close()
		if opts.TLS != nil && isTLSAlert(err) {
			// In TLS 1.3 the server judges the client's certificate after
			// the client's handshake returned: its refusal is an alert on
			// the first read.
			err = fmt.Errorf("%w: the server refused this side's certificate: %w", ErrTLS, err)
		}
		if opts.TLS == nil && errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: the peer closed a plaintext handshake, as one that requires TLS does: %w", ErrTLS, err)
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return nil, Hello{}, fmt.Errorf("wire: handshake with %s: %w", addr, err)
	}
	c.peer = peer
	return c, peer, nil
}

func (c *Conn) clientHandshake(ctx context.Context, hello Hello, deadline time.Time) (Hello, error) {
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.nc.SetDeadline(deadline); err != nil {
		return Hello{}, err
	}
	// Cancelling ctx unblocks the handshake by moving the deadline.
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if err := c.Send(KindHello, 0, hello); err != nil {
		return Hello{}, err
	}
	if err := c.Flush(); err != nil {
		return Hello{}, err
	}
	env, err := c.recv(handshakeMaxFrame)
	if err != nil {
		return Hello{}, err
	}
	switch env.Kind {
	case KindWelcome:
	case KindRefuse:
		var r refusal
		if err := env.Decode(&r); err != nil {
			return Hello{}, err
		}
		return Hello{}, &RefusedError{Reason: r.Reason, code: r.Code}
	default:
		return Hello{}, fmt.Errorf("%w: expected welcome or refuse, got %s", ErrBadBody, env.Kind)
	}
	var peer Hello
	if err := env.Decode(&peer); err != nil {
		return Hello{}, err
	}
	if err := compare(hello, peer); err != nil {
		return Hello{}, err
	}
	if !stop() {
		return Hello{}, ctx.Err()
	}
	if err := c.nc.SetDeadline(time.Time{}); err != nil {
		return Hello{}, err
	}
	return peer, nil
}

// compare checks a peer's Hello against ours and returns an error matching
// ErrVersion or ErrClusterMismatch.
func compare(local, peer Hello) error {
	if peer.Version != local.Version {
		return fmt.Errorf("%w: peer speaks version %d, this side %d", ErrVersion, peer.Version, local.Version)
	}
	if peer.ClusterID != local.ClusterID {
		return fmt.Errorf("%w: peer is in cluster %q, this side in %q",
			ErrClusterMismatch, truncate(peer.ClusterID, MaxClusterIDLen), local.ClusterID)
	}
	return nil
}

// Accept performs the server side of the handshake on a freshly accepted
// nc. It reads the peer's Hello and refuses it, sending KindRefuse with the
// reason and closing, if its version or cluster id differ from local's
// (ErrVersion, ErrClusterMismatch), if it is malformed (ErrBadBody), or if
// check, when not nil, returns an error (which the returned error wraps).
// Otherwise it answers KindWelcome with local and returns the Conn and the
// peer's Hello. The handshake is bounded by opts.HandshakeTimeout. On error
// nc is closed.
func Accept(nc net.Conn, local Hello, check func(peer Hello) error, opts Options) (*Conn, Hello, error) {
	if err := opts.Validate(); err != nil {
		nc.Close()
		return nil, Hello{}, err
	}
	local = local.withVersion()
	if err := local.Validate(); err != nil {
		nc.Close()
		return nil, Hello{}, err
	}
	if opts.TLS != nil {
		tc, err := tlsHandshake(context.Background(), nc, opts.TLS, "", true, time.Now().Add(opts.withDefaults().HandshakeTimeout))
		if err != nil {
			nc.Close()
			return nil, Hello{}, fmt.Errorf("wire: handshake from %s: %w", nc.RemoteAddr(), err)
		}
		nc = tc
	}
	c := NewConn(nc, opts)
	peer, err := c.serverHandshake(local, check)
	if err != nil {
		c.Close()
		return nil, Hello{}, fmt.Errorf("wire: handshake from %s: %w", nc.RemoteAddr(), err)
	}
	c.peer = peer
	return c, peer, nil
}

func (c *Conn) serverHandshake(local Hello, check func(Hello) error) (Hello, error) {
	if err := c.nc.SetDeadline(time.Now().Add(c.opts.HandshakeTimeout)); err != nil {
		return Hello{}, err
	}
	env, err := c.recv(handshakeMaxFrame)
	if err != nil {
		return Hello{}, err
	}
	if env.Kind != KindHello {
		err := fmt.Errorf("%w: expected hello, got %s", ErrBadBody, env.Kind)
		return Hello{}, c.refuse(refuseBadHello, err.Error(), err)
	}
	var peer Hello
	if err := env.Decode(&peer); err != nil {
		return Hello{}, c.refuse(refuseBadHello, "hello does not decode", err)
	}
	if err := compare(local, peer); err != nil {
		code := refuseCluster
		if errors.Is(err, ErrVersion) {
			code = refuseVersion
		}
		return Hello{}, c.refuse(code, err.Error(), err)
	}
	if err := peer.Validate(); err != nil {
		return Hello{}, c.refuse(refuseBadHello, err.Error(), fmt.Errorf("%w: %w", ErrBadBody, err))
	}
	if err := certGrants(c.nc, peer.Role); err != nil {
		err = fmt.Errorf("node %d (%s) refused: %w", peer.NodeID, peer.Role, err)
		return Hello{}, c.refuse(refuseOther, err.Error(), err)
	}
	if check != nil {
		if err := check(peer); err != nil {
			err = fmt.Errorf("node %d (%s) refused: %w", peer.NodeID, peer.Role, err)
			return Hello{}, c.refuse(refuseOther, err.Error(), err)
		}
	}
	if err := c.Send(KindWelcome, 0, local); err != nil {
		return Hello{}, err
	}
	if err := c.Flush(); err != nil {
		return Hello{}, err
	}
	if err := c.nc.SetDeadline(time.Time{}); err != nil {
		return Hello{}, err
	}
	return peer, nil
}

// refuse tells the peer why it is refused, best effort, and returns err:
// the peer may already be gone, and the refusal is what matters here.
func (c *Conn) refuse(code refuseCode, reason string, err error) error {
	if c.Send(KindRefuse, 0, refusal{Code: code, Reason: truncate(reason, maxReasonLen)}) == nil {
		c.Flush()
	}
	return err
}

// truncate cuts s to at most n bytes, for echoing peer-supplied text.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
