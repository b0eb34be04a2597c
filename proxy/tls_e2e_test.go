package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"synod/internal/cluster"
	"synod/wire/line"
	"synod/wire/tlsconf"
)

// testCerts is a cluster's certificates, made by `synod certs` as an
// operator would: the cluster CA with a node, a proxy and a client
// certificate, an expired node and proxy certificate of the same CA, and
// a node and proxy certificate of another CA.
type testCerts struct {
	dir, other string
}

func makeCerts(t *testing.T) *testCerts {
	t.Helper()
	bin := cluster.Binary(t)
	tc := &testCerts{dir: filepath.Join(t.TempDir(), "certs"), other: filepath.Join(t.TempDir(), "other")}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(bin, append([]string{"certs"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("synod certs %v: %v\n%s", args, err, out)
		}
	}
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	run("ca", "--dir", tc.dir)
	run("node", "node", "--dir", tc.dir)
	run("proxy", "proxy", "--dir", tc.dir)
	run("client", "admin", "--dir", tc.dir)
	run("node", "oldnode", "--dir", tc.dir, "--not-after", past)
	run("proxy", "oldproxy", "--dir", tc.dir, "--not-after", past)
	run("ca", "--dir", tc.other, "--name", "another CA")
	run("node", "node", "--dir", tc.other)
	run("proxy", "proxy", "--dir", tc.other)
	return tc
}

// flags are the --cacert, --cert and --key of certificate name in dir,
// trusting dir's CA.
func certFlags(dir, name string) []string {
	return []string{"--cacert=" + filepath.Join(dir, "ca.crt"), "--cert=" + filepath.Join(dir, name+".crt"), "--key=" + filepath.Join(dir, name+".key")}
}

// bundle loads certificate name of the cluster CA.
func (tc *testCerts) bundle(t testing.TB, name string) *tlsconf.Bundle {
	t.Helper()
	b, err := tlsconf.Load(tlsconf.Files{CA: filepath.Join(tc.dir, "ca.crt"), Cert: filepath.Join(tc.dir, name+".crt"), Key: filepath.Join(tc.dir, name+".key")})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// caOnly is a client config that trusts the cluster CA and sends no
// certificate, as `synod --cacert` or `openssl s_client -CAfile` do.
func (tc *testCerts) caOnly(t testing.TB) *tls.Config {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(tc.dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		t.Fatal("no CA certificate")
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}
}

// dialRawTLS is dialRaw over TLS.
func dialRawTLS(t testing.TB, addr string, cfg *tls.Config) *rawConn {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	cfg = cfg.Clone()
	cfg.ServerName = "127.0.0.1"
	nc, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// logShows waits until p's log, past its first from bytes, holds every
// one of subs.
func logShows(t *testing.T, what string, p *cluster.Proc, from int, subs ...string) {
	t.Helper()
	logShowsTB(t, what, p, from, subs...)
}

func logShowsTB(t testing.TB, what string, p *cluster.Proc, from int, subs ...string) {
	t.Helper()
	eventually(t, what, func() bool {
		out := p.Output()
		if len(out) < from {
			return false
		}
		for _, s := range subs {
			if !strings.Contains(out[from:], s) {
				return false
			}
		}
		return true
	})
}

// TestTLSEndToEnd: a cluster started with certificates from `synod certs`
// serves over TLS on every link; a proxy or a replica whose certificate is
// of another CA, expired, or missing is refused at the handshake, and both
// sides say so in their logs.
func TestTLSEndToEnd(t *testing.T) {
	tc := makeCerts(t)
	proxyTLS := tc.bundle(t, "proxy").ClientConfig()
	c := cluster.New(t, cluster.Options{NodeFlags: append(certFlags(tc.dir, "node"), fastFlags...), TLS: proxyTLS})
	p := c.StartProxy(t, append([]string{"--poll=50ms"}, certFlags(tc.dir, "proxy")...)...)
	rc := dialRawTLS(t, p.Addr, tc.caOnly(t))
	waitMaster(t, rc)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, cfg := range []*tls.Config{tc.bundle(t, "admin").ClientConfig(), tc.caOnly(t)} {
		cl, err := line.Dial(ctx, p.Addr, line.Options{TLS: cfg})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Put(ctx, "greeting", []byte("hello over TLS")); err != nil {
			t.Fatal(err)
		}
		v, _, err := cl.Get(ctx, "greeting", 0)
		if err != nil || string(v) != "hello over TLS" {
			t.Fatalf("GET greeting: %q, %v", v, err)
		}
		cl.Close()
	}

	// A plaintext client (nc) is told in its own protocol.
	plain := dialRaw(t, p.Addr)
	plain.send("PING\r\n")
	if l := plain.line(); !strings.HasPrefix(l, "ERR BAD_REQUEST this port speaks TLS") {
		t.Errorf("plaintext PING to the TLS port: %q", l)
	}

	// A refused proxy is given replica 1 alone, and a refused replica
	// dials 1 and 2: replica 2's log is the one that shows a plaintext
	// replica's attempts (repeated reasons from one host are logged once per
	// 10 s).
	t.Run("proxy refused", func(t *testing.T) {
		for _, tt := range []struct {
			name        string
			flags       []string
			proxySays   string // in the refused proxy's log
			replicaSays string // in replica 1's log
		}{
			{"another CA", certFlags(tc.other, "proxy"), "certificate signed by unknown authority", "remote error: tls: bad certificate"},
			{"expired", certFlags(tc.dir, "oldproxy"), "bad certificate", "oldproxy"},
			{"none", nil, "the peer closed a plaintext handshake", "first record does not look like a TLS handshake"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				from := len(c.Nodes[1].Output())
				bad := c.StartProxyNodes(t, "1="+c.Addrs[1], tt.flags...)
				logShows(t, "the refused proxy's log line", bad.Proc, 0, "replica unreachable", tt.proxySays)
				logShows(t, "replica 1's log line", c.Nodes[1], from, "TLS handshake failed", tt.replicaSays)
				bad.Kill()
			})
		}
	})

	t.Run("replica refused", func(t *testing.T) {
		n3 := c.Nodes[3]
		good := n3.Args
		defer func() {
			n3.Kill()
			n3.Args = good
			n3.Start()
			if _, err := c.WaitConverged(ctx, 1); err != nil {
				t.Error(err)
			}
		}()
		for _, tt := range []struct {
			name       string
			flags      []string
			itSays     string // in the refused replica's log
			othersSays string // in replica 2's log
		}{
			{"another CA", certFlags(tc.other, "node"), "another CA", "another CA"},
			{"expired", certFlags(tc.dir, "oldnode"), "bad certificate", "oldnode"},
			{"none", nil, "the peer closed a plaintext handshake", "first record does not look like a TLS handshake"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				n3.Kill()
				var args []string
				for _, a := range good {
					if !strings.HasPrefix(a, "--cacert=") && !strings.HasPrefix(a, "--cert=") && !strings.HasPrefix(a, "--key=") {
						args = append(args, a)
					}
				}
				from3, from2 := len(n3.Output()), len(c.Nodes[2].Output())
				n3.Args = append(args, tt.flags...)
				n3.Start()
				logShows(t, "the refused replica's log line", n3, from3, "TLS handshake", tt.itSays)
				logShows(t, "replica 2's log line", c.Nodes[2], from2, "TLS handshake failed", tt.othersSays)
				// The two others still serve.
				cl, err := line.Dial(ctx, p.Addr, line.Options{TLS: tc.caOnly(t)})
				if err != nil {
					t.Fatal(err)
				}
				defer cl.Close()
				if _, err := cl.Put(ctx, "still", []byte(tt.name)); err != nil {
					t.Fatal(err)
				}
			})
		}
	})

	t.Run("reload on SIGHUP", func(t *testing.T) {
		// Rotate the proxy's certificate in place and reload it.
		bin := cluster.Binary(t)
		if out, err := exec.Command(bin, "certs", "proxy", "proxy", "--dir", tc.dir, "--overwrite").CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if err := p.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		logShows(t, "the reload", p.Proc, 0, "SIGHUP: certificates reloaded")
		cl, err := line.Dial(ctx, p.Addr, line.Options{TLS: tc.caOnly(t)})
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if _, err := cl.Put(ctx, "rotated", []byte("yes")); err != nil {
			t.Fatal(err)
		}
	})
}

// TestFailoverKill9TLSAuth is TestFailoverKill9 with TLS on every link and
// users on: every writer authenticates as the bootstrap admin.
func TestFailoverKill9TLSAuth(t *testing.T) {
	tc := makeCerts(t)
	ca := tc.caOnly(t)
	pwFile := writePassword(t, "root pw")
	failoverKill9(t, failoverRig{
		cluster:    cluster.Options{NodeFlags: certFlags(tc.dir, "node"), TLS: tc.bundle(t, "proxy").ClientConfig()},
		proxyFlags: append(certFlags(tc.dir, "proxy"), "--auth", "--bootstrap-admin=root", "--bootstrap-password-file="+pwFile),
		ready: func(t testing.TB, p *cluster.Proxy) {
			logShowsTB(t, "the bootstrap admin", p.Proc, 0, "bootstrap admin created")
		},
		raw: func(t testing.TB, addr string) *rawConn {
			rc := dialRawTLS(t, addr, ca)
			rc.send("AUTH root root pw\r\n")
			if l := rc.line(); l != "OK" {
				t.Fatalf("AUTH: %q", l)
			}
			return rc
		},
		dial: func(ctx context.Context, addr string) (*line.Client, error) {
			cl, err := line.Dial(ctx, addr, line.Options{TLS: ca})
			if err != nil {
				return nil, err
			}
			if _, err := cl.Do(ctx, line.Request{Cmd: line.CmdAuth, Name: "root", Password: "root pw"}); err != nil {
				cl.Close()
				return nil, err
			}
			return cl, nil
		},
	})
}

// writePassword writes pw to a file of its own and returns its path.
func writePassword(t testing.TB, pw string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(f, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}
