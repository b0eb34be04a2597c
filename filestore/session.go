package filestore

// This file owns the session table's pieces: one client's exactly-once
// record (its last seq and the replies it may ask for again) and the heap
// that finds the least recently active session to expire or evict. Part of
// the Machine: changed only by Apply, on the node's applier goroutine.

import "synod/wire"

// session is one client's exactly-once record: the highest sequence number
// applied and the replies to the last writes, the window [first, last]
// whose replies the client may still ask for again, so a retry gets the
// same answer instead of a second application.
type session struct {
	client  uint64
	last    uint64 // highest seq applied
	active  int64  // log time of the client's last command
	replies []cached
	pos     int // position in the machine's sessionHeap
	tracked
}

// cached is the remembered result of one applied write.
type cached struct {
	code    wire.Code
	index   uint64
	version uint64
}

func (c cached) result() Result {
	return Result{Code: c.code, Index: c.index, Version: c.version}
}

// first returns the seq of the oldest reply held; last+1 when none is.
func (s *session) first() uint64 { return s.last + 1 - uint64(len(s.replies)) }

// reply returns the remembered reply to seq, if it is still held.
func (s *session) reply(seq uint64) (Result, bool) {
	if seq > s.last || seq < s.first() {
		return Result{}, false
	}
	return s.replies[uint64(len(s.replies))-(s.last-seq)-1].result(), true
}

// forget drops the replies to seqs below ack, and the oldest ones beyond
// the limit. It reports whether anything was dropped.
func (s *session) forget(ack uint64, limit int) bool {
	drop := 0
	if f := s.first(); ack > f {
		drop = int(min(ack-f, uint64(len(s.replies))))
	}
	drop = max(drop, len(s.replies)-limit)
	if drop <= 0 {
		return false
	}
	// In place, so a session that keeps one reply never reallocates.
	n := copy(s.replies, s.replies[drop:])
	clear(s.replies[n:])
	s.replies = s.replies[:n]
	return true
}

// older orders sessions for expiry and eviction: least recently active
// first, ties broken by client id. The order depends on nothing but the
// sessions' content, so every replica, and every replica restored from a
// snapshot, evicts the same session.
func older(a, b *session) bool {
	if a.active != b.active {
		return a.active < b.active
	}
	return a.client < b.client
}

// sessionHeap is a binary min-heap under older, so expiry and eviction
// look only at the root and touching a session costs O(log n).
type sessionHeap []*session

func (h sessionHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].pos, h[j].pos = i, j
}

func (h sessionHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !older(h[i], h[p]) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h sessionHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		c := l
		if r := l + 1; r < len(h) && older(h[r], h[l]) {
			c = r
		}
		if !older(h[c], h[i]) {
			return
		}
		h.swap(i, c)
		i = c
	}
}

func (h *sessionHeap) push(s *session) {
	s.pos = len(*h)
	*h = append(*h, s)
	h.up(s.pos)
}

// remove takes s out of the heap.
func (h *sessionHeap) remove(s *session) {
	i, last := s.pos, len(*h)-1
	if i != last {
		h.swap(i, last)
	}
	(*h)[last] = nil
	*h = (*h)[:last]
	if i != last {
		h.fix(i)
	}
	s.pos = -1
}

// fix restores the order after the session at i changed.
func (h sessionHeap) fix(i int) {
	h.up(i)
	h.down(i)
}

// init orders an arbitrary slice.
func (h sessionHeap) init() {
	for i := range h {
		h[i].pos = i
	}
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}
