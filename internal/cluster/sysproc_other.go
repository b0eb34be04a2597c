//go:build !linux

package cluster

import "syscall"

// childAttr has nothing to ask for outside Linux.
func childAttr() *syscall.SysProcAttr { return nil }
