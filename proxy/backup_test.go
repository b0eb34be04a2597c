package proxy

// This file tests where a backup goes (backup.go, backupTarget): the
// followers of the master, most advanced first, then the master, and every
// live replica at stale. It runs on the test's goroutine, on a router with
// no goroutine started.

import (
	"testing"

	"synod/wire"
)

func TestBackupTarget(t *testing.T) {
	lin, stale := wire.Linearizable, wire.Stale
	down := repState{applied: 99}
	tests := []struct {
		name   string
		master uint64
		states []repState
		level  wire.Consistency
		tried  []uint64
		want   []uint64 // the replicas in the order they are tried; nil: none
	}{
		{"most advanced follower first, master last", 1, []repState{up(10), up(7), up(9)}, lin, nil, []uint64{3, 2, 1}},
		{"ejected followers after the others", 1, []repState{up(10), {alive: true, ejected: true, applied: 9}, up(7)}, lin, nil, []uint64{3, 2, 1}},
		{"down replicas never", 1, []repState{up(10), down, up(7)}, lin, nil, []uint64{3, 1}},
		{"tried ones skipped", 1, []repState{up(10), up(7), up(9)}, lin, []uint64{3}, []uint64{2, 1}},
		{"no master: no read index", 0, []repState{up(10), up(7)}, lin, nil, nil},
		{"no master at stale: the most advanced", 0, []repState{up(5), up(7), down}, stale, nil, []uint64{2, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := testRouter(t, tt.master, tt.states...)
			tried := map[uint64]bool{}
			for _, id := range tt.tried {
				tried[id] = true
			}
			var got []uint64
			for {
				rp := rt.backupTarget(tt.level, tried)
				if rp == nil {
					break
				}
				got = append(got, rp.id)
				tried[rp.id] = true
			}
			if len(got) != len(tt.want) {
				t.Fatalf("tried %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("tried %v, want %v", got, tt.want)
				}
			}
		})
	}
}
