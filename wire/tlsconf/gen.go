package tlsconf

// gen.go: making a cluster's certificates, for `synod certs` and `synod up
// --secure` (in the manner of mkcert or cockroach's `cert`): an ECDSA P-256
// CA, and leaf certificates it signs, each naming its roles and the hosts
// it serves. Pure functions; files are written with WriteFiles, keys 0600.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// ErrExists is returned by WriteFiles when a file it would write exists.
var ErrExists = errors.New("tlsconf: file exists")

// Kind is the kind of leaf certificate: what it is for.
type Kind int

// Kinds of certificate.
const (
	KindNode   Kind = iota + 1 // a replica: serves and dials peers; role replica
	KindProxy                  // a proxy: serves clients, dials replicas; role proxy
	KindClient                 // a line-protocol client; role user, dials only
)

// ParseKind reads "node", "proxy" or "client".
func ParseKind(s string) (Kind, error) {
	switch s {
	case "node":
		return KindNode, nil
	case "proxy":
		return KindProxy, nil
	case "client":
		return KindClient, nil
	}
	return 0, fmt.Errorf("tlsconf: unknown certificate kind %q (node, proxy or client)", s)
}

// Issued is a certificate and its key, PEM-encoded.
type Issued struct {
	CertPEM []byte
	KeyPEM  []byte
	Cert    *x509.Certificate
	key     *ecdsa.PrivateKey
}

// Validity is when a certificate is valid. A zero NotAfter means For from
// now; NotBefore is an hour before now (clock skew) or before NotAfter.
type Validity struct {
	For      time.Duration
	NotAfter time.Time
}

func (v Validity) bounds(now time.Time) (time.Time, time.Time) {
	end := v.NotAfter
	if end.IsZero() {
		end = now.Add(v.For)
	}
	start := now.Add(-time.Hour)
	if end.Before(now) {
		start = end.Add(-time.Hour)
	}
	return start, end
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// NewCA makes a self-signed CA named name.
func NewCA(name string, v Validity) (*Issued, error) {
	key, tmpl, err := newKeyAndTemplate(name, v)
	if err != nil {
		return nil, err
	}
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid, tmpl.IsCA, tmpl.MaxPathLenZero = true, true, true
	return sign(tmpl, tmpl, key, key)
}

// newKeyAndTemplate makes a P-256 key and the part of a certificate
// template every certificate shares: a random serial, the subject name and
// the validity.
func newKeyAndTemplate(name string, v Validity) (*ecdsa.PrivateKey, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsconf: key: %w", err)
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, fmt.Errorf("tlsconf: serial: %w", err)
	}
	start, end := v.bounds(time.Now())
	return key, &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: name, Organization: []string{"synod"}},
		NotBefore:    start,
		NotAfter:     end,
	}, nil
}

// LoadCA reads a CA certificate and key written by NewCA and WriteFiles.
func LoadCA(certFile, keyFile string) (*Issued, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: CA: %w", err)
	}
	certs, err := ParseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: CA file %s: %w", certFile, err)
	}
	if !certs[0].IsCA {
		return nil, fmt.Errorf("tlsconf: CA file %s: %w: not a CA certificate", certFile, ErrBadCert)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: CA key: %w", err)
	}
	key, err := ParseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: CA key file %s: %w", keyFile, err)
	}
	ek, ok := key.(*ecdsa.PrivateKey)
	if !ok || !publicKeysEqual(certs[0].PublicKey, ek.Public()) {
		return nil, fmt.Errorf("tlsconf: CA key file %s: %w: not the ECDSA key of %s", keyFile, ErrBadKey, certFile)
	}
	return &Issued{CertPEM: certPEM, KeyPEM: keyPEM, Cert: certs[0], key: ek}, nil
}

// Issue makes a certificate of kind for name, signed by ca. Hosts are DNS
// names or IP addresses it serves; 127.0.0.1, ::1 and localhost are always
// added, so a local cluster needs none.
func (ca *Issued) Issue(kind Kind, name string, hosts []string, v Validity) (*Issued, error) {
	key, tmpl, err := newKeyAndTemplate(name, v)
	if err != nil {
		return nil, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	switch kind {
	case KindNode:
		tmpl.Subject.OrganizationalUnit = []string{RoleReplica}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	case KindProxy:
		tmpl.Subject.OrganizationalUnit = []string{RoleProxy}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	case KindClient:
		tmpl.Subject.OrganizationalUnit = []string{RoleUser}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	default:
		return nil, fmt.Errorf("tlsconf: unknown certificate kind %d", kind)
	}
	if kind != KindClient {
		seen := map[string]bool{}
		for _, h := range append([]string{"127.0.0.1", "::1", "localhost"}, hosts...) {
			if h == "" || seen[h] {
				continue
			}
			seen[h] = true
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	}
	return sign(tmpl, ca.Cert, key, ca.key)
}

func sign(tmpl, parent *x509.Certificate, key, signer *ecdsa.PrivateKey) (*Issued, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: sign %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: sign %q: %w", tmpl.Subject.CommonName, err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: key of %q: %w", tmpl.Subject.CommonName, err)
	}
	return &Issued{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
		Cert:    cert,
		key:     key,
	}, nil
}

// WriteFiles writes dir/name.crt (0644) and dir/name.key (0600), creating
// dir. It refuses to replace either file unless overwrite is set; an
// existing file gives ErrExists.
func (is *Issued) WriteFiles(dir, name string, overwrite bool) (certFile, keyFile string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", fmt.Errorf("tlsconf: %w", err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if !overwrite {
		for _, f := range []string{certFile, keyFile} {
			if _, err := os.Lstat(f); err == nil {
				return "", "", fmt.Errorf("%w: %s", ErrExists, f)
			}
		}
	}
	// The key first, through a temporary file, so a certificate on disk
	// always has its key beside it.
	for _, w := range []struct {
		file string
		data []byte
		mode os.FileMode
	}{{keyFile, is.KeyPEM, 0o600}, {certFile, is.CertPEM, 0o644}} {
		tmp := w.file + ".tmp"
		if err := os.WriteFile(tmp, w.data, w.mode); err != nil {
			return "", "", fmt.Errorf("tlsconf: %w", err)
		}
		if err := os.Rename(tmp, w.file); err != nil {
			os.Remove(tmp)
			return "", "", fmt.Errorf("tlsconf: %w", err)
		}
	}
	return certFile, keyFile, nil
}
