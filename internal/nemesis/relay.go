package nemesis

// This file owns the Relay: one loopback listener per directed link, the
// fault and delay set on each, and the connections it forwards. Safe for
// concurrent use under Relay.mu (the nemesis sets faults while traffic
// flows); each link has an accept goroutine, and each relayed connection
// one goroutine per direction.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Link is one directed link: the connections From dials to replica To. A
// synod replica sends its messages for To only over the connection it
// dialled itself, so cutting Link{From, To} silences From toward To while To
// still reaches From over Link{To, From}. A proxy's connection to a replica
// carries requests and replies both ways; its links are numbered from
// ProxyLinkBase (ProxyLink), and DropForward or DropBackward cut them one
// way.
type Link struct{ From, To uint64 }

// ProxyLinkBase numbers the proxies' ends of links: proxy i (from 0) dials
// the replicas as ProxyLinkBase+i, above any replica id.
const ProxyLinkBase = 100

// ProxyLink is the link proxy i (from 0) dials to replica to.
func ProxyLink(i int, to uint64) Link { return Link{ProxyLinkBase + uint64(i), to} }

// String returns "from->to".
func (l Link) String() string { return fmt.Sprintf("%d->%d", l.From, l.To) }

// Fault is what a Relay does to the traffic of one link.
type Fault int32

const (
	// Pass forwards every byte both ways.
	Pass Fault = iota
	// Drop is a black hole, like a firewall dropping packets: the relay
	// keeps reading and discards what it reads, so senders see no error,
	// and new connections are accepted but never forwarded. Connections
	// that lost bytes are closed when the link passes again, since their
	// streams cannot be resumed.
	Drop
	// Refuse is a firewall that rejects: open connections are closed and
	// new ones are closed as soon as they arrive.
	Refuse
	// DropForward discards what the dialler sends and passes what the
	// target sends back: a one-way cut of a connection that carries both
	// ways (requests lost, replies to earlier ones still arrive). New
	// connections are forwarded, their first bytes lost. A connection
	// that lost bytes is closed when the link passes again.
	DropForward
	// DropBackward passes what the dialler sends and discards what comes
	// back: requests arrive and are carried out, their replies are lost.
	DropBackward
)

// String returns the fault's name.
func (f Fault) String() string {
	switch f {
	case Pass:
		return "pass"
	case Drop:
		return "drop"
	case Refuse:
		return "refuse"
	case DropForward:
		return "drop-forward"
	case DropBackward:
		return "drop-backward"
	}
	return fmt.Sprintf("fault(%d)", int32(f))
}

// ErrRelayClosed is returned by Relay.Add after Close.
var ErrRelayClosed = errors.New("nemesis: relay closed")

// relayDialTimeout bounds the dial to a link's target, so a paused replica
// does not hold a relay goroutine for long.
const relayDialTimeout = time.Second

// Relay is a TCP fault relay for the links of a cluster: each directed
// link gets a loopback listener of its own that forwards to the real
// address, and a Fault per link decides what gets through; a delay per link
// slows what does. It is safe for concurrent use.
type Relay struct {
	mu     sync.Mutex
	links  map[Link]*link
	closed bool
	wg     sync.WaitGroup
	// members are the listeners of AddMember, one per replica, by id.
	members map[uint64]*member
}

type link struct {
	target string
	ln     net.Listener // nil for a link reached through a member listener
	fault  atomic.Int32
	delay  atomic.Int64       // time.Duration added to every chunk relayed
	pipes  map[*pipe]struct{} // guarded by Relay.mu
}

// pipe is one relayed connection: client dialled the relay, server is the
// relay's connection to the target (nil when it was never dialled).
type pipe struct {
	client, server net.Conn
	// lost and lostBack say that bytes were discarded, from the client
	// toward the server and back: that stream is broken for good.
	lost, lostBack atomic.Bool
	once           sync.Once
}

// broken reports whether bytes were lost either way.
func (p *pipe) broken() bool { return p.lost.Load() || p.lostBack.Load() }

func (p *pipe) close() {
	p.once.Do(func() {
		p.client.Close()
		if p.server != nil {
			p.server.Close()
		}
	})
}

// NewRelay returns a relay without links.
func NewRelay() *Relay { return &Relay{links: map[Link]*link{}, members: map[uint64]*member{}} }

// relayHost is the loopback address the relay listens on: 127.0.0.2 where
// it can, so a listener of its own, taken on a port the kernel chose, never
// holds the port of a replica (on 127.0.0.1) that is down for a moment and
// must listen there again.
var relayHost = sync.OnceValue(func() string {
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		return "127.0.0.1"
	}
	ln.Close()
	return "127.0.0.2"
})

// Add starts relaying l to target and returns the address replica l.From
// must dial instead of target.
func (r *Relay) Add(l Link, target string) (string, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(relayHost(), "0"))
	if err != nil {
		return "", fmt.Errorf("nemesis: relay %v: %w", l, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		ln.Close()
		return "", ErrRelayClosed
	}
	if old := r.links[l]; old != nil {
		ln.Close()
		return "", fmt.Errorf("nemesis: relay %v added twice", l)
	}
	lk := &link{target: target, ln: ln, pipes: map[*pipe]struct{}{}}
	r.links[l] = lk
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.accept(lk)
	}()
	return ln.Addr().String(), nil
}

// Set applies f to link l (unknown links are ignored).
func (r *Relay) Set(l Link, f Fault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	lk := r.linkLocked(l)
	if lk == nil {
		return
	}
	lk.fault.Store(int32(f))
	for p := range lk.pipes {
		switch {
		case f == Drop:
			p.lost.Store(true)
			p.lostBack.Store(true)
		case f == Refuse, f == Pass && p.broken():
			p.close()
		}
	}
}

// SetDelay makes link l hold every chunk it relays, each way, for d before
// passing it on (unknown links are ignored). A chunk is read while the one
// before it waits, so what arrives meanwhile comes with the next one: a
// delay d adds between d and 2d of latency, without bounding throughput.
func (r *Relay) SetDelay(l Link, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if lk := r.linkLocked(l); lk != nil {
		lk.delay.Store(int64(d))
	}
}

// Delay returns link l's delay.
func (r *Relay) Delay(l Link) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if lk := r.links[l]; lk != nil {
		return time.Duration(lk.delay.Load())
	}
	return 0
}

// Get returns the fault on link l.
func (r *Relay) Get(l Link) Fault {
	r.mu.Lock()
	defer r.mu.Unlock()
	if lk := r.links[l]; lk != nil {
		return Fault(lk.fault.Load())
	}
	return Pass
}

// conns returns how many connections link l relays now.
func (r *Relay) conns(l Link) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if lk := r.links[l]; lk != nil {
		return len(lk.pipes)
	}
	return 0
}

// brokenConns returns how many of link l's connections lost bytes.
func (r *Relay) brokenConns(l Link) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	if lk := r.links[l]; lk != nil {
		for p := range lk.pipes {
			if p.broken() {
				n++
			}
		}
	}
	return n
}

// Cut applies f to every link from a replica of from to a replica of to.
func (r *Relay) Cut(from, to []uint64, f Fault) {
	for _, a := range from {
		for _, b := range to {
			if a != b {
				r.Set(Link{a, b}, f)
			}
		}
	}
}

// Heal lets every link pass again, without delay.
func (r *Relay) Heal() {
	r.mu.Lock()
	links := make([]Link, 0, len(r.links))
	for l := range r.links {
		links = append(links, l)
	}
	r.mu.Unlock()
	for _, l := range links {
		r.Set(l, Pass)
		r.SetDelay(l, 0)
	}
}

// Faulty returns the links that do not pass or are delayed.
func (r *Relay) Faulty() []Link {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Link
	for l, lk := range r.links {
		if Fault(lk.fault.Load()) != Pass || lk.delay.Load() != 0 {
			out = append(out, l)
		}
	}
	return out
}

// Close stops every listener and relayed connection and waits for the
// relay's goroutines.
func (r *Relay) Close() error {
	r.mu.Lock()
	r.closed = true
	for _, m := range r.members {
		m.ln.Close()
	}
	for _, lk := range r.links {
		if lk.ln != nil {
			lk.ln.Close()
		}
		for p := range lk.pipes {
			p.close()
		}
	}
	r.mu.Unlock()
	r.wg.Wait()
	return nil
}

func (r *Relay) accept(lk *link) {
	for {
		nc, err := lk.ln.Accept()
		if err != nil {
			return // closed; a loopback listener has no transient errors worth retrying
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.serve(lk, nc, nil)
		}()
	}
}

// serve relays client's connection over lk; first is what the relay has
// read from client already (a member listener's hello), sent on first.
func (r *Relay) serve(lk *link, client net.Conn, first []byte) {
	p := &pipe{client: client}
	switch Fault(lk.fault.Load()) {
	case Refuse:
		client.Close()
		return
	case Drop:
		p.lost.Store(true)
		p.lostBack.Store(true)
	default:
		server, err := net.DialTimeout("tcp", lk.target, relayDialTimeout)
		if err != nil {
			client.Close() // the target is down: the dialler sees what it would see
			return
		}
		p.server = server
	}
	if !r.track(lk, p) {
		return
	}
	defer r.untrack(lk, p)
	var src io.Reader = client
	if len(first) > 0 {
		src = io.MultiReader(bytes.NewReader(first), client)
	}
	if p.server == nil {
		r.pump(lk, p, src, nil, true)
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.pump(lk, p, p.server, client, false)
	}()
	r.pump(lk, p, src, p.server, true)
	<-done
}

// track registers p with its link, or closes it if the relay is closing
// or the link's fault changed since p was accepted.
func (r *Relay) track(lk *link, p *pipe) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := Fault(lk.fault.Load())
	if r.closed || f == Refuse || (f == Drop && !p.lost.Load()) || (f == Pass && p.broken()) {
		p.close()
		return false
	}
	lk.pipes[p] = struct{}{}
	return true
}

func (r *Relay) untrack(lk *link, p *pipe) {
	p.close()
	r.mu.Lock()
	delete(lk.pipes, p)
	r.mu.Unlock()
}

// pump copies src to dst (forward: from the dialler to the target) until
// either fails, discarding instead while the link drops that way or once
// that way lost bytes, and holding each chunk for the link's delay. A nil
// dst always discards.
func (r *Relay) pump(lk *link, p *pipe, src io.Reader, dst net.Conn, forward bool) {
	defer p.close()
	lost, drops := &p.lost, DropForward
	if !forward {
		lost, drops = &p.lostBack, DropBackward
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if d := time.Duration(lk.delay.Load()); d > 0 {
				time.Sleep(d)
			}
			if f := Fault(lk.fault.Load()); dst == nil || f == Drop || f == drops {
				lost.Store(true)
			}
			if !lost.Load() {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return // EOF or closed: the pipe ends both ways
		}
	}
}
