//go:build linux

package proc

import "syscall"

// sysProcAttr gives the child its own process group and has the kernel
// SIGKILL it when the thread that started it exits (see Group).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
