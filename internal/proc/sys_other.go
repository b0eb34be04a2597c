//go:build !unix

package proc

// This file owns what differs where there are no process groups and no
// job-control signals: how a child is started (on the group's locked
// thread), Pause and Continue (from any goroutine).

import (
	"errors"
	"fmt"
	"syscall"
)

// sysProcAttr has nothing to add where there are no process groups.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// Pause cannot stop a child here.
func (p *Proc) Pause() error {
	return fmt.Errorf("proc: pause %s: %w", p.Name, errors.ErrUnsupported)
}

// Continue has nothing to do: no child is ever paused.
func (p *Proc) Continue() error { return nil }
