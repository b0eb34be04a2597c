package wire

import (
	"context"
	"errors"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

const testCluster = "test-cluster"

func replicaHello(id uint64) Hello {
	return Hello{ClusterID: testCluster, NodeID: id, Role: RoleReplica}
}

// testServer accepts connections on 127.0.0.1:0, handshakes each with
// Accept and runs handle on it. Each connection's outcome (the handshake
// error, or the error handle returns) arrives on results.
type testServer struct {
	ln      net.Listener
	results chan error
	wg      sync.WaitGroup

	mu    sync.Mutex
	conns map[*Conn]bool
}

type serverConfig struct {
	local  Hello
	check  func(Hello) error
	opts   Options
	handle func(*Conn) error
}

func startServer(t *testing.T, cfg serverConfig) *testServer {
	t.Helper()
	if cfg.local == (Hello{}) {
		cfg.local = replicaHello(1)
	}
	if cfg.handle == nil {
		cfg.handle = echo
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{ln: ln, results: make(chan error, 100), conns: map[*Conn]bool{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				c, _, err := Accept(nc, cfg.local, cfg.check, cfg.opts)
				if err != nil {
					s.results <- err
					return
				}
				s.mu.Lock()
				s.conns[c] = true
				s.mu.Unlock()
				err = cfg.handle(c)
				c.Close()
				s.results <- err
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// closeConns waits until n handshaken connections are registered, then
// closes them all from the server side.
func (s *testServer) closeConns(n int) {
	for {
		s.mu.Lock()
		if len(s.conns) >= n {
			for c := range s.conns {
				c.Close()
			}
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		runtime.Gosched()
	}
}

func (s *testServer) addr() string { return s.ln.Addr().String() }

// result waits for the next connection outcome.
func (s *testServer) result(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.results:
		return err
	case <-time.After(10 * time.Second): // a hang guard, not a timing assertion
		t.Fatal("no connection outcome within 10s")
		return nil
	}
}

// echo sends every envelope back unchanged until Recv fails.
func echo(c *Conn) error {
	for {
		env, err := c.Recv()
		if err != nil {
			return err
		}
		kind := env.Kind
		if kind == KindPing {
			kind = KindPong
		}
		if err := c.SendRaw(kind, env.ID, env.Body); err != nil {
			return err
		}
		if err := c.Flush(); err != nil {
			return err
		}
	}
}

func dial(t *testing.T, addr string) *Conn {
	t.Helper()
	c, _, err := Dial(context.Background(), addr, replicaHello(2), Options{})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ping checks that c still carries a round trip.
func ping(t *testing.T, c *Conn, id uint64) {
	t.Helper()
	if err := c.Send(KindPing, id, nil); err != nil {
		t.Fatalf("send ping: %v", err)
	}
	if err := c.Flush(); err != nil {
		t.Fatalf("flush ping: %v", err)
	}
	env, err := c.Recv()
	if err != nil {
		t.Fatalf("recv pong: %v", err)
	}
	if env.Kind != KindPong || env.ID != id {
		t.Fatalf("got %s %d, want pong %d", env.Kind, env.ID, id)
	}
}

// rawHandshake dials addr with a plain TCP connection, performs the
// client handshake by hand and returns the connection, ready for raw
// bytes.
func rawHandshake(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	frame, err := AppendMessage(nil, KindHello, 0, replicaHello(3).withVersion(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write(frame); err != nil {
		t.Fatal(err)
	}
	body, err := ReadFrame(nc, 0, nil)
	if err != nil {
		t.Fatalf("read welcome: %v", err)
	}
	env, err := DecodeEnvelope(body)
	if err != nil || env.Kind != KindWelcome {
		t.Fatalf("got %v %v, want welcome", env.Kind, err)
	}
	return nc
}

// waitClosed checks that the peer closed nc: a read ends with an error
// (EOF or reset) rather than data.
func waitClosed(t *testing.T, nc net.Conn) {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(10 * time.Second)) // hang guard
	var b [1]byte
	n, err := nc.Read(b[:])
	if err == nil || n != 0 {
		t.Fatalf("read %d bytes, err %v: connection still open", n, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("connection still open after 10s")
	}
}
