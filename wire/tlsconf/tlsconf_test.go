package tlsconf

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writePKI(t *testing.T) (dir string, ca *Issued) {
	t.Helper()
	dir = t.TempDir()
	ca, err := NewCA("test CA", Validity{For: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca.WriteFiles(dir, "ca", false); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"node", "other"} {
		is, err := ca.Issue(KindNode, name, []string{"db1.example", "10.0.0.1"}, Validity{For: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := is.WriteFiles(dir, name, false); err != nil {
			t.Fatal(err)
		}
	}
	return dir, ca
}

func TestLoadNamesTheFile(t *testing.T) {
	dir, _ := writePKI(t)
	p := func(name string) string { return filepath.Join(dir, name) }
	if err := os.WriteFile(p("garbage"), []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p("empty"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		files Files
		want  error
		file  string
	}{
		{"good", Files{p("ca.crt"), p("node.crt"), p("node.key")}, nil, ""},
		{"missing CA", Files{p("nope.crt"), p("node.crt"), p("node.key")}, os.ErrNotExist, "nope.crt"},
		{"CA is a leaf", Files{p("node.crt"), p("node.crt"), p("node.key")}, ErrBadCert, "node.crt"},
		{"malformed certificate", Files{p("ca.crt"), p("garbage"), p("node.key")}, ErrBadCert, "garbage"},
		{"empty certificate", Files{p("ca.crt"), p("empty"), p("node.key")}, ErrNoPEM, "empty"},
		{"certificate as key", Files{p("ca.crt"), p("node.crt"), p("node.crt")}, ErrNoPEM, "node.crt"},
		{"another's key", Files{p("ca.crt"), p("node.crt"), p("other.key")}, ErrBadKey, "other.key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Load(tt.files)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if got := b.Leaf().Subject.CommonName; got != "node" {
					t.Errorf("leaf %q", got)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Load: %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.file) {
				t.Errorf("Load: %v does not name %s", err, tt.file)
			}
		})
	}
}

func TestIssue(t *testing.T) {
	dir, ca := writePKI(t)
	again, err := LoadCA(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		kind  Kind
		roles string
		names int // DNS names: localhost plus the hosts given
	}{
		{KindNode, "[replica]", 2},
		{KindProxy, "[proxy]", 2},
		{KindClient, "[user]", 0},
	}
	for _, tt := range tests {
		is, err := again.Issue(tt.kind, "x", []string{"db1.example", "10.0.0.1"}, Validity{For: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if err := is.Cert.CheckSignatureFrom(ca.Cert); err != nil {
			t.Errorf("kind %d: %v", tt.kind, err)
		}
		if got := is.Cert.Subject.OrganizationalUnit; len(got) != 1 || "["+got[0]+"]" != tt.roles {
			t.Errorf("kind %d: roles %v, want %s", tt.kind, got, tt.roles)
		}
		if len(is.Cert.DNSNames) != tt.names {
			t.Errorf("kind %d: DNS names %v", tt.kind, is.Cert.DNSNames)
		}
	}
	if _, _, err := ca.WriteFiles(dir, "ca", false); !errors.Is(err, ErrExists) {
		t.Errorf("WriteFiles over an existing CA: %v, want ErrExists", err)
	}
}

func FuzzParseCertificates(f *testing.F) {
	ca, err := NewCA("fuzz", Validity{For: time.Hour})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ca.CertPEM)
	f.Add(ca.KeyPEM)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := ParseCertificates(data)
		if err == nil && len(certs) == 0 {
			t.Fatal("no error and no certificate")
		}
	})
}

func FuzzParseKey(f *testing.F) {
	ca, err := NewCA("fuzz", Validity{For: time.Hour})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ca.KeyPEM)
	f.Add(ca.CertPEM)
	f.Add([]byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"))
	f.Add([]byte("-----BEGIN RSA PRIVATE KEY-----\n\n-----END RSA PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		key, err := ParseKey(data)
		if err == nil && key == nil {
			t.Fatal("no error and no key")
		}
	})
}

// TestOptionalClientCert: the proxy's port (ServerConfig(false)) takes a
// client without a certificate, checks one that is sent, and refuses one
// of another CA.
func TestOptionalClientCert(t *testing.T) {
	dir, _ := writePKI(t)
	server, err := Load(Files{filepath.Join(dir, "ca.crt"), filepath.Join(dir, "node.crt"), filepath.Join(dir, "node.key")})
	if err != nil {
		t.Fatal(err)
	}
	otherDir, _ := writePKI(t)
	other, err := Load(Files{filepath.Join(dir, "ca.crt"), filepath.Join(otherDir, "node.crt"), filepath.Join(otherDir, "node.key")})
	if err != nil {
		t.Fatal(err)
	}
	mine, err := Load(Files{filepath.Join(dir, "ca.crt"), filepath.Join(dir, "other.crt"), filepath.Join(dir, "other.key")})
	if err != nil {
		t.Fatal(err)
	}
	noCert := mine.ClientConfig()
	noCert.GetClientCertificate = nil
	tests := []struct {
		name   string
		client *tls.Config
		ok     bool
	}{
		{"no certificate", noCert, true},
		{"the cluster's", mine.ClientConfig(), true},
		{"another CA's", other.ClientConfig(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cn, sn := net.Pipe()
			defer cn.Close()
			defer sn.Close()
			done := make(chan error, 1)
			go func() {
				s := tls.Server(sn, server.ServerConfig(false))
				done <- s.Handshake()
			}()
			cfg := tt.client.Clone()
			cfg.ServerName = "localhost"
			c := tls.Client(cn, cfg)
			cerr := c.Handshake()
			// TLS 1.3: the server's verdict on the client comes after the
			// client's handshake; drain what it sends until the pipe closes.
			drained := make(chan struct{})
			go func() {
				defer close(drained)
				io.Copy(io.Discard, c)
			}()
			serr := <-done
			cn.Close()
			<-drained
			if tt.ok && serr != nil {
				t.Fatalf("server refused: %v (client %v)", serr, cerr)
			}
			if !tt.ok && !errors.Is(serr, ErrPeerRefused) {
				t.Fatalf("server: %v, want ErrPeerRefused", serr)
			}
		})
	}
}
