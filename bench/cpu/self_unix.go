//go:build unix

package cpu

// This file owns Self on Unix: this process's CPU time from getrusage,
// children not included. Called on the caller's goroutine (bench.Run's
// coordinator, at the measured window's start and end).

import (
	"fmt"
	"syscall"
	"time"
)

// Self returns the user plus system CPU time this process has used, its
// children not included, at microsecond resolution.
func Self() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("cpu: getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
