package node

// This file owns what a replica knows it lacks of its large files: the
// chunks its applied state refers to that it does not hold, and the checks
// still to run. The applier and the snapshot installer add checks, the
// chunk fetcher's goroutine (runChunkFetcher) settles them, and the
// engine's goroutine reads them each tick to tell the core how far the
// applied state is settled: a replica that lost its disk votes again
// only once it holds every chunk of every file it knows, so a second loss
// cannot take the last copy of a chunk the first one lost (paxos's
// SettledUpTo; the simulator's model is paxos/simfiles_test.go).

import (
	"sync/atomic"
	"time"
)

// chunkRetry is how often the fetcher looks again for chunks no peer could
// give it.
const chunkRetry = 5 * time.Second

type chunkDebt struct {
	applied   atomic.Uint64 // the slot the applier applied, stored after it queued that slot's checks
	queued    atomic.Int64  // files queued for a check, not checked yet
	scansAsk  atomic.Int64  // full scans asked for
	scansDone atomic.Int64  // full scans finished: the newest ask they began after
	lacking   atomic.Int64  // chunks the last checks found missing and could not fetch
}

// owed reports whether this replica may lack a chunk its state refers to.
func (d *chunkDebt) owed() bool {
	return d.queued.Load() > 0 || d.scansDone.Load() < d.scansAsk.Load() || d.lacking.Load() > 0
}

// settled returns the slot up to which this replica holds every chunk its
// state refers to, if it knows one: the applied slot, once no check of it
// is pending. The applied slot is read first: the applier queues a slot's
// checks before it stores the slot, and the fetcher counts what it lacks
// before it marks a check done.
func (d *chunkDebt) settled() (uint64, bool) {
	slot := d.applied.Load()
	if d.owed() {
		return 0, false
	}
	return slot, true
}
