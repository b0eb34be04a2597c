package nemesis

import (
	"strings"
	"testing"

	"synod/wire"
	"synod/wire/line"
)

// TestCheckWatchers checks the watchers' check on small histories: a
// watcher that saw everything passes; one that missed a change, saw one
// twice, saw a write the proxy refused, disagrees with another, or never
// caught up, is caught under the right kind.
func TestCheckWatchers(t *testing.T) {
	ops := []Op{
		{Kind: KindPut, Key: "k/01", Value: "a;", Outcome: OK, Index: 3},
		{Kind: KindAppend, Key: "log/01", Value: "b;", Outcome: OK, Index: 4},
		{Kind: KindPut, Key: "k/02", Value: "c;", Outcome: Unknown},
		{Kind: KindPut, Key: "k/01", Value: "d;", Outcome: Failed},
	}
	ev := func(idx uint64, op line.EventOp, key, value string) line.Event {
		return line.Event{Index: idx, Op: op, Key: key, Value: []byte(value)}
	}
	all := func(evs ...line.Event) *WatcherLog {
		return &WatcherLog{Name: "all", Prefix: true, Segments: []WatchSegment{{From: 1, Through: 6, Events: evs}}}
	}
	good := []line.Event{ev(3, line.EventPut, "k/01", "a;"), ev(4, line.EventAppend, "log/01", "b;"), ev(5, line.EventPut, "k/02", "c;")}
	tests := []struct {
		name string
		logs []*WatcherLog
		want string // the kind found, "" for none
	}{
		{"complete", []*WatcherLog{all(good...)}, ""},
		{"an unknown write seen by one watcher is owed by the others",
			[]*WatcherLog{all(good...), {Name: "k", Key: "k/", Prefix: true, Segments: []WatchSegment{{From: 1, Through: 6, Events: good[:1]}}}}, VWatchMissed},
		{"missed an acknowledged write", []*WatcherLog{all(good[1:]...)}, VWatchMissed},
		{"twice", []*WatcherLog{all(good[0], good[0], good[1], good[2])}, VWatchBogus},
		{"a refused write", []*WatcherLog{all(append(append([]line.Event(nil), good...), ev(6, line.EventPut, "k/01", "d;"))...)}, VWatchBogus},
		{"at the wrong index", []*WatcherLog{all(ev(2, line.EventPut, "k/01", "a;"), good[1], good[2])}, VWatchBogus},
		{"disagree", []*WatcherLog{all(good...), {Name: "k", Key: "k/", Prefix: true, Segments: []WatchSegment{{From: 1, Through: 6, Events: []line.Event{good[0], ev(4, line.EventPut, "k/02", "c;")}}}}}, VWatchDisagree},
		{"short", []*WatcherLog{{Name: "short", Prefix: true, Segments: []WatchSegment{{From: 1, Through: 3, Events: good[:1]}}}}, VWatchShort},
		{"a gap declared by COMPACTED is no miss", []*WatcherLog{{Name: "gap", Prefix: true, Segments: []WatchSegment{{From: 1, Through: 3, Events: good[:1]}, {From: 5, Through: 6, Events: good[2:]}}}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Report
			checkWatchers(&r, ops, tt.logs, 6)
			if tt.want == "" {
				if r.ViolationCount != 0 {
					t.Fatalf("violations: %v", r.Violations)
				}
				return
			}
			if r.ByKind[tt.want] == 0 {
				t.Fatalf("want a %s violation, got %v", tt.want, r.Violations)
			}
			for _, v := range r.Violations {
				if !strings.HasPrefix(v, "watch-") {
					t.Fatalf("a violation of another kind: %s", v)
				}
			}
		})
	}
}

// TestCheckReplay checks that replaying a watcher's events from index 1
// must give what every read of its keys saw at the read's version.
func TestCheckReplay(t *testing.T) {
	w := &WatcherLog{Name: "all", Prefix: true, Segments: []WatchSegment{{From: 1, Through: 9, Events: []line.Event{
		{Index: 2, Op: line.EventAppend, Key: "log/1", Value: []byte("a;")},
		{Index: 4, Op: line.EventAppend, Key: "log/1", Value: []byte("b;")},
		{Index: 5, Op: line.EventPut, Key: "k", Value: []byte("x;")},
	}}}}
	read := func(key, value string, version uint64) Op {
		return Op{Kind: KindGet, Key: key, Value: value, Outcome: OK, Index: version}
	}
	tests := []struct {
		name string
		read Op
		ok   bool
	}{
		{"the whole log", read("log/1", "a;b;", 4), true},
		{"an older version", read("log/1", "a;", 2), true},
		{"a put", read("k", "x;", 5), true},
		{"beyond what the watcher covers", read("k", "y;", 12), true},
		{"a value the events do not build", read("log/1", "b;", 4), false},
		{"a version the watcher has no change at", read("log/1", "a;", 3), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Report
			checkReplay(&r, []Op{tt.read}, []*WatcherLog{w}, fileTokens(nil))
			if tt.ok != (r.ViolationCount == 0) || !tt.ok && r.ByKind[VWatchState] == 0 {
				t.Fatalf("violations %v, want ok=%v", r.Violations, tt.ok)
			}
		})
	}
}

// TestCheckWatchersFiles: a file key's event carries the file's manifest,
// which stands for the write whose file has the SHA-256 it names.
func TestCheckWatchersFiles(t *testing.T) {
	const chunk = 4096
	data := fileData("0.1;", chunk)
	ops := []Op{
		{Kind: KindPut, File: true, Sum: sumHex(data), Key: "f/00", Value: "0.1;", Outcome: OK, Index: 3},
		{Kind: KindGet, File: true, Key: "f/00", Value: "0.1;", Outcome: OK, Index: 3},
	}
	manifest := func(b []byte) []byte {
		m := wire.Manifest{Size: uint64(len(b)), ChunkSize: chunk, Sum: wire.SumOf(b)}
		for off := 0; off < len(b); off += chunk {
			m.Chunks = append(m.Chunks, wire.SumOf(b[off:min(off+chunk, len(b))]))
		}
		return m.Append(nil)
	}
	for _, tt := range []struct {
		name  string
		value []byte
		want  string
	}{
		{"the file written", manifest(data), ""},
		{"another file", manifest(fileData("9.9;", chunk)), VWatchBogus},
		{"no manifest", []byte("0.1;"), VWatchBogus},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := &WatcherLog{Name: "all", Prefix: true, Segments: []WatchSegment{{From: 1, Through: 3,
				Events: []line.Event{{Index: 3, Op: line.EventPut, Key: "f/00", Value: tt.value}}}}}
			var r Report
			checkWatchers(&r, ops, []*WatcherLog{w}, 3)
			if tt.want == "" && r.ViolationCount != 0 || tt.want != "" && r.ByKind[tt.want] == 0 {
				t.Fatalf("violations %v, want %q", r.Violations, tt.want)
			}
			if tt.want == "" && r.WatchReads != 1 {
				t.Fatalf("%d reads held against the replay, want the file read", r.WatchReads)
			}
		})
	}
}
