package proxy

import (
	"strings"
	"testing"
)

// TestAuthGate: what the proxy answers itself, with users off and on,
// before any user can be checked (its one replica is not there).
func TestAuthGate(t *testing.T) {
	tests := []struct {
		auth      bool
		req, want string
	}{
		{false, "USER ADD x pw", "ERR BAD_REQUEST users are off"},
		{false, "AUTH x pw", "ERR BAD_REQUEST users are off"},
		{false, "GET .synod/auth/epoch", "ERR NOPERM no read permission"},
		{false, "PUT .synod/auth/users/x v", "ERR NOPERM no write permission"},
		{false, "LIST .synod/", "ERR NOPERM no read permission"},
		{false, "GET .synod/auth/epoch RANGE 0 10", "ERR NOPERM no read permission"},
		{false, "PING", "PONG"},
		{true, "PING", "PONG"},
		{true, "GET a", "ERR NOPERM authenticate first"},
		{true, "GET a RANGE 0 1", "ERR NOPERM authenticate first"},
		{true, "CONSISTENCY stale", "ERR NOPERM authenticate first"},
		{true, "MEMBER LIST", "ERR NOPERM authenticate first"},
		{true, "ROLE LIST", "ERR NOPERM authenticate first"},
		{true, "AUTH x pw", "ERR UNAVAILABLE users not loaded yet"},
		{true, "AUTH x", "ERR BAD_REQUEST usage: AUTH <user> <password>"},
	}
	for _, auth := range []bool{false, true} {
		_, addr := startServer(t, nil, func(c *Config) { c.Auth = auth })
		rc := dialRaw(t, addr)
		for _, tt := range tests {
			if tt.auth != auth {
				continue
			}
			rc.send(tt.req + "\r\n")
			if got := rc.line(); !strings.HasPrefix(got, tt.want) {
				t.Errorf("auth %v: %s: %q, want %q...", auth, tt.req, got, tt.want)
			}
		}
		// A PUTFILE refused before its bytes are read ends the
		// connection: the bytes cannot be told from requests.
		rc = dialRaw(t, addr)
		rc.send("PUTFILE .synod/auth/users/x 3 " + strings.Repeat("ab", 32) + "\r\nabc\r\n")
		if got := rc.line(); !strings.HasPrefix(got, "ERR NOPERM") {
			t.Errorf("auth %v: refused PUTFILE: %q", auth, got)
		}
		rc.expectClosed()
	}
}
