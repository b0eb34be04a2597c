package proxy

// balance.go: how reads are spread over the followers: each replica's
// latency estimate, and the power-of-two-choices draw that compares two
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
//  3. Latency counts only beyond noise. Two estimates within a factor
//     latencyBand or within latencyBandMs of each other are equal, and then
//     only the requests in flight compare (scheduling noise on a busy
//     machine makes equal followers' latencies differ by that for a second
//     at a time: 0.2 against 0.45 ms sent 82 % of one client's reads one
//     way). Beyond it, each side's cost is its latency estimate times the
//     square root of (requests in flight + 1): the estimate already holds the
//     queueing a replica usually has, so the full count would take it twice
//     and send a client to a replica five times slower as soon as the fast
//     one had four in flight. (Dividing by each replica's usual load
//     instead rewards being loaded, a feedback loop.) A follower slowed by
//     5 ms, ten times the others' latency here, is far beyond the band.
//  4. A tie keeps the first draw, so equal followers split evenly at random.
//
// A replica's latency estimate is the median of its last five replies, not
// an average: on a machine this loaded a follower process is descheduled
// for tens of milliseconds now and then, and with one client such a stall
// gives that follower one or two slow replies in a row. An average (even
// with outliers capped) moved beyond the band on them, every read went to
// the other follower until probes pulled it back, and one client's reads
// split 60/40 or worse; a median ignores them, while a follower that really
// is slower shows it after three replies. Samples older than a second are
// forgotten, and while a replica gets no samples its estimate drifts
// toward the mean of the other followers: old evidence fades to "as good as
// the others", never to "better than all" (an average that decayed toward
// zero made an idle replica look fastest, drew every read to it, then swung
// back) nor stays "bad forever".

import (
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

const (
	// latencyWindow is how many recent replies the median is taken over.
	latencyWindow = 5
	// latencyMemory: samples older than this are forgotten at the next.
	latencyMemory = time.Second
	// idleHalfLife: while a replica gets no samples, the distance between
	// its estimate and the other followers' mean halves every idleHalfLife.
	idleHalfLife = 250 * time.Millisecond
	// latencyBand and latencyBandMs: two latency estimates count as equal
	// (rule 3) when one is within latencyBand times the other or within
	// latencyBandMs of it.
	latencyBand   = 2.0
	latencyBandMs = 3.0
	// inflightSlack: within the band, b wins only with more than this many
	// requests in flight fewer than a (rule 2). 2 split equal followers a
	// little more evenly still, but let a follower slowed by 5 ms have up
	// to 8.6 % of four clients' reads under -race (its latency then within
	// the band of the loaded fast one's), against 4.3 % with 1.
	inflightSlack = 1
	// probeAfter is how long a follower may go without a read before it is
	// sent one whatever its estimate says (rule 1).
	probeAfter = 50 * time.Millisecond
)

// replyLatency is a replica's read latency estimate in milliseconds.
type replyLatency struct {
	ms   float64                // the median of win: the estimate when last sampled
	at   time.Time              // time of the last sample; zero before the first
	win  [latencyWindow]float64 // the last samples, a ring
	n    int                    // samples in win
	next int                    // where the next sample goes
}

// observe adds one latency sample taken at now.
func (l *replyLatency) observe(d time.Duration, now time.Time) {
	if !l.at.IsZero() && now.Sub(l.at) > latencyMemory {
		l.n, l.next = 0, 0
	}
	l.win[l.next] = float64(d) / float64(time.Millisecond)
	l.next = (l.next + 1) % latencyWindow
	l.n = min(l.n+1, latencyWindow)
	sorted := l.win // a copy
	w := sorted[:l.n]
	slices.Sort(w)
	l.ms = w[l.n/2]
	l.at = now
}

// value returns the estimate at now, drawn toward mean (the other
// followers' mean; 0: none known, and then nothing to draw toward) for the
// time without samples. A replica without a sample yet is taken to be
// average.
func (l *replyLatency) value(now time.Time, mean float64) float64 {
	if l.at.IsZero() {
		return mean
	}
	idle := now.Sub(l.at)
	if idle <= 0 || mean == 0 {
		return l.ms
	}
	return mean + (l.ms-mean)*math.Exp2(-float64(idle)/float64(idleHalfLife))
}

// choice is what the draw knows of one candidate.
type choice struct {
	latMs    float64 // latency estimate now
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
		return b.inflight+inflightSlack < a.inflight
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
