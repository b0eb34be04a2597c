package node

// This file owns the connections between replicas and the listener. One
// goroutine per peer dials it and writes the messages the engine and the
// persister queue for it (sendTo never blocks them: a full queue drops);
// one goroutine per accepted connection checks the handshake, then reads a
// peer's messages into the engine's inbox or serves a client (server.go).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"synod/paxos"
	"synod/wire"
)

// peerQueue is how many messages wait for one peer's connection. Paxos
// survives lost messages, so a full queue drops rather than blocks the loop.
const peerQueue = 4096

// peer sends this replica's messages to one other replica over a connection
// it dials (and redials with backoff) itself. Messages from that replica come
// in on the connection it dialled to us.
type peer struct {
	id   uint64
	addr string
	out  chan paxos.Message
	stop context.CancelFunc
	up   atomic.Bool // a connection to the peer is open (metrics)
}

// startPeers starts the connections to the members of the configuration
// the node starts with; the loop changes them as the configuration does
// (syncPeers).
func (n *Node) startPeers(ctx context.Context) {
	n.runCtx = ctx
	n.syncPeers()
}

// startPeer starts the connection to replica id at addr.
func (n *Node) startPeer(id uint64, addr string) *peer {
	ctx, cancel := context.WithCancel(n.runCtx)
	p := &peer{id: id, addr: addr, out: make(chan paxos.Message, peerQueue), stop: cancel}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.runPeer(ctx, p)
	}()
	return p
}

// sendTo queues m for its destination, dropping it if the queue is full.
// The loop and the persister call it; the peer set is replaced, never
// changed, so they read it without a lock.
func (n *Node) sendTo(msgs []paxos.Message) {
	peers := *n.peers.Load()
	for _, m := range msgs {
		p := peers[uint64(m.To)]
		if p == nil {
			continue
		}
		select {
		case p.out <- m:
		default:
			n.stats.dropped.Add(1)
		}
	}
}

// hello is what this replica says first on a connection it dials: with
// the address members dial it at and its configuration's slot, so a peer
// whose configuration does not know it yet can still hear and answer it.
func (n *Node) hello() wire.Hello {
	addr := n.addrOf(n.cfg.ID)
	if addr == "" {
		addr = n.cfg.Listen
	}
	return wire.Hello{ClusterID: n.cfg.ClusterID, NodeID: n.cfg.ID, Role: wire.RoleReplica,
		Addr: addr, ConfigSlot: n.members().slot}
}

func (n *Node) wireOptions() wire.Options {
	return wire.Options{MaxFrame: n.cfg.MaxFrame, WriteTimeout: 5 * time.Second, TLS: n.cfg.clientTLS()}
}

// runPeer keeps one outbound connection to p, backing off 5 ms doubling to
// 1 s between failed dials, and writes p's queue to it, flushing once per
// batch of queued messages.
func (n *Node) runPeer(ctx context.Context, p *peer) {
	backoff := 5 * time.Millisecond
	for ctx.Err() == nil {
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		c, _, err := wire.Dial(dctx, p.addr, n.hello(), n.wireOptions())
		cancel()
		if err != nil {
			n.noteRefusal(p.id, err)
			n.logDialTLS(p.id, p.addr, err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		n.log.Debug().Uint64("peer", p.id).Msg("peer connected")
		p.up.Store(true)
		err = n.writePeer(ctx, c, p)
		p.up.Store(false)
		c.Close()
		if ctx.Err() == nil {
			n.log.Debug().Err(err).Uint64("peer", p.id).Msg("peer connection lost")
		}
	}
}

func (n *Node) writePeer(ctx context.Context, c *wire.Conn, p *peer) error {
	// A reader notices the far side closing while we have nothing to send.
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		for {
			if _, err := c.Recv(); err != nil {
				return
			}
		}
	}()
	defer func() { c.Close(); <-closed }()
	var buf []byte // the last message encoded by hand (peermsg.go), reused
	for {
		var m paxos.Message
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-closed:
			return errors.New("closed by peer")
		case m = <-p.out:
		}
		for {
			var err error
			if b, ok := appendPeerMessage(buf[:0], &m); ok {
				err = c.SendRaw(wire.KindPaxos, 0, b)
				if buf = b; cap(buf) > 1<<20 {
					buf = nil // do not keep one huge batch's memory
				}
			} else {
				err = c.Send(wire.KindPaxos, 0, &m)
			}
			if err != nil {
				return err
			}
			select {
			case m = <-p.out:
				continue
			default:
			}
			break
		}
		if err := c.Flush(); err != nil {
			return err
		}
	}
}

// serve accepts connections until ctx ends.
func (n *Node) serve(ctx context.Context, ln net.Listener) {
	var conns sync.WaitGroup
	defer conns.Wait()
	backoff := 5 * time.Millisecond
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			n.log.Warn().Err(err).Msg("accept")
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		conns.Add(1)
		go func() {
			defer conns.Done()
			n.handleConn(ctx, nc)
		}()
	}
}

// checkHello admits a replica of the configuration this one talks to, or
// one that knows a newer configuration (a member added since: this
// replica's configuration may be its --peers list after a wipe), whose
// address it then keeps to answer it. Anyone else is refused, naming this
// replica's configuration slot, so a removed replica learns it was removed
// (noteRefusal).
func (n *Node) checkHello(h wire.Hello) error {
	if h.Role != wire.RoleReplica {
		return nil
	}
	v := n.members()
	switch {
	case h.NodeID == n.cfg.ID:
	case n.isPeer(h.NodeID):
		return nil
	case h.ConfigSlot > v.slot && h.Addr != "":
		n.guestAddrs.Store(h.NodeID, h.Addr)
		return nil
	}
	settled, _ := n.debt.settled()
	return fmt.Errorf("replica %d is not a member of the configuration in force on replica %d (%v) %s%d %s%d %s%d",
		h.NodeID, n.cfg.ID, v.conf, durableMark, n.durable.Load(), settledMark, settled, configSlotMark, v.slot)
}

func (n *Node) handleConn(ctx context.Context, nc net.Conn) {
	opts := n.wireOptions()
	opts.TLS = n.cfg.serverTLS()
	c, hello, err := wire.Accept(nc, n.hello(), n.checkHello, opts)
	if err != nil {
		n.logRefused(err, nc.RemoteAddr())
		return
	}
	// Closing the connection when the node stops ends the reader below.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()
	if hello.Role == wire.RoleReplica {
		n.inbound.Store(c, hello.NodeID)
		defer n.inbound.Delete(c)
		n.readPeer(ctx, c, paxos.NodeID(hello.NodeID))
		return
	}
	n.serveClient(ctx, c)
}

// closeStrangers closes the connections of replicas this one no longer
// talks to (the configuration changed): one removed redials, and the
// handshake's refusal tells it which configuration this replica holds.
func (n *Node) closeStrangers() {
	peers := n.members().peers
	n.inbound.Range(func(k, v any) bool {
		if !slices.Contains(peers, paxos.NodeID(v.(uint64))) {
			k.(*wire.Conn).Close()
		}
		return true
	})
}

// readPeer feeds a peer's messages to the event loop. When the peer's
// connection closes (its process died, most often), the loop hears of it:
// if that peer was the master, the election need not wait a whole timeout.
func (n *Node) readPeer(ctx context.Context, c *wire.Conn, from paxos.NodeID) {
	defer n.mail.post(func(m *notices) {
		if !slices.Contains(m.lost, from) {
			m.lost = append(m.lost, from)
		}
	})
	for {
		env, err := c.Recv()
		if err != nil {
			return
		}
		if env.Kind != wire.KindPaxos {
			continue
		}
		var m paxos.Message
		aliased, err := decodePeerMessage(env.Body, &m)
		if err != nil {
			n.log.Warn().Err(err).Uint64("peer", uint64(from)).Msg("bad paxos message; closing")
			return
		}
		if aliased {
			c.KeepBody() // m's values are slices of the frame (peermsg.go)
		}
		if m.From != from || m.To != paxos.NodeID(n.cfg.ID) {
			continue
		}
		select {
		case n.inbox <- m:
		case <-ctx.Done():
			return
		}
	}
}
