package paxos

// Unit tests of when a removed replica may leave. Run by the test's own
// goroutine.

import (
	"math/rand/v2"
	"testing"
)

// TestDepartureCountsDurableKnowledge: a removed replica leaves once a
// majority of the configuration that removed it knows that configuration
// on disk, not in memory only: a voter that knew it only in memory can
// crash and come back knowing less, and with the removed replica gone no
// one may be left to tell it (simulator seed 2699 of the departEarly
// sweep's options with large files, before the fix).
func TestDepartureCountsDurableKnowledge(t *testing.T) {
	cfg := Config{ID: 1, Members: []NodeID{1, 2, 3}, HeartbeatTicks: 2, ElectionTicks: 12, LeaseTicks: 9,
		MaxEntriesPerMsg: 4, MaxInflight: 16, MaxUncommitted: 64, Rand: rand.New(rand.NewPCG(1, 2))}
	removedBy := NewConfiguration([]NodeID{2, 3, 4}, nil)
	r, err := New(cfg, HardState{Applied: 5, Committed: 5, Config: removedBy, ConfigSlot: 5, Membership: Voter})
	if err != nil {
		t.Fatal(err)
	}
	if !r.conf.removed {
		t.Fatalf("replica 1 is not removed by %v", removedBy)
	}
	answer := func(from NodeID, commit, durable uint64) {
		r.Step(Message{Type: MsgProbeResp, From: from, To: 1, Reject: true, Commit: commit, ConfSlot: 5, Index: durable})
	}
	for _, tt := range []struct {
		from            NodeID
		commit, durable uint64
		mayDepart       bool
	}{
		{2, 5, 4, false}, // knows slot 5 chosen, in memory only
		{3, 7, 4, false},
		{4, 5, 0, false},
		{2, 5, 5, false}, // one of three on disk
		{3, 7, 6, true},  // two of three
	} {
		answer(tt.from, tt.commit, tt.durable)
		if got := r.mayDepart(); got != tt.mayDepart {
			t.Fatalf("after voter %d answered commit %d, durable %d: mayDepart %v, want %v", tt.from, tt.commit, tt.durable, got, tt.mayDepart)
		}
	}
}
