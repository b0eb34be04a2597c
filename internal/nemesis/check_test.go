package nemesis

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"synod/wire/line"
)

func at(level line.Level, op Op) Op { op.Level = level; return op }

func final(op Op) Op { op.Final = true; return op }

// on puts op on connection conn as its seq-th request.
func on(conn, seq int, op Op) Op { op.Conn, op.Seq = conn, seq; return op }

func minIdx(min uint64, op Op) Op { op.Expect = min; return op }

func TestCheckReads(t *testing.T) {
	base := []Op{
		o(0, 0, 10, KindPut, "0.1;", OK, 5),
		o(0, 11, 20, KindAppend, "0.2;", OK, 7),
		o(1, 21, 30, KindAppend, "1.1;", OK, 9),
	}
	with := func(extra ...Op) []Op { return append(append([]Op(nil), base...), extra...) }
	tests := []struct {
		name string
		ops  []Op
		want string // a violation must contain it; "" means none
	}{
		{"clean", with(
			at(line.LevelStale, get(2, 40, 50, "0.1;", OK, 5)),
			at(line.LevelStale, get(2, 40, 50, "0.1;0.2;", OK, 7)),
			at(line.LevelSession, get(1, 40, 50, "0.1;0.2;1.1;", OK, 9)),
			at(line.LevelStale, get(2, 40, 50, "", NotFound, 0)),
			final(get(3, 60, 70, "0.1;0.2;1.1;", OK, 9)),
		), ""},
		{"never written", with(at(line.LevelStale, get(2, 40, 50, "0.1;7.7;", OK, 5))), "never written"},
		{"not a token", with(at(line.LevelStale, get(2, 40, 50, "junk", OK, 5))), "never written"},
		{"empty value", with(at(line.LevelStale, get(2, 40, 50, "", OK, 5))), "empty value"},
		{"applied twice", with(at(line.LevelStale, get(2, 40, 50, "0.1;0.2;0.2;", OK, 7))), "applied twice"},
		{"another key's write", append(with(o(4, 0, 10, KindPut, "4.1;", OK, 3)), func() Op {
			op := at(line.LevelStale, get(2, 40, 50, "4.1;", OK, 3))
			op.Key = "other"
			return op
		}()), "was written to k"},
		{"refused but applied", with(
			o(2, 31, 35, KindAppend, "2.1;", Failed, 0),
			at(line.LevelStale, get(3, 40, 50, "0.1;0.2;1.1;2.1;", OK, 11)),
		), "refused"},
		{"conflicted but applied", with(
			cas(2, 31, 35, 3, "2.1;", Conflict, 9),
			at(line.LevelStale, get(3, 40, 50, "2.1;", OK, 11)),
		), "conflicted but applied"},
		{"read from the future", with(
			o(2, 45, 60, KindAppend, "2.1;", OK, 11),
			at(line.LevelStale, get(3, 40, 44, "0.1;0.2;1.1;2.1;", OK, 11)),
		), "called after the read returned"},
		{"put in the middle", with(at(line.LevelStale, get(2, 40, 50, "0.2;0.1;", OK, 5))), "not at the start"},
		{"out of order", with(at(line.LevelStale, get(2, 40, 50, "0.1;1.1;0.2;", OK, 7))), "after a write at index"},
		{"gap", with(at(line.LevelStale, get(2, 40, 50, "0.1;1.1;", OK, 9))), "misses append"},
		{"overwritten base", with(
			o(2, 31, 35, KindPut, "2.1;", OK, 11),
			o(2, 36, 38, KindAppend, "2.2;", OK, 12),
			at(line.LevelStale, get(3, 40, 50, "0.1;0.2;1.1;2.2;", OK, 12)),
		), "which replaced the value"},
		{"version of another write", with(at(line.LevelStale, get(2, 40, 50, "0.1;0.2;", OK, 9))), "its last write"},
		{"session misses its connection's write", append(with(),
			on(3, 1, o(1, 31, 35, KindAppend, "1.2;", OK, 11)),
			on(3, 2, at(line.LevelSession, get(1, 40, 50, "0.1;0.2;1.1;", OK, 9)))), "its connection's own write"},
		{"session sees nothing", append(with(),
			on(3, 1, o(1, 31, 35, KindAppend, "1.2;", OK, 11)),
			on(3, 2, at(line.LevelSession, get(1, 40, 50, "", NotFound, 0)))), "its connection's own write"},
		{"session on another connection may miss it", append(with(),
			on(3, 1, o(1, 31, 35, KindAppend, "1.2;", OK, 11)),
			on(4, 1, at(line.LevelSession, get(1, 40, 50, "0.1;0.2;1.1;", OK, 9)))), ""},
		{"session misses a write below its MIN", with(minIdx(8, at(line.LevelSession, get(1, 40, 50, "0.1;", OK, 5)))), "at or below its MIN 8"},
		{"session read at its MIN", with(minIdx(8, at(line.LevelSession, get(1, 40, 50, "0.1;0.2;", OK, 7)))), ""},
		{"starts with an append, misses the put before it", with(at(line.LevelStale, get(2, 40, 50, "0.2;1.1;", OK, 9))), "starts with append"},
		{"final read lost the first write", with(final(get(3, 60, 70, "0.2;1.1;", OK, 9))), "lost: final read"},
		{"starts with an append of unknown outcome", []Op{
			o(0, 0, 10, KindAppend, "0.1;", Unknown, 0),
			o(1, 0, 10, KindAppend, "1.1;", OK, 4),
			at(line.LevelStale, get(2, 40, 50, "0.1;", OK, 3)),
		}, ""},
		{"pipelined tokens out of request order", []Op{
			on(5, 1, o(0, 0, 10, KindAppend, "0.1;", Unknown, 0)),
			on(5, 2, o(0, 0, 10, KindAppend, "0.2;", Unknown, 0)),
			at(line.LevelStale, get(2, 40, 50, "0.2;0.1;", OK, 8)),
		}, "order: stale read"},
		{"final read lost a write", with(final(get(3, 60, 70, "0.1;0.2;", OK, 7))), "lost: append #2"},
		{"final read finds nothing", with(final(get(3, 60, 70, "", NotFound, 0))), "lost: append #2"},
		{"key without final read", append(with(final(get(3, 60, 70, "0.1;0.2;1.1;", OK, 9))),
			Op{Key: "z", Kind: KindPut, Value: "5.1;", Outcome: OK, Index: 20}), "no final read"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.ops {
				tc.ops[i].ID = i
			}
			r := Report{order: true}
			checkReads(&r, tc.ops)
			if tc.want == "" {
				if r.ViolationCount != 0 {
					t.Fatalf("violations: %v", r.Violations)
				}
				return
			}
			if r.ViolationCount == 0 || !strings.Contains(strings.Join(r.Violations, "\n"), tc.want) {
				t.Fatalf("violations %v, want one with %q", r.Violations, tc.want)
			}
		})
	}
}

func TestCheckCountsAndSummary(t *testing.T) {
	h := History{Seed: 7, Ops: []Op{
		o(0, 0, 10, KindPut, "0.1;", OK, 5),
		o(0, 11, 20, KindAppend, "0.2;", Unknown, 0),
		o(1, 11, 20, KindAppend, "1.1;", Failed, 0),
		cas(1, 21, 30, 1, "1.2;", Conflict, 5),
		at(line.LevelSession, get(2, 40, 50, "0.1;", OK, 5)),
		at(line.LevelStale, get(2, 40, 50, "", Failed, 0)),
		final(get(3, 60, 70, "0.1;", OK, 5)),
	}}
	for i := range h.Ops {
		h.Ops[i].ID = i
	}
	r := Check(h, CheckOptions{Timeout: time.Minute})
	if !r.OK() {
		t.Fatalf("%s: %v %v", r.Summary(), r.BadKeys, r.Violations)
	}
	want := Report{Ops: 7, Writes: 4, Acked: 2, Unknown: 1, Refused: 1, Reads: [3]int{1, 1, 0}, ReadFails: 1, Linearizable: r.Linearizable, CheckTime: r.CheckTime}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("report %+v, want %+v", r, want)
	}
	if s := r.Summary(); !strings.Contains(s, "7 ops") || !strings.Contains(s, "porcupine Ok") {
		t.Fatalf("summary %q", s)
	}
}

func TestCheckConnections(t *testing.T) {
	tests := []struct {
		name string
		ops  []Op
		want string // a violation must contain it; "" means none
	}{
		{"in order", []Op{
			on(1, 1, o(0, 0, 10, KindAppend, "0.1;", OK, 5)),
			on(1, 2, o(0, 0, 10, KindAppend, "0.2;", Unknown, 0)),
			on(1, 3, o(0, 0, 10, KindAppend, "0.3;", OK, 8)),
			on(1, 4, at(line.LevelSession, get(0, 20, 30, "0.1;", OK, 5))),
			on(1, 5, at(line.LevelSession, get(0, 31, 40, "0.1;", OK, 5))),
		}, ""},
		{"pipelined writes acknowledged out of order", []Op{
			on(1, 1, o(0, 0, 10, KindPut, "0.1;", OK, 7)),
			on(1, 2, o(0, 0, 10, KindPut, "0.2;", OK, 6)),
		}, "order: conn 1: put #1 (request 2) acknowledged at index 6"},
		{"session read goes back", []Op{
			o(3, 0, 5, KindAppend, "3.1;", OK, 4),
			o(3, 6, 8, KindAppend, "3.2;", OK, 9),
			on(1, 1, at(line.LevelSession, get(0, 20, 30, "3.1;3.2;", OK, 9))),
			on(1, 2, at(line.LevelSession, get(0, 31, 40, "3.1;", OK, 4))),
		}, "monotonic: conn 1: session read #3 of k (request 2) saw version 4 after read #2"},
		{"session read behind another key's", []Op{
			o(3, 0, 5, KindAppend, "3.1;", OK, 4),
			func() Op { op := o(3, 6, 8, KindPut, "3.2;", OK, 9); op.Key = "j"; return op }(),
			func() Op {
				op := on(1, 1, at(line.LevelSession, get(0, 20, 30, "3.2;", OK, 9)))
				op.Key = "j"
				return op
			}(),
			on(1, 2, at(line.LevelSession, get(0, 31, 40, "", NotFound, 0))),
		}, "missing append #0 at index 4, though read #2 (request 1) saw a replica at 9"},
		{"other connections may differ", []Op{
			o(3, 0, 5, KindAppend, "3.1;", OK, 4),
			o(3, 6, 8, KindAppend, "3.2;", OK, 9),
			on(1, 1, at(line.LevelSession, get(0, 20, 30, "3.1;3.2;", OK, 9))),
			on(2, 1, at(line.LevelSession, get(0, 31, 40, "3.1;", OK, 4))),
		}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.ops {
				tc.ops[i].ID = i
			}
			r := Report{order: true}
			checkConnections(&r, tc.ops)
			if tc.want == "" {
				if r.ViolationCount != 0 {
					t.Fatalf("violations: %v", r.Violations)
				}
				return
			}
			if r.ViolationCount == 0 || !strings.Contains(strings.Join(r.Violations, "\n"), tc.want) {
				t.Fatalf("violations %v, want one with %q", r.Violations, tc.want)
			}
			// Without CheckOptions.Order the same findings are known, not failures.
			lax := Report{}
			checkConnections(&lax, tc.ops)
			if lax.ViolationCount != 0 || lax.KnownCount != r.ViolationCount || !strings.Contains(strings.Join(lax.Known, "\n"), tc.want) {
				t.Fatalf("without Order: %d violations, %d known %v", lax.ViolationCount, lax.KnownCount, lax.Known)
			}
		})
	}
}

func TestViolationsAreBounded(t *testing.T) {
	var ops []Op
	for i := 0; i < 2*maxViolations; i++ {
		ops = append(ops, at(line.LevelStale, get(0, 0, 1, "nope;", OK, 1)))
	}
	var r Report
	checkReads(&r, ops)
	if r.ViolationCount != 2*maxViolations || len(r.Violations) != maxViolations {
		t.Fatalf("%d violations, %d listed", r.ViolationCount, len(r.Violations))
	}
}

func TestRecorderAndHistoryFile(t *testing.T) {
	rec := NewRecorder()
	w := rec.Begin(Op{Client: 1, Kind: KindPut, Key: "k", Value: "1.1;"})
	rd := rec.Begin(Op{Client: 2, Kind: KindGet, Level: line.LevelSession, Key: "k", Expect: 3})
	start := rec.Now()
	rec.End(w, OK, 4, "", nil)
	rec.Mark(start, "pause-master [2]")
	h := rec.History(42)
	if h.Ops[1].Outcome != Pending || h.Ops[0].Outcome != OK || h.Ops[0].Return < h.Ops[0].Call {
		t.Fatalf("history %+v", h.Ops)
	}
	rec.End(rd, NotFound, 0, "", nil)
	if h.Ops[1].Outcome != Pending {
		t.Fatal("History is not a copy")
	}
	h = rec.History(42)
	path := filepath.Join(t.TempDir(), "history.json")
	if err := h.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := LoadHistory(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(h, back) {
		t.Fatalf("round trip:\n%+v\n%+v", h, back)
	}
	if _, err := LoadHistory(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Fatal("loaded a missing file")
	}
}

func TestParseFaults(t *testing.T) {
	tests := []struct {
		in   string
		want []FaultKind
		err  bool
	}{
		{"", AllFaults, false},
		{"all", AllFaults, false},
		{"kill-master, wipe-disk", []FaultKind{KillMaster, WipeDisk}, false},
		{"kill-master,gremlins", nil, true},
	}
	for _, tc := range tests {
		got, err := ParseFaults(tc.in)
		if (err != nil) != tc.err || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseFaults(%q) = %v, %v", tc.in, got, err)
		}
	}
}

// FuzzTokens checks the token splitter on any value a replica could return:
// the tokens put back together are the value, and all but the last end in
// ';' with no other ';'.
func FuzzTokens(f *testing.F) {
	for _, s := range []string{"", "1.1;", "1.1;2.2;", "junk", "1.1;junk", ";;", "a;b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		toks := tokens(v)
		if strings.Join(toks, "") != v {
			t.Fatalf("tokens(%q) = %q", v, toks)
		}
		for i, tok := range toks {
			if tok == "" {
				t.Fatalf("empty token in %q", toks)
			}
			if i < len(toks)-1 && (!strings.HasSuffix(tok, ";") || strings.Count(tok, ";") != 1) {
				t.Fatalf("token %q of %q", tok, v)
			}
		}
	})
}
