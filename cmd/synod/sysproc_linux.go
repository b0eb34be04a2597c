//go:build linux

package main

import "syscall"

// childAttr puts a child of `synod up` in its own process group, so a
// terminal's Ctrl-C reaches only `up`, which then stops the children in
// order; and asks the kernel to SIGKILL the child if `up` dies without
// stopping it (even by SIGKILL), so no replica outlives its launcher. The
// death signal follows the thread that started the child: up keeps that
// thread locked for as long as its children run.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
