package nemesis

import (
	"fmt"
	"hash/fnv"
	"math"
	"sort"

	"github.com/anishathalye/porcupine"

	"synod/wire/line"
)

// keyState is the model's state of one key. A write whose outcome is
// unknown leaves the version unknown (its index was never seen); the next
// read or CAS answer that shows a version pins it again.
type keyState struct {
	value   string
	version uint64
	exists  bool
	known   bool // version is known
}

func (s keyState) String() string {
	if !s.exists {
		return "absent"
	}
	v := "?"
	if s.known {
		v = fmt.Sprint(s.version)
	}
	return fmt.Sprintf("%q@%s", abbreviate(s.value), v)
}

// abbreviate shortens long values for the visualisation.
func abbreviate(v string) string {
	if len(v) <= 48 {
		return v
	}
	return v[:16] + "…" + v[len(v)-28:]
}

// stepKey returns every state op can leave s in, given what the client saw;
// none if op could not have seen that from s.
func stepKey(s keyState, op *Op) []keyState {
	switch op.Kind {
	case KindGet:
		if op.Outcome == NotFound {
			if s.exists {
				return nil
			}
			return []keyState{s}
		}
		if !s.exists || s.value != op.Value || (s.known && s.version != op.Index) {
			return nil
		}
		s.version, s.known = op.Index, true
		return []keyState{s}
	case KindPut, KindAppend:
		next := keyState{value: op.Value, exists: true}
		if op.Kind == KindAppend {
			next.value = s.value + op.Value
		}
		if op.Outcome == OK {
			next.version, next.known = op.Index, true
		}
		return []keyState{next}
	case KindCAS:
		applied := keyState{value: op.Value, exists: true}
		// matches: the CAS's condition holds (yes), fails (no) or depends on
		// an unknown version (maybe).
		var yes, maybe bool
		switch {
		case op.Expect == 0:
			yes = !s.exists
		case !s.exists:
			yes = false
		case s.known:
			yes = s.version == op.Expect
		default:
			maybe = true
		}
		switch op.Outcome {
		case OK:
			if !yes && !maybe {
				return nil
			}
			applied.version, applied.known = op.Index, true
			return []keyState{applied}
		case Conflict:
			if yes {
				return nil
			}
			if !s.exists {
				if op.Index != 0 {
					return nil
				}
				return []keyState{s}
			}
			if op.Index == op.Expect || (s.known && s.version != op.Index) {
				return nil
			}
			s.version, s.known = op.Index, true
			return []keyState{s}
		default: // Unknown
			switch {
			case yes:
				return []keyState{applied}
			case maybe:
				return []keyState{applied, s}
			}
			return []keyState{s}
		}
	}
	return nil
}

// Model is the porcupine model of synod's files: each key a register with a
// version (the index of its last write), written by PUT, APPEND and CAS and
// read by linearizable GETs. Operation inputs and outputs are both the *Op.
// Histories are partitioned by key.
func Model() porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Partition: partitionByKey,
		Init:      func() []interface{} { return []interface{}{keyState{known: true}} },
		Step: func(state, input, _ interface{}) []interface{} {
			var out []interface{}
			for _, s := range stepKey(state.(keyState), input.(*Op)) {
				out = append(out, s)
			}
			return out
		},
		Hash: func(state interface{}) uint64 {
			s := state.(keyState)
			h := fnv.New64a()
			h.Write([]byte(s.value))
			return h.Sum64() ^ s.version*0x9e3779b97f4a7c15 ^ boolBits(s.exists, s.known)
		},
		DescribeOperation: func(input, _ interface{}) string { return describeOp(input.(*Op)) },
		DescribeState:     func(state interface{}) string { return state.(keyState).String() },
	}
	return nm.ToModel()
}

func boolBits(a, b bool) uint64 {
	var x uint64
	if a {
		x |= 1 << 62
	}
	if b {
		x |= 1 << 61
	}
	return x
}

func describeOp(op *Op) string {
	who := fmt.Sprintf("c%d", op.Client)
	switch op.Kind {
	case KindGet:
		if op.Outcome == NotFound {
			return fmt.Sprintf("%s get %s → absent", who, op.Key)
		}
		return fmt.Sprintf("%s get %s → %q@%d", who, op.Key, abbreviate(op.Value), op.Index)
	case KindCAS:
		switch op.Outcome {
		case OK:
			return fmt.Sprintf("%s cas %s %d %q → ok@%d", who, op.Key, op.Expect, op.Value, op.Index)
		case Conflict:
			return fmt.Sprintf("%s cas %s %d %q → conflict@%d", who, op.Key, op.Expect, op.Value, op.Index)
		}
		return fmt.Sprintf("%s cas %s %d %q → unknown", who, op.Key, op.Expect, op.Value)
	}
	if op.Outcome == OK {
		return fmt.Sprintf("%s %v %s %q → ok@%d", who, op.Kind, op.Key, op.Value, op.Index)
	}
	return fmt.Sprintf("%s %v %s %q → %v", who, op.Kind, op.Key, op.Value, op.Outcome)
}

func partitionByKey(history []porcupine.Operation) [][]porcupine.Operation {
	byKey := map[string][]porcupine.Operation{}
	for _, o := range history {
		k := o.Input.(*Op).Key
		byKey[k] = append(byKey[k], o)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([][]porcupine.Operation, len(keys))
	for i, k := range keys {
		out[i] = byKey[k]
	}
	return out
}

// linearizableOps turns the operations porcupine checks into its form:
// every write that may have applied and every answered linearizable read.
// A write whose outcome is unknown (or still pending) may take effect at
// any time after its call, but what the reads saw narrows that: one whose
// token some read shows took effect before that read returned, so its
// interval ends there; one to a key only ever appended to that the key's
// final read does not show never took effect before it (an append stays),
// so it is left out. Left open, many unknown appends to one key (a broken
// pipeline leaves eight) make porcupine's search explode.
func linearizableOps(ops []Op) []porcupine.Operation {
	seenBy := map[string]int64{} // token -> earliest return of a read showing it
	appendOnly := map[string]bool{}
	final := map[string]map[string]bool{} // key -> tokens its final read shows
	for i := range ops {
		op := &ops[i]
		if op.Kind.IsWrite() {
			if _, ok := appendOnly[op.Key]; !ok {
				appendOnly[op.Key] = true
			}
			appendOnly[op.Key] = appendOnly[op.Key] && op.Kind == KindAppend
			continue
		}
		if op.Final && (op.Outcome == OK || op.Outcome == NotFound) {
			final[op.Key] = map[string]bool{}
		}
		if op.Outcome != OK {
			continue
		}
		for _, tok := range tokens(op.Value) {
			if t, ok := seenBy[tok]; !ok || op.Return < t {
				seenBy[tok] = op.Return
			}
			if op.Final {
				final[op.Key][tok] = true
			}
		}
	}
	var out []porcupine.Operation
	for i := range ops {
		op := &ops[i]
		ret := op.Return
		switch {
		case op.Kind.IsWrite():
			switch op.Outcome {
			case OK, Conflict:
			case Pending, Unknown:
				ret = math.MaxInt64 // it may take effect at any time after its call
				if t, ok := seenBy[op.Value]; ok && t >= op.Call {
					ret = t
				} else if f, ok := final[op.Key]; ok && appendOnly[op.Key] && !f[op.Value] {
					continue // never took effect
				}
			default:
				continue // refused: nothing applied (checked by the prefix checks)
			}
		case op.Level == line.LevelLinearizable && (op.Outcome == OK || op.Outcome == NotFound):
		default:
			continue
		}
		out = append(out, porcupine.Operation{ClientId: op.Client, Input: op, Output: op, Call: op.Call, Return: ret})
	}
	return out
}
