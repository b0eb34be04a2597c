// Package tlsconf owns synod's TLS material: reading the cluster CA, a
// certificate and its key from PEM files (every error names the file),
// keeping them in a Bundle that SIGHUP can reload without a restart, and
// building the tls.Config of each side of a link from it. gen.go makes the
// certificates `synod certs` and `synod up --secure` write.
//
// Every link is TLS 1.3. The configs never hold a certificate or a CA pool
// of their own: GetCertificate, GetClientCertificate and VerifyConnection
// read the bundle's current material on every handshake, so a reload
// applies to the next connection and leaves open ones alone.
//
// A certificate's Subject.OrganizationalUnit lists the roles its holder
// may claim (RoleReplica, RoleProxy, RoleUser); wire checks them against
// the role a peer announces in its hello.
//
// Reload may be called from any goroutine (the signal handler's); the
// configs are used by every goroutine that dials or accepts.
package tlsconf

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"time"
)

// Roles a certificate grants, in its Subject.OrganizationalUnit. The first
// two are wire roles (wire.RoleReplica, wire.RoleProxy); RoleUser marks a
// line-protocol client's certificate, which no replica accepts.
const (
	RoleReplica = "replica"
	RoleProxy   = "proxy"
	RoleUser    = "user"
)

// Sentinel errors, wrapped with the file or the peer they concern.
var (
	// ErrNoPEM is returned for a file without the PEM block it should hold.
	ErrNoPEM = errors.New("tlsconf: no PEM block")
	// ErrBadCert is returned for a certificate that does not parse, or a
	// CA file holding something that is not a CA certificate.
	ErrBadCert = errors.New("tlsconf: bad certificate")
	// ErrBadKey is returned for a key that does not parse, is of a kind
	// synod does not use, or does not match its certificate.
	ErrBadKey = errors.New("tlsconf: bad key")
	// ErrPeerRefused is returned by VerifyConnection for a peer whose
	// certificate is missing, expired, or not from the cluster's CA.
	ErrPeerRefused = errors.New("tlsconf: peer certificate refused")
)

// Files names the PEM files of a bundle.
type Files struct {
	CA   string // the cluster CA's certificate(s)
	Cert string // this process's certificate (its chain may follow it)
	Key  string // the certificate's private key
}

// material is one loaded generation of a bundle's files.
type material struct {
	pool *x509.CertPool
	cert *tls.Certificate
	leaf *x509.Certificate
}

// Bundle holds the current TLS material of a process. The zero value is
// not usable; make one with Load.
type Bundle struct {
	files Files
	cur   atomic.Pointer[material]
	now   func() time.Time
}

// Load reads files into a new Bundle. A missing, unreadable or malformed
// file is an error naming it.
func Load(files Files) (*Bundle, error) {
	b := &Bundle{files: files, now: time.Now}
	if err := b.Reload(); err != nil {
		return nil, err
	}
	return b, nil
}

// Files returns the files the bundle reads.
func (b *Bundle) Files() Files { return b.files }

// Reload reads the bundle's files again and, if they all load, makes them
// the material of every later handshake. On error the material in use
// stays as it was.
func (b *Bundle) Reload() error {
	m, err := loadMaterial(b.files)
	if err != nil {
		return err
	}
	b.cur.Store(m)
	return nil
}

// Leaf returns the certificate in use (for logs: its subject and expiry).
func (b *Bundle) Leaf() *x509.Certificate { return b.cur.Load().leaf }

func loadMaterial(f Files) (*material, error) {
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: CA file: %w", err)
	}
	cas, err := ParseCertificates(caPEM)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: CA file %s: %w", f.CA, err)
	}
	pool := x509.NewCertPool()
	for _, ca := range cas {
		if !ca.IsCA {
			return nil, fmt.Errorf("tlsconf: CA file %s: %w: %q is not a CA certificate", f.CA, ErrBadCert, ca.Subject.CommonName)
		}
		pool.AddCert(ca)
	}
	certPEM, err := os.ReadFile(f.Cert)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: certificate file: %w", err)
	}
	chain, err := ParseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: certificate file %s: %w", f.Cert, err)
	}
	keyPEM, err := os.ReadFile(f.Key)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: key file: %w", err)
	}
	key, err := ParseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: key file %s: %w", f.Key, err)
	}
	if !publicKeysEqual(chain[0].PublicKey, key.Public()) {
		return nil, fmt.Errorf("tlsconf: key file %s: %w: it is not the key of %s", f.Key, ErrBadKey, f.Cert)
	}
	cert := &tls.Certificate{Leaf: chain[0], PrivateKey: key}
	for _, c := range chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	return &material{pool: pool, cert: cert, leaf: chain[0]}, nil
}

// ParseCertificates reads every CERTIFICATE block of data, in order. Other
// block types are skipped; no certificate at all is ErrNoPEM.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for n := 1; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: block %d: %w", ErrBadCert, n, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: no CERTIFICATE block", ErrNoPEM)
	}
	return certs, nil
}

// ParseKey reads the first private key block of data: PKCS #8, SEC 1 (EC)
// or PKCS #1 (RSA).
func ParseKey(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, fmt.Errorf("%w: no PRIVATE KEY block", ErrNoPEM)
		}
		var key any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrBadKey, block.Type, err)
		}
		switch k := key.(type) {
		case *ecdsa.PrivateKey:
			return k, nil
		case *rsa.PrivateKey:
			return k, nil
		case ed25519.PrivateKey:
			return k, nil
		}
		return nil, fmt.Errorf("%w: unsupported key type %T", ErrBadKey, key)
	}
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// ServerConfig is the config of a listener. requireClient makes a client
// certificate from the CA mandatory (replicas); otherwise one is checked
// only if the client sends it (the proxy's line-protocol port).
func (b *Bundle) ServerConfig(requireClient bool) *tls.Config {
	auth := tls.RequestClientCert // verified by VerifyConnection, against the current CA
	if requireClient {
		auth = tls.RequireAnyClientCert
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ClientAuth: auth,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return b.cur.Load().cert, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				if requireClient {
					return fmt.Errorf("%w: the client sent no certificate", ErrPeerRefused)
				}
				return nil
			}
			return b.verify(cs, "", x509.ExtKeyUsageClientAuth)
		},
	}
}

// ClientConfig is the config of a dialer. The server's certificate must be
// from the CA and name the host dialled (Dial's caller sets ServerName, or
// DialConfig does).
func (b *Bundle) ClientConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The chain and the name are checked by VerifyConnection against
		// the bundle's current CA, which a fixed RootCAs could not follow.
		InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return b.cur.Load().cert, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("%w: the server sent no certificate", ErrPeerRefused)
			}
			return b.verify(cs, cs.ServerName, x509.ExtKeyUsageServerAuth)
		},
	}
}

func (b *Bundle) verify(cs tls.ConnectionState, host string, usage x509.ExtKeyUsage) error {
	m := b.cur.Load()
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{
		Roots: m.pool, Intermediates: inter, DNSName: host,
		CurrentTime: b.now(), KeyUsages: []x509.ExtKeyUsage{usage},
	}
	if _, err := leaf.Verify(opts); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrPeerRefused, Describe(leaf), err)
	}
	return nil
}

// Describe names a certificate for a log line: its subject's common name,
// roles and issuer.
func Describe(c *x509.Certificate) string {
	return fmt.Sprintf("%q (roles %v, issued by %q, valid %s to %s)", c.Subject.CommonName, c.Subject.OrganizationalUnit,
		c.Issuer.CommonName, c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
}

// PeerRoles returns the roles the peer's certificate grants (nil without
// TLS or without a peer certificate).
func PeerRoles(cs *tls.ConnectionState) []string {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return nil
	}
	return cs.PeerCertificates[0].Subject.OrganizationalUnit
}

// HasRole reports whether the peer's certificate grants role.
func HasRole(cs *tls.ConnectionState, role string) bool {
	return slices.Contains(PeerRoles(cs), role)
}
