//go:build !unix

package cpu

import "time"

// Self returns ErrUnsupported outside Unix.
func Self() (time.Duration, error) { return 0, ErrUnsupported }
