//go:build unix && !linux

package main

import "syscall"

// childAttr puts a child of `synod up` in its own process group, so a
// terminal's Ctrl-C reaches only `up`, which then stops the children in
// order. Outside Linux there is no parent-death signal: a SIGKILLed `up`
// leaves its children running.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
