package proxy

import (
	"fmt"
	"testing"
	"time"
)

// qop is a read in a hold-queue scenario: its seq, and whether the ready
// function accepts it.
type qop struct {
	seq       uint64
	ready     bool
	expired   bool
	backoffMs int // notBefore in ms after now
}

func TestHoldQueueTake(t *testing.T) {
	now := time.Unix(5000, 0)
	tests := []struct {
		name        string
		ops         []qop // pushed in this order
		wantSend    []uint64
		wantExpired []uint64
		wantKept    []uint64
		wantNextMs  int // ms after now; -1 for none
	}{
		{
			name:       "everything ready goes in arrival order",
			ops:        []qop{{seq: 1, ready: true}, {seq: 2, ready: true}, {seq: 3, ready: true}},
			wantSend:   []uint64{1, 2, 3},
			wantNextMs: -1,
		},
		{
			name:       "a read that cannot go holds no other",
			ops:        []qop{{seq: 1}, {seq: 2, ready: true}},
			wantSend:   []uint64{2},
			wantKept:   []uint64{1},
			wantNextMs: 10000,
		},
		{
			name:        "expired reads leave",
			ops:         []qop{{seq: 1, expired: true}, {seq: 2, expired: true}, {seq: 3, ready: true}},
			wantSend:    []uint64{3},
			wantExpired: []uint64{1, 2},
			wantNextMs:  -1,
		},
		{
			name:       "a read in backoff stays and sets next",
			ops:        []qop{{seq: 1, ready: true, backoffMs: 40}, {seq: 2, ready: true}, {seq: 3, ready: true, backoffMs: 20}},
			wantSend:   []uint64{2},
			wantKept:   []uint64{1, 3},
			wantNextMs: 20,
		},
		{
			name:       "retries pushed behind later arrivals go back to their place",
			ops:        []qop{{seq: 5, ready: true}, {seq: 6, ready: true}, {seq: 2, ready: true}, {seq: 1, ready: true}},
			wantSend:   []uint64{1, 2, 5, 6},
			wantNextMs: -1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var q holdQueue
			ready := map[*op]bool{}
			for _, s := range tt.ops {
				o := &op{seq: s.seq, deadline: now.Add(10 * time.Second)}
				if s.expired {
					o.deadline = now
				}
				o.notBefore = now.Add(time.Duration(s.backoffMs) * time.Millisecond)
				ready[o] = s.ready
				q.push(o)
			}
			var asked []uint64
			send, expired, next := q.take(now, func(o *op) bool {
				asked = append(asked, o.seq)
				return ready[o]
			})
			if got := seqs(send); fmt.Sprint(got) != fmt.Sprint(tt.wantSend) {
				t.Errorf("send = %v, want %v (ready asked for %v)", got, tt.wantSend, asked)
			}
			if got := seqs(expired); fmt.Sprint(got) != fmt.Sprint(tt.wantExpired) {
				t.Errorf("expired = %v, want %v", got, tt.wantExpired)
			}
			if got := seqs(q.items); fmt.Sprint(got) != fmt.Sprint(tt.wantKept) {
				t.Errorf("kept = %v, want %v", got, tt.wantKept)
			}
			wantNext := time.Time{}
			if tt.wantNextMs >= 0 {
				wantNext = now.Add(time.Duration(tt.wantNextMs) * time.Millisecond)
			}
			if !next.Equal(wantNext) {
				t.Errorf("next = %v, want %v", next.Sub(now), wantNext.Sub(now))
			}
		})
	}
}

func seqs(ops []*op) []uint64 {
	var out []uint64
	for _, o := range ops {
		out = append(out, o.seq)
	}
	return out
}

func TestHoldQueueDrain(t *testing.T) {
	var q holdQueue
	for i := range 2 {
		q.push(&op{seq: uint64(2 - i)})
	}
	all := q.drain()
	if len(all) != 2 || q.len() != 0 || q.unsorted {
		t.Fatalf("drain returned %d, left len=%d unsorted=%v", len(all), q.len(), q.unsorted)
	}
}
