package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"synod/wire/tlsconf"
)

// TestCertsCommand: synod certs makes a CA and the certificates it signs,
// refuses to replace files or to sign without a CA, and a malformed file
// stops a replica or proxy naming it.
func TestCertsCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	tests := []struct {
		args []string
		code int
		err  string // in the error, "" for none
	}{
		{[]string{"certs", "node", "n1", "--dir", dir}, 1, "make one with synod certs ca"},
		{[]string{"certs", "ca", "--dir", dir}, 0, ""},
		{[]string{"certs", "ca", "--dir", dir}, 1, "file exists"},
		{[]string{"certs", "node", "n1", "--dir", dir, "--hosts", "db1.example,10.0.0.1"}, 0, ""},
		{[]string{"certs", "node", "n1", "--dir", dir}, 1, "file exists"},
		{[]string{"certs", "node", "n1", "--dir", dir, "--overwrite", "--hosts", "db1.example,10.0.0.1"}, 0, ""},
		{[]string{"certs", "proxy", "p", "--dir", dir, "--not-after", "2020-01-01T00:00:00Z"}, 0, ""},
		{[]string{"certs", "client", "alice", "--dir", dir}, 0, ""},
		{[]string{"certs", "client", "a/b", "--dir", dir}, exitUsage, "certificate name"},
		{[]string{"certs", "client", "ca", "--dir", dir}, exitUsage, "certificate name"},
		{[]string{"certs", "client", "--dir", dir}, exitUsage, "takes NAME"},
		{[]string{"certs", "node", "x", "--dir", dir, "--not-after", "tomorrow"}, exitUsage, "RFC 3339"},
		{[]string{"certs", "node", "x", "--dir", dir, "--valid-for", "-1h"}, exitUsage, "positive duration"},
	}
	for _, tt := range tests {
		_, errText, code := runVerb(t, "127.0.0.1:1", "", tt.args...)
		if code != tt.code || !strings.Contains(errText, tt.err) {
			t.Errorf("synod %s: exit %d %q, want %d with %q", strings.Join(tt.args, " "), code, errText, tt.code, tt.err)
		}
	}
	b, err := tlsconf.Load(tlsconf.Files{CA: filepath.Join(dir, "ca.crt"), Cert: filepath.Join(dir, "n1.crt"), Key: filepath.Join(dir, "n1.key")})
	if err != nil {
		t.Fatal(err)
	}
	if leaf := b.Leaf(); len(leaf.DNSNames) != 2 || len(leaf.IPAddresses) != 3 || leaf.Subject.OrganizationalUnit[0] != tlsconf.RoleReplica {
		t.Errorf("n1: names %v %v, roles %v", leaf.DNSNames, leaf.IPAddresses, leaf.Subject.OrganizationalUnit)
	}
	if st, err := os.Stat(filepath.Join(dir, "n1.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("n1.key: %v %v, want mode 0600", st.Mode(), err)
	}

	// A malformed key stops a replica before it touches its data, naming the file.
	bad := filepath.Join(t.TempDir(), "bad.key")
	if err := os.WriteFile(bad, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errText, code := runVerb(t, "127.0.0.1:1", "", "node", "--id", "1", "--peers", "1=127.0.0.1:1", "--dir", t.TempDir(),
		"--cacert", filepath.Join(dir, "ca.crt"), "--cert", filepath.Join(dir, "n1.crt"), "--key", bad)
	if code == 0 || !strings.Contains(errText, bad) {
		t.Errorf("node with a malformed key: exit %d %q, want an error naming %s", code, errText, bad)
	}
	_, errText, code = runVerb(t, "127.0.0.1:1", "", "proxy", "--nodes", "1=127.0.0.1:1", "--cacert", filepath.Join(dir, "ca.crt"))
	if code != exitUsage || !strings.Contains(errText, "go together") {
		t.Errorf("proxy with --cacert alone: exit %d %q", code, errText)
	}
}
