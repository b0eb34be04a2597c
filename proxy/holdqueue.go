package proxy

// holdqueue.go: the reads waiting to be sent. Owned by the router, under
// its mutex. (Writes wait in their connection's session instead.)

import (
	"cmp"
	"slices"
	"time"
)

// holdQueue holds the reads that cannot be sent yet: linearizable reads
// while there is no master, reads no replica can serve, and retries
// waiting out their backoff. It releases them in arrival order.
type holdQueue struct {
	items    []*op // in seq order, unless unsorted
	unsorted bool  // a retry was appended behind later arrivals
}

func (q *holdQueue) len() int { return len(q.items) }

// push adds o. New ops arrive in order; a retry that lands behind later
// arrivals is put back in its place by the next take, once per batch of
// retries rather than once per op.
func (q *holdQueue) push(o *op) {
	if k := len(q.items); k > 0 && q.items[k-1].seq > o.seq {
		q.unsorted = true
	}
	q.items = append(q.items, o)
}

// take removes, in order, the ops whose hold window ended by now (expired)
// and the ops that may go now and that ready accepts (send); ready picks and
// reserves a target for its op. Ops in their backoff stay. next is when
// take should run again without an outside event: the earliest deadline or
// backoff end among the ops left (zero if none).
func (q *holdQueue) take(now time.Time, ready func(*op) bool) (send, expired []*op, next time.Time) {
	if q.unsorted {
		slices.SortFunc(q.items, func(a, b *op) int { return cmp.Compare(a.seq, b.seq) })
		q.unsorted = false
	}
	kept := q.items[:0]
	soonest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for _, o := range q.items {
		switch {
		case !now.Before(o.deadline):
			expired = append(expired, o)
		case now.Before(o.notBefore):
			kept = append(kept, o)
			soonest(o.notBefore)
		case ready(o):
			send = append(send, o)
		default:
			kept = append(kept, o)
		}
	}
	clear(q.items[len(kept):])
	q.items = kept
	for _, o := range kept {
		soonest(o.deadline)
	}
	return send, expired, next
}

// drain removes and returns every op.
func (q *holdQueue) drain() []*op {
	all := q.items
	q.items, q.unsorted = nil, false
	return all
}
