package wire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

var errNotMember = errors.New("not a member")

func TestHandshakeRefused(t *testing.T) {
	check := func(h Hello) error {
		if h.NodeID == 13 {
			return errNotMember
		}
		return nil
	}
	tests := []struct {
		name       string
		hello      Hello
		wantServer error // Accept's error
		wantClient error // Dial's error, besides ErrRefused
		reason     string
	}{
		{"wrong version", Hello{Version: ProtocolVersion + 1, ClusterID: testCluster, Role: RoleReplica}, ErrVersion, ErrVersion, fmt.Sprintf("this side %d", ProtocolVersion)},
		{"older version", Hello{Version: 1, ClusterID: testCluster, Role: RoleReplica}, ErrVersion, ErrVersion, "version 1"},
		{"wrong cluster", Hello{ClusterID: "other", Role: RoleReplica}, ErrClusterMismatch, ErrClusterMismatch, `"other"`},
		{"empty cluster", Hello{Role: RoleClient}, ErrClusterMismatch, ErrClusterMismatch, "cluster"},
		{"unknown role", Hello{ClusterID: testCluster, Role: "admin"}, ErrBadBody, ErrBadBody, "admin"},
		{"address too long", Hello{ClusterID: testCluster, Role: RoleReplica, Addr: strings.Repeat("a", MaxAddrLen+1)}, ErrBadBody, ErrBadBody, "address of 257 bytes"},
		{"check refuses", Hello{ClusterID: testCluster, NodeID: 13, Role: RoleReplica}, errNotMember, nil, "not a member"},
	}
	s := startServer(t, serverConfig{check: check})
	other := dial(t, s.addr())
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c *Conn
			var err error
			if tt.hello.Validate() != nil { // Dial itself refuses to send a malformed hello
				err = rawDialHello(t, s.addr(), tt.hello)
			} else {
				c, _, err = Dial(context.Background(), s.addr(), tt.hello, Options{})
			}
			if c != nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			var re *RefusedError
			if !errors.Is(err, ErrRefused) || !errors.As(err, &re) {
				t.Fatalf("Dial: got %v, want ErrRefused", err)
			}
			if tt.wantClient != nil && !errors.Is(err, tt.wantClient) {
				t.Errorf("Dial: got %v, want it to match %v", err, tt.wantClient)
			}
			if !strings.Contains(re.Reason, tt.reason) {
				t.Errorf("reason %q does not mention %q", re.Reason, tt.reason)
			}
			if err := s.result(t); !errors.Is(err, tt.wantServer) {
				t.Errorf("Accept: got %v, want %v", err, tt.wantServer)
			}
			ping(t, other, uint64(i))
		})
	}
}

// rawDialHello sends hello without Dial's own checks and returns the
// refusal as Dial would report it.
func rawDialHello(t *testing.T, addr string, hello Hello) error {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := NewConn(nc, Options{})
	defer c.Close()
	_, err = c.clientHandshake(context.Background(), hello.withVersion(), time.Now().Add(DefaultHandshakeTimeout))
	return err
}

func TestHandshakeWelcome(t *testing.T) {
	var got Hello
	s := startServer(t, serverConfig{
		local: Hello{ClusterID: testCluster, NodeID: 1, Role: RoleReplica},
		check: func(h Hello) error { got = h; return nil },
	})
	c, peer, err := Dial(context.Background(), s.addr(), Hello{ClusterID: testCluster, NodeID: 9, Role: RoleProxy}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := Hello{Version: ProtocolVersion, ClusterID: testCluster, NodeID: 1, Role: RoleReplica}
	if peer != want || c.Peer() != want {
		t.Errorf("peer %+v, Peer() %+v, want %+v", peer, c.Peer(), want)
	}
	if want := (Hello{Version: ProtocolVersion, ClusterID: testCluster, NodeID: 9, Role: RoleProxy}); got != want {
		t.Errorf("server saw %+v, want %+v", got, want)
	}
	ping(t, c, 1)
}

// fakeServer accepts one connection, reads the hello and answers with
// reply (nil: nothing), then waits for the client to go away.
func fakeServer(t *testing.T, reply func(c *Conn)) (addr string, gotHello chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gotHello = make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		ln.Close()
		if err != nil {
			return
		}
		c := NewConn(nc, Options{})
		defer c.Close()
		if _, err := c.Recv(); err != nil {
			return
		}
		close(gotHello)
		if reply != nil {
			reply(c)
		}
		c.Recv() // until the client closes
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String(), gotHello
}

func TestDialChecksWelcome(t *testing.T) {
	tests := []struct {
		name  string
		reply func(c *Conn)
		want  error
	}{
		{"other cluster", func(c *Conn) {
			c.Send(KindWelcome, 0, Hello{Version: ProtocolVersion, ClusterID: "other", Role: RoleReplica})
			c.Flush()
		}, ErrClusterMismatch},
		{"other version", func(c *Conn) {
			c.Send(KindWelcome, 0, Hello{Version: 7, ClusterID: testCluster, Role: RoleReplica})
			c.Flush()
		}, ErrVersion},
		{"not a welcome", func(c *Conn) {
			c.Send(KindPong, 0, nil)
			c.Flush()
		}, ErrBadBody},
		{"welcome without hello", func(c *Conn) {
			c.Send(KindWelcome, 0, "hi")
			c.Flush()
		}, ErrBadBody},
		{"frame over handshake limit", func(c *Conn) {
			c.Send(KindWelcome, 0, make([]byte, handshakeMaxFrame))
			c.Flush()
		}, ErrFrameTooLarge},
		{"closed before welcome", func(c *Conn) { c.Close() }, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, _ := fakeServer(t, tt.reply)
			c, _, err := Dial(context.Background(), addr, replicaHello(2), Options{})
			if c != nil {
				c.Close()
			}
			if !errors.Is(err, tt.want) || errors.Is(err, ErrRefused) {
				t.Fatalf("got %v, want %v and not ErrRefused", err, tt.want)
			}
		})
	}
}

func TestDialContextCancel(t *testing.T) {
	addr, gotHello := fakeServer(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-gotHello
		cancel()
	}()
	c, _, err := Dial(ctx, addr, replicaHello(2), Options{})
	if c != nil {
		c.Close()
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestAcceptHandshakeErrors(t *testing.T) {
	tests := []struct {
		name string
		send func(nc net.Conn)
		want func(error) bool
	}{
		{"silent peer times out", func(net.Conn) {}, func(err error) bool {
			var ne net.Error
			return errors.As(err, &ne) && ne.Timeout()
		}},
		{"first frame not hello", func(nc net.Conn) {
			b, _ := AppendMessage(nil, KindPing, 1, nil, 0)
			nc.Write(b)
		}, func(err error) bool { return errors.Is(err, ErrBadBody) }},
		{"hello body not a hello", func(nc net.Conn) {
			b, _ := AppendMessage(nil, KindHello, 0, []int{1, 2}, 0)
			nc.Write(b)
		}, func(err error) bool { return errors.Is(err, ErrBadBody) }},
		{"hello over handshake limit", func(nc net.Conn) {
			nc.Write([]byte{0, 0, 0x10, 0x01})
		}, func(err error) bool { return errors.Is(err, ErrFrameTooLarge) }},
	}
	s := startServer(t, serverConfig{opts: Options{HandshakeTimeout: 50e6}}) // 50 ms
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc, err := net.Dial("tcp", s.addr())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			tt.send(nc)
			if err := s.result(t); !tt.want(err) {
				t.Fatalf("unexpected error %v", err)
			}
			waitClosedOrRefused(t, nc)
		})
	}
}

// waitClosedOrRefused reads until the server closes nc, accepting one
// KindRefuse frame first.
func waitClosedOrRefused(t *testing.T, nc net.Conn) {
	t.Helper()
	body, err := ReadFrame(nc, 0, nil)
	if err != nil {
		return // closed without a refusal
	}
	if env, err := DecodeEnvelope(body); err != nil || env.Kind != KindRefuse {
		t.Fatalf("got %v %v, want refuse", env.Kind, err)
	}
	waitClosed(t, nc)
}

func TestHelloValidate(t *testing.T) {
	tests := []struct {
		h  Hello
		ok bool
	}{
		{Hello{Role: RoleReplica}, true},
		{Hello{Role: RoleProxy, ClusterID: strings.Repeat("x", MaxClusterIDLen)}, true},
		{Hello{Role: RoleClient}, true},
		{Hello{Role: ""}, false},
		{Hello{Role: "Replica"}, false},
		{Hello{Role: RoleReplica, ClusterID: strings.Repeat("x", MaxClusterIDLen+1)}, false},
	}
	for _, tt := range tests {
		if err := tt.h.Validate(); (err == nil) != tt.ok {
			t.Errorf("%+v: got %v, want ok=%v", tt.h, err, tt.ok)
		}
	}
}

// TestHelloForwardCompatible checks that a Hello from a future version
// with fields this one does not know still decodes, so its version can be
// refused.
func TestHelloForwardCompatible(t *testing.T) {
	future := map[string]any{"version": 5, "cluster_id": "c", "node_id": 3, "role": "replica", "shiny": []int{1}}
	var h Hello
	if err := Unmarshal(mustMarshal(t, future), &h); err != nil {
		t.Fatal(err)
	}
	if want := (Hello{Version: 5, ClusterID: "c", NodeID: 3, Role: RoleReplica}); h != want {
		t.Fatalf("got %+v, want %+v", h, want)
	}
}

func TestRefusedErrorMatches(t *testing.T) {
	tests := []struct {
		code refuseCode
		also error
	}{
		{refuseOther, nil},
		{refuseVersion, ErrVersion},
		{refuseCluster, ErrClusterMismatch},
		{refuseBadHello, ErrBadBody},
	}
	for _, tt := range tests {
		err := error(&RefusedError{Reason: "why", code: tt.code})
		if !errors.Is(err, ErrRefused) {
			t.Errorf("code %d: does not match ErrRefused", tt.code)
		}
		for _, s := range []error{ErrVersion, ErrClusterMismatch, ErrBadBody} {
			if errors.Is(err, s) != (s == tt.also) {
				t.Errorf("code %d: errors.Is(%v) = %v", tt.code, s, !(s == tt.also))
			}
		}
		if !strings.Contains(err.Error(), "why") {
			t.Errorf("code %d: %q lacks the reason", tt.code, err)
		}
	}
}
