//go:build !race

package cluster

// This file says, for Binary, that the tests run without -race. A
// constant: Binary reads it on the test's goroutine.

const raceEnabled = false
