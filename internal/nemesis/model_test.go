package nemesis

import (
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
	if s := (keyState{value: "a;", version: 3, exists: true, known: true}).String(); s != `"a;"@3` {
		t.Errorf("state %s", s)
	}
	if s := (keyState{value: "a;", exists: true}).String(); s != `"a;"@?` {
		t.Errorf("state %s", s)
	}
}
