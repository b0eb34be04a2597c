// Package proc runs a benchmark's server processes: it starts them with their
// output in a log file, stops or kills them, and makes sure none outlives the
// benchmark, not even when the benchmark itself is killed.
package proc

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// ErrClosed is returned by Group.Start after Close.
var ErrClosed = errors.New("proc: group closed")

// Group starts child processes and stops them all on Close.
//
// Children are started from one goroutine locked to its OS thread for the
// group's whole life, because Linux delivers the parent-death signal
// (SysProcAttr.Pdeathsig) when the thread that forked the child exits, not the
// process; on a locked thread that only happens once the group is closed.
type Group struct {
	reqs chan func()
	done chan struct{}

	mu     sync.Mutex
	procs  []*Proc
	closed bool
}

// NewGroup returns an empty group. Call Close to stop its processes and its
// goroutine.
func NewGroup() *Group {
	g := &Group{reqs: make(chan func()), done: make(chan struct{})}
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		defer close(g.done)
		for f := range g.reqs {
			f()
		}
	}()
	return g
}

// Proc is one started child process.
type Proc struct {
	Name string
	Log  string // the file that collects its stdout and stderr

	cmd    *exec.Cmd
	exited chan struct{}
	err    error // the exit status, valid once exited is closed
}

// Start runs exe with args as a child named name, its stdout and stderr
// appended to logPath, with env ("KEY=value") added to this process's
// environment. The child gets its own process group, so a terminal's Ctrl-C
// reaches only the benchmark, which then stops the children itself.
func (g *Group) Start(name, exe string, args []string, logPath string, env ...string) (*Proc, error) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil, ErrClosed
	}
	g.mu.Unlock()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("proc: %s: log: %w", name, err)
	}
	defer logf.Close() // the child holds its own descriptor
	cmd := exec.Command(exe, args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = sysProcAttr()
	p := &Proc{Name: name, Log: logPath, cmd: cmd, exited: make(chan struct{})}
	errc := make(chan error, 1)
	select {
	case g.reqs <- func() { errc <- cmd.Start() }:
	case <-g.done:
		return nil, ErrClosed
	}
	if err := <-errc; err != nil {
		return nil, fmt.Errorf("proc: start %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	g.mu.Lock()
	g.procs = append(g.procs, p)
	late := g.closed
	g.mu.Unlock()
	if late { // Close ran while we started it
		_ = p.Kill()
		return nil, ErrClosed
	}
	return p, nil
}

// Close stops every process of the group (see Proc.Stop) and ends the
// group's goroutine. It returns the first error other than a process having
// exited by a signal or with a non-zero status.
func (g *Group) Close(grace time.Duration) error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	procs := g.procs
	g.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, len(procs))
	for i, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.Stop(grace)
		}()
	}
	wg.Wait()
	close(g.reqs)
	<-g.done
	return errors.Join(errs...)
}

// PID returns the child's process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Exited is closed once the child has exited and been reaped.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// ExitErr returns how the child ended (nil for status 0); valid after Exited.
func (p *Proc) ExitErr() error {
	select {
	case <-p.exited:
		return p.err
	default:
		return nil
	}
}

// Running reports whether the child has not exited yet.
func (p *Proc) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Signal sends sig to a running child; one that exited is left alone.
func (p *Proc) Signal(sig os.Signal) error {
	if !p.Running() {
		return nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("proc: signal %s: %w", p.Name, err)
	}
	return nil
}

// Kill sends SIGKILL and waits until the child is reaped.
func (p *Proc) Kill() error {
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("proc: kill %s: %w", p.Name, err)
	}
	<-p.exited
	return nil
}

// Stop asks the child to exit with SIGTERM and kills it if it has not after
// grace. A child that already exited is left alone. Exit statuses are not
// errors here: a server stopped by a signal may well report one.
func (p *Proc) Stop(grace time.Duration) error {
	if !p.Running() {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("proc: stop %s: %w", p.Name, err)
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.exited:
		return nil
	case <-t.C:
		return p.Kill()
	}
}

// Tail returns up to the last n bytes of the child's log, for error messages.
func (p *Proc) Tail(n int) string {
	f, err := os.Open(p.Log)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(st.Size()-int64(n), 0)
	buf := make([]byte, st.Size()-off)
	k, _ := f.ReadAt(buf, off)
	return string(buf[:k])
}

// FreePorts returns n distinct loopback addresses (127.0.0.1:port) whose
// ports were free a moment ago. Another program may take one before the
// caller binds it; benchmarks on a quiet machine accept that.
func FreePorts(n int) ([]string, error) {
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	addrs := make([]string, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("proc: free port: %w", err)
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}
