//go:build unix

package profile

// This file owns the profile signals on Unix: ListenFromEnv, called from
// cmd/synod's init in every replica and proxy, starts one goroutine that
// starts a CPU profile on SIGUSR1 and writes it on SIGUSR2, for the life
// of the process.

import (
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

// StartSignal and StopSignal start and stop a profile.
var (
	StartSignal os.Signal = syscall.SIGUSR1
	StopSignal  os.Signal = syscall.SIGUSR2
)

// ListenFromEnv installs the signal handlers if Env is set, and reports
// whether it did. Failures to profile are written to stderr, the server's
// log: a profile is a diagnostic, never a reason to stop serving.
func ListenFromEnv() bool {
	path := os.Getenv(Env)
	if path == "" {
		return false
	}
	c := make(chan os.Signal, 2)
	signal.Notify(c, StartSignal, StopSignal)
	go func() {
		var f *os.File
		for sig := range c {
			switch {
			case sig == StartSignal && f == nil:
				var err error
				if f, err = os.Create(path + ".tmp"); err != nil {
					fmt.Fprintln(os.Stderr, "profile:", err)
					continue
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					fmt.Fprintln(os.Stderr, "profile:", err)
					f.Close()
					f = nil
				}
			case sig == StopSignal && f != nil:
				pprof.StopCPUProfile()
				err := f.Close()
				if err == nil {
					err = os.Rename(path+".tmp", path)
				}
				if err != nil {
					fmt.Fprintln(os.Stderr, "profile:", err)
				}
				f = nil
			}
		}
	}()
	return true
}
