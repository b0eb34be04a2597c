package node

// This file owns the node's clock, which the engine turns into the core's
// ticks. It counts real elapsed time: on Linux CLOCK_BOOTTIME, which goes on
// while the process is stopped and while the machine is suspended (Go's
// monotonic clock stops during a suspend), elsewhere the monotonic clock.
// New creates it; after that only the engine goroutine reads it.

import "time"

// clock measures time elapsed since the node started.
type clock struct {
	start time.Duration
	rate  float64 // test hook: 1 is real time
}

func newClock(rate float64) *clock {
	if rate == 0 {
		rate = 1
	}
	return &clock{start: sinceBoot(), rate: rate}
}

// elapsed returns the time since the clock started.
func (c *clock) elapsed() time.Duration {
	d := sinceBoot() - c.start
	if c.rate != 1 {
		d = time.Duration(float64(d) * c.rate)
	}
	return d
}
