package proxy

// stats.go: the proxy's counters and latency histograms, safe for any
// goroutine (atomics, and a mutex per histogram).

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// latency is a histogram of request latencies in microseconds, from 1 µs to
// one minute at three significant digits; longer ones count as one minute.
type latency struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
}

const maxLatencyUs = int64(time.Minute / time.Microsecond)

func newLatency() *latency { return &latency{h: hdrhistogram.New(1, maxLatencyUs, 3)} }

func (l *latency) record(d time.Duration) {
	us := min(max(d.Microseconds(), 1), maxLatencyUs)
	l.mu.Lock()
	l.h.RecordValue(us) // in range by construction
	l.mu.Unlock()
}

// figures returns the count and the 50th, 99th, 99.9th percentile and the
// maximum, in milliseconds.
func (l *latency) figures() (n int64, p50, p99, p999, maxMs float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return l.h.TotalCount(), ms(l.h.ValueAtQuantile(50)), ms(l.h.ValueAtQuantile(99)),
		ms(l.h.ValueAtQuantile(99.9)), ms(l.h.Max())
}

// counters are the proxy-wide figures of STATS.
type counters struct {
	started         time.Time
	conns           atomic.Int64  // client connections open now
	connsTotal      atomic.Uint64 // accepted ever
	connsRefused    atomic.Uint64 // answered BUSY at accept
	requests        atomic.Uint64 // client requests parsed (errors included)
	badRequests     atomic.Uint64 // requests refused by the parser
	reads           atomic.Uint64 // reads answered by a replica
	writes          atomic.Uint64 // writes answered by a replica
	unavailable     atomic.Uint64 // requests answered UNAVAILABLE
	busy            atomic.Uint64 // requests answered BUSY for MaxInflight
	timeouts        atomic.Uint64 // requests answered TIMEOUT
	aborts          atomic.Uint64 // connections closed over a write of unknown fate
	retries         atomic.Uint64 // attempts that failed and were tried again
	bufferOverflows atomic.Uint64 // requests refused because the hold queue was full
	bufferExpired   atomic.Uint64 // held requests whose window ended
	failovers       atomic.Uint64 // times the master changed to another replica
	rebases         atomic.Uint64 // sessions moved to a fresh client id
	memBusy         atomic.Uint64 // requests answered BUSY for the in-flight byte budget
	stalls          atomic.Uint64 // times a connection stopped reading for its pipeline byte budget
	readRedos       atomic.Uint64 // session reads asked again for a state older than a reply before them
	memberChanges   atomic.Uint64 // membership changes a master answered
	membersAdded    atomic.Uint64 // replicas the proxy started using after a configuration change
	membersRemoved  atomic.Uint64 // replicas the proxy stopped using after a configuration change
	watchPolls      atomic.Uint64 // watch polls a replica answered
	watches         atomic.Int64  // watches open now
	watchesTotal    atomic.Uint64 // watches started ever
	watchEvents     atomic.Uint64 // events handed to clients' connections
	watchCuts       atomic.Uint64 // watches cut because their client read too slowly
	watchMoves      atomic.Uint64 // watch polls sent elsewhere after a replica's history fell short
	readLat         *latency
	writeLat        *latency
}

func newCounters() *counters {
	return &counters{started: time.Now(), readLat: newLatency(), writeLat: newLatency()}
}

// fmtMs formats milliseconds with microsecond precision.
func fmtMs(ms float64) string { return strconv.FormatFloat(ms, 'f', 3, 64) }
