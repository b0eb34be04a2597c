package proxy

// balance.go: how reads are spread over the followers: each replica's
// latency average, and the power-of-two-choices draw that compares two
// replicas. Plain values and functions, used under the router's mutex by
// whichever goroutine routes a read (a connection reader, the drainer) or
// takes in its answer (a replica connection's reader).
//
// A read goes to the better of two distinct eligible followers drawn at
// random. Drawing two instead of taking the best of all keeps many proxies,
// each with its own slightly stale view, from stampeding onto one replica.
// The better of the two is decided by these rules, each there because a
// simpler one failed on this machine:
//
//  1. A probe first. A follower that has had no read sent to it for
//     probeAfter, and has none in flight, takes this one. Without probes a
//     follower that once looked slow gets no reads, so no new samples, so it
//     goes on looking slow: with one client reading in a loop one follower
//     got 25,373 reads in 5 s and the other 1 (issue 19), and a follower
//     that had recovered from a slow spell was still shunned 4 s later. A
//     probe every 50 ms costs a slow follower's client one slow read now
//     and then (under 1 % of a single client's reads for a 5 ms delay), and
//     lets a recovered one show it within a few hundred milliseconds.
//  2. Requests in flight are the primary signal: exact, current, and what
//     makes power of two choices balance under load. Fewer wins, by two or
//     more: a difference of one is only which client happens to be
//     waiting, and counting it makes closed-loop clients split in
//     proportion to the followers' speed of the moment (a follower the
//     machine starved for a second got a third of two clients' reads).
//     With one client the counts are 0 on both sides and say nothing; that
//     is where latency alone used to decide, and noise with it.
//  3. Latency counts only beyond noise. Two averages within a factor
//     latencyBand or within latencyBandMs of each other are equal, and then
//     only the requests in flight compare (scheduling noise on a busy
//     machine makes equal followers' averages differ by that for a second
//     at a time: 0.2 against 0.45 ms sent 82 % of one client's reads one
//     way). Beyond it, each side's cost is its latency average times the
//     square root of (requests in flight + 1): the average already holds the
//     queueing a replica usually has, so the full count would take it twice
//     and send a client to a replica five times slower as soon as the fast
//     one had four in flight. (Dividing by each replica's usual load
//     instead rewards being loaded, a feedback loop.) A follower slowed by
//     5 ms, ten times the others' latency here, is far beyond the band.
//  4. A tie keeps the first draw, so equal followers split evenly at random.
//
// The latency average is an EWMA per sample, robust to stalls: the first
// of a run of outliers counts only at a cap, and no sample counts above
// stallCap times the other followers' mean plus latencyBandMs, so a
// process descheduled for 100 ms (common on a loaded machine) moves its
// average by a bounded step, not beyond the band for seconds; a replica 5 ms
// slower than 0.5 ms peers is still under that cap. While a replica gets no
// samples its average drifts toward the mean of the other followers: old
// evidence fades to "as good as the others", never to "better than all" (an
// average that decayed toward zero made an idle replica look fastest, drew
// every read to it, then swung back) nor stays "bad forever".

import (
	"math"
	"math/rand/v2"
	"time"
)

const (
	// ewmaAlpha is how much one sample weighs against the average, once
	// there are 1/ewmaAlpha samples; before, each of the first samples
	// weighs as much as the others (their plain mean), so a slow first
	// reply, on a cold connection, is diluted within a few replies instead
	// of taking seconds to decay: that early sample is what kept one
	// follower at 15 ms for seconds while its peer answered in 0.2 ms.
	ewmaAlpha = 0.25
	// idleHalfLife: while a replica gets no samples, the distance between
	// its average and the other followers' mean halves every idleHalfLife.
	// A follower that gets only probes moves a fifth of the way toward the
	// mean between two of them, so old evidence is gone within a second,
	// while the probes of a really slow one keep it far from the mean.
	idleHalfLife = 250 * time.Millisecond
	// latencyBand and latencyBandMs: two latency averages count as equal
	// (rule 3) when one is within latencyBand times the other or within
	// latencyBandMs of it.
	latencyBand   = 2.0
	latencyBandMs = 3.0
	// probeAfter is how long a follower may go without a read before it is
	// sent one whatever its average says (rule 1).
	probeAfter = 50 * time.Millisecond
	// stallCap bounds a sample: at most stallCap × (the other followers'
	// mean + latencyBandMs).
	stallCap = 2
)

// ewma is a replica's read latency average in milliseconds.
type ewma struct {
	ms   float64
	at   time.Time // time of the last sample; zero before the first
	n    int       // samples taken, counted up to 1/ewmaAlpha
	high bool      // the last sample was an outlier
}

// Outliers: a sample above outlierFactor times the average (plus
// outlierFloorMs) is an outlier. The first of a run counts only as
// outlierCap times the average: one stalled reply (a GC pause, a
// scheduling hiccup) would otherwise make a replica look several times
// slower until the next samples pulled it back. A second outlier in a row
// counts in full: the replica really has become slow.
const (
	outlierFactor  = 3
	outlierCap     = 2
	outlierFloorMs = 0.25
)

// observe adds one latency sample taken at now; mean is the other
// followers' mean average (0: none known), what the average drifted toward
// since its last sample and what bounds the sample.
func (e *ewma) observe(d time.Duration, now time.Time, mean float64) {
	sample := float64(d) / float64(time.Millisecond)
	if mean > 0 {
		sample = min(sample, stallCap*(mean+latencyBandMs))
	}
	if e.at.IsZero() {
		e.ms, e.at, e.n = sample, now, 1
		return
	}
	v := e.value(now, mean)
	outlier := sample > outlierFactor*v+outlierFloorMs
	if outlier && !e.high {
		sample = min(sample, outlierCap*v+outlierFloorMs)
	}
	e.high = outlier
	if float64(e.n) < 1/ewmaAlpha {
		e.n++
	}
	e.ms = v + max(ewmaAlpha, 1/float64(e.n))*(sample-v)
	e.at = now
}

// value returns the average at now, drawn toward mean (the other
// followers' mean; 0: none known, and then nothing to draw toward) for the
// time without samples. A replica without a sample yet is taken to be
// average.
func (e *ewma) value(now time.Time, mean float64) float64 {
	if e.at.IsZero() {
		return mean
	}
	idle := now.Sub(e.at)
	if idle <= 0 || mean == 0 {
		return e.ms
	}
	return mean + (e.ms-mean)*math.Exp2(-float64(idle)/float64(idleHalfLife))
}

// choice is what the draw knows of one candidate.
type choice struct {
	latMs    float64 // latency average now
	inflight int     // requests sent there and not answered
	due      bool    // owed a probe: no read for probeAfter and none in flight
}

// better reports whether b should take the read rather than a (rules 1 to
// 4 above; a tie keeps a).
func better(a, b choice) bool {
	if a.due != b.due {
		return b.due
	}
	low, high := min(a.latMs, b.latMs), max(a.latMs, b.latMs)
	if high <= max(latencyBand*low, low+latencyBandMs) {
		return b.inflight+1 < a.inflight
	}
	ca := a.latMs * math.Sqrt(float64(a.inflight+1))
	cb := b.latMs * math.Sqrt(float64(b.inflight+1))
	return cb < ca
}

// pickTwo returns the index, among n candidates, of the better of two
// distinct ones drawn at random; -1 if n is 0.
func pickTwo(n int, at func(i int) choice, rnd *rand.Rand) int {
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
	// a is the random draw: a tie keeps it, so ties split evenly.
	if better(at(a), at(b)) {
		return b
	}
	return a
}
