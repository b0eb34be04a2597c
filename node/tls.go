package node

// tls.go: the replica's side of TLS. Config.TLS gives every link mutual
// TLS 1.3 (wire runs the handshake and checks the role a certificate
// grants); this file builds the configs from the bundle and writes the log
// line a refused handshake deserves, on both ends: the accepting side on
// the connection's goroutine (handleConn), the dialling side on the peer's
// goroutine (runPeer). A peer that keeps retrying is logged at most once
// per tlsLogEvery per address.

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"

	"synod/wire"
)

// tlsLogEvery bounds how often one address's TLS refusals of one kind are
// logged.
const tlsLogEvery = 10 * time.Second

func (c *Config) clientTLS() *tls.Config {
	if c.TLS == nil {
		return nil
	}
	return c.TLS.ClientConfig()
}

func (c *Config) serverTLS() *tls.Config {
	if c.TLS == nil {
		return nil
	}
	return c.TLS.ServerConfig(true)
}

// logLimiter remembers when each key was last logged. Safe for concurrent
// use.
type logLimiter struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// allow reports whether key may be logged now, and if so notes it.
func (l *logLimiter) allow(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if t, ok := l.last[key]; ok && now.Sub(t) < tlsLogEvery {
		return false
	}
	if l.last == nil || len(l.last) > 4096 {
		l.last = map[string]time.Time{}
	}
	l.last[key] = now
	return true
}

// logRefused logs a handshake this replica refused: at warn level when TLS
// refused it (a certificate from another CA, none, expired, a role it does
// not grant), at debug level otherwise (a removed member retrying, a
// cluster id mismatch, which the dialler reports).
func (n *Node) logRefused(err error, remote net.Addr) {
	host := remote.String()
	if h, _, e := net.SplitHostPort(host); e == nil {
		host = h
	}
	if errors.Is(err, wire.ErrTLS) && n.tlsLog.allow("in "+host+" "+innermost(err)) {
		n.log.Warn().Err(err).Str("remote", remote.String()).Msg("TLS handshake failed: a certificate missing, expired or of another CA (on the side the error names)")
		return
	}
	n.log.Debug().Err(err).Str("remote", remote.String()).Msg("handshake refused")
}

// logDialTLS logs a dial to a peer that failed in TLS.
func (n *Node) logDialTLS(peer uint64, addr string, err error) {
	if errors.Is(err, wire.ErrTLS) && n.tlsLog.allow("out "+addr+" "+innermost(err)) {
		n.log.Warn().Err(err).Uint64("peer", peer).Str("addr", addr).Msg("TLS handshake with peer failed")
	}
}

// innermost is the message of the deepest error of err's chain: the
// reason, without the addresses the wrappers add.
func innermost(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}
