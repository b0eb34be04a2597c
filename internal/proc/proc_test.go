package proc

// This file tests the supervisor, on the test goroutine; the test binary
// doubles as every child (TestMain).

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The test binary doubles as the child processes: PROC_TEST_CHILD says which.
const childEnv = "PROC_TEST_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		goleak.VerifyTestMain(m)
	case "sleep": // print, then wait for SIGTERM
		// The handler goes in before "child up": a test stops the
		// child as soon as it reads that line.
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		fmt.Println("child up", os.Getenv("PROC_TEST_EXTRA"))
		<-c
		fmt.Println("child stopping")
		os.Exit(0)
	case "stubborn": // ignore SIGTERM
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("child up")
		time.Sleep(time.Hour)
	case "exit3": // an unfinished line on stderr, then exit status 3
		fmt.Fprint(os.Stderr, "partial")
		os.Exit(3)
	case "parent": // start a grandchild, print its pid, wait to be killed
		os.Setenv(childEnv, "sleep")
		g := NewGroup()
		p, err := g.Start(Spec{Name: "grandchild", Path: os.Args[0], Log: filepath.Join(os.Getenv("PROC_TEST_DIR"), "grandchild.log")})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println(p.PID())
		time.Sleep(time.Hour)
	}
}

func start(t *testing.T, g *Group, mode string) *Proc {
	t.Helper()
	t.Setenv(childEnv, mode)
	p, err := g.Start(Spec{Name: mode, Path: os.Args[0], Log: filepath.Join(t.TempDir(), mode+".log")})
	if err != nil {
		t.Fatal(err)
	}
	waitLog(t, p, "child up")
	return p
}

// waitLog waits until the child's log holds s; the child writes it once it is
// ready to be signalled.
func waitLog(t *testing.T, p *Proc, s string) {
	t.Helper()
	for i := 0; !strings.Contains(p.Tail(1<<10), s); i++ {
		if !p.Running() || i > 2000 {
			t.Fatalf("%s never wrote %q; log: %q", p.Name, s, p.Tail(1<<10))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestStopGraceful(t *testing.T) {
	g := NewGroup()
	defer g.Close(time.Second)
	p := start(t, g, "sleep")
	if p.PID() <= 0 || !p.Running() {
		t.Fatalf("pid %d running %v", p.PID(), p.Running())
	}
	if err := p.Stop(time.Minute); err != nil {
		t.Fatal(err)
	}
	if p.Running() || p.ExitErr() != nil {
		t.Fatalf("after Stop: running %v, exit %v", p.Running(), p.ExitErr())
	}
	if !strings.Contains(p.Tail(100), "child stopping") {
		t.Fatalf("child did not see SIGTERM: %q", p.Tail(100))
	}
	if err := p.Stop(time.Second); err != nil { // stopping twice is harmless
		t.Fatal(err)
	}
}

func TestEnvAndSignal(t *testing.T) {
	g := NewGroup()
	defer g.Close(time.Second)
	t.Setenv(childEnv, "sleep")
	p, err := g.Start(Spec{Name: "env", Path: os.Args[0], Log: filepath.Join(t.TempDir(), "env.log"), Env: []string{"PROC_TEST_EXTRA=hello"}})
	if err != nil {
		t.Fatal(err)
	}
	waitLog(t, p, "child up hello")
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-p.Exited()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("signalling an exited child: %v", err)
	}
}

func TestStopKillsStubborn(t *testing.T) {
	g := NewGroup()
	defer g.Close(time.Second)
	p := start(t, g, "stubborn")
	err := p.Stop(50 * time.Millisecond)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL || err != p.ExitErr() {
		t.Fatalf("Stop = %v (exit %v), want killed by SIGKILL", err, p.ExitErr())
	}
}

func TestCloseStopsAll(t *testing.T) {
	g := NewGroup()
	a := start(t, g, "sleep")
	b := start(t, g, "stubborn")
	if err := g.Close(50 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if a.Running() || b.Running() {
		t.Fatal("a child survived Close")
	}
	if _, err := g.Start(Spec{Name: "late", Path: os.Args[0], Log: filepath.Join(t.TempDir(), "x")}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close: %v", err)
	}
	if err := g.Close(time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestKill(t *testing.T) {
	g := NewGroup()
	defer g.Close(time.Second)
	p := start(t, g, "sleep")
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if p.Running() || p.ExitErr() == nil {
		t.Fatalf("after Kill: running %v exit %v", p.Running(), p.ExitErr())
	}
	if err := p.Kill(); err != nil {
		t.Fatalf("second Kill: %v", err)
	}
}

func TestStartMissingBinary(t *testing.T) {
	g := NewGroup()
	defer g.Close(time.Second)
	if _, err := g.Start(Spec{Name: "x", Path: filepath.Join(t.TempDir(), "nope"), Log: filepath.Join(t.TempDir(), "log")}); err == nil {
		t.Fatal("started a binary that does not exist")
	}
	if _, err := g.Start(Spec{Name: "x", Path: os.Args[0], Log: filepath.Join(t.TempDir(), "no", "such", "dir")}); err == nil {
		t.Fatal("started with a log file that cannot be created")
	}
}

// TestParentDeathKillsChild SIGKILLs a process that started a child through a
// Group: the kernel must kill the child too, so a killed benchmark leaves no
// servers behind.
func TestParentDeathKillsChild(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"=parent", "PROC_TEST_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	pid, perr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || perr != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("parent said %q: %v %v", line, err, perr)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("grandchild %d not running: %v", pid, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	for i := 0; alive(pid); i++ {
		if i > 1000 {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("grandchild %d outlived its killed parent", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive reports whether pid runs: it exists and is not a zombie, since an
// orphan is reaped only when the machine's init gets round to it.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // no /proc: trust kill
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || !strings.HasPrefix(string(b[i:]), ") Z")
}

func TestFreePorts(t *testing.T) {
	addrs, err := FreePorts(5)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range addrs {
		if !strings.HasPrefix(a, "127.0.0.1:") || seen[a] {
			t.Fatalf("bad or repeated address %q in %v", a, addrs)
		}
		seen[a] = true
	}
}

// syncBuffer is a bytes.Buffer safe for the child's copying goroutine and
// the test goroutine at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLinesFromChildren(t *testing.T) {
	g := NewGroup()
	defer g.Close(time.Second)
	var out syncBuffer
	lines := NewLines(&out, false)
	t.Setenv(childEnv, "sleep")
	a, err := g.Start(Spec{Name: "a", Path: os.Args[0], Lines: lines})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(childEnv, "exit3")
	b, err := g.Start(Spec{Name: "b", Path: os.Args[0], Lines: lines})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; !strings.Contains(out.String(), "child up"); i++ {
		if !a.Running() || i > 2000 {
			t.Fatalf("a never wrote; output: %q", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := a.Stop(time.Minute); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if err := b.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("b: Wait = %v, want exit status 3", err)
	}
	got := strings.Split(out.String(), "\n")
	slices.Sort(got)
	if want := []string{"", "a     | child stopping", "a     | child up ", "b     | partial"}; !slices.Equal(got, want) {
		t.Fatalf("lines %q, want %q", got, want)
	}
	if a.Tail(100) != "" {
		t.Fatalf("a child without a log file has a tail: %q", a.Tail(100))
	}
	if _, err := g.Start(Spec{Name: "both", Path: os.Args[0], Lines: lines, Log: filepath.Join(t.TempDir(), "log")}); err == nil {
		t.Fatal("started with both a log file and labelled lines")
	}
}

func TestWaitAndExitStatus(t *testing.T) {
	g := NewGroup()
	defer g.Close(time.Second)
	t.Setenv(childEnv, "exit3")
	p, err := g.Start(Spec{Name: "exit3", Path: os.Args[0], Log: filepath.Join(t.TempDir(), "log")})
	if err != nil {
		t.Fatal(err)
	}
	err = p.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 || p.ExitErr() != err {
		t.Fatalf("Wait = %v, ExitErr = %v; want exit status 3", err, p.ExitErr())
	}
	if got := p.Stop(time.Minute); got != err { // an exited child is left alone
		t.Fatalf("Stop after exit = %v, want %v", got, err)
	}
	if p.Tail(100) != "partial" {
		t.Fatalf("log %q", p.Tail(100))
	}
}

// state returns the one-letter state of process pid from /proc ("T" when
// stopped), or "" where there is no /proc.
func state(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+3 > len(b) {
		return ""
	}
	return string(b[i+2 : i+3])
}

// waitState waits until the child is stopped (want true) or not.
func waitState(t *testing.T, p *Proc, stopped bool) {
	t.Helper()
	for i := 0; (state(p.PID()) == "T") != stopped; i++ {
		if i > 2000 {
			t.Fatalf("%s: state %q, want stopped=%v", p.Name, state(p.PID()), stopped)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPauseContinue(t *testing.T) {
	if state(os.Getpid()) == "" {
		t.Skip("no /proc to read a process state from")
	}
	g := NewGroup()
	defer g.Close(time.Second)
	p := start(t, g, "sleep")
	if err := p.Pause(); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, true)
	if err := p.Continue(); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, false)

	// Stop continues a paused child, so it sees SIGTERM and exits by
	// itself well before the grace runs out.
	if err := p.Pause(); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, true)
	if err := p.Stop(time.Hour); err != nil {
		t.Fatalf("Stop of a paused child = %v, want a clean exit", err)
	}
	if !strings.Contains(p.Tail(100), "child stopping") {
		t.Fatalf("child did not see SIGTERM: %q", p.Tail(100))
	}

	// Kill takes a paused child without a SIGCONT.
	q := start(t, g, "stubborn")
	if err := q.Pause(); err != nil {
		t.Fatal(err)
	}
	waitState(t, q, true)
	if err := q.Kill(); err != nil || q.Running() {
		t.Fatalf("Kill of a paused child: %v, running %v", err, q.Running())
	}
	if err := q.Pause(); err != nil {
		t.Fatalf("pausing an exited child: %v", err)
	}
}
