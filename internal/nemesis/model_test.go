package nemesis

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"synod/wire/line"
)

// o builds an operation on key "k" by client c over [call, ret].
func o(c int, call, ret int64, kind Kind, value string, out Outcome, index uint64) Op {
	return Op{Client: c, Kind: kind, Key: "k", Value: value, Call: call, Return: ret, Outcome: out, Index: index}
}

func cas(c int, call, ret int64, expect uint64, value string, out Outcome, index uint64) Op {
	op := o(c, call, ret, KindCAS, value, out, index)
	op.Expect = expect
	return op
}

func get(c int, call, ret int64, value string, out Outcome, version uint64) Op {
	return o(c, call, ret, KindGet, value, out, version)
}

func TestModel(t *testing.T) {
	tests := []struct {
		name string
		ops  []Op
		want porcupine.CheckResult
	}{
		{"put then read", []Op{
			o(0, 0, 10, KindPut, "1.1;", OK, 5),
			get(1, 20, 30, "1.1;", OK, 5),
		}, porcupine.Ok},
		{"read of a write acknowledged before it began misses it", []Op{
			o(0, 0, 10, KindPut, "1.1;", OK, 5),
			get(1, 20, 30, "", NotFound, 0),
		}, porcupine.Illegal},
		{"concurrent read may miss a write", []Op{
			o(0, 0, 30, KindPut, "1.1;", OK, 5),
			get(1, 10, 20, "", NotFound, 0),
		}, porcupine.Ok},
		{"read shows a wrong version", []Op{
			o(0, 0, 10, KindPut, "1.1;", OK, 5),
			get(1, 20, 30, "1.1;", OK, 6),
		}, porcupine.Illegal},
		{"appends build the value in order", []Op{
			o(0, 0, 10, KindPut, "1.1;", OK, 5),
			o(0, 11, 20, KindAppend, "1.2;", OK, 7),
			get(1, 21, 30, "1.1;1.2;", OK, 7),
		}, porcupine.Ok},
		{"stale read after a newer one", []Op{
			o(0, 0, 10, KindPut, "1.1;", OK, 5),
			o(0, 11, 20, KindAppend, "1.2;", OK, 7),
			get(1, 21, 30, "1.1;1.2;", OK, 7),
			get(2, 31, 40, "1.1;", OK, 5),
		}, porcupine.Illegal},
		{"append applied twice", []Op{
			o(0, 0, 10, KindAppend, "1.1;", OK, 5),
			get(1, 20, 30, "1.1;1.1;", OK, 5),
		}, porcupine.Illegal},
		{"unknown write may apply later", []Op{
			o(0, 0, 10, KindPut, "1.1;", Unknown, 0),
			get(1, 20, 30, "", NotFound, 0),
			get(1, 40, 50, "1.1;", OK, 9),
			get(2, 60, 70, "1.1;", OK, 9),
		}, porcupine.Ok},
		{"a read pins the unknown version", []Op{
			o(0, 0, 10, KindPut, "1.1;", Unknown, 0),
			get(1, 40, 50, "1.1;", OK, 9),
			get(2, 60, 70, "1.1;", OK, 8),
		}, porcupine.Illegal},
		{"unknown write may never apply", []Op{
			o(0, 0, 10, KindAppend, "1.1;", Unknown, 0),
			get(1, 20, 30, "", NotFound, 0),
			get(1, 40, 50, "", NotFound, 0),
		}, porcupine.Ok},
		{"pending write counts as unknown", []Op{
			o(0, 0, 0, KindAppend, "1.1;", Pending, 0),
			get(1, 20, 30, "1.1;", OK, 3),
		}, porcupine.Ok},
		{"refused write is left out", []Op{
			o(0, 0, 10, KindPut, "1.1;", Failed, 0),
			get(1, 20, 30, "", NotFound, 0),
		}, porcupine.Ok},
		{"cas on absent key", []Op{
			cas(0, 0, 10, 0, "1.1;", OK, 4),
			cas(1, 20, 30, 0, "2.1;", Conflict, 4),
			cas(1, 40, 50, 4, "2.2;", OK, 6),
			get(2, 60, 70, "2.2;", OK, 6),
		}, porcupine.Ok},
		{"cas succeeds against another version", []Op{
			o(0, 0, 10, KindPut, "1.1;", OK, 4),
			cas(1, 20, 30, 3, "2.1;", OK, 6),
		}, porcupine.Illegal},
		{"cas conflicts with the version it expected", []Op{
			o(0, 0, 10, KindPut, "1.1;", OK, 4),
			cas(1, 20, 30, 4, "2.1;", Conflict, 4),
		}, porcupine.Illegal},
		{"cas conflict reports a wrong version", []Op{
			o(0, 0, 10, KindPut, "1.1;", OK, 4),
			cas(1, 20, 30, 3, "2.1;", Conflict, 5),
		}, porcupine.Illegal},
		{"cas on an unknown version, either way", []Op{
			o(0, 0, 10, KindPut, "1.1;", OK, 4),
			o(0, 20, 30, KindAppend, "1.2;", Unknown, 0),
			cas(1, 40, 50, 7, "2.1;", Unknown, 0),
			get(2, 60, 70, "1.1;1.2;", OK, 7),
		}, porcupine.Ok},
		{"cas conflict on an absent key reports version 0", []Op{
			cas(1, 20, 30, 3, "2.1;", Conflict, 0),
			get(2, 40, 50, "", NotFound, 0),
		}, porcupine.Ok},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.ops {
				tc.ops[i].ID = i
			}
			got, bad := CheckLinearizable(tc.ops, 10*time.Second)
			if got != tc.want {
				t.Fatalf("porcupine %s, want %s", got, tc.want)
			}
			if got != porcupine.Ok && (len(bad) != 1 || bad[0] != "k") {
				t.Fatalf("bad keys %v, want [k]", bad)
			}
		})
	}
}

func TestModelPartitionsByKey(t *testing.T) {
	ops := []Op{
		{Key: "a", Kind: KindPut, Value: "1.1;", Call: 0, Return: 10, Outcome: OK, Index: 1},
		{Key: "b", Kind: KindGet, Call: 20, Return: 30, Outcome: NotFound},
		{Key: "a", Kind: KindGet, Call: 20, Return: 30, Value: "1.1;", Outcome: OK, Index: 1},
		{Key: "c", Kind: KindGet, Call: 20, Return: 30, Value: "9.9;", Outcome: OK, Index: 1},
		// Session and stale reads are not porcupine's to judge.
		{Key: "b", Kind: KindGet, Level: line.LevelStale, Call: 20, Return: 30, Value: "x", Outcome: OK, Index: 1},
	}
	got, bad := CheckLinearizable(ops, 10*time.Second)
	if got != porcupine.Illegal || len(bad) != 1 || bad[0] != "c" {
		t.Fatalf("porcupine %s on %v, want Illegal on [c]", got, bad)
	}
}

func TestVisualize(t *testing.T) {
	h := History{Ops: []Op{
		o(0, 0, 10, KindPut, "1.1;", OK, 5),
		get(1, 20, 30, "", NotFound, 0),
	}, Events: []Event{{Start: 5, End: 25, What: "kill-master [1]"}}}
	path := t.TempDir() + "/v.html"
	if err := Visualize(h, []string{"k"}, time.Second, path); err != nil {
		t.Fatal(err)
	}
}

func TestDescribe(t *testing.T) {
	for _, op := range []Op{
		o(0, 0, 10, KindPut, "1.1;", OK, 5),
		o(0, 0, 10, KindAppend, "1.1;", Unknown, 0),
		cas(0, 0, 10, 3, "1.1;", Conflict, 4),
		cas(0, 0, 10, 3, "1.1;", OK, 4),
		cas(0, 0, 10, 3, "1.1;", Unknown, 0),
		get(0, 0, 10, strings.Repeat("1.1;", 40), OK, 4),
		get(0, 0, 10, "", NotFound, 0),
	} {
		if d := describeOp(&op); !strings.Contains(d, "k") || len(d) > 200 {
			t.Errorf("describeOp(%+v) = %q", op, d)
		}
	}
	if s := (keyState{version: 3, known: true}).with("a;", false).String(); s != `"a;"@3` {
		t.Errorf("state %s", s)
	}
	if s := (keyState{version: 3}).with("a;", false).with("b;", true).String(); s != `2 tokens …"b;"@>3` {
		t.Errorf("state %s", s)
	}
	ab := (keyState{}).with("a;", true).with("b;", true)
	if sum, n := sumOf("a;b;"); sum != ab.sum || n != 2 || ab.tokens != 2 {
		t.Error("the digest of a value built by appends differs from the digest of the value read")
	}
	if sum, _ := sumOf("b;a;"); sum == ab.sum {
		t.Error("the digest does not tell the order of tokens apart")
	}
}

func TestLinearizableOpsNarrowsUnknownWrites(t *testing.T) {
	logKey := func(op Op) Op { op.Key = "log"; return op }
	ops := []Op{
		o(0, 0, 10, KindPut, "0.1;", OK, 5),
		o(1, 0, 10, KindAppend, "1.1;", Unknown, 0),                   // seen at 30: ends there
		o(2, 0, 10, KindAppend, "2.1;", Unknown, 0),                   // never seen, key not append-only: open
		logKey(o(3, 0, 10, KindAppend, "3.1;", Unknown, 0)),           // not in the final read of an append-only key: left out
		logKey(o(4, 0, 10, KindAppend, "4.1;", Unknown, 0)),           // in the final read: ends there
		at(line.LevelStale, get(5, 20, 30, "0.1;1.1;", OK, 7)),        // not checked by porcupine, but it saw 1.1
		logKey(final(get(6, 40, 50, "4.1;", OK, 9))),                  // the final read of log
		o(7, 0, 10, KindAppend, "7.1;", Failed, 0),                    // refused: left out
		at(line.LevelSession, get(5, 20, 30, "0.1;1.1;", OK, 7)),      // not checked by porcupine
		at(line.LevelLinearizable, get(8, 60, 70, "0.1;1.1;", OK, 7)), // checked
	}
	got := map[string]int64{}
	for _, p := range linearizableOps(ops) {
		op := p.Input.(*Op)
		got[op.Kind.String()+" "+op.Value] = p.Return
		if op.Value == "1.1;" && op.Kind.IsWrite() && (op.Outcome != OK || op.Index != 7 || !op.afterSet || op.after != "0.1;") {
			t.Errorf("append 1.1; ended a value at version 7 after 0.1;, but porcupine gets %+v", *op)
		}
		if op.Value == "4.1;" && op.Kind.IsWrite() && (!op.afterSet || op.after != "") {
			t.Errorf("append 4.1; began a value, but porcupine gets %+v", *op)
		}
	}
	if ops[2].Outcome != Unknown {
		t.Error("linearizableOps changed the history")
	}
	want := map[string]int64{
		"put 0.1;": 10, "append 1.1;": 30, "append 2.1;": math.MaxInt64, "append 4.1;": 50,
		"get 4.1;": 50, "get 0.1;1.1;": 70,
	}
	if len(got) != len(want) {
		t.Fatalf("porcupine gets %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: return %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
}
