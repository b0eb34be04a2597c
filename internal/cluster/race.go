//go:build race

package cluster

// This file says, for Binary, that the tests run under -race, so the
// binary they start is built with -race too.

const raceEnabled = true
