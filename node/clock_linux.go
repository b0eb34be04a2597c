package node

// This file owns how the node's clock is read on Linux: CLOCK_BOOTTIME,
// which counts time the machine spent suspended. Read by the engine
// goroutine only (clock.go).

import (
	"time"

	"golang.org/x/sys/unix"
)

// sinceBoot reads CLOCK_BOOTTIME: monotonic, and counting suspended time.
func sinceBoot() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return time.Since(processStart) // cannot happen on Linux since 2.6.39
	}
	return time.Duration(ts.Nano())
}

var processStart = time.Now()
