package wire

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"synod/wire/tlsconf"
)

// testPKI is a CA and bundles of certificates it issued, on disk.
type testPKI struct {
	dir string
	ca  *tlsconf.Issued
}

func newTestPKI(t *testing.T, name string) *testPKI {
	t.Helper()
	ca, err := tlsconf.NewCA(name, tlsconf.Validity{For: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, _, err := ca.WriteFiles(dir, "ca", false); err != nil {
		t.Fatal(err)
	}
	return &testPKI{dir: dir, ca: ca}
}

// bundle issues a certificate of kind and loads it with trustCA's CA file
// (the PKI's own when nil).
func (p *testPKI) bundle(t *testing.T, kind tlsconf.Kind, name string, v tlsconf.Validity, trust *testPKI) *tlsconf.Bundle {
	t.Helper()
	is, err := p.ca.Issue(kind, name, nil, v)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := is.WriteFiles(p.dir, name, true)
	if err != nil {
		t.Fatal(err)
	}
	if trust == nil {
		trust = p
	}
	b, err := tlsconf.Load(tlsconf.Files{CA: trust.dir + "/ca.crt", Cert: cert, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTLSHandshake(t *testing.T) {
	hour := tlsconf.Validity{For: time.Hour}
	expired := tlsconf.Validity{NotAfter: time.Now().Add(-time.Minute)}
	pki, other := newTestPKI(t, "cluster CA"), newTestPKI(t, "other CA")
	server := pki.bundle(t, tlsconf.KindNode, "server", hour, nil)
	tests := []struct {
		name   string
		client func() Options
		hello  Hello
		ok     bool
	}{
		{"replica", func() Options { return Options{TLS: pki.bundle(t, tlsconf.KindNode, "n2", hour, nil).ClientConfig()} }, replicaHello(2), true},
		{"proxy", func() Options { return Options{TLS: pki.bundle(t, tlsconf.KindProxy, "p", hour, nil).ClientConfig()} }, Hello{ClusterID: testCluster, Role: RoleProxy}, true},
		{"proxy claiming replica", func() Options { return Options{TLS: pki.bundle(t, tlsconf.KindProxy, "p", hour, nil).ClientConfig()} }, replicaHello(2), false},
		{"user certificate", func() Options { return Options{TLS: pki.bundle(t, tlsconf.KindClient, "u", hour, nil).ClientConfig()} }, Hello{ClusterID: testCluster, Role: RoleClient}, false},
		{"another CA", func() Options { return Options{TLS: other.bundle(t, tlsconf.KindNode, "x", hour, pki).ClientConfig()} }, replicaHello(2), false},
		{"expired", func() Options {
			return Options{TLS: pki.bundle(t, tlsconf.KindNode, "old", expired, nil).ClientConfig()}
		}, replicaHello(2), false},
		{"no certificate", func() Options {
			cfg := pki.bundle(t, tlsconf.KindNode, "n3", hour, nil).ClientConfig()
			cfg.GetClientCertificate = nil
			return Options{TLS: cfg}
		}, replicaHello(2), false},
		{"plaintext", func() Options { return Options{HandshakeTimeout: time.Second} }, replicaHello(2), false},
		{"server of another CA", func() Options { return Options{TLS: pki.bundle(t, tlsconf.KindNode, "n4", hour, other).ClientConfig()} }, replicaHello(2), false},
	}
	s := startServer(t, serverConfig{opts: Options{TLS: server.ServerConfig(true), HandshakeTimeout: time.Second}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := Dial(context.Background(), s.addr(), tt.hello, tt.client())
			if tt.ok {
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				ping(t, c, 1)
				c.Close()
				s.result(t) // the echo's end
				return
			}
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			if tt.name != "plaintext" && !errors.Is(err, ErrTLS) && !errors.Is(err, ErrRefused) {
				t.Errorf("Dial: %v, want ErrTLS or ErrRefused", err)
			}
			serr := s.result(t)
			if !errors.Is(serr, ErrTLS) {
				t.Errorf("Accept: %v, want ErrTLS", serr)
			}
			t.Logf("client: %v\nserver: %v", err, serr)
		})
	}
}

func TestTLSReload(t *testing.T) {
	hour := tlsconf.Validity{For: time.Hour}
	pki := newTestPKI(t, "cluster CA")
	server := pki.bundle(t, tlsconf.KindNode, "server", hour, nil)
	s := startServer(t, serverConfig{opts: Options{TLS: server.ServerConfig(true)}})
	client := pki.bundle(t, tlsconf.KindNode, "client", hour, nil)

	// A new CA replaces the old one on disk; until the reload the old
	// material serves, after it only certificates of the new CA pass.
	next := newTestPKI(t, "next CA")
	is, err := next.ca.Issue(tlsconf.KindNode, "server", nil, hour)
	if err != nil {
		t.Fatal(err)
	}
	f := server.Files()
	if _, _, err := next.ca.WriteFiles(pki.dir, "ca", true); err != nil {
		t.Fatal(err)
	}
	if _, _, err := is.WriteFiles(pki.dir, "server", true); err != nil {
		t.Fatal(err)
	}
	c, _, err := Dial(context.Background(), s.addr(), replicaHello(2), Options{TLS: client.ClientConfig()})
	if err != nil {
		t.Fatalf("before reload: %v", err)
	}
	c.Close()
	s.result(t)
	if err := server.Reload(); err != nil {
		t.Fatal(err)
	}
	if server.Leaf().Issuer.CommonName != "next CA" {
		t.Fatalf("reloaded leaf issued by %q", server.Leaf().Issuer.CommonName)
	}
	if c, _, err := Dial(context.Background(), s.addr(), replicaHello(2), Options{TLS: client.ClientConfig()}); err == nil {
		c.Close()
		t.Fatal("a certificate of the old CA passed after the reload")
	}
	if err := s.result(t); !errors.Is(err, ErrTLS) {
		t.Errorf("Accept: %v, want ErrTLS", err)
	}
	fresh := next.bundle(t, tlsconf.KindNode, "client2", hour, nil)
	c, _, err = Dial(context.Background(), s.addr(), replicaHello(2), Options{TLS: fresh.ClientConfig()})
	if err != nil {
		t.Fatalf("after reload: %v", err)
	}
	c.Close()
	s.result(t)

	// A broken file on reload keeps the material in use.
	if err := os.WriteFile(f.Key, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := server.Reload(); !errors.Is(err, tlsconf.ErrNoPEM) {
		t.Fatalf("reload of a broken key: %v, want ErrNoPEM", err)
	}
	c, _, err = Dial(context.Background(), s.addr(), replicaHello(2), Options{TLS: fresh.ClientConfig()})
	if err != nil {
		t.Fatalf("after a failed reload: %v", err)
	}
	c.Close()
}
