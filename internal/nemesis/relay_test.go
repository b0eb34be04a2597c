package nemesis

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"synod/wire"
)

// echoServer echoes lines and remembers every byte it received and how many
// connections it accepted.
type echoServer struct {
	ln       net.Listener
	wg       sync.WaitGroup
	mu       sync.Mutex
	received []byte
	accepted int
}

func newEchoServer(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &echoServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.accepted++
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer nc.Close()
				buf := make([]byte, 1024)
				for {
					n, err := nc.Read(buf)
					s.mu.Lock()
					s.received = append(s.received, buf[:n]...)
					s.mu.Unlock()
					if err != nil {
						return
					}
					if _, err := nc.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *echoServer) got() (string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.received), s.accepted
}

func dialRelay(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc, bufio.NewReader(nc)
}

func echo(t *testing.T, nc net.Conn, r *bufio.Reader, msg string) {
	t.Helper()
	if _, err := nc.Write([]byte(msg + "\n")); err != nil {
		t.Fatal(err)
	}
	got, err := r.ReadString('\n')
	if err != nil || got != msg+"\n" {
		t.Fatalf("echo of %q: %q, %v", msg, got, err)
	}
}

// waitClosed reads until the relay closes the connection; nothing else may
// arrive first.
func waitClosed(t *testing.T, r *bufio.Reader) {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		var ne *net.OpError
		if !errors.As(err, &ne) {
			t.Fatalf("read: %v", err)
		}
	}
	if len(b) > 0 {
		t.Fatalf("got %q through a cut link", b)
	}
}

func newRelayTo(t *testing.T, s *echoServer) (*Relay, string) {
	t.Helper()
	r := NewRelay()
	t.Cleanup(func() { r.Close() })
	addr, err := r.Add(Link{1, 2}, s.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return r, addr
}

func TestRelayPasses(t *testing.T) {
	s := newEchoServer(t)
	_, addr := newRelayTo(t, s)
	nc, r := dialRelay(t, addr)
	for _, msg := range []string{"hello", "world", string(make([]byte, 100000))} {
		echo(t, nc, r, msg)
	}
}

func TestRelayDropLosesBytesAndBreaksTheStream(t *testing.T) {
	s := newEchoServer(t)
	relay, addr := newRelayTo(t, s)
	nc, r := dialRelay(t, addr)
	echo(t, nc, r, "before")

	relay.Set(Link{1, 2}, Drop)
	if _, err := nc.Write([]byte("lost\n")); err != nil {
		t.Fatalf("a dropping link refused a write: %v", err)
	}
	// A connection made during the drop is accepted and never forwarded.
	late, lateR := dialRelay(t, addr)
	if _, err := late.Write([]byte("late\n")); err != nil {
		t.Fatalf("a dropping link refused a write: %v", err)
	}
	for relay.conns(Link{1, 2}) < 2 {
		time.Sleep(time.Millisecond) // until the relay accepted it: dialling completes before that
	}
	if got := relay.Get(Link{1, 2}); got != Drop {
		t.Fatalf("fault %v, want drop", got)
	}
	if faulty := relay.Faulty(); len(faulty) != 1 || faulty[0] != (Link{1, 2}) {
		t.Fatalf("faulty links %v", faulty)
	}

	relay.Heal()
	waitClosed(t, r)
	waitClosed(t, lateR)
	got, accepted := s.got()
	if got != "before\n" || accepted != 1 {
		t.Fatalf("server received %q over %d connections, want only \"before\\n\" over 1", got, accepted)
	}
	nc2, r2 := dialRelay(t, addr)
	echo(t, nc2, r2, "after")
}

func TestRelayRefuseClosesConnections(t *testing.T) {
	s := newEchoServer(t)
	relay, addr := newRelayTo(t, s)
	nc, r := dialRelay(t, addr)
	echo(t, nc, r, "before")

	relay.Set(Link{1, 2}, Refuse)
	waitClosed(t, r)
	_, r2 := dialRelay(t, addr)
	waitClosed(t, r2)

	relay.Set(Link{1, 2}, Pass)
	nc3, r3 := dialRelay(t, addr)
	echo(t, nc3, r3, "after")
	if _, accepted := s.got(); accepted != 2 {
		t.Fatalf("server accepted %d connections, want 2", accepted)
	}
}

func TestRelayTargetDown(t *testing.T) {
	s := newEchoServer(t)
	target := s.ln.Addr().String()
	s.ln.Close()
	relay := NewRelay()
	defer relay.Close()
	addr, err := relay.Add(Link{3, 4}, target)
	if err != nil {
		t.Fatal(err)
	}
	_, r := dialRelay(t, addr)
	waitClosed(t, r)
}

func TestRelayCutAndAdd(t *testing.T) {
	relay := NewRelay()
	for _, l := range []Link{{1, 2}, {2, 1}, {1, 3}, {3, 1}, {2, 3}, {3, 2}} {
		if _, err := relay.Add(l, "127.0.0.1:1"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := relay.Add(Link{1, 2}, "127.0.0.1:1"); err == nil {
		t.Fatal("a link added twice")
	}
	relay.Cut([]uint64{1}, []uint64{2, 3}, Refuse)
	tests := []struct {
		link Link
		want Fault
	}{
		{Link{1, 2}, Refuse}, {Link{1, 3}, Refuse}, {Link{2, 1}, Pass}, {Link{3, 1}, Pass}, {Link{2, 3}, Pass}, {Link{9, 9}, Pass},
	}
	for _, tc := range tests {
		if got := relay.Get(tc.link); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.link, got, tc.want)
		}
	}
	relay.Heal()
	if f := relay.Faulty(); len(f) != 0 {
		t.Fatalf("after Heal: %v", f)
	}
	relay.Close()
	if _, err := relay.Add(Link{5, 6}, "127.0.0.1:1"); !errors.Is(err, ErrRelayClosed) {
		t.Fatalf("Add after Close: %v", err)
	}
}

func TestRelayOneWay(t *testing.T) {
	s := newEchoServer(t)
	relay, addr := newRelayTo(t, s)

	// Requests lost, the connection kept: the target hears nothing.
	nc, r := dialRelay(t, addr)
	echo(t, nc, r, "before")
	relay.Set(Link{1, 2}, DropForward)
	if _, err := nc.Write([]byte("lost\n")); err != nil {
		t.Fatalf("a one-way cut refused a write: %v", err)
	}
	for relay.brokenConns(Link{1, 2}) == 0 {
		time.Sleep(time.Millisecond) // until the relay discarded the request
	}
	relay.Heal()
	waitClosed(t, r)
	if got, _ := s.got(); got != "before\n" {
		t.Fatalf("server received %q through a link dropping requests", got)
	}

	// Replies lost: the target hears the request and answers into the void.
	nc2, r2 := dialRelay(t, addr)
	echo(t, nc2, r2, "again")
	relay.Set(Link{1, 2}, DropBackward)
	if _, err := nc2.Write([]byte("unanswered\n")); err != nil {
		t.Fatal(err)
	}
	for {
		if got, _ := s.got(); strings.HasSuffix(got, "unanswered\n") {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if got := relay.Get(Link{1, 2}); got != DropBackward {
		t.Fatalf("fault %v", got)
	}
	for relay.brokenConns(Link{1, 2}) == 0 {
		time.Sleep(time.Millisecond) // until the relay discarded the echo
	}
	relay.Heal()
	waitClosed(t, r2)

	nc3, r3 := dialRelay(t, addr)
	echo(t, nc3, r3, "after")
}

func TestRelayDelay(t *testing.T) {
	s := newEchoServer(t)
	relay, addr := newRelayTo(t, s)
	nc, r := dialRelay(t, addr)
	echo(t, nc, r, "fast")
	const d = 30 * time.Millisecond
	relay.SetDelay(Link{1, 2}, d)
	if got := relay.Delay(Link{1, 2}); got != d {
		t.Fatalf("delay %v", got)
	}
	if f := relay.Faulty(); len(f) != 1 {
		t.Fatalf("faulty links %v, want the delayed one", f)
	}
	start := time.Now()
	echo(t, nc, r, "slow")
	// A lower bound only: each way waited at least d.
	if took := time.Since(start); took < 2*d {
		t.Fatalf("a delayed echo took %v, want at least %v", took, 2*d)
	}
	relay.Heal()
	if f := relay.Faulty(); len(f) != 0 {
		t.Fatalf("after Heal: %v", f)
	}
	echo(t, nc, r, "fast again") // a delay loses nothing: the stream goes on
}

func TestProxyLink(t *testing.T) {
	if l := ProxyLink(1, 3); l != (Link{ProxyLinkBase + 1, 3}) || l.String() != "101->3" {
		t.Fatalf("ProxyLink(1, 3) = %v", l)
	}
}

// dialMember dials a member listener and sends a hello saying id and
// role, which the echo server behind it sends back.
func dialMember(t *testing.T, addr string, id uint64, role string) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, r := dialRelay(t, addr)
	body, err := wire.Marshal(wire.Hello{ClusterID: "test", NodeID: id, Role: role})
	if err != nil {
		t.Fatal(err)
	}
	frame := wire.AppendFrame(nil, wire.AppendEnvelope(nil, wire.KindHello, 0, body))
	if _, err := nc.Write(frame); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(frame))
	if _, err := io.ReadFull(r, got); err != nil || string(got) != string(frame) {
		t.Fatalf("hello through the member listener: %q, %v", got, err)
	}
	return nc, r
}

// TestRelayMemberListener: one listener for replica 2 carries every
// sender's connections, each on the link its hello names, and a fault set
// on a link before its first connection applies to it.
func TestRelayMemberListener(t *testing.T) {
	s := newEchoServer(t)
	r := NewRelay()
	t.Cleanup(func() { r.Close() })
	addr, err := r.AddMember(2, s.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.AddMember(2, s.ln.Addr().String()); err == nil {
		t.Fatal("a second member listener for replica 2 was added")
	}
	r.Set(Link{3, 2}, Refuse)
	nc1, r1 := dialMember(t, addr, 1, wire.RoleReplica)
	echo(t, nc1, r1, "from 1")
	ncp, rp := dialMember(t, addr, 0, wire.RoleProxy)
	echo(t, ncp, rp, "from a proxy")
	if r.conns(Link{1, 2}) != 1 || r.conns(Link{AnyProxy, 2}) != 1 {
		t.Fatalf("links 1->2 and proxy->2 relay %d and %d connections, want 1 each", r.conns(Link{1, 2}), r.conns(Link{AnyProxy, 2}))
	}

	nc3, r3 := dialRelay(t, addr)
	body, _ := wire.Marshal(wire.Hello{ClusterID: "test", NodeID: 3, Role: wire.RoleReplica})
	nc3.Write(wire.AppendFrame(nil, wire.AppendEnvelope(nil, wire.KindHello, 0, body)))
	waitClosed(t, r3)

	r.Set(Link{1, 2}, Refuse)
	waitClosed(t, r1)
	echo(t, ncp, rp, "the proxy still passes")
	r.Heal()
	nc3, r3 = dialMember(t, addr, 3, wire.RoleClient)
	echo(t, nc3, r3, "from 3 after healing")
}
