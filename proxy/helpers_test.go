package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startServer serves a proxy on a loopback port until the test ends. With
// no nodes given it fronts one replica that is not there, which is enough
// for everything the proxy answers itself.
func startServer(t testing.TB, nodes map[uint64]string, tweak func(*Config)) (*Server, string) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Nodes = nodes
	if cfg.Nodes == nil {
		cfg.Nodes = map[uint64]string{1: deadAddr(t)}
	}
	cfg.ClusterID = "test"
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return s, ln.Addr().String()
}

// rawConn is a client that speaks raw bytes, like nc.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *rawConn) send(s string) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// line reads one reply line, without its "\r\n", which it insists on.
func (c *rawConn) line() string {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	s, err := c.br.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read reply: %v (got %q)", err, s)
	}
	if !strings.HasSuffix(s, "\r\n") {
		c.t.Fatalf("reply line %q does not end in \\r\\n", s)
	}
	return strings.TrimSuffix(s, "\r\n")
}

// block reads a VALUE reply's n bytes and their "\r\n".
func (c *rawConn) block(n int) []byte {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	b := make([]byte, n+2)
	if _, err := io.ReadFull(c.br, b); err != nil {
		c.t.Fatalf("read block: %v", err)
	}
	if string(b[n:]) != "\r\n" {
		c.t.Fatalf("block not followed by \\r\\n: %q", b[n:])
	}
	return b[:n]
}

// expect reads one line and checks its prefix.
func (c *rawConn) expect(prefix string) string {
	c.t.Helper()
	l := c.line()
	if !strings.HasPrefix(l, prefix) {
		c.t.Fatalf("reply %q, want %q...", l, prefix)
	}
	return l
}

// expectClosed checks that the server closes the connection.
func (c *rawConn) expectClosed() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	b, err := c.br.ReadByte()
	if err == nil {
		rest, _ := c.br.Peek(c.br.Buffered())
		c.t.Fatalf("connection still open: read %q%q", b, rest)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("connection still open after 20 s")
	}
}

// stats reads a STATS reply into a map.
func (c *rawConn) stats() map[string]string {
	c.t.Helper()
	c.send("STATS\r\n")
	m := map[string]string{}
	for {
		l := c.line()
		if l == "END" {
			return m
		}
		name, value, ok := strings.Cut(strings.TrimPrefix(l, "STAT "), " ")
		if !ok || !strings.HasPrefix(l, "STAT ") {
			c.t.Fatalf("bad STATS line %q", l)
		}
		m[name] = value
	}
}

func statInt(t testing.TB, m map[string]string, name string) int64 {
	t.Helper()
	v, err := strconv.ParseInt(m[name], 10, 64)
	if err != nil {
		t.Fatalf("STAT %s = %q: %v", name, m[name], err)
	}
	return v
}

// eventually polls cond until it holds, and fails the test if it does not
// within 30 s: a wait that would otherwise hang the test run.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
