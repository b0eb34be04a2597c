package main

// This file runs `synod up` as a process and grows and shrinks its cluster
// with `synod member` from outside, as a user would from another terminal.
// It needs the node half of issue 14 (`synod node --join`) and skips
// without it. The test goroutine drives; startUp's helpers watch the
// processes.

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"synod/internal/cluster"
)

// waitVoter polls `synod member list --json` until id is a voter, and
// promotes it itself after 30 s.
func waitVoter(t *testing.T, r cliRunner, id uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var ml memberList
		if out, _, code := r.run(nil, "member", "list", "--json"); code == 0 && json.Unmarshal(out, &ml) == nil {
			for _, m := range ml.Members {
				if m.ID == id && m.Role == "voter" {
					return
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	r.ok(nil, "member", "promote", strconv.FormatUint(id, 10))
}

func TestUpGrowsAndShrinks(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	bin := cluster.Binary(t)
	if !cluster.NodeHasFlag(t, "--join") {
		t.Skip("needs the node half of issue 14: `synod node --join` and the MEMBER operations")
	}
	base, listen := freeBase(t, 4)
	dataDir := filepath.Join(t.TempDir(), "synod-data")
	upArgs := []string{"up", "--dir", dataDir, "--listen", listen, "--base-port", strconv.Itoa(base), "--metrics-base-port", "0", "--grace", "20s"}
	r := cliRunner{t: t, bin: bin, addr: listen}
	addr4 := net.JoinHostPort("127.0.0.1", strconv.Itoa(base+4))

	u := startUp(t, bin, "up1", upArgs...)
	u.waitBanner()
	r.ok(nil, "put", "before", "3")
	if out := string(r.ok(nil, "member", "add", "4", addr4)); !strings.HasPrefix(out, "member 4 added as a learner at "+addr4+" (configuration ") {
		t.Fatalf("member add printed %q", out)
	}
	waitLog(t, u.stdout, "member 4 added: starting node4 on "+addr4)
	waitVoter(t, r, 4)
	waitStatus(t, r, 4, 0)
	r.ok(nil, "put", "grown", "4")
	table := string(r.ok(nil, "member", "list"))
	found := false
	for _, l := range strings.Split(table, "\n") {
		found = found || strings.Join(strings.Fields(l), " ") == "4 "+addr4+" voter"
	}
	if !found {
		t.Fatalf("member list:\n%s", table)
	}
	t.Logf("grown:\n%s", r.ok(nil, "status"))

	r.ok(nil, "member", "remove", "4")
	waitLog(t, u.stdout, "member 4 removed: node4 stops by itself")
	waitLog(t, u.stdout, "node4 exited after its removal from the cluster")
	waitStatus(t, r, 3, 0)
	if out := r.ok(nil, "get", "grown"); string(out) != "4\n" {
		t.Fatalf("get grown = %q", out)
	}
	u.cmd.Process.Signal(syscall.SIGINT)
	if code := u.wait(); code != 0 {
		t.Fatalf("up exited %d after SIGINT, want 0", code)
	}
	if b, _ := os.ReadFile(u.stderr); bytes.Contains(b, []byte("DIED")) {
		t.Fatalf("a removed replica was reported dead:\n%s", b)
	}

	// Again on the same data: n4 is there, up starts it, and it exits,
	// no longer a member; that is no death either. Whether up learns of
	// the removal before or after the exit depends on whether n4 had
	// made its removal durable: if not, it recovers as a voter, and
	// leaves once the removal is chosen again.
	u2 := startUp(t, bin, "up2", upArgs...)
	u2.waitBanner()
	waitLog(t, u2.stdout, "node4 exited: it is not a member of the cluster", "node4 exited after its removal from the cluster")
	if out := r.ok(nil, "get", "grown"); string(out) != "4\n" {
		t.Fatalf("after restart, get grown = %q", out)
	}
	u2.cmd.Process.Signal(syscall.SIGTERM)
	if code := u2.wait(); code != 0 {
		t.Fatalf("up exited %d after SIGTERM, want 0", code)
	}
	if b, _ := os.ReadFile(u2.stderr); bytes.Contains(b, []byte("DIED")) {
		t.Fatalf("the removed replica's exit was reported as a death:\n%s", b)
	}
}
