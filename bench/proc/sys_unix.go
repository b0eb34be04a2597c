//go:build unix && !linux

package proc

import "syscall"

// sysProcAttr gives the child its own process group. Without a parent-death
// signal outside Linux, a benchmark killed by SIGKILL leaves its children.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
