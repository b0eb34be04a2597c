package main

// This file owns `synod up --secure`: the certificates of a local cluster
// (a CA and a node, a proxy and an admin client certificate in
// <dir>/certs, made once and reused), the first admin's password
// (<dir>/admin.password, made once), the flags that give the children TLS
// and users, the dialer up's own connections to the proxy use, and the
// banner saying how to connect. It runs on up's goroutines.

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"synod/wire/line"
	"synod/wire/tlsconf"
)

// upAdmin is the first admin `up --secure` creates.
const upAdmin = "admin"

// upDialer connects to the proxy as up does.
type upDialer func(ctx context.Context, addr string) (*line.Client, error)

func plainDial(ctx context.Context, addr string) (*line.Client, error) {
	return line.Dial(ctx, addr, line.Options{})
}

// upSecure is what a secure up's children and connections need.
type upSecure struct {
	certs, pwFile string
	password      string
	tls           *tls.Config
}

// prepareSecure makes (or finds) the certificates and the admin password.
func prepareSecure(dir string) (*upSecure, error) {
	sec := &upSecure{certs: filepath.Join(dir, "certs"), pwFile: filepath.Join(dir, "admin.password")}
	caCert, caKey := filepath.Join(sec.certs, "ca.crt"), filepath.Join(sec.certs, "ca.key")
	var ca *tlsconf.Issued
	var err error
	if _, statErr := os.Stat(caCert); statErr == nil {
		if ca, err = tlsconf.LoadCA(caCert, caKey); err != nil {
			return nil, fmt.Errorf("up --secure: %w", err)
		}
	} else {
		if ca, err = tlsconf.NewCA("synod local CA", tlsconf.Validity{For: caValidity}); err != nil {
			return nil, err
		}
		if _, _, err := ca.WriteFiles(sec.certs, "ca", false); err != nil {
			return nil, fmt.Errorf("up --secure: %w", err)
		}
	}
	for _, k := range []struct {
		name string
		kind tlsconf.Kind
	}{{"node", tlsconf.KindNode}, {"proxy", tlsconf.KindProxy}, {upAdmin, tlsconf.KindClient}} {
		if _, err := os.Stat(filepath.Join(sec.certs, k.name+".crt")); err == nil {
			continue
		}
		is, err := ca.Issue(k.kind, k.name, nil, tlsconf.Validity{For: leafValidity})
		if err != nil {
			return nil, err
		}
		if _, _, err := is.WriteFiles(sec.certs, k.name, false); err != nil {
			return nil, fmt.Errorf("up --secure: %w", err)
		}
	}
	if _, err := os.Stat(sec.pwFile); errors.Is(err, os.ErrNotExist) {
		raw := make([]byte, 18)
		if _, err := rand.Read(raw); err != nil {
			return nil, err
		}
		if err := os.WriteFile(sec.pwFile, []byte(base64.RawURLEncoding.EncodeToString(raw)+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("up --secure: %w", err)
		}
	}
	if sec.password, err = readPassword(sec.pwFile, nil); err != nil {
		return nil, fmt.Errorf("up --secure: %w", err)
	}
	b, err := tlsconf.Load(tlsconf.Files{CA: caCert, Cert: filepath.Join(sec.certs, upAdmin+".crt"), Key: filepath.Join(sec.certs, upAdmin+".key")})
	if err != nil {
		return nil, fmt.Errorf("up --secure: %w", err)
	}
	sec.tls = b.ClientConfig()
	return sec, nil
}

func (s *upSecure) files(name string) []string {
	return []string{"--cacert", filepath.Join(s.certs, "ca.crt"), "--cert", filepath.Join(s.certs, name+".crt"), "--key", filepath.Join(s.certs, name+".key")}
}

// nodeFlags are a secure replica's extra flags (none without --secure).
func (s *upSecure) nodeFlags() []string {
	if s == nil {
		return nil
	}
	return s.files("node")
}

// proxyFlags are a secure proxy's extra flags.
func (s *upSecure) proxyFlags() []string {
	if s == nil {
		return nil
	}
	return append(s.files("proxy"), "--auth", "--bootstrap-admin", upAdmin, "--bootstrap-password-file", s.pwFile)
}

// dial connects to the proxy as up's own goroutines do: over TLS as the
// admin when secure.
func (u upConfig) dial(ctx context.Context, addr string) (*line.Client, error) {
	if u.Secure == nil {
		return plainDial(ctx, addr)
	}
	cl, err := line.Dial(ctx, addr, line.Options{TLS: u.Secure.tls})
	if err != nil {
		return nil, err
	}
	if _, err := cl.Do(ctx, line.Request{Cmd: line.CmdAuth, Name: upAdmin, Password: u.Secure.password}); err != nil {
		cl.Close()
		return nil, err
	}
	return cl, nil
}

// banner is a secure up's banner.
func (s *upSecure) banner(cfg upConfig, master uint64, cli string) string {
	host, port, _ := net.SplitHostPort(cfg.Listen)
	switch host {
	case "", "0.0.0.0", "::":
		host = "127.0.0.1"
	}
	addr := net.JoinHostPort(host, port)
	var reps []string
	for _, id := range cfg.ids() {
		reps = append(reps, fmt.Sprintf("%d=%s", id, cfg.replicaAddr(id)))
	}
	ca := filepath.Join(s.certs, "ca.crt")
	var b strings.Builder
	fmt.Fprintf(&b, "synod is up with TLS and users: proxy on %s, %d replicas (master: %d), data in %s\n", cfg.Listen, len(reps), master, cfg.Dir)
	fmt.Fprintf(&b, "  replicas  %s (mutual TLS, certificates in %s)\n", strings.Join(reps, " "), s.certs)
	fmt.Fprintf(&b, "  admin     user %s, password in %s\n", upAdmin, s.pwFile)
	fmt.Fprintf(&b, "  try       openssl s_client -quiet -connect %s -CAfile %s\n", addr, ca)
	fmt.Fprintf(&b, "            (then type AUTH %s <password>, then HELP)\n", upAdmin)
	fmt.Fprintf(&b, "  cli       export SYNOD_ADDR=%s SYNOD_CACERT=%s SYNOD_USER=%s SYNOD_PASSWORD_FILE=%s\n", addr, ca, upAdmin, s.pwFile)
	fmt.Fprintf(&b, "            %s put hello world && %s get hello\n", cli, cli)
	fmt.Fprintf(&b, "Ctrl-C stops the cluster; `up --secure` again on the same --dir resumes its data, certificates and users.\n")
	return b.String()
}
