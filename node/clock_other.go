//go:build !linux

package node

// This file owns how the node's clock is read outside Linux: Go's monotonic
// clock, which may stop while the machine is suspended. Read by the engine
// goroutine only (clock.go).

import "time"

var processStart = time.Now()

// sinceBoot reads the monotonic clock (it may stop while the machine is
// suspended).
func sinceBoot() time.Duration { return time.Since(processStart) }
