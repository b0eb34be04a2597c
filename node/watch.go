package node

// watch.go owns the replica's side of watches: the history of applied
// changes (history) and the answer to a watch poll (handleWatch). The
// applier goroutine appends each applied batch's changes to the history,
// under history.mu for a moment, and wakes the parked polls by closing a
// channel: it never waits for a watcher. A poll that finds nothing to send
// parks on a goroutine of its own (at most Config.MaxWatchPolls of them),
// which scans the history under the read lock whenever it wakes, answers
// on the connection it came from and ends. Nothing here is kept per
// watcher: a watch is a sequence of polls, each saying where it resumes,
// so a slow watcher costs the replica nothing and a poll can go to any
// replica (the proxy moves watches when one dies).

import (
	"context"
	"sort"
	"strings"
	"sync"
	"time"

	"synod/filestore"
	"synod/wire"
)

// Watch poll bounds the replica applies whatever the poll asks.
const (
	// maxWatchWait bounds how long a poll waits for a change.
	maxWatchWait = 30 * time.Second
	// maxWatchBytes bounds the changes one answer carries (at least one
	// whole command always goes).
	maxWatchBytes = 4 << 20
	// histOverhead is what an entry costs besides its key and values.
	histOverhead = 64
	// watchLinger is how long a poll that found a few changes waits for
	// more before it answers (see handleWatch).
	watchLinger = 5 * time.Millisecond
)

// history is the replica's bounded, in-memory record of the changes it
// applied, oldest first. It covers the indices [from, last] completely:
// every change in them is in ring (a command that changed nothing has no
// entry). It starts at the state the replica started from, is cut back
// to nothing by a snapshot installed from a peer (what came between is
// unknown here), and drops its oldest entries past its bounds.
type history struct {
	mu       sync.RWMutex
	ring     []wire.Event // circular: head is the oldest, n entries
	head, n  int
	from     uint64
	last     uint64
	bytes    int64
	limit    int
	maxBytes int64
	// wake is closed, and replaced, whenever last moves.
	wake chan struct{}
}

func newHistory(applied uint64, entries int, maxBytes int64) *history {
	return &history{
		ring: make([]wire.Event, min(entries, 1024)), from: applied + 1, last: applied,
		limit: entries, maxBytes: maxBytes, wake: make(chan struct{}),
	}
}

func eventBytes(ev *wire.Event) int64 {
	return int64(len(ev.Key) + len(ev.Value) + len(ev.Prev) + histOverhead)
}

// record appends the changes of commands up to index last (the ones with
// a change, in index order) and wakes the parked polls. The applier calls
// it.
func (h *history) record(evs []wire.Event, last uint64) {
	h.mu.Lock()
	for i := range evs {
		h.pushLocked(evs[i])
	}
	h.last = max(h.last, last)
	w := h.wake
	h.wake = make(chan struct{})
	h.mu.Unlock()
	close(w)
}

func (h *history) pushLocked(ev wire.Event) {
	for h.n > 0 && (h.n >= h.limit || h.bytes+eventBytes(&ev) > h.maxBytes) {
		h.dropOldestLocked()
	}
	if h.n == len(h.ring) {
		// Grow up to limit: the ring is allocated as it fills.
		grown := make([]wire.Event, min(max(2*len(h.ring), 16), h.limit))
		for i := range h.n {
			grown[i] = h.ring[(h.head+i)%len(h.ring)]
		}
		h.ring, h.head = grown, 0
	}
	h.ring[(h.head+h.n)%len(h.ring)] = ev
	h.n++
	h.bytes += eventBytes(&ev)
}

func (h *history) dropOldestLocked() {
	old := &h.ring[h.head]
	h.bytes -= eventBytes(old)
	h.from = old.Index + 1
	*old = wire.Event{}
	h.head = (h.head + 1) % len(h.ring)
	h.n--
}

// reset forgets everything: the state jumped to applied (a snapshot from a
// peer) and the changes before it are unknown here.
func (h *history) reset(applied uint64) {
	h.mu.Lock()
	for h.n > 0 {
		h.dropOldestLocked()
	}
	h.from, h.last = applied+1, applied
	w := h.wake
	h.wake = make(chan struct{})
	h.mu.Unlock()
	close(w)
}

// figures returns the history's first index, its changes and their bytes.
func (h *history) figures() (from uint64, changes int, bytes int64) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.from, h.n, h.bytes
}

// watchScan is what one look at the history found for a poll.
type watchScan struct {
	events  []wire.Event
	bytes   int64  // of events
	through uint64 // the last index looked at
	last    uint64 // the history's last index
	oldest  uint64 // the history's first index (Reply.Oldest)
	compact bool   // from is older than the history
	wake    <-chan struct{}
}

// scan collects the changes at or after from that match, at most maxBytes
// of them (but at least one), under the read lock: bounded work, so the
// applier's next record waits for it at most that long.
func (h *history) scan(from uint64, match func(string) bool, prev bool, maxBytes int64) watchScan {
	h.mu.RLock()
	defer h.mu.RUnlock()
	s := watchScan{last: h.last, oldest: h.from, wake: h.wake}
	if from < h.from {
		s.compact = true
		return s
	}
	if from > h.last {
		s.through = from - 1
		return s
	}
	// The first entry at or after from.
	i := sort.Search(h.n, func(i int) bool { return h.ring[(h.head+i)%len(h.ring)].Index >= from })
	var size int64
	s.through = h.last
	for ; i < h.n; i++ {
		ev := &h.ring[(h.head+i)%len(h.ring)]
		if !match(ev.Key) {
			continue
		}
		out := *ev
		if !prev {
			out.Prev, out.HadPrev = nil, false
		}
		s.events = append(s.events, out)
		size += eventBytes(&out)
		if size >= maxBytes {
			s.through = ev.Index
			break
		}
	}
	s.bytes = size
	return s
}

// changeEvent turns the state machine's account of a command into the
// event the history keeps, or false if it changed nothing.
func changeEvent(index uint64, ch filestore.Change) (wire.Event, bool) {
	if ch.Op == 0 {
		return wire.Event{}, false
	}
	return wire.Event{Index: index, Op: ch.Op, Key: ch.Key, Value: ch.Value, Prev: ch.Prev, HadPrev: ch.HadPrev}, true
}

// watchMatcher returns whether a key belongs to the watch of key (or of
// every key under it, with prefix).
func watchMatcher(key string, prefix bool) func(string) bool {
	if prefix {
		return func(k string) bool { return strings.HasPrefix(k, key) }
	}
	return func(k string) bool { return k == key }
}

// handleWatch answers a watch poll: at once when the history has a change
// for it (or refuses it COMPACTED), when it asks not to wait, or else once
// a change comes or its wait ends, from a goroutine of its own. A poll
// From 0 starts where the replica is: it is answered at once with nothing
// and Through the last index applied.
func (n *Node) handleWatch(ctx context.Context, req wire.Request, reply replyFunc) {
	if req.Watch == nil {
		reply(wire.Reply{Code: wire.CodeBadRequest, Msg: "watch poll without its parameters", NotApplied: true})
		return
	}
	w := *req.Watch
	if !w.Prefix {
		if err := filestore.ValidateKey(req.Key); err != nil {
			reply(wire.Reply{Code: wire.CodeBadRequest, Msg: err.Error(), NotApplied: true})
			return
		}
	} else if len(req.Key) > filestore.MaxKeyLen {
		reply(wire.Reply{Code: wire.CodeBadRequest, Msg: "watch prefix too long", NotApplied: true})
		return
	}
	match := watchMatcher(req.Key, w.Prefix)
	maxBytes := int64(maxWatchBytes)
	if w.MaxBytes > 0 && int64(w.MaxBytes) < maxBytes {
		maxBytes = int64(w.MaxBytes)
	}
	h := n.hist
	from := w.From
	if from == 0 {
		s := h.scan(^uint64(0), match, false, 0)
		reply(wire.Reply{Code: wire.CodeOK, Through: s.last, Applied: s.last, Oldest: s.oldest})
		return
	}
	answer := func(s watchScan) {
		if s.compact {
			reply(wire.Reply{Code: wire.CodeCompacted, Oldest: s.oldest, Applied: s.last,
				Msg: "the index is older than this replica's watch history"})
			return
		}
		reply(wire.Reply{Code: wire.CodeOK, Events: s.events, Through: s.through, Applied: s.last, Oldest: s.oldest})
	}
	s := h.scan(from, match, w.Prev, maxBytes)
	wait := min(time.Duration(w.Wait)*time.Millisecond, maxWatchWait)
	// A poll that may wait and found only a little lingers a moment for
	// more: under a stream of writes each poll then carries several
	// changes instead of one, which costs the replica and the proxy a
	// frame, a flush and a round trip per few changes instead of per
	// change, for at most watchLinger of delay.
	linger := func(s watchScan) bool { return len(s.events) > 0 && s.bytes < maxBytes/4 }
	if s.compact || wait <= 0 || len(s.events) > 0 && !linger(s) {
		answer(s)
		return
	}
	if n.watchPolls.Add(1) > int64(n.cfg.MaxWatchPolls) {
		n.watchPolls.Add(-1)
		reply(wire.Reply{Code: wire.CodeBusy, Msg: "too many watch polls parked", NotApplied: true})
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer n.watchPolls.Add(-1)
		timer := time.NewTimer(wait)
		defer timer.Stop()
		for len(s.events) == 0 {
			select {
			case <-s.wake:
			case <-timer.C:
				answer(h.scan(from, match, w.Prev, maxBytes))
				return
			case <-ctx.Done():
				reply(wire.Reply{Code: wire.CodeUnavailable, Msg: "replica stopping"})
				return
			}
			if s = h.scan(from, match, w.Prev, maxBytes); s.compact || len(s.events) > 0 && !linger(s) {
				answer(s)
				return
			}
		}
		lt := time.NewTimer(watchLinger)
		defer lt.Stop()
		select {
		case <-lt.C:
		case <-ctx.Done():
		}
		answer(h.scan(from, match, w.Prev, maxBytes))
	}()
}
