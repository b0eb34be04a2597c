package proxy

import (
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"synod/wire"
)

// TestRESPLocal sends raw RESP to a proxy (no replica behind it: these
// commands are the proxy's own, or refused before any replica is asked)
// and checks the exact reply bytes, and whether the proxy then closes.
func TestRESPLocal(t *testing.T) {
	s, addr := startServer(t, nil, func(c *Config) { c.MaxValue = 10000 })
	bulk := func(s string) string { return "$" + strconv.Itoa(len(s)) + "\r\n" + s + "\r\n" }
	cmd := func(args ...string) string {
		out := "*" + strconv.Itoa(len(args)) + "\r\n"
		for _, a := range args {
			out += bulk(a)
		}
		return out
	}
	tests := []struct {
		name   string
		send   string
		want   string
		closes bool
	}{
		{"ping", cmd("PING"), "+PONG\r\n", false},
		{"pipelined in order", cmd("PING") + cmd("ECHO", "a\r\nb") + cmd("SELECT", "0") + cmd("PING", "x"),
			"+PONG\r\n$4\r\na\r\nb\r\n+OK\r\n$1\r\nx\r\n", false},
		{"inline after multibulk", cmd("PING") + "ECHO \"two words\"\r\n", "+PONG\r\n$9\r\ntwo words\r\n", false},
		{"case-insensitive", cmd("pInG"), "+PONG\r\n", false},
		{"unknown command", cmd("FLUSHALL", "ASYNC"), "-ERR unknown command 'FLUSHALL', with args beginning with: 'ASYNC' \r\n", false},
		{"wrong arity", cmd("GET"), "-ERR wrong number of arguments for 'get' command\r\n", false},
		{"invalid key", cmd("GET", "a b"), "-ERR invalid key: synod keys are 1 to 1024 bytes of printable UTF-8 without spaces\r\n", false},
		{"select 1", cmd("SELECT", "1"), "-ERR DB index is out of range\r\n", false},
		{"expiry", cmd("SET", "k", "v", "PX", "5"), "-ERR synod keeps no expiry: PX is not supported\r\n", false},
		{"set syntax", cmd("SET", "k", "v", "BOGUS"), "-ERR syntax error\r\n", false},
		{"hello 4", cmd("HELLO", "4"), "-NOPROTO unsupported protocol version\r\n", false},
		{"client id then name", cmd("CLIENT", "SETNAME", "x") + cmd("CLIENT", "GETNAME"), "+OK\r\n$1\r\nx\r\n", false},
		{"wait with no replica", cmd("WAIT", "1", "50"), ":0\r\n", false},
		{"wait bad timeout", cmd("WAIT", "1", "-1"), "-ERR timeout is not an integer or out of range\r\n", false},
		{"scan bad cursor", cmd("SCAN", "x"), "-ERR invalid cursor\r\n", false},
		{"quit", cmd("QUIT") + cmd("PING"), "+OK\r\n", true},
		{"bulk over max value", "*2\r\n$3\r\nGET\r\n$10001\r\n", "-ERR Protocol error: invalid bulk length\r\n", true},
		{"too many args", "*99999999\r\n", "-ERR Protocol error: invalid multibulk length\r\n", true},
		{"nested array", "*1\r\n*1\r\n", "-ERR Protocol error: expected '$', got '*'\r\n", true},
		{"inline too long", cmd("PING") + strings.Repeat("a", 70<<10) + "\r\n", "+PONG\r\n-ERR Protocol error: too big inline request\r\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			c.send(tt.send)
			c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			got := make([]byte, len(tt.want))
			if _, err := io.ReadFull(c.br, got); err != nil || string(got) != tt.want {
				t.Fatalf("got %q (%v), want %q", got, err, tt.want)
			}
			if !tt.closes {
				c.send(cmd("PING"))
				tt.want = "+PONG\r\n"
				got = make([]byte, len(tt.want))
				if _, err := io.ReadFull(c.br, got); err != nil || string(got) != tt.want {
					t.Fatalf("after: got %q (%v), want +PONG", got, err)
				}
				return
			}
			c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			// Closed with the rest of the request unread: EOF, or a reset.
			if b, err := c.br.ReadByte(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("connection not closed: read %q, %v", b, err)
			}
		})
	}

	// A large bulk string the in-flight byte budget has no room for is read,
	// dropped and answered BUSY; the connection goes on.
	full := s.cfg.MaxInflightBytes
	s.mem.Add(full)
	cb := dialRaw(t, addr)
	cb.send(cmd("SET", "k", strings.Repeat("v", 8000)) + cmd("PING"))
	cb.expect("-BUSY proxy in-flight byte budget")
	cb.expect("+PONG")
	s.mem.Add(-full)

	// HELLO 3: the replies before it stay RESP2, the ones after are RESP3.
	c3 := dialRaw(t, addr)
	c3.send(cmd("CLIENT", "GETNAME") + cmd("HELLO", "3") + cmd("CLIENT", "GETNAME") + cmd("SYNOD.CONSISTENCY"))
	c3.expect("$-1")
	c3.expect("%7")
	for range 5 * 2 {
		if l := c3.line(); strings.HasPrefix(l, "$") {
			c3.line()
		}
	}
	c3.expect("$4")
	c3.expect("role")
	c3.expect("$6")
	c3.expect("master")
	c3.expect("$7")
	c3.expect("modules")
	c3.expect("*0")
	c3.expect("_")
	c3.expect("$12")
	c3.expect("linearizable")

	// The line protocol still answers on the same port.
	c := dialRaw(t, addr)
	c.send("PING\r\n")
	c.expect("PONG")
}

// TestRESPParts checks how the replies of a multi-key command's parts are
// combined, and how replica codes become Redis replies, against a fake
// master: keys under gone/ do not exist, under bad/ are refused, under
// conflict/ lose every CAS.
func TestRESPParts(t *testing.T) {
	a := startFake(t, 1, "master")
	var mu sync.Mutex
	var index uint64
	a.set("master", func(req wire.Request) (wire.Reply, bool) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case strings.HasPrefix(req.Key, "gone/"):
			return wire.Reply{Code: wire.CodeNotFound, NotApplied: true}, true
		case strings.HasPrefix(req.Key, "bad/"):
			return wire.Reply{Code: wire.CodeBadRequest, Msg: "no good", NotApplied: true}, true
		case strings.HasPrefix(req.Key, "conflict/") && req.Op == wire.OpCAS:
			return wire.Reply{Code: wire.CodeConflict, Version: 7, NotApplied: true}, true
		case !req.Op.IsWrite():
			return wire.Reply{Code: wire.CodeOK, Value: []byte("v" + req.Key), Version: 1, Size: 3, Keys: []string{"a", "b", "docs/x"}}, true
		}
		index++
		return wire.Reply{Code: wire.CodeOK, Index: index, Version: index}, true
	})
	s, addr := startServer(t, fakeNodes(a), func(c *Config) { c.Poll = 10 * time.Millisecond })
	eventually(t, "a master", func() bool { return s.rt.nodes()[0].Role == "master" })
	cmd := func(args ...string) string {
		out := "*" + strconv.Itoa(len(args)) + "\r\n"
		for _, a := range args {
			out += "$" + strconv.Itoa(len(a)) + "\r\n" + a + "\r\n"
		}
		return out
	}
	tests := []struct {
		name, send, want string
	}{
		{"mget", cmd("MGET", "a", "gone/x", "b"), "*3\r\n$2\r\nva\r\n$-1\r\n$2\r\nvb\r\n"},
		{"mget with a refused part", cmd("MGET", "a", "bad/x"), "-ERR no good\r\n"},
		{"del counts what existed", cmd("DEL", "a", "gone/x", "b"), ":2\r\n"},
		{"mset with a refused part", cmd("MSET", "a", "1", "bad/x", "2"), "-ERR no good\r\n"},
		{"exists", cmd("EXISTS", "a", "gone/y", "a"), ":2\r\n"},
		{"cas conflict", cmd("SYNOD.CAS", "conflict/x", "1", "v"), "-CONFLICT version 7\r\n"},
		{"setnx lost", cmd("SETNX", "conflict/x", "v"), ":0\r\n"},
		{"set nx lost", cmd("SET", "conflict/x", "v", "NX"), "$-1\r\n"},
		{"strlen", cmd("STRLEN", "a"), ":3\r\n"},
		{"keys", cmd("KEYS", "docs/*"), "*1\r\n$6\r\ndocs/x\r\n"},
		{"type", cmd("TYPE", "gone/x") + cmd("TYPE", "a"), "+none\r\n+string\r\n"},
		{"pipelined in order", cmd("MGET", "a", "b") + cmd("PING") + cmd("DEL", "a") + cmd("GET", "gone/z") + cmd("SET", "k", "v"),
			"*2\r\n$2\r\nva\r\n$2\r\nvb\r\n+PONG\r\n:1\r\n$-1\r\n+OK\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			c.send(tt.send)
			c.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
			got := make([]byte, len(tt.want))
			if _, err := io.ReadFull(c.br, got); err != nil || string(got) != tt.want {
				t.Fatalf("got %q (%v), want %q", got, err, tt.want)
			}
		})
	}
}

// TestRESPDocs: every command has its COMMAND DOCS entry, and only those.
func TestRESPDocs(t *testing.T) {
	for name := range respCommands {
		if d, ok := respDocs[name]; !ok || d[0] == "" || d[1] == "" {
			t.Errorf("%s has no COMMAND DOCS entry", name)
		}
	}
	for name := range respDocs {
		if _, ok := respCommands[name]; !ok {
			t.Errorf("COMMAND DOCS describes %s, which synod does not speak", name)
		}
	}
}

// TestRESPAuthGate: RESP passes the auth layer as the line protocol does,
// with users off and on, before any user can be checked (no replica).
func TestRESPAuthGate(t *testing.T) {
	cmd := func(args ...string) string {
		out := "*" + strconv.Itoa(len(args)) + "\r\n"
		for _, a := range args {
			out += "$" + strconv.Itoa(len(a)) + "\r\n" + a + "\r\n"
		}
		return out
	}
	tests := []struct {
		auth bool
		args []string
		want string
	}{
		{false, []string{"GET", ".synod/auth/epoch"}, "-NOPERM no read permission"},
		{false, []string{"SET", ".synod/auth/users/x", "v"}, "-NOPERM no write permission"},
		{false, []string{"SET", ".synod/auth/users/x", "v", "GET"}, "-NOPERM no write permission"},
		{false, []string{"MSET", "a", "1", ".synod/auth/users/x", "v"}, "-NOPERM no write permission"},
		{false, []string{"DEL", "a", ".synod/auth/epoch"}, "-NOPERM no write permission"},
		{false, []string{"KEYS", ".synod/*"}, "-NOPERM no read permission"},
		{false, []string{"AUTH", "x", "pw"}, "-ERR AUTH <password> called without any password configured"},
		{false, []string{"PING"}, "+PONG"},
		{true, []string{"PING"}, "+PONG"},
		{true, []string{"GET", "a"}, "-NOAUTH Authentication required."},
		{true, []string{"INFO"}, "-NOAUTH Authentication required."},
		{true, []string{"SYNOD.STATUS"}, "-NOAUTH Authentication required."},
		{true, []string{"AUTH", "x", "pw"}, "-UNAVAILABLE users not loaded yet"},
		{true, []string{"HELLO", "3", "AUTH", "x", "pw"}, "-UNAVAILABLE users not loaded yet"},
		{true, []string{"AUTH", "a", "b", "c"}, "-ERR syntax error"},
	}
	for _, auth := range []bool{false, true} {
		_, addr := startServer(t, nil, func(c *Config) { c.Auth = auth })
		rc := dialRaw(t, addr)
		for _, tt := range tests {
			if tt.auth != auth {
				continue
			}
			rc.send(cmd(tt.args...))
			if got := rc.line(); !strings.HasPrefix(got, tt.want) {
				t.Errorf("auth %v: %q: %q, want %q...", auth, tt.args, got, tt.want)
			}
		}
	}
}
