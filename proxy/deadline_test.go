package proxy

import (
	"testing"
	"time"
)

// TestDeadlineArm: a deadline is reset unless the one armed is none as
// asked, or earlier than asked by less than the slack; the first is always
// set, and so is an earlier one or one with no timeout (stopReading's).
func TestDeadlineArm(t *testing.T) {
	t0 := time.Unix(1000, 0)
	const timeout = 1024 * time.Millisecond // slack: 1 ms
	var got []time.Time
	set := func(at time.Time) error { got = append(got, at); return nil }
	var d deadline
	steps := []struct {
		at      time.Time
		timeout time.Duration
		set     bool
	}{
		{t0, timeout, true}, // nothing known armed
		{t0.Add(500 * time.Microsecond), timeout, false},   // within the slack
		{t0.Add(999 * time.Microsecond), timeout, false},   // still: the armed one is t0
		{t0.Add(time.Millisecond), timeout, true},          // a whole slack later
		{t0, timeout, true},                                // earlier than armed
		{time.Time{}, 0, true},                             // none
		{time.Time{}, 0, false},                            // none again
		{t0, timeout, true},                                // a deadline after none
		{t0, 0, true},                                      // no slack without a timeout
		{t0.Add(2 * time.Millisecond), 3 * timeout, false}, // the slack scales with the timeout
	}
	for i, s := range steps {
		n := len(got)
		d.arm(s.at, s.timeout, set)
		if was := len(got) > n; was != s.set {
			t.Fatalf("step %d (%v, %v): set %v, want %v", i, s.at, s.timeout, was, s.set)
		}
		if s.set && !got[len(got)-1].Equal(s.at) {
			t.Fatalf("step %d: set %v, want %v", i, got[len(got)-1], s.at)
		}
	}
}
