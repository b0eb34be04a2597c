//go:build !unix

package profile

// This file owns the profile signals where there are none: ListenFromEnv
// does nothing. Called on the caller's goroutine.

import "os"

// StartSignal and StopSignal are nil where there are no such signals.
var StartSignal, StopSignal os.Signal

// ListenFromEnv does nothing without Unix signals.
func ListenFromEnv() bool { return false }
