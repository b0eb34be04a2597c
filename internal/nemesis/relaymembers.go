package nemesis

// This file owns the Relay's member listeners: one loopback listener per
// replica, the address the cluster's configuration names it at, which
// tells its connections apart by the hello each one opens with and relays
// each over the link of its sender. Safe for concurrent use under
// Relay.mu; each member listener has an accept goroutine, which reads a
// connection's hello on a goroutine of its own before handing it to serve.

import (
	"fmt"
	"net"
	"time"

	"synod/wire"
)

// A configuration names each member at one address that every peer and
// proxy dials (paxos/RECONFIG.md): the first master's --peers list at slot
// 1, the address of MEMBER ADD for a replica added later. A listener per
// directed link cannot be named there, so the relay gives each replica one
// member listener and finds the link from the hello: a replica's
// connections (and its joins and snapshot fetches, which say its id too)
// are on Link{its id, to}; a proxy's, which say no id, on
// Link{AnyProxy, to}.

// AnyProxy is the From of the link of a proxy's connection that came
// through a member listener: the relay cannot tell the proxies apart
// there. (A proxy keeps the address it was started with for a replica it
// knew then, a link of its own; it reaches a replica added later at the
// configuration's address.)
const AnyProxy = ProxyLinkBase + 99

// helloTimeout bounds the wait for a connection's hello.
const helloTimeout = 10 * time.Second

type member struct {
	id     uint64
	target string
	ln     net.Listener
}

// AddMember starts a member listener for replica id, whose real address is
// target, and returns its address: the one to name the replica at in the
// configuration (--peers, MEMBER ADD).
func (r *Relay) AddMember(id uint64, target string) (string, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(relayHost(), "0"))
	if err != nil {
		return "", fmt.Errorf("nemesis: relay for member %d: %w", id, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		ln.Close()
		return "", ErrRelayClosed
	}
	if r.members[id] != nil {
		ln.Close()
		return "", fmt.Errorf("nemesis: relay for member %d added twice", id)
	}
	m := &member{id: id, target: target, ln: ln}
	r.members[id] = m
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.acceptMember(m)
	}()
	return ln.Addr().String(), nil
}

// linkLocked returns link l, creating it if it is reached through a member
// listener (nil if the relay has no such link). Called with r.mu held.
func (r *Relay) linkLocked(l Link) *link {
	if lk := r.links[l]; lk != nil {
		return lk
	}
	m := r.members[l.To]
	if m == nil || r.closed {
		return nil
	}
	lk := &link{target: m.target, pipes: map[*pipe]struct{}{}}
	r.links[l] = lk
	return lk
}

func (r *Relay) acceptMember(m *member) {
	for {
		nc, err := m.ln.Accept()
		if err != nil {
			return // closed
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			first, from, err := readHello(nc)
			if err != nil {
				nc.Close()
				return
			}
			r.mu.Lock()
			lk := r.linkLocked(Link{from, m.id})
			r.mu.Unlock()
			if lk == nil {
				nc.Close()
				return
			}
			r.serve(lk, nc, first)
		}()
	}
}

// readHello reads the first frame of nc, a hello, and returns its bytes
// and the link end it names: the replica's id, or AnyProxy.
func readHello(nc net.Conn) ([]byte, uint64, error) {
	nc.SetReadDeadline(time.Now().Add(helloTimeout))
	defer nc.SetReadDeadline(time.Time{})
	body, err := wire.ReadFrame(nc, 4<<10, nil)
	if err != nil {
		return nil, 0, err
	}
	env, err := wire.DecodeEnvelope(body)
	if err != nil {
		return nil, 0, err
	}
	var h wire.Hello
	if env.Kind != wire.KindHello {
		return nil, 0, fmt.Errorf("nemesis: first frame is a %s, not a hello", env.Kind)
	}
	if err := env.Decode(&h); err != nil {
		return nil, 0, err
	}
	from := h.NodeID
	if h.Role == wire.RoleProxy || from == 0 {
		from = AnyProxy
	}
	return wire.AppendFrame(nil, body), from, nil
}
