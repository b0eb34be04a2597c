package proxy

// tls.go: the proxy's side of TLS (Config.TLS). The replica links dial with
// the bundle's client config (wire checks the replica's certificate and the
// replica checks the proxy's); the line-protocol listener is wrapped in
// TLS, and each client connection's goroutine completes the handshake
// before it reads a request, so a client that fails it is logged once, with
// the reason, and never reaches the parser.

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"time"
)

// tlsHandshakeTimeout bounds a client's TLS handshake.
const tlsHandshakeTimeout = 10 * time.Second

// plaintextReply answers a client that sent a plaintext line to the TLS
// port.
const plaintextReply = "ERR BAD_REQUEST this port speaks TLS (openssl s_client -quiet -connect host:port -CAfile ca.crt, or synod --tls)\r\n"

func (c *Config) replicaTLS() *tls.Config {
	if c.TLS == nil {
		return nil
	}
	return c.TLS.ClientConfig()
}

// wrapListener returns ln in TLS when the proxy has a bundle.
func (c *Config) wrapListener(ln net.Listener) net.Listener {
	if c.TLS == nil {
		return ln
	}
	return tls.NewListener(ln, c.TLS.ServerConfig(false))
}

// handshakeTLS completes a TLS client's handshake, and reports whether the
// connection may be served (always, without TLS).
func (c *conn) handshakeTLS() bool {
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), tlsHandshakeTimeout)
	defer cancel()
	select {
	case <-c.stop:
		return false
	default:
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		var rhe tls.RecordHeaderError
		if errors.As(err, &rhe) && rhe.Conn != nil {
			// A plaintext client (nc): tell it in its own protocol.
			rhe.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			rhe.Conn.Write([]byte(plaintextReply))
		}
		c.s.log.Warn().Err(err).Str("remote", c.nc.RemoteAddr().String()).Msg("client TLS handshake failed")
		return false
	}
	return true
}
