//go:build race

package cluster

// This file says, for Binary, that the tests run under -race, so the
// binary they start is built with -race too. A constant: Binary reads it
// on the test's goroutine.

const raceEnabled = true
