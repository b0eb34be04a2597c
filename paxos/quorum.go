package paxos

// This file owns the one computation of what a majority has reached, used
// for the chosen prefix (followers' matches) and for confirmed heartbeat
// rounds (followers' echoes). Pure: no goroutines, called by the core on
// the node's engine goroutine.

import (
	"slices"
	"strconv"
)

// quorumValue returns the highest value that at least q of vals reach: the
// q-th largest. It reorders vals.
func quorumValue(vals []uint64, q int) uint64 {
	if q <= 0 || q > len(vals) {
		panic("paxos: quorum of " + itoa(q) + " among " + itoa(len(vals)) + " values")
	}
	slices.Sort(vals)
	return vals[len(vals)-q]
}

func itoa(n int) string { return strconv.Itoa(n) }
