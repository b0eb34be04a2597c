package node

import (
	"fmt"
	"slices"
	"testing"

	"synod/wire"
)

func histEvent(index uint64, key, value string) wire.Event {
	return wire.Event{Index: index, Op: wire.OpPut, Key: key, Value: []byte(value), Prev: []byte("p"), HadPrev: true}
}

func indices(evs []wire.Event) []uint64 {
	var out []uint64
	for _, ev := range evs {
		out = append(out, ev.Index)
	}
	return out
}

// TestHistoryScan checks what a poll finds in a history of changes at
// indices 11..20 (a started-at-10 replica; 13 and 17 changed nothing), by
// key, prefix, byte bound and position.
func TestHistoryScan(t *testing.T) {
	h := newHistory(10, 100, 1<<20)
	var evs []wire.Event
	for i := uint64(11); i <= 20; i++ {
		if i == 13 || i == 17 {
			continue
		}
		evs = append(evs, histEvent(i, fmt.Sprintf("k/%d", i%3), "v"))
	}
	h.record(evs, 20)
	tests := []struct {
		name     string
		from     uint64
		key      string
		prefix   bool
		maxBytes int64
		want     []uint64
		through  uint64
		compact  bool
	}{
		{"all", 11, "", true, 1 << 20, []uint64{11, 12, 14, 15, 16, 18, 19, 20}, 20, false},
		{"one key", 11, "k/1", false, 1 << 20, []uint64{16, 19}, 20, false},
		{"prefix", 15, "k/", true, 1 << 20, []uint64{15, 16, 18, 19, 20}, 20, false},
		{"from a quiet index", 17, "", true, 1 << 20, []uint64{18, 19, 20}, 20, false},
		{"byte bound stops after whole events", 11, "", true, 1, []uint64{11}, 11, false},
		{"byte bound, later", 14, "", true, 2 * (histOverhead + 4), []uint64{14, 15}, 15, false},
		{"nothing yet", 21, "", true, 1 << 20, nil, 20, false},
		{"ahead of the replica", 25, "", true, 1 << 20, nil, 24, false},
		{"before the history", 10, "", true, 1 << 20, nil, 0, true},
		{"no match", 11, "x", false, 1 << 20, nil, 20, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := h.scan(tt.from, watchMatcher(tt.key, tt.prefix), false, tt.maxBytes)
			if s.compact != tt.compact || !slices.Equal(indices(s.events), tt.want) || (!tt.compact && s.through != tt.through) {
				t.Fatalf("scan from %d: events %v through %d compact %v; want %v through %d compact %v",
					tt.from, indices(s.events), s.through, s.compact, tt.want, tt.through, tt.compact)
			}
			for _, ev := range s.events {
				if ev.Prev != nil || ev.HadPrev {
					t.Fatalf("event %d carries its previous value unasked", ev.Index)
				}
			}
		})
	}
	if s := h.scan(11, watchMatcher("", true), true, 1<<20); string(s.events[0].Prev) != "p" || !s.events[0].HadPrev {
		t.Fatalf("asked for previous values, got %+v", s.events[0])
	}
}

// TestHistoryBounds checks that the history keeps its count and byte
// bounds by dropping its oldest changes, that it then refuses an index
// before them, and that a reset forgets everything before its index.
func TestHistoryBounds(t *testing.T) {
	tests := []struct {
		name      string
		entries   int
		maxBytes  int64
		changes   int
		wantFrom  uint64
		wantCount int
	}{
		{"within bounds", 10, 1 << 20, 10, 1, 10},
		{"count bound", 10, 1 << 20, 25, 16, 10},
		{"byte bound", 100, 5 * (histOverhead + 2), 25, 21, 5},
		{"growing past the first allocation", 5000, 1 << 30, 3000, 1, 3000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHistory(0, tt.entries, tt.maxBytes)
			for i := 1; i <= tt.changes; i++ {
				h.record([]wire.Event{{Index: uint64(i), Op: wire.OpPut, Key: "k", Value: []byte("v")}}, uint64(i))
			}
			all := h.scan(tt.wantFrom, watchMatcher("", true), false, 1<<40)
			if h.from != tt.wantFrom || len(all.events) != tt.wantCount || h.bytes > max(tt.maxBytes, histOverhead+2) {
				t.Fatalf("history from %d with %d changes, %d bytes; want from %d with %d", h.from, len(all.events), h.bytes, tt.wantFrom, tt.wantCount)
			}
			if !slices.IsSorted(indices(all.events)) || all.events[0].Index != tt.wantFrom {
				t.Fatalf("history out of order: %v", indices(all.events))
			}
			if s := h.scan(tt.wantFrom-1, watchMatcher("", true), false, 1); tt.wantFrom > 1 && (!s.compact || s.oldest != tt.wantFrom) {
				t.Fatalf("index %d before the history: compact %v oldest %d", tt.wantFrom-1, s.compact, s.oldest)
			}
		})
	}
	h := newHistory(0, 10, 1<<20)
	h.record([]wire.Event{histEvent(1, "a", "x")}, 5)
	woke := h.wake
	h.reset(50)
	select {
	case <-woke:
	default:
		t.Fatal("a reset did not wake the parked polls")
	}
	if s := h.scan(6, watchMatcher("", true), false, 1<<20); !s.compact || s.oldest != 51 {
		t.Fatalf("after a reset to 50: scan from 6 compact %v oldest %d", s.compact, s.oldest)
	}
}
