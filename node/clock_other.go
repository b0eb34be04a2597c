//go:build !linux

package node

import "time"

var processStart = time.Now()

// sinceBoot reads the monotonic clock (it may stop while the machine is
// suspended).
func sinceBoot() time.Duration { return time.Since(processStart) }
