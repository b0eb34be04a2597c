// Package proc is synod's one process supervisor: `synod up`'s replicas and
// proxy, the end-to-end tests' processes (internal/cluster), the benchmark's
// servers (bench/spawn) and the etcd peer's members (through bench/proc) are
// all started, stopped, killed, paused and reaped here.
//
// A Group starts children and stops them all on Close. Each child gets its
// own process group (a terminal's Ctrl-C reaches only the supervisor, which
// stops the children itself) and, on Linux, a parent-death signal: if the
// supervising process dies, even by SIGKILL, the kernel kills its children,
// so none outlives it.
//
// Goroutines: one per Group, locked to its OS thread, runs every fork of
// that group (see Group); one per child reaps it (exec.Cmd.Wait) and then
// closes Exited. Every method may be called from any goroutine.
package proc

// This file owns Group and Proc: starting children on the group's locked
// thread, signalling, stopping and reaping them, their output's tail, and
// free ports. See the package comment for the goroutines.

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

// Spec says how to start one child.
type Spec struct {
	// Name names the child in errors and labels its lines in Lines.
	Name string
	// Path is the binary; Args its arguments, without the program name.
	Path string
	Args []string
	// Env ("KEY=value") is added to this process's environment.
	Env []string
	// Where the child's stdout and stderr go, together: appended to the
	// file Log, or line by line, labelled with Name, into Lines. With
	// neither they are discarded; setting both is an error.
	Log   string
	Lines *Lines
}

// Group starts child processes and stops them all on Close.
//
// Children are started from one goroutine locked to its OS thread for the
// group's whole life, because Linux delivers the parent-death signal
// (SysProcAttr.Pdeathsig) when the thread that forked the child exits, not
// the process; an unlocked goroutine's thread may exit whenever another
// goroutine that locked it ends. On a thread locked until Close that only
// happens once the group is closed, when its children are already reaped.
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

// Proc is one started child process. A Proc runs once; to restart a child,
// Start it again for a new Proc.
type Proc struct {
	Name string
	Log  string // Spec.Log: the file that collects its output, if any

	cmd    *exec.Cmd
	exited chan struct{}
	err    error // the exit status, valid once exited is closed
}

// Start starts the child spec describes.
func (g *Group) Start(spec Spec) (*Proc, error) {
	g.mu.Lock()
	closed := g.closed
	g.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if spec.Log != "" && spec.Lines != nil {
		return nil, fmt.Errorf("proc: %s: both a log file and labelled lines", spec.Name)
	}
	cmd := exec.Command(spec.Path, spec.Args...)
	if len(spec.Env) > 0 {
		cmd.Env = append(os.Environ(), spec.Env...)
	}
	cmd.SysProcAttr = sysProcAttr()
	var lw *lineWriter
	switch {
	case spec.Log != "":
		logf, err := os.OpenFile(spec.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("proc: %s: log: %w", spec.Name, err)
		}
		defer logf.Close() // the child holds its own descriptor
		cmd.Stdout, cmd.Stderr = logf, logf
	case spec.Lines != nil:
		// One writer for both: exec then uses one pipe, and the child's
		// lines keep their order.
		lw = spec.Lines.writer(spec.Name)
		cmd.Stdout, cmd.Stderr = lw, lw
	}
	p := &Proc{Name: spec.Name, Log: spec.Log, cmd: cmd, exited: make(chan struct{})}
	errc := make(chan error, 1)
	select {
	case g.reqs <- func() { errc <- cmd.Start() }:
	case <-g.done:
		return nil, ErrClosed
	}
	if err := <-errc; err != nil {
		return nil, fmt.Errorf("proc: start %s: %w", spec.Name, err)
	}
	go func() {
		p.err = cmd.Wait() // returns once the output is copied, too
		if lw != nil {
			lw.flush()
		}
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

// Close stops every process of the group together (see Proc.Stop) and ends
// the group's goroutine. It returns the first error other than a process
// having exited by a signal or with a non-zero status: servers stopped by a
// signal may well report one.
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
			var ee *exec.ExitError
			if err := p.Stop(grace); !errors.As(err, &ee) {
				errs[i] = err
			}
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

// Wait waits until the child has exited and returns how it ended: nil for
// exit status 0, an *exec.ExitError otherwise.
func (p *Proc) Wait() error {
	<-p.exited
	return p.err
}

// ExitErr returns how the child ended, as Wait does, without waiting: nil
// while it runs.
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

// Kill sends SIGKILL and waits until the child is reaped. A paused child
// dies too: SIGKILL needs no SIGCONT.
func (p *Proc) Kill() error {
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	<-p.exited
	return nil
}

// Stop asks the child to exit with SIGTERM and kills it if it has not after
// grace; see Terminate.
func (p *Proc) Stop(grace time.Duration) error { return p.Terminate(syscall.SIGTERM, grace) }

// Terminate sends sig, then SIGCONT so that a paused child sees it, and
// SIGKILL if the child still runs after grace. It returns how the child
// ended, as Wait does; a child that had already exited is left alone.
func (p *Proc) Terminate(sig os.Signal, grace time.Duration) error {
	if err := p.Signal(sig); err != nil {
		return err
	}
	if err := p.Continue(); err != nil {
		return err
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		if err := p.Kill(); err != nil {
			return err
		}
	}
	return p.err
}

// Tail returns up to the last n bytes of the child's log file ("" without
// one), for error messages.
func (p *Proc) Tail(n int) string {
	if p.Log == "" {
		return ""
	}
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
// caller binds it; tests and benchmarks on one machine accept that.
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
