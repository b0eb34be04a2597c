package proxy

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"synod/wire"
)

// TestClientUploadLimits: one client (here, every connection from
// 127.0.0.1) may have --max-client-uploads PUTFILEs in progress and
// declare --max-client-upload-bytes in them; past either the next is
// refused BUSY before its bytes are read, and one larger than the byte cap
// alone TOO_LARGE. Once the uploads end, uploads are admitted again.
func TestClientUploadLimits(t *testing.T) {
	_, addr := startServer(t, nil, func(c *Config) {
		c.MaxUploads = 2
		c.MaxUploadBytes = 10_000_000
	})
	sum := strings.Repeat("ab", 32)
	putFile := func(key string, size int) *rawConn {
		rc := dialRaw(t, addr)
		rc.send(fmt.Sprintf("PUTFILE %s %d %s\r\n", key, size, sum))
		return rc
	}
	ctl := dialRaw(t, addr)
	uploads := func(n int64) {
		t.Helper()
		eventually(t, fmt.Sprintf("%d uploads in progress", n), func() bool { return statInt(t, ctl.stats(), "uploads") == n })
	}

	// Held: its bytes are still to come.
	a := putFile("a", 6_000_000)
	a.send("some of the bytes")
	uploads(1)
	b := putFile("b", 6_000_000) // 12 MB declared together
	if got := b.expect("ERR BUSY "); !strings.Contains(got, "--max-client-upload-bytes") {
		t.Fatalf("over the byte cap: %q", got)
	}
	b.expectClosed()
	c := putFile("c", 10_000_001) // never fits
	if got := c.expect("ERR TOO_LARGE "); !strings.Contains(got, "--max-client-upload-bytes") {
		t.Fatalf("over the byte cap alone: %q", got)
	}
	c.expectClosed()
	e := putFile("e", 1_000_000)
	uploads(2)
	f := putFile("f", 10)
	if got := f.expect("ERR BUSY "); !strings.Contains(got, "--max-client-uploads") {
		t.Fatalf("over the upload count: %q", got)
	}
	f.expectClosed()
	if n := statInt(t, ctl.stats(), "uploads_refused"); n != 3 {
		t.Fatalf("uploads_refused = %d, want 3", n)
	}

	// The held uploads end short; the next is admitted (and, with no
	// replica to store on, answered UNAVAILABLE, not BUSY).
	a.nc.Close()
	e.nc.Close()
	uploads(0)
	d := putFile("d", 10)
	d.send("0123456789\r\n")
	d.expect("ERR UNAVAILABLE ")
}

// TestUploadClientIsTheUser: connections of one authenticated user share
// its limit wherever they come from, two users from one address do not
// share theirs, and unauthenticated connections share their address's.
func TestUploadClientIsTheUser(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxUploads = 1
	s := &Server{cfg: cfg}
	client := func(user, addr string) *conn {
		return &conn{s: s, user: user, nc: addrConn{remote: addr}}
	}
	admit := func(c *conn) (func(), wire.Code) {
		release, code, _ := c.admitUpload(10)
		return release, code
	}
	rel, code := admit(client("alice", "127.0.0.1:1000"))
	if code != wire.CodeOK {
		t.Fatalf("alice's first upload: %s", code)
	}
	if _, code := admit(client("alice", "127.0.0.2:2000")); code != wire.CodeBusy {
		t.Fatalf("alice's second upload, from elsewhere: %s, want BUSY", code)
	}
	relBob, code := admit(client("bob", "127.0.0.1:1001"))
	if code != wire.CodeOK {
		t.Fatalf("bob's upload from alice's address: %s", code)
	}
	relAnon, code := admit(client("", "127.0.0.1:1002"))
	if code != wire.CodeOK {
		t.Fatalf("an anonymous upload: %s", code)
	}
	if _, code := admit(client("", "127.0.0.1:1003")); code != wire.CodeBusy {
		t.Fatalf("a second anonymous upload from the same address: %s, want BUSY", code)
	}
	rel()
	rel() // twice is once
	relBob()
	relAnon()
	if n := s.uploads.active.Load(); n != 0 || len(s.uploads.clients) != 0 {
		t.Fatalf("after every release: %d active, %d clients", n, len(s.uploads.clients))
	}
	if _, code := admit(client("alice", "127.0.0.1:1000")); code != wire.CodeOK {
		t.Fatalf("alice after her upload ended: %s", code)
	}
}

// addrConn is a net.Conn that only has a remote address.
type addrConn struct {
	net.Conn
	remote string
}

func (a addrConn) RemoteAddr() net.Addr {
	addr, _ := net.ResolveTCPAddr("tcp", a.remote)
	return addr
}
