//go:build !unix

package profile

import "os"

// StartSignal and StopSignal are nil where there are no such signals.
var StartSignal, StopSignal os.Signal

// ListenFromEnv does nothing without Unix signals.
func ListenFromEnv() bool { return false }
