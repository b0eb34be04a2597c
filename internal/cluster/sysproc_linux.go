//go:build linux

package cluster

import "syscall"

// childAttr asks the kernel to SIGKILL a test process if the test binary
// dies without stopping it (a go test timeout, a crash), so no replica or
// proxy outlives its test. The death signal follows the thread that
// started the child; the Go runtime does not end its threads while the
// program runs, and nothing here locks one.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
