//go:build unix && !linux

package proc

// This file owns how a child is started on Unix other than Linux: its own
// process group. Group.Start uses it on the group's locked thread.

import "syscall"

// sysProcAttr gives the child its own process group. Without a parent-death
// signal outside Linux, a supervisor killed by SIGKILL leaves its children.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
