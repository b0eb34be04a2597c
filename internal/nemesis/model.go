package nemesis

// This file owns porcupine's model of one key, and the conversion of a
// history into its operations, partitioned by key. Pure: the model's
// functions run on whatever goroutine porcupine checks a key on
// (CheckLinearizable's, or Visualize's caller's).

import (
	"fmt"
	"hash/fnv"
	"math"
	"sort"

	"github.com/anishathalye/porcupine"

	"synod/wire/line"
)

// keyState is the model's state of one key. A write whose outcome is
// unknown leaves the version unknown (its index was never seen) but above
// the one before; the next read or CAS answer that shows a version pins
// it again.
//
// The value is kept as a digest of its tokens in order (valueSum), its
// token count and its last token, not as the bytes: an append-only key's
// value grows to many kilobytes, and porcupine keeps every state it has
// seen.
type keyState struct {
	sum    [16]byte // valueSum of the value's tokens
	tokens int
	last   string // the value's last token
	// version is the key's version if known, else a bound it is above.
	version uint64
	exists  bool
	known   bool // version is known
}

func (s keyState) String() string {
	if !s.exists {
		return "absent"
	}
	v := fmt.Sprintf(">%d", s.version)
	if s.known {
		v = fmt.Sprint(s.version)
	}
	if s.tokens == 1 {
		return fmt.Sprintf("%q@%s", s.last, v)
	}
	return fmt.Sprintf("%d tokens …%q@%s", s.tokens, s.last, v)
}

// valueSum chains the digest of a value with the next token appended to
// it, from the zero digest of no value: values are sequences of unique
// tokens, so equal digests mean equal values.
func valueSum(prev [16]byte, token string) [16]byte {
	h := fnv.New128a()
	h.Write(prev[:])
	h.Write([]byte(token))
	var out [16]byte
	h.Sum(out[:0])
	return out
}

// sumOf returns the digest of a whole value and its token count.
func sumOf(value string) ([16]byte, int) {
	var sum [16]byte
	toks := tokens(value)
	for _, t := range toks {
		sum = valueSum(sum, t)
	}
	return sum, len(toks)
}

// with returns s holding token, appended to its value or, if not
// appended, replacing it.
func (s keyState) with(token string, appended bool) keyState {
	var prev [16]byte
	n := 0
	if appended && s.exists {
		prev, n = s.sum, s.tokens
	}
	s.sum, s.tokens, s.last, s.exists = valueSum(prev, token), n+1, token, true
	return s
}

// abbreviate shortens long values for the visualisation.
func abbreviate(v string) string {
	if len(v) <= 48 {
		return v
	}
	return v[:16] + "…" + v[len(v)-28:]
}

// stepKey returns every state op can leave s in, given what the client saw;
// none if op could not have seen that from s. Acknowledged writes to a key
// take effect in the order of their indexes: the replicas apply the log in
// order and answer a write only once it is applied, so the moments its
// writes became visible order them by index, each within its interval.
// Holding the model to that order costs nothing a correct history needs
// and spares porcupine every other order of concurrent appends.
func stepKey(s keyState, op *Op) []keyState {
	switch op.Kind {
	case KindGet:
		if op.Outcome == NotFound {
			if s.exists {
				return nil
			}
			return []keyState{s}
		}
		if !s.exists || s.sum != op.valueSum() || (s.known && s.version != op.Index) || (!s.known && op.Index <= s.version) {
			return nil
		}
		s.version, s.known = op.Index, true
		return []keyState{s}
	case KindPut, KindAppend:
		if op.Outcome == OK && (op.Index <= s.version || s.known && s.version < op.prev) {
			return nil // writes to a key take effect in index order
		}
		if op.afterSet && (op.after == "" && s.exists || op.after != "" && (!s.exists || s.last != op.after)) {
			return nil // a read showed what it came right after
		}
		next := keyState{version: s.version}.with(op.Value, false)
		if op.Kind == KindAppend {
			next = s.with(op.Value, true)
			next.known = false
		}
		if op.Outcome == OK {
			next.version, next.known = op.Index, true
		}
		return []keyState{next}
	case KindCAS:
		applied := keyState{version: s.version}.with(op.Value, false)
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
			maybe = op.Expect > s.version
		}
		switch op.Outcome {
		case OK:
			if !yes && !maybe || op.Index <= s.version || s.known && s.version < op.prev {
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
			if op.Index == op.Expect || (s.known && s.version != op.Index) || (!s.known && op.Index <= s.version) {
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
			h.Write(s.sum[:])
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
	if op.File {
		who += " file" // a PUTFILE, or a whole-file GET RANGE
	}
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
// any time after its call, or never, but what the reads saw narrows that:
//
//   - one whose token some read shows took effect before that read
//     returned, so its interval ends there;
//   - an append whose token a read shows right after another one applied
//     right after that one (or, first in the value, to no file): nothing
//     else can come between two tokens of a value;
//   - one whose token ends a value the read found at version v was
//     written at index v, as an acknowledged write would be;
//   - one to a key only ever appended to that the key's final read does
//     not show never took effect before it (an append stays), so it is
//     left out.
//
// Every write whose index is known (acknowledged or read, as above) also
// learns the index of the one just below it on its key, which must have
// taken effect first (stepKey).
//
// Left open, unknown appends (a broken pipeline leaves eight) could go
// between any two writes, and porcupine's search explodes. The operations
// porcupine gets are copies; the history is not changed.
func linearizableOps(ops []Op) []porcupine.Operation {
	type sighting struct {
		ret   int64  // earliest return of a read showing the token
		after string // the token before it in that read's value
		index uint64 // a version it ended a value at (0: none seen)
	}
	seen := map[string]*sighting{}
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
		toks := tokens(op.Value)
		for j, tok := range toks {
			sg := seen[tok]
			if sg == nil {
				sg = &sighting{ret: op.Return}
				if j > 0 {
					sg.after = toks[j-1]
				}
				seen[tok] = sg
			}
			sg.ret = min(sg.ret, op.Return)
			if j == len(toks)-1 && sg.index == 0 {
				sg.index = op.Index
			}
			if op.Final {
				final[op.Key][tok] = true
			}
		}
	}
	var out []porcupine.Operation
	indexed := map[string][]*Op{} // per key, the copies of writes whose index is known
	for i := range ops {
		op := &ops[i]
		ret := op.Return
		in := op
		switch {
		case op.Kind.IsWrite():
			switch op.Outcome {
			case OK, Conflict:
			case Pending, Unknown:
				ret = math.MaxInt64 // it may take effect at any time after its call
				sg := seen[op.Value]
				if sg != nil && sg.ret >= op.Call {
					ret = sg.ret
					cp := *op
					if op.Kind == KindAppend {
						cp.after, cp.afterSet = sg.after, true
					}
					if sg.index != 0 && op.Kind != KindCAS {
						cp.Outcome, cp.Index = OK, sg.index
					}
					in = &cp
				} else if f, ok := final[op.Key]; ok && appendOnly[op.Key] && !f[op.Value] {
					continue // never took effect
				}
			default:
				continue // refused: nothing applied (checked by the prefix checks)
			}
		case op.Level == line.LevelLinearizable && (op.Outcome == OK || op.Outcome == NotFound):
			cp := *op
			cp.sum, _ = sumOf(op.Value)
			cp.sumSet = true
			in = &cp
		default:
			continue
		}
		if in.Kind.IsWrite() && in.Outcome == OK {
			if in == op {
				cp := *op
				in = &cp
			}
			indexed[in.Key] = append(indexed[in.Key], in)
		}
		out = append(out, porcupine.Operation{ClientId: op.Client, Input: in, Output: in, Call: op.Call, Return: ret})
	}
	for _, list := range indexed {
		sort.Slice(list, func(i, j int) bool { return list[i].Index < list[j].Index })
		for i := 1; i < len(list); i++ {
			list[i].prev = list[i-1].Index
		}
	}
	return out
}
