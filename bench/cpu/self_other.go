//go:build !unix

package cpu

// This file owns Self where there is no getrusage: it reports
// ErrUnsupported. Called on the caller's goroutine.

import "time"

// Self returns ErrUnsupported outside Unix.
func Self() (time.Duration, error) { return 0, ErrUnsupported }
