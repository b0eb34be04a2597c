package proxy

import (
	"cmp"
	"slices"
	"time"
)

// holdQueue holds the ops that cannot be sent yet: writes while there is no
// master, linearizable reads likewise, reads no replica can serve, and
// retries waiting out their backoff. It releases them in arrival order, and
// writes strictly so: a write never overtakes an earlier one, so the writes
// of one connection reach the master in the order they were sent.
type holdQueue struct {
	max      int   // bound on admissions (retries of admitted ops may exceed it)
	items    []*op // in seq order, unless unsorted
	unsorted bool  // a retry was appended behind later arrivals
	writes   int   // writes among items
}

// full reports whether a new op must be refused.
func (q *holdQueue) full() bool { return len(q.items) >= q.max }

func (q *holdQueue) len() int { return len(q.items) }

// push adds o. New ops arrive in order; a retry that lands behind later
// arrivals is put back in its place by the next take, once per batch of
// retries rather than once per op.
func (q *holdQueue) push(o *op) {
	if k := len(q.items); k > 0 && q.items[k-1].seq > o.seq {
		q.unsorted = true
	}
	q.items = append(q.items, o)
	if o.write {
		q.writes++
	}
}

// take removes, in order, the ops whose hold window ended by now (expired)
// and the ops that may go now and that ready accepts (send); ready picks and
// reserves a target for its op. Ops in their backoff, and every write after
// a write that cannot go, stay. next is when take should run again without
// an outside event: the earliest deadline or backoff end among the ops left
// (zero if none).
func (q *holdQueue) take(now time.Time, ready func(*op) bool) (send, expired []*op, next time.Time) {
	if q.unsorted {
		slices.SortFunc(q.items, func(a, b *op) int { return cmp.Compare(a.seq, b.seq) })
		q.unsorted = false
	}
	kept := q.items[:0]
	writeBlocked := false
	soonest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for _, o := range q.items {
		switch {
		case !now.Before(o.deadline):
			expired = append(expired, o)
		case o.write && writeBlocked:
			kept = append(kept, o)
		case now.Before(o.notBefore):
			kept = append(kept, o)
			soonest(o.notBefore)
			writeBlocked = writeBlocked || o.write
		case ready(o):
			send = append(send, o)
		default:
			kept = append(kept, o)
			writeBlocked = writeBlocked || o.write
		}
	}
	clear(q.items[len(kept):])
	q.items = kept
	q.writes = 0
	for _, o := range kept {
		soonest(o.deadline)
		if o.write {
			q.writes++
		}
	}
	return send, expired, next
}

// drain removes and returns every op.
func (q *holdQueue) drain() []*op {
	all := q.items
	q.items, q.writes, q.unsorted = nil, 0, false
	return all
}
