package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"synod/internal/cluster"
)

// noRaceExitSleep stops a binary built with -race from sleeping a second
// before it exits (the race runtime's default), which the many short CLI
// runs of these tests would add up. Children of up inherit it.
const noRaceExitSleep = "GORACE=atexit_sleep_ms=0"

// upProc is one `synod up` run as a subprocess, with its output in files.
type upProc struct {
	t       *testing.T
	bin     string
	cmd     *exec.Cmd
	stdout  string
	stderr  string
	done    chan struct{}
	waitErr error
}

// startUp runs `synod up` with args and makes sure, whatever happens, that
// neither it nor any child it started outlives the test.
func startUp(t *testing.T, bin string, name string, args ...string) *upProc {
	t.Helper()
	dir := t.TempDir()
	u := &upProc{t: t, bin: bin, stdout: filepath.Join(dir, name+".out"), stderr: filepath.Join(dir, name+".err"), done: make(chan struct{})}
	fo, err := os.Create(u.stdout)
	if err != nil {
		t.Fatal(err)
	}
	fe, err := os.Create(u.stderr)
	if err != nil {
		t.Fatal(err)
	}
	u.cmd = exec.Command(bin, append([]string{"--log-level=info"}, args...)...)
	u.cmd.Env = append(os.Environ(), noRaceExitSleep)
	u.cmd.Stdout, u.cmd.Stderr = fo, fe
	if err := u.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	fo.Close()
	fe.Close()
	go func() {
		u.waitErr = u.cmd.Wait()
		close(u.done)
	}()
	seen := map[int]bool{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- %s stdout ---\n%s", name, readTail(u.stdout))
			t.Logf("--- %s stderr (tail) ---\n%s", name, readTail(u.stderr))
		}
		for _, pid := range childPIDs(u.cmd.Process.Pid) {
			seen[pid] = true
		}
		u.cmd.Process.Kill()
		<-u.done
		// Pdeathsig should have taken the children; make sure of it.
		for pid := range seen {
			if alive(pid) && strings.Contains(cmdline(pid), bin) {
				t.Errorf("child %d outlived %s; killing it", pid, name)
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	return u
}

func readTail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 30000 {
		b = b[len(b)-30000:]
	}
	return string(b)
}

// waitBanner waits until up has printed its banner: the cluster serves.
func (u *upProc) waitBanner() string {
	u.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		out, _ := os.ReadFile(u.stdout)
		if bytes.Contains(out, []byte("Ctrl-C stops the cluster")) {
			return string(out)
		}
		select {
		case <-u.done:
			u.t.Fatalf("up exited before serving: %v", u.waitErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
	u.t.Fatalf("up printed no banner in time")
	return ""
}

// wait waits for up to exit and returns its exit code.
func (u *upProc) wait() int {
	u.t.Helper()
	select {
	case <-u.done:
	case <-time.After(60 * time.Second):
		u.t.Fatalf("up did not exit")
	}
	var ee *exec.ExitError
	if errors.As(u.waitErr, &ee) {
		return ee.ExitCode()
	}
	if u.waitErr != nil {
		u.t.Fatalf("up: %v", u.waitErr)
	}
	return 0
}

// childPIDs lists the live processes whose parent is ppid, from /proc.
func childPIDs(ppid int) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, state, ok := procStat(pid); ok && p == ppid && state != "Z" {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procStat reads a process's parent and state from /proc/<pid>/stat.
func procStat(pid int) (ppid int, state string, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, "", false
	}
	// The command name is in parentheses and may hold spaces: skip past it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, "", false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, "", false
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, f[0], err == nil
}

// alive reports whether pid runs (a zombie has stopped running).
func alive(pid int) bool {
	_, state, ok := procStat(pid)
	return ok && state != "Z"
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
}

// waitGone waits until none of pids runs.
func waitGone(t *testing.T, pids []int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var left []int
		for _, pid := range pids {
			if alive(pid) {
				left = append(left, pid)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("children still running: %v", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freeBase returns a base port whose next n ports, and listen, are free on
// 127.0.0.1 a moment ago.
func freeBase(t *testing.T, n int) (base int, listen string) {
	t.Helper()
	for try := 0; try < 100; try++ {
		listen = cluster.FreePorts(t, 1)[0]
		_, lp, _ := net.SplitHostPort(listen)
		lport, _ := strconv.Atoi(lp)
		_, bp, _ := net.SplitHostPort(cluster.FreePorts(t, 1)[0])
		base, _ = strconv.Atoi(bp)
		if base+n > 65535 || (lport > base && lport <= base+n) {
			continue
		}
		ok := true
		for i := 1; i <= n && ok; i++ {
			ok = checkFree(net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i))) == nil
		}
		if ok {
			return base, listen
		}
	}
	t.Fatalf("no %d free consecutive ports", n)
	return 0, ""
}

// cli runs one client verb against addr and returns stdout, stderr and the
// exit code.
type cliRunner struct {
	t    *testing.T
	bin  string
	addr string
}

func (r cliRunner) run(stdin []byte, args ...string) (stdout []byte, stderr string, code int) {
	r.t.Helper()
	cmd := exec.Command(r.bin, args...)
	cmd.Env = append(os.Environ(), "SYNOD_ADDR="+r.addr, "SYNOD_TIMEOUT=30s", noRaceExitSleep)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		r.t.Fatalf("synod %v: %v", args, err)
	}
	return out.Bytes(), errb.String(), code
}

// ok runs a verb that must succeed and returns its stdout.
func (r cliRunner) ok(stdin []byte, args ...string) []byte {
	r.t.Helper()
	out, stderr, code := r.run(stdin, args...)
	if code != 0 {
		r.t.Fatalf("synod %q: exit %d: %s", args, code, stderr)
	}
	return out
}

// fails runs a verb that must exit with code.
func (r cliRunner) fails(code int, args ...string) string {
	r.t.Helper()
	_, stderr, got := r.run(nil, args...)
	if got != code {
		r.t.Fatalf("synod %q: exit %d, want %d: %s", args, got, code, stderr)
	}
	return stderr
}

// requireProxy fails at once, rather than after waiting for a banner that
// cannot come, when the binary has no proxy command.
func requireProxy(t *testing.T, bin string) {
	t.Helper()
	if out, err := exec.Command(bin, "proxy", "--help").CombinedOutput(); err != nil {
		t.Fatalf("synod proxy --help: %v: %s", err, out)
	}
}

// waitStatus polls `synod status --json` until one master and n-1
// followers report the same applied index, at least minApplied. The proxy
// answers STATUS from its last poll, so the followers may need a moment.
func waitStatus(t *testing.T, r cliRunner, n int, minApplied uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		out, stderr, code := r.run(nil, "status", "--json")
		if code != 0 {
			last = stderr
			time.Sleep(100 * time.Millisecond)
			continue
		}
		var st struct{ Nodes []statusRow }
		if err := json.Unmarshal(out, &st); err != nil {
			t.Fatalf("status --json: %v: %s", err, out)
		}
		last = string(out)
		roles := map[string]int{}
		same := len(st.Nodes) == n
		for _, nd := range st.Nodes {
			roles[nd.Role]++
			same = same && nd.Applied == st.Nodes[0].Applied && nd.Applied >= minApplied
		}
		if same && roles["master"] == 1 && roles["follower"] == n-1 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("status never showed one master, %d followers and equal applied indexes: %s", n-1, last)
}

func TestUpEndToEnd(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	bin := cluster.Binary(t)
	requireProxy(t, bin)
	base, listen := freeBase(t, 3)
	dataDir := filepath.Join(t.TempDir(), "synod-data")
	upArgs := []string{"up", "--dir", dataDir, "--listen", listen, "--base-port", strconv.Itoa(base), "--metrics-base-port", "0", "--grace", "20s"}
	r := cliRunner{t: t, bin: bin, addr: listen}

	// First run: write through the CLI.
	u := startUp(t, bin, "up1", upArgs...)
	if b := u.waitBanner(); !strings.Contains(b, "nc 127.0.0.1 ") || !strings.Contains(b, listen) {
		t.Fatalf("banner lacks the proxy address or the nc line:\n%s", b)
	}
	kids := childPIDs(u.cmd.Process.Pid)
	if len(kids) != 4 {
		t.Fatalf("up runs %d children, want 3 replicas and a proxy", len(kids))
	}

	if out := r.ok(nil, "put", "a", "b"); !strings.HasPrefix(string(out), "OK ") {
		t.Fatalf("put printed %q", out)
	}
	if out := r.ok(nil, "get", "a"); string(out) != "b\n" {
		t.Fatalf("get a = %q, want %q", out, "b\n")
	}
	r.ok([]byte("from stdin"), "put", "docs/readme")
	r.ok(nil, "append", "docs/readme", "+more")
	if out := r.ok(nil, "cat", "docs/readme"); string(out) != "from stdin+more" {
		t.Fatalf("cat docs/readme = %q", out)
	}

	// A 200 KB binary file, up and down and through stdin and stdout.
	blob := make([]byte, 200<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range blob {
		blob[i] = byte(rng.UintN(256))
	}
	local := filepath.Join(t.TempDir(), "blob.bin")
	if err := os.WriteFile(local, blob, 0o644); err != nil {
		t.Fatal(err)
	}
	r.ok(nil, "cp", local, ":files/blob.bin")
	back := filepath.Join(t.TempDir(), "back.bin")
	r.ok(nil, "cp", ":files/blob.bin", back)
	if got, err := os.ReadFile(back); err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("cp round trip: %d bytes, %v; want the %d bytes sent", len(got), err, len(blob))
	}
	if out := r.ok(nil, "cp", ":files/blob.bin", "-"); !bytes.Equal(out, blob) {
		t.Fatalf("cp to stdout: %d bytes differ from the %d sent", len(out), len(blob))
	}
	// A file over --chunked-above goes up with PUTFILE, in chunks, and
	// comes back in ranges, checked by its SHA-256.
	large := make([]byte, 9<<20+3)
	for i := range large {
		large[i] = byte(rng.UintN(256))
	}
	localLarge := filepath.Join(t.TempDir(), "large.bin")
	if err := os.WriteFile(localLarge, large, 0o644); err != nil {
		t.Fatal(err)
	}
	r.ok(nil, "cp", localLarge, ":files/large.bin")
	backLarge := filepath.Join(t.TempDir(), "large-back.bin")
	r.ok(nil, "cp", ":files/large.bin", backLarge)
	if got, err := os.ReadFile(backLarge); err != nil || !bytes.Equal(got, large) {
		t.Fatalf("cp of a large file: %d bytes back, %v; want the %d bytes sent", len(got), err, len(large))
	}
	if out := r.ok(nil, "cp", ":files/large.bin", "-"); !bytes.Equal(out, large) {
		t.Fatalf("cp of a large file to stdout: %d bytes differ from the %d sent", len(out), len(large))
	}
	r.ok(nil, "del", "files/large.bin") // a large file is deleted like any other
	r.ok(blob[:1000], "cp", "-", ":files/small")
	if out := r.ok(nil, "cat", "files/small"); !bytes.Equal(out, blob[:1000]) {
		t.Fatal("cp from stdin stored other bytes")
	}
	// Stdin over --chunked-above is spooled, then sent with PUTFILE.
	var up cpResult
	if err := json.Unmarshal(r.ok(large, "cp", "--json", "-", ":files/stdin.bin"), &up); err != nil || up.Bytes != len(large) || up.Index == 0 {
		t.Fatalf("cp of a large stdin: %+v, %v", up, err)
	}
	if out := r.ok(nil, "cp", ":files/stdin.bin", "-"); !bytes.Equal(out, large) {
		t.Fatalf("cp of a large stdin: %d bytes back differ from the %d sent", len(out), len(large))
	}
	// --version: PUTFILE ... VERSION for large files, CAS for small ones.
	v := strconv.FormatUint(up.Index, 10)
	if _, stderr, code := r.run(large, "cp", "--version", "0", "-", ":files/stdin.bin"); code != exitNotFound || !strings.Contains(stderr, "conflict") {
		t.Fatalf("cp --version 0 of a large stdin over an existing key: exit %d: %s", code, stderr)
	}
	r.ok(nil, "cp", "--version", v, localLarge, ":files/stdin.bin")
	if stderr := r.fails(exitNotFound, "cp", "--version", v, localLarge, ":files/stdin.bin"); !strings.Contains(stderr, "conflict") {
		t.Fatalf("cp --version at a stale version: %s", stderr)
	}
	r.ok([]byte("v0"), "cp", "--version", "0", "-", ":files/v0")
	if _, stderr, code := r.run([]byte("v0"), "cp", "--version", "0", "-", ":files/v0"); code != exitNotFound || !strings.Contains(stderr, "conflict") {
		t.Fatalf("cp --version 0 of a small value over an existing key: exit %d: %s", code, stderr)
	}
	r.fails(exitUsage, "cp", "--version", "1", ":files/v0", "-")
	r.ok(nil, "del", "files/stdin.bin")
	r.ok(nil, "del", "files/v0")

	var st statResult
	if err := json.Unmarshal(r.ok(nil, "stat", "--json", "files/blob.bin"), &st); err != nil || st.Size != uint64(len(blob)) || st.Version == 0 {
		t.Fatalf("stat --json = %+v, %v", st, err)
	}

	if out := r.ok(nil, "ls"); string(out) != "a\ndocs/readme\nfiles/blob.bin\nfiles/small\n" {
		t.Fatalf("ls =\n%s", out)
	}
	if out := r.ok(nil, "ls", "--consistency", "stale", "files/"); string(out) != "files/blob.bin\nfiles/small\n" {
		t.Fatalf("ls files/ =\n%s", out)
	}

	// Exit codes: not found and CAS conflicts are 1, bad usage 2.
	r.fails(exitNotFound, "get", "missing")
	r.fails(exitNotFound, "cas", "a", "0", "x")
	var idx writeResult
	if err := json.Unmarshal(r.ok(nil, "cas", "--json", "a", strconv.FormatUint(versionOf(t, r, "a"), 10), "c"), &idx); err != nil || idx.Index == 0 {
		t.Fatalf("cas --json: %+v, %v", idx, err)
	}
	r.ok(nil, "del", "a")
	r.fails(exitNotFound, "del", "a")
	r.fails(exitUsage, "get", "a", "b")
	r.fails(exitUsage, "get", "--consistency", "bogus", "a")

	// After the writes: one master, two followers, all applied equally.
	waitStatus(t, r, 3, idx.Index)
	table := string(r.ok(nil, "status"))
	if !strings.HasPrefix(table, "ID  ADDRESS") || strings.Count(table, "master") != 1 || strings.Count(table, "follower") != 2 {
		t.Fatalf("status table:\n%s", table)
	}
	t.Logf("status after writes:\n%s", table)

	// Ctrl-C: up exits 0 and takes every child with it.
	u.cmd.Process.Signal(syscall.SIGINT)
	if code := u.wait(); code != 0 {
		t.Fatalf("up exited %d after SIGINT, want 0", code)
	}
	waitGone(t, kids)
	if left := childPIDs(u.cmd.Process.Pid); len(left) != 0 {
		t.Fatalf("children left after up exited: %v", left)
	}
	r.fails(exitUnavailable, "get", "docs/readme")

	// Second run on the same dir: the data is there.
	u2 := startUp(t, bin, "up2", upArgs...)
	u2.waitBanner()
	kids2 := childPIDs(u2.cmd.Process.Pid)
	if out := r.ok(nil, "cat", "docs/readme"); string(out) != "from stdin+more" {
		t.Fatalf("after restart, docs/readme = %q", out)
	}
	if out := r.ok(nil, "cat", "files/blob.bin"); !bytes.Equal(out, blob) {
		t.Fatal("after restart, the blob differs")
	}
	r.fails(exitNotFound, "get", "a")

	// A child that dies is reported loudly, not restarted, and the others
	// keep serving.
	var victim int
	for _, pid := range kids2 {
		if strings.Contains(cmdline(pid), "--id 3 ") {
			victim = pid
		}
	}
	if victim == 0 {
		t.Fatalf("no node3 among up's children %v", kids2)
	}
	syscall.Kill(victim, syscall.SIGKILL)
	waitLog(t, u2.stderr, "node3 DIED")
	if alive(victim) {
		t.Fatal("node3 was restarted or never died")
	}
	r.ok(nil, "put", "after", "death")
	if out := r.ok(nil, "get", "after"); string(out) != "death\n" {
		t.Fatalf("get after = %q", out)
	}
	if n := len(childPIDs(u2.cmd.Process.Pid)); n != 3 {
		t.Fatalf("up runs %d children after node3 died, want 3 (no restart)", n)
	}
	u2.cmd.Process.Signal(syscall.SIGTERM)
	if code := u2.wait(); code != 0 {
		t.Fatalf("up exited %d after SIGTERM, want 0", code)
	}
	waitGone(t, kids2)

	// Even a SIGKILLed up leaves no child behind.
	u3 := startUp(t, bin, "up3", upArgs...)
	u3.waitBanner()
	kids3 := childPIDs(u3.cmd.Process.Pid)
	if len(kids3) != 4 {
		t.Fatalf("third up runs %d children, want 4", len(kids3))
	}
	if out := r.ok(nil, "get", "after"); string(out) != "death\n" {
		t.Fatalf("third run: get after = %q", out)
	}
	u3.cmd.Process.Kill()
	u3.wait()
	waitGone(t, kids3)
}

// versionOf returns key's version from `synod stat --json`.
func versionOf(t *testing.T, r cliRunner, key string) uint64 {
	t.Helper()
	var st statResult
	if err := json.Unmarshal(r.ok(nil, "stat", "--json", key), &st); err != nil {
		t.Fatalf("stat --json %s: %v", key, err)
	}
	return st.Version
}

// waitLog waits until the file at path contains s.
// waitLog waits for path to hold s, or one of the alternatives.
func waitLog(t *testing.T, path, s string, or ...string) {
	t.Helper()
	want := append([]string{s}, or...)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(path)
		for _, w := range want {
			if bytes.Contains(b, []byte(w)) {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never logged any of %q", filepath.Base(path), want)
}

func TestUpRefusesATakenPort(t *testing.T) {
	bin := cluster.Binary(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	base, _ := freeBase(t, 3)
	u := startUp(t, bin, "up", "up", "--dir", t.TempDir(), "--listen", ln.Addr().String(), "--base-port", strconv.Itoa(base), "--metrics-base-port", "0")
	if code := u.wait(); code != exitUnavailable {
		t.Fatalf("up on a taken port exited %d, want %d", code, exitUnavailable)
	}
	if b, _ := os.ReadFile(u.stderr); !bytes.Contains(b, []byte("cannot listen on "+ln.Addr().String())) {
		t.Fatalf("stderr does not name the taken address:\n%s", b)
	}
}

func TestUpUsage(t *testing.T) {
	bin := cluster.Binary(t)
	for _, args := range [][]string{
		{"up", "--nodes", "0"},
		{"up", "--nodes", "x"},
		{"up", "extra"},
		{"up", "--bogus"},
		{"--log-format", "yaml", "up"},
	} {
		u := startUp(t, bin, "up", args...)
		if code := u.wait(); code != exitUsage {
			t.Errorf("synod %q exited %d, want %d", args, code, exitUsage)
		}
	}
}

func TestClientUnreachable(t *testing.T) {
	bin := cluster.Binary(t)
	addr := cluster.FreePorts(t, 1)[0] // nothing listens there now
	r := cliRunner{t: t, bin: bin, addr: addr}
	for _, args := range [][]string{{"get", "a"}, {"put", "a", "b"}, {"status"}, {"ls"}} {
		if stderr := r.fails(exitUnavailable, args...); !strings.Contains(stderr, "cannot reach synod at "+addr) {
			t.Errorf("synod %q: stderr %q", args, stderr)
		}
	}
	// Usage is checked before connecting.
	r.fails(exitUsage, "put", "bad key", "v")
	r.fails(exitUsage, "cp", "a", "b")
	r.fails(exitNotFound, "cp", filepath.Join(t.TempDir(), "missing"), ":k")
}
