//go:build !unix

package main

import "syscall"

// childAttr has nothing to add where there are no process groups: Ctrl-C
// reaches the children too, and they stop by themselves.
func childAttr() *syscall.SysProcAttr { return nil }
