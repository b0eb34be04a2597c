//go:build linux

package proc

// This file owns how a child is started on Linux: its own process group and
// a parent-death signal. Group.Start uses it on the group's locked thread.

import "syscall"

// sysProcAttr gives the child its own process group and has the kernel
// SIGKILL it when the thread that started it exits (see Group).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
