package wire

// tls.go: TLS under the framed protocol. With Options.TLS set, Dial and
// Accept run a TLS handshake on the TCP connection before the hello, within
// the same handshake deadline, and then hold the certificate of the other
// side to the role it claims. Runs on the goroutine that calls Dial or
// Accept.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"
)

// ErrTLS is returned by Dial and Accept when the TLS handshake fails
// (a certificate missing, expired, from another CA, or a peer that does
// not speak TLS), and when the peer's certificate does not grant the role
// it claims. A plaintext Dial whose peer closes the connection during the
// handshake gets it too: that is what a TLS peer does.
var ErrTLS = errors.New("wire: tls")

// tlsHandshake wraps nc in TLS as the client (server false) or the server
// and completes the handshake by deadline or ctx.
func tlsHandshake(ctx context.Context, nc net.Conn, cfg *tls.Config, addr string, server bool, deadline time.Time) (*tls.Conn, error) {
	var tc *tls.Conn
	if server {
		tc = tls.Server(nc, cfg)
	} else {
		if cfg.ServerName == "" {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				host = addr
			}
			cfg = cfg.Clone()
			cfg.ServerName = host
		}
		tc = tls.Client(nc, cfg)
	}
	if err := nc.SetDeadline(deadline); err != nil {
		return nil, err
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("%w: handshake: %w", ErrTLS, err)
	}
	return tc, nil
}

// certGrants reports whether a TLS peer's certificate lets it claim role:
// its Subject.OrganizationalUnit names the role, or names RoleReplica,
// which may claim any (a replica also fetches snapshots and joins as a
// client). Without TLS every claim stands.
func certGrants(nc net.Conn, role string) error {
	tc, ok := nc.(*tls.Conn)
	if !ok {
		return nil
	}
	cs := tc.ConnectionState()
	if len(cs.PeerCertificates) == 0 {
		return fmt.Errorf("%w: no peer certificate", ErrTLS)
	}
	leaf := cs.PeerCertificates[0]
	ous := leaf.Subject.OrganizationalUnit
	if slices.Contains(ous, role) || slices.Contains(ous, RoleReplica) {
		return nil
	}
	return fmt.Errorf("%w: certificate %q grants roles %v, not %s", ErrTLS, leaf.Subject.CommonName, ous, role)
}

// isTLSAlert reports whether err carries an alert the TLS peer sent
// (crypto/tls reports one as a *net.OpError of Op "remote error").
func isTLSAlert(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "remote error"
}
