package proxy

// balance.go: latency averages and the power-of-two-choices draw. Plain
// functions and values, used under the router's mutex.

import (
	"math"
	"math/rand/v2"
	"time"
)

// Latency averaging. A sample weighs ewmaAlpha against the average; while a
// replica gets no samples its average halves every ewmaHalfLife, so one that
// was slow once is tried again now and then instead of being shunned forever
// on old evidence.
const (
	ewmaAlpha    = 0.25
	ewmaHalfLife = 2 * time.Second
	// costFloorMs keeps the in-flight count meaningful when an average is
	// (near) zero, as it is before the first sample.
	costFloorMs = 0.01
	// tieBand is how much cheaper the second draw must be to win. Latency
	// averages of equal replicas differ by scheduling noise; without a band
	// the one that happened to look faster would take nearly every read.
	// A real difference (a slow disk, a queue) is far outside it.
	tieBand = 0.25
)

// ewma is a replica's read latency average in milliseconds.
type ewma struct {
	ms   float64
	at   time.Time // time of the last sample; zero before the first
	high bool      // the last sample was an outlier
}

// Outliers: a sample above outlierFactor times the average (plus
// outlierFloorMs) is an outlier. The first of a run counts only as
// outlierCap times the average: one stalled reply (a GC pause, a
// scheduling hiccup) would otherwise make a replica look several times
// slower, and power of two choices would starve it for the seconds the
// average takes to decay. A second outlier in a row counts in full: the
// replica really has become slow.
const (
	outlierFactor  = 3
	outlierCap     = 2
	outlierFloorMs = 0.25
)

// observe adds one latency sample taken at now.
func (e *ewma) observe(d time.Duration, now time.Time) {
	sample := float64(d) / float64(time.Millisecond)
	if e.at.IsZero() {
		e.ms, e.at = sample, now
		return
	}
	v := e.value(now)
	outlier := sample > outlierFactor*v+outlierFloorMs
	if outlier && !e.high {
		sample = min(sample, outlierCap*v+outlierFloorMs)
	}
	e.high = outlier
	e.ms = v + ewmaAlpha*(sample-v)
	e.at = now
}

// value returns the average at now, decayed for the time without samples.
func (e *ewma) value(now time.Time) float64 {
	if e.at.IsZero() {
		return 0
	}
	idle := now.Sub(e.at)
	if idle <= 0 {
		return e.ms
	}
	return e.ms * math.Exp2(-float64(idle)/float64(ewmaHalfLife))
}

// cost is what power-of-two-choices compares: the expected wait, latency
// times the requests already waiting there plus this one.
func cost(ewmaMs float64, inflight int) float64 {
	return (ewmaMs + costFloorMs) * float64(inflight+1)
}

// pickTwo returns the index, among n candidates, of the cheaper of two
// distinct ones drawn at random (power of two choices); -1 if n is 0.
// Drawing two instead of taking the cheapest of all keeps many proxies, each
// with its own slightly stale view, from stampeding onto the same replica.
func pickTwo(n int, costOf func(i int) float64, rnd *rand.Rand) int {
	switch n {
	case 0:
		return -1
	case 1:
		return 0
	}
	a := rnd.IntN(n)
	b := rnd.IntN(n - 1)
	if b >= a {
		b++
	}
	// a is the random draw: within the band it keeps the read, so near
	// ties split evenly.
	if costOf(b) < costOf(a)*(1-tieBand) {
		return b
	}
	return a
}
