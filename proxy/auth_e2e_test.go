package proxy

import (
	"context"
	"errors"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"synod/internal/cluster"
	"synod/wire/line"
)

// TestAuthEndToEnd: with TLS and users on, a connection does nothing but
// PING and AUTH before it authenticates; a user whose role reads a/ and
// reads and writes b/ gets ERR NOPERM for PUT a/x and still reads a/x;
// LIST shows only what it may read; the users' own records are never
// served; a revocation reaches live connections; failed AUTHs close the
// connection; the CLI says NOPERM with exit code 4.
func TestAuthEndToEnd(t *testing.T) {
	tc := makeCerts(t)
	ca := tc.caOnly(t)
	pwFile := writePassword(t, "root pw")
	c := cluster.New(t, cluster.Options{NodeFlags: append(certFlags(tc.dir, "node"), fastFlags...), TLS: tc.bundle(t, "proxy").ClientConfig()})
	p := c.StartProxy(t, append(certFlags(tc.dir, "proxy"), "--poll=50ms", "--auth", "--bootstrap-admin=root", "--bootstrap-password-file="+pwFile)...)
	logShows(t, "the bootstrap admin", p.Proc, 0, "bootstrap admin created")

	anon := dialRawTLS(t, p.Addr, ca)
	for _, tt := range []struct{ req, want string }{
		{"PING", "PONG"},
		{"GET a/x", "ERR NOPERM authenticate first: AUTH <user> <password>"},
		{"STATUS", "ERR NOPERM authenticate first: AUTH <user> <password>"},
		{"USER LIST", "ERR NOPERM authenticate first: AUTH <user> <password>"},
		{"AUTH root wrong", "ERR NOPERM invalid user name or password"},
		{"AUTH nobody wrong", "ERR NOPERM invalid user name or password"},
	} {
		anon.send(tt.req + "\r\n")
		if got := anon.line(); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.req, got, tt.want)
		}
	}

	admin := dialRawTLS(t, p.Addr, ca)
	for _, req := range []string{
		"AUTH root root pw", "ROLE ADD reader", "ROLE GRANT reader read a/", "ROLE GRANT reader readwrite b/",
		"USER ADD alice alice pw", "USER GRANT alice reader",
	} {
		admin.send(req + "\r\n")
		if got := admin.line(); got != "OK" {
			t.Fatalf("%s: %q", req, got)
		}
	}
	for _, key := range []string{"a/x", "c/z"} {
		admin.send("PUT " + key + " hello\r\n")
		admin.okIndex()
	}
	admin.send("USER LIST\r\n")
	if got := []string{admin.line(), admin.line(), admin.line()}; strings.Join(got, "|") != "USERS 2|alice roles=reader|root roles=admin" {
		t.Errorf("USER LIST: %q", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	alice, err := line.Dial(ctx, p.Addr, line.Options{TLS: ca})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	if _, err := alice.Do(ctx, line.Request{Cmd: line.CmdAuth, Name: "alice", Password: "alice pw"}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Put(ctx, "a/x", []byte("mine")); !errors.Is(err, line.ErrNoPerm) {
		t.Errorf("PUT a/x as alice: %v, want NOPERM", err)
	}
	if v, _, err := alice.Get(ctx, "a/x", 0); err != nil || string(v) != "hello" {
		t.Errorf("GET a/x as alice: %q, %v", v, err)
	}
	if _, err := alice.Put(ctx, "b/y", []byte("ok")); err != nil {
		t.Errorf("PUT b/y as alice: %v", err)
	}
	for _, key := range []string{"c/z", ".synod/auth/users/root", ".synod/auth/epoch"} {
		if _, _, err := alice.Get(ctx, key, 0); !errors.Is(err, line.ErrNoPerm) {
			t.Errorf("GET %s as alice: %v, want NOPERM", key, err)
		}
	}
	if _, err := alice.Do(ctx, line.Request{Cmd: line.CmdUserList}); !errors.Is(err, line.ErrNoPerm) {
		t.Errorf("USER LIST as alice: %v, want NOPERM", err)
	}
	if _, err := alice.MemberRemove(ctx, 3); !errors.Is(err, line.ErrNoPerm) {
		t.Errorf("MEMBER REMOVE as alice: %v, want NOPERM", err)
	}
	if _, err := alice.Snapshot(ctx, 0, io.Discard, nil); !errors.Is(err, line.ErrNoPerm) {
		t.Errorf("SNAPSHOT as alice: %v, want NOPERM (a backup holds every key)", err)
	}
	keys, err := alice.List(ctx, "")
	if err != nil || strings.Join(keys, ",") != "a/x,b/y" {
		t.Errorf("LIST as alice: %v, %v; want a/x and b/y only", keys, err)
	}
	adminKeys := func() string {
		admin.send("LIST\r\n")
		var ks []string
		n, err := keysCount(admin.line())
		if err != nil {
			t.Fatal(err)
		}
		for range n {
			ks = append(ks, admin.line())
		}
		return strings.Join(ks, ",")
	}
	if got := adminKeys(); got != "a/x,b/y,c/z" {
		t.Errorf("LIST as admin: %s (the reserved keys must not show)", got)
	}

	// A watch of every key shows alice only what she may read.
	watcher := dialRawTLS(t, p.Addr, ca)
	watcher.send("AUTH alice alice pw\r\n")
	if got := watcher.line(); got != "OK" {
		t.Fatalf("AUTH alice: %q", got)
	}
	watcher.send("WATCH *\r\n")
	if got := watcher.line(); !strings.HasPrefix(got, "WATCHING 1 ") {
		t.Fatalf("WATCH *: %q", got)
	}
	nextEvent := func() string {
		for {
			l := watcher.line()
			if strings.HasPrefix(l, "PROGRESS ") {
				continue
			}
			if f := strings.Fields(l); len(f) == 6 && f[0] == "EVENT" {
				watcher.line() // the value
				return f[4]
			}
			t.Fatalf("watch: %q, want an event", l)
		}
	}
	for _, key := range []string{"c/z", "a/x"} {
		admin.send("PUT " + key + " seen\r\n")
		admin.okIndex()
	}
	if got := nextEvent(); got != "a/x" {
		t.Errorf("alice's watch showed %s first, want a/x (c/z is not hers)", got)
	}

	// A revocation reaches a live connection within a poll, and its watches.
	admin.send("ROLE REVOKE reader read a/\r\n")
	if got := admin.line(); got != "OK" {
		t.Fatalf("ROLE REVOKE: %q", got)
	}
	eventually(t, "the revocation", func() bool {
		_, _, err := alice.Get(ctx, "a/x", 0)
		return errors.Is(err, line.ErrNoPerm)
	})
	for _, key := range []string{"a/x", "b/y"} {
		admin.send("PUT " + key + " after\r\n")
		admin.okIndex()
	}
	if got := nextEvent(); got != "b/y" {
		t.Errorf("after the revocation alice's watch showed %s, want b/y only", got)
	}

	// Failed AUTHs close the connection after the fifth.
	guess := dialRawTLS(t, p.Addr, ca)
	for i := range maxConnAuthFails {
		guess.send("AUTH alice guess\r\n")
		if got := guess.line(); !strings.HasPrefix(got, "ERR NOPERM invalid user name or password") {
			t.Fatalf("guess %d: %q", i, got)
		}
	}
	guess.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := guess.br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("after %d failed AUTHs: %v, want the connection closed", maxConnAuthFails, err)
	}

	// The last admin stays one.
	for _, req := range []string{"USER DEL root", "USER REVOKE root admin"} {
		admin.send(req + "\r\n")
		if got := admin.line(); got != "ERR CONFLICT root is the last admin: grant admin to another user first" {
			t.Errorf("%s: %q, want it refused", req, got)
		}
	}
	for _, req := range []string{"USER ADD bob bob pw", "USER GRANT bob admin", "USER REVOKE bob admin", "USER GRANT bob admin", "USER DEL bob"} {
		admin.send(req + "\r\n")
		if got := admin.line(); got != "OK" {
			t.Errorf("%s: %q", req, got)
		}
	}

	// The CLI, as a person would use it.
	cli := exec.Command(cluster.Binary(t), "put", "--addr", p.Addr, "--cacert", tc.dir+"/ca.crt", "--user", "alice", "a/x", "v")
	cli.Env = append(cli.Environ(), "SYNOD_PASSWORD=alice pw")
	out, err := cli.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitNoPermForTest || !strings.Contains(string(out), "NOPERM") {
		t.Errorf("synod put a/x as alice: %v, %s", err, out)
	}
}

// exitNoPermForTest is cmd/synod's exit code for NOPERM.
const exitNoPermForTest = 4

// keysCount reads the count of a "KEYS <n>" line.
func keysCount(l string) (int, error) {
	rest, ok := strings.CutPrefix(l, "KEYS ")
	if !ok {
		return 0, errors.New("not a KEYS line: " + l)
	}
	return strconv.Atoi(rest)
}
