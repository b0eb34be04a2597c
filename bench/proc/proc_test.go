package proc

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
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
		fmt.Println("child up", os.Getenv("PROC_TEST_EXTRA"))
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		<-c
		fmt.Println("child stopping")
		os.Exit(0)
	case "stubborn": // ignore SIGTERM
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("child up")
		time.Sleep(time.Hour)
	case "parent": // start a grandchild, print its pid, wait to be killed
		os.Setenv(childEnv, "sleep")
		g := NewGroup()
		p, err := g.Start("grandchild", os.Args[0], nil, filepath.Join(os.Getenv("PROC_TEST_DIR"), "grandchild.log"))
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
	p, err := g.Start(mode, os.Args[0], nil, filepath.Join(t.TempDir(), mode+".log"))
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
	p, err := g.Start("env", os.Args[0], nil, filepath.Join(t.TempDir(), "env.log"), "PROC_TEST_EXTRA=hello")
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
	if err := p.Stop(50 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if !errors.As(p.ExitErr(), &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("exit %v, want killed by SIGKILL", p.ExitErr())
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
	if _, err := g.Start("late", os.Args[0], nil, filepath.Join(t.TempDir(), "x")); !errors.Is(err, ErrClosed) {
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
	if _, err := g.Start("x", filepath.Join(t.TempDir(), "nope"), nil, filepath.Join(t.TempDir(), "log")); err == nil {
		t.Fatal("started a binary that does not exist")
	}
	if _, err := g.Start("x", os.Args[0], nil, filepath.Join(t.TempDir(), "no", "such", "dir")); err == nil {
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
