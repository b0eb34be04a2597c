//go:build !race

package cluster

// This file says, for Binary, that the tests run without -race.

const raceEnabled = false
