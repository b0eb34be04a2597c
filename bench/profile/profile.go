// Package profile lets a benchmark CPU-profile the server processes it
// started over exactly its measured window. The benchmark starts each server
// with Env naming a file; a server that calls ListenFromEnv then starts a CPU
// profile on StartSignal (SIGUSR1) and writes it to that file on StopSignal
// (SIGUSR2). Servers started without Env are untouched, so the signals keep
// their default meaning there.
package profile

// This file owns Env and the benchmark's side: where a server's profile
// goes. The signals and the server's side are signal_unix.go's.

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// Env names the environment variable that holds the profile's path.
const Env = "SYNOD_BENCH_PROFILE"

// ErrTimeout is returned by WaitWritten when a profile did not appear.
var ErrTimeout = errors.New("profile: not written in time")

// WaitWritten waits up to d for the profile at path to be written. A server
// writes path.tmp and renames it, so the file is whole once it exists.
func WaitWritten(path string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %s", ErrTimeout, path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
