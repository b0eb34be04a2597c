package proxy

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"synod/wire"
)

// TestBadInput: every kind of bad request gets its error, and the
// connection goes on where the stream can be resynchronised and is closed
// where it cannot.
func TestBadInput(t *testing.T) {
	const maxValue = 1000
	_, addr := startServer(t, nil, func(c *Config) { c.MaxValue = maxValue })
	tests := []struct {
		name   string
		input  string
		want   string // reply prefix
		closed bool
	}{
		{"unknown command", "FROB x\r\n", "ERR BAD_REQUEST unknown command", false},
		{"missing arguments", "PUT\r\n", "ERR BAD_REQUEST", false},
		{"missing value", "PUT k\n", "ERR BAD_REQUEST missing value", false},
		{"get without key", "GET\r\n", "ERR BAD_REQUEST usage: GET", false},
		{"get with a bad MIN", "GET k MIN x\r\n", "ERR BAD_REQUEST MIN index", false},
		{"cas with a bad version", "CAS k v1 x\r\n", "ERR BAD_REQUEST version", false},
		{"bad consistency", "CONSISTENCY strong\r\n", "ERR BAD_REQUEST unknown consistency", false},
		{"ping with arguments", "PING now\r\n", "ERR BAD_REQUEST", false},
		{"bad $n", "PUT k $12x\r\n", "ERR BAD_REQUEST block header", false},
		{"negative $n", "PUT k $-1\r\n", "ERR BAD_REQUEST block header", false},
		{"binary garbage", "\x00\x01\xfe\xff\x7f garbage\r\n", "ERR BAD_REQUEST unknown command", false},
		{"key with a control byte", "GET a\x01b\r\n", "ERR BAD_REQUEST", false},
		{"inline value over the limit", "PUT k " + strings.Repeat("v", maxValue+1) + "\r\n", "ERR TOO_LARGE", false},
		{"block over the limit is drained", fmt.Sprintf("PUT k $%d\r\n%s\r\n", maxValue+1, strings.Repeat("\x00", maxValue+1)), "ERR TOO_LARGE", false},
		{"block not followed by its terminator", "PUT k $3\r\nabcXY\r\n", "ERR BAD_REQUEST block not followed", true},
		{"line over 64 KiB", strings.Repeat("A", 64<<10+1) + "\r\n", "ERR TOO_LARGE request line over", true},
		{"block beyond what is drained", "PUT k $99999999999\r\n", "ERR TOO_LARGE", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			c.send(tt.input)
			c.expect(tt.want)
			if tt.closed {
				c.expectClosed()
				return
			}
			c.send("PING\r\n")
			c.expect("PONG")
		})
	}
}

// TestLocalCommands: what the proxy answers itself, with no replica up.
func TestLocalCommands(t *testing.T) {
	_, addr := startServer(t, map[uint64]string{1: deadAddr(t), 2: deadAddr(t)}, nil)
	c := dialRaw(t, addr)
	c.send("ping\r\nHELP\r\nconsistency STALE\r\nSTATUS\r\n")
	c.expect("PONG")
	help := 0
	for c.line() != "END" {
		help++
	}
	if help < 10 {
		t.Fatalf("HELP gave %d lines", help)
	}
	c.expect("OK")
	c.expect("NODES 2")
	c.expect("id=1 addr=127.0.0.1:")
	c.expect("id=2 addr=127.0.0.1:")
	st := c.stats()
	for _, name := range []string{"connections", "buffered", "buffer_overflows", "failovers", "read_p99_ms", "write_max_ms",
		"node.1.reads", "node.1.writes", "node.1.inflight", "node.1.ewma_ms", "node.1.ejections", "node.2.reads"} {
		if _, ok := st[name]; !ok {
			t.Errorf("STATS lacks %s: %v", name, st)
		}
	}
	if n := statInt(t, st, "connections"); n != 1 {
		t.Errorf("connections = %d, want 1", n)
	}
	c.send("QUIT\r\nPING\r\n")
	c.expect("BYE")
	c.expectClosed()
}

// TestNoMaster: with no replica, reads and writes wait out the hold window
// and get UNAVAILABLE; past the queue bound they get it at once.
func TestNoMaster(t *testing.T) {
	_, addr := startServer(t, nil, func(c *Config) {
		c.Hold = 2 * time.Second
		c.QueueSize = 2
	})
	held := []*rawConn{dialRaw(t, addr), dialRaw(t, addr)}
	held[0].send("PUT a 1\r\n")
	held[1].send("GET a\r\n")
	probe := dialRaw(t, addr)
	// Both are queued once STATS says so; then the queue is full.
	eventually(t, "two held requests", func() bool { return statInt(t, probe.stats(), "buffered") == 2 })
	late := dialRaw(t, addr)
	late.send("PUT b 2\r\n")
	late.expect("ERR UNAVAILABLE request queue full")
	// The refusal came while the held ones still wait.
	if n := statInt(t, probe.stats(), "buffered"); n != 2 {
		t.Fatalf("buffered = %d after the refusal, want 2 still held", n)
	}
	held[0].expect("ERR UNAVAILABLE no master within")
	held[1].expect("ERR UNAVAILABLE")
	st := probe.stats()
	if statInt(t, st, "buffer_overflows") != 1 || statInt(t, st, "buffer_expired") != 2 || statInt(t, st, "buffered") != 0 {
		t.Fatalf("stats after expiry: %v", st)
	}
	// The connections are still usable.
	late.send("PING\r\n")
	late.expect("PONG")
}

// TestHalfLineStall: a client that sends half a request and stalls holds up
// nobody, and is closed after the idle timeout.
func TestHalfLineStall(t *testing.T) {
	_, addr := startServer(t, nil, func(c *Config) { c.IdleTimeout = 300 * time.Millisecond })
	half := dialRaw(t, addr)
	half.send("PUT greeting hel")
	inBlock := dialRaw(t, addr)
	inBlock.send("PUT k $100\r\nonly some of it")
	other := dialRaw(t, addr)
	for range 20 {
		other.send("PING\r\nSTATUS\r\n")
		other.expect("PONG")
		other.expect("NODES 1")
		other.line()
	}
	half.expectClosed()
	inBlock.expectClosed()
}

// TestIdleConnections: a thousand idle connections cost the others nothing.
func TestIdleConnections(t *testing.T) {
	_, addr := startServer(t, nil, nil)
	const idle = 1000
	conns := make([]net.Conn, 0, idle)
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	for range idle {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, nc)
	}
	c := dialRaw(t, addr)
	eventually(t, "every connection accepted", func() bool { return statInt(t, c.stats(), "connections") == idle+1 })
	for range 100 {
		c.send("PING\r\n")
		c.expect("PONG")
	}
	for _, nc := range conns {
		nc.Close()
	}
	conns = nil
	eventually(t, "the idle connections gone", func() bool { return statInt(t, c.stats(), "connections") == 1 })
}

// TestMaxConns: one connection over the bound is answered BUSY and closed;
// once one leaves, a new one is served.
func TestMaxConns(t *testing.T) {
	_, addr := startServer(t, nil, func(c *Config) { c.MaxConns = 3 })
	var served []*rawConn
	for range 3 {
		c := dialRaw(t, addr)
		c.send("PING\r\n")
		c.expect("PONG")
		served = append(served, c)
	}
	over := dialRaw(t, addr)
	over.expect("ERR BUSY too many connections")
	over.expectClosed()
	overRESP := dialRaw(t, addr) // a Redis client is told in its own protocol
	overRESP.send("*1\r\n$4\r\nPING\r\n")
	overRESP.expect("-BUSY too many connections")
	overRESP.expectClosed()
	served[0].send("QUIT\r\n")
	served[0].expect("BYE")
	served[0].expectClosed()
	eventually(t, "a free connection slot", func() bool {
		c := dialRaw(t, addr)
		c.send("PING\r\n")
		l := c.line()
		if l != "PONG" && l != "ERR BUSY too many connections" {
			t.Fatalf("got %q", l)
		}
		return l == "PONG"
	})
}

// flakyListener fails its first Accepts, as a listener out of file
// descriptors does.
type flakyListener struct {
	net.Listener
	fails atomic.Int32
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, errors.New("accept: too many open files")
	}
	return l.Listener.Accept()
}

// TestServeLifecycle: Serve survives accept errors, returns ErrServerClosed
// after Close, and refuses to start on a closed server.
func TestServeLifecycle(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Nodes = map[uint64]string{1: deadAddr(t)}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &flakyListener{Listener: ln}
	fl.fails.Store(4)
	served := make(chan error, 1)
	go func() { served <- s.Serve(fl) }()
	c := dialRaw(t, ln.Addr().String())
	c.send("PING\r\n")
	c.expect("PONG")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v, want ErrServerClosed", err)
	}
	c.expectClosed()
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(ln2); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Close = %v, want ErrServerClosed", err)
	}
}

// TestShutdownAnswersHeld: Shutdown stops reading but answers what it read.
func TestShutdownAnswersHeld(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Nodes = map[uint64]string{1: deadAddr(t)}
	cfg.Hold = 300 * time.Millisecond
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
	c := dialRaw(t, ln.Addr().String())
	c.send("PING\r\nGET k\r\n")
	c.expect("PONG")
	// The GET must be held before shutdown starts; one still unread in the
	// socket would rightly just see the connection close.
	eventually(t, "the GET held", func() bool {
		for _, st := range s.Stats() {
			if st.Name == "buffered" {
				return st.Value == "1"
			}
		}
		return false
	})
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	c.expect("ERR UNAVAILABLE")
	c.expectClosed()
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	good := DefaultConfig()
	good.Nodes = map[uint64]string{1: "127.0.0.1:7101"}
	if err := good.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	tests := []struct {
		name  string
		tweak func(*Config)
	}{
		{"no nodes", func(c *Config) { c.Nodes = nil }},
		{"node 0", func(c *Config) { c.Nodes = map[uint64]string{0: "x:1"} }},
		{"no address", func(c *Config) { c.Nodes = map[uint64]string{1: ""} }},
		{"zero poll", func(c *Config) { c.Poll = 0 }},
		{"negative hold", func(c *Config) { c.Hold = -time.Second }},
		{"zero queue", func(c *Config) { c.QueueSize = 0 }},
		{"zero conns", func(c *Config) { c.MaxConns = 0 }},
		{"zero value", func(c *Config) { c.MaxValue = 0 }},
		{"huge value", func(c *Config) { c.MaxValue = 1 << 30 }},
		{"line shorter than a key", func(c *Config) { c.MaxLine = 100 }},
		{"long cluster id", func(c *Config) { c.ClusterID = strings.Repeat("c", 300) }},
		{"pipeline over the session window", func(c *Config) { c.MaxPipeline = wire.MaxSessionWindow + 1 }},
		{"pipeline bytes below a value", func(c *Config) { c.MaxPipelineBytes = int64(c.MaxValue) }},
		{"in-flight bytes below a pipeline", func(c *Config) { c.MaxInflightBytes = c.MaxPipelineBytes - 1 }},
		{"queue bytes below a value", func(c *Config) { c.QueueBytes = 1000 }},
	}
	for _, tt := range tests {
		cfg := good
		cfg.Nodes = map[uint64]string{1: "127.0.0.1:7101"}
		tt.tweak(&cfg)
		if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v, want ErrInvalidConfig", tt.name, err)
		}
	}
	if _, err := New(Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("New(zero) = %v", err)
	}
}
