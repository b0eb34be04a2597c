//go:build unix

package proc

// This file owns Pause and Continue, the job-control signals to a child;
// they may be called from any goroutine.

import "syscall"

// Pause stops a running child with SIGSTOP until Continue; its timers and
// connections freeze as a hung process's would.
func (p *Proc) Pause() error { return p.Signal(syscall.SIGSTOP) }

// Continue resumes a child paused by Pause (SIGCONT); on a running child it
// does nothing.
func (p *Proc) Continue() error { return p.Signal(syscall.SIGCONT) }
