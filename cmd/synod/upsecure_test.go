package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"synod/internal/cluster"
)

// TestUpSecure: `synod up --secure` serves over TLS with users on, prints
// how to connect, and the CLI works as the banner says; without the
// password, or plaintext, it does not; a second run reuses the
// certificates and the admin.
func TestUpSecure(t *testing.T) {
	bin := cluster.Binary(t)
	requireProxy(t, bin)
	base, listen := freeBase(t, 3)
	dataDir := filepath.Join(t.TempDir(), "synod-data")
	upArgs := []string{"up", "--secure", "--dir", dataDir, "--listen", listen, "--base-port", strconv.Itoa(base), "--grace", "20s"}
	ca, pw := filepath.Join(dataDir, "certs", "ca.crt"), filepath.Join(dataDir, "admin.password")

	for run := 1; run <= 2; run++ {
		u := startUp(t, bin, "up"+strconv.Itoa(run), upArgs...)
		b := u.waitBanner()
		for _, want := range []string{"with TLS and users", "openssl s_client -quiet -connect " + listen + " -CAfile " + ca, "SYNOD_PASSWORD_FILE=" + pw} {
			if !strings.Contains(b, want) {
				t.Fatalf("banner lacks %q:\n%s", want, b)
			}
		}
		if st, err := os.Stat(pw); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v, want mode 0600", pw, st.Mode(), err)
		}
		r := cliRunner{t: t, bin: bin, addr: listen}
		secure := []string{"--cacert", ca, "--user", "admin", "--password-file", pw}
		if run == 1 {
			r.ok(nil, append(append([]string{"put"}, secure...), "hello", "world")...)
		}
		if out := r.ok(nil, append(append([]string{"get"}, secure...), "hello")...); string(out) != "world\n" {
			t.Fatalf("run %d: get hello = %q", run, out)
		}
		if stderr := r.fails(exitNoPerm, "get", "--cacert", ca, "hello"); !strings.Contains(stderr, "NOPERM") {
			t.Errorf("get without a user: %s", stderr)
		}
		if stderr := r.fails(exitUsage, "get", "hello"); !strings.Contains(stderr, "this port speaks TLS") {
			t.Errorf("plaintext get: %s", stderr)
		}
		// openssl s_client, as the banner says, if the machine has it.
		if _, err := exec.LookPath("openssl"); err == nil {
			pass, _ := os.ReadFile(pw)
			cmd := exec.Command("openssl", "s_client", "-quiet", "-connect", listen, "-CAfile", ca)
			cmd.Stdin = strings.NewReader("AUTH admin " + strings.TrimSpace(string(pass)) + "\nGET hello\nQUIT\n")
			out, _ := cmd.Output()
			if !strings.Contains(string(out), "OK\r\nVALUE 5 ") || !strings.Contains(string(out), "BYE") {
				t.Errorf("openssl s_client session: %q", out)
			}
		}
		u.cmd.Process.Signal(syscall.SIGINT)
		if code := u.wait(); code != 0 {
			t.Fatalf("up exited %d", code)
		}
	}
}
