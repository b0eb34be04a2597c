package nemesis

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"synod/wire/line"
)

// maxViolations bounds the violations a Report lists; the count goes on.
const maxViolations = 50

// Report is the verdict on one history.
type Report struct {
	Ops       int // operations recorded
	Writes    int
	Acked     int // writes acknowledged (CAS conflicts included)
	Unknown   int // writes whose outcome is unknown (pending ones included)
	Refused   int // writes refused with nothing applied
	Reads     [3]int
	ReadFails int // reads that got no answer

	// Linearizable is porcupine's verdict on the writes and linearizable
	// reads; Unknown (the checker ran out of time) fails a run like Illegal.
	Linearizable porcupine.CheckResult
	CheckTime    time.Duration
	// BadKeys are the keys whose histories porcupine found illegal or could
	// not decide in time.
	BadKeys []string

	// Violations are what the other checks found: acknowledged writes
	// lost, writes applied twice or never made, reads outside every prefix
	// of the log, session reads that missed the client's own write.
	Violations     []string
	ViolationCount int
}

// OK reports whether the history passed every check.
func (r *Report) OK() bool {
	return r.Linearizable == porcupine.Ok && r.ViolationCount == 0
}

// Summary is a one-line account of the report.
func (r *Report) Summary() string {
	return fmt.Sprintf("%d ops (%d writes: %d acked, %d unknown, %d refused; reads lin/session/stale %d/%d/%d, %d unanswered); porcupine %s in %v; %d other violations",
		r.Ops, r.Writes, r.Acked, r.Unknown, r.Refused, r.Reads[0], r.Reads[1], r.Reads[2], r.ReadFails,
		r.Linearizable, r.CheckTime.Round(time.Millisecond), r.ViolationCount)
}

func (r *Report) violate(format string, args ...any) {
	r.ViolationCount++
	if len(r.Violations) < maxViolations {
		r.Violations = append(r.Violations, fmt.Sprintf(format, args...))
	}
}

// Check runs every check on h: porcupine on the linearizable operations,
// partitioned by key, within timeout, and the prefix, session and
// lost-write checks on every read.
func Check(h History, timeout time.Duration) Report {
	var r Report
	count(&r, h.Ops)
	start := time.Now()
	r.Linearizable, r.BadKeys = CheckLinearizable(h.Ops, timeout)
	r.CheckTime = time.Since(start)
	checkReads(&r, h.Ops)
	return r
}

func count(r *Report, ops []Op) {
	r.Ops = len(ops)
	for i := range ops {
		op := &ops[i]
		if op.Kind.IsWrite() {
			r.Writes++
			switch op.Outcome {
			case OK, Conflict:
				r.Acked++
			case Pending, Unknown:
				r.Unknown++
			case Failed:
				r.Refused++
			}
			continue
		}
		switch op.Outcome {
		case OK, NotFound:
			if int(op.Level) < len(r.Reads) {
				r.Reads[op.Level]++
			}
		default:
			r.ReadFails++
		}
	}
}

// CheckLinearizable checks the writes and linearizable reads of ops with
// porcupine, partitioned by key, and returns the verdict and, if it is not
// Ok, the keys at fault. A timeout of 0 means none.
func CheckLinearizable(ops []Op, timeout time.Duration) (porcupine.CheckResult, []string) {
	m := Model()
	hist := linearizableOps(ops)
	res := porcupine.CheckOperationsTimeout(m, hist, timeout)
	if res == porcupine.Ok {
		return res, nil
	}
	// Name the keys at fault, each checked alone (a timed-out run names
	// the keys that still time out).
	var bad []string
	for _, part := range partitionByKey(hist) {
		if porcupine.CheckOperationsTimeout(m, part, timeout) != porcupine.Ok {
			bad = append(bad, part[0].Input.(*Op).Key)
		}
	}
	return res, bad
}

// Visualize writes porcupine's HTML view of the given keys' histories to
// path, with the nemesis events as annotations.
func Visualize(h History, keys []string, timeout time.Duration, path string) error {
	want := map[string]bool{}
	for _, k := range keys {
		want[k] = true
	}
	var ops []Op
	for _, op := range h.Ops {
		if want[op.Key] {
			ops = append(ops, op)
		}
	}
	m := Model()
	_, info := porcupine.CheckOperationsVerbose(m, linearizableOps(ops), timeout)
	var notes []porcupine.Annotation
	for _, e := range h.Events {
		notes = append(notes, porcupine.Annotation{Tag: "nemesis", Start: e.Start, End: e.End, Description: e.What})
	}
	info.AddAnnotations(notes)
	if err := porcupine.VisualizePath(m, info, path); err != nil {
		return fmt.Errorf("nemesis: visualize: %w", err)
	}
	return nil
}

// tokens splits a value into the tokens that wrote it; every written value
// is one token ending in ';'.
func tokens(v string) []string {
	var out []string
	for v != "" {
		i := strings.IndexByte(v, ';')
		if i < 0 {
			return append(out, v) // not a token: reported by the caller
		}
		out = append(out, v[:i+1])
		v = v[i+1:]
	}
	return out
}

// writeIndex finds the writes behind the tokens of a history.
type writeIndex struct {
	byToken map[string]*Op
	acked   map[string][]*Op // per key: writes that changed it, by index
}

func indexWrites(ops []Op) writeIndex {
	w := writeIndex{byToken: map[string]*Op{}, acked: map[string][]*Op{}}
	for i := range ops {
		op := &ops[i]
		if !op.Kind.IsWrite() {
			continue
		}
		w.byToken[op.Value] = op
		if op.Outcome == OK {
			w.acked[op.Key] = append(w.acked[op.Key], op)
		}
	}
	for _, list := range w.acked {
		sort.Slice(list, func(i, j int) bool { return list[i].Index < list[j].Index })
	}
	return w
}

// checkReads checks every answered read against a prefix of the log: the
// value it shows must be a state the key had after some write called before
// the read returned, holding every acknowledged write to the key up to its
// version since the write it starts with; a session read must show its
// client's last acknowledged write to the key; a final read must show every
// acknowledged write.
func checkReads(r *Report, ops []Op) {
	w := indexWrites(ops)
	own := map[int]map[string]uint64{} // client -> key -> index of its last acknowledged write
	finals := map[string]bool{}
	for i := range ops {
		op := &ops[i]
		if op.Kind.IsWrite() {
			if op.Outcome == OK {
				if own[op.Client] == nil {
					own[op.Client] = map[string]uint64{}
				}
				own[op.Client][op.Key] = max(own[op.Client][op.Key], op.Index)
			}
			continue
		}
		if op.Outcome != OK && op.Outcome != NotFound {
			continue
		}
		checkPrefix(r, w, op)
		if op.Level == line.LevelSession {
			if mine := own[op.Client][op.Key]; mine > 0 && (op.Outcome != OK || op.Index < mine) {
				r.violate("session read #%d of %s by client %d saw version %d (%s), before its own write at %d",
					op.ID, op.Key, op.Client, op.Index, op.Outcome, mine)
			}
		}
		if op.Final {
			finals[op.Key] = true
			checkFinal(r, w, op)
		}
	}
	if len(finals) > 0 {
		for k, list := range w.acked {
			if !finals[k] && len(list) > 0 {
				r.violate("key %s has acknowledged writes but no final read", k)
			}
		}
	}
}

// checkPrefix checks one read against the writes of its key.
func checkPrefix(r *Report, w writeIndex, op *Op) {
	if op.Outcome == NotFound {
		return // the state before the first write; porcupine and checkFinal judge the rest
	}
	what := fmt.Sprintf("%v read #%d of %s (version %d)", op.Level, op.ID, op.Key, op.Index)
	toks := tokens(op.Value)
	if len(toks) == 0 {
		r.violate("%s: empty value, never written", what)
		return
	}
	seen := map[string]bool{}
	var last uint64 // index of the last acknowledged token so far
	var from uint64 // index of the first acknowledged token
	for i, tok := range toks {
		src := w.byToken[tok]
		switch {
		case src == nil:
			r.violate("%s: %q was never written", what, tok)
			return
		case src.Key != op.Key:
			r.violate("%s: %q was written to %s", what, tok, src.Key)
			return
		case seen[tok]:
			r.violate("%s: %v #%d (%q) applied twice", what, src.Kind, src.ID, tok)
			return
		case src.Outcome == Failed:
			r.violate("%s: %v #%d (%q) was refused (%s) but applied", what, src.Kind, src.ID, tok, src.Err)
		case src.Outcome == Conflict:
			r.violate("%s: cas #%d (%q) conflicted but applied", what, src.ID, tok)
		case src.Call > op.Return:
			r.violate("%s: shows %v #%d (%q), called after the read returned", what, src.Kind, src.ID, tok)
		case i > 0 && src.Kind != KindAppend:
			r.violate("%s: %v #%d (%q) is not at the start of the value", what, src.Kind, src.ID, tok)
		}
		seen[tok] = true
		if src.Outcome == OK {
			if src.Index <= last {
				r.violate("%s: %q (index %d) after a write at index %d", what, tok, src.Index, last)
			}
			last = src.Index
			if from == 0 {
				from = src.Index
			}
		}
	}
	if src := w.byToken[toks[len(toks)-1]]; src.Outcome == OK && src.Index != op.Index {
		r.violate("%s: its last write %q is at index %d", what, toks[len(toks)-1], src.Index)
	}
	if last > op.Index {
		r.violate("%s: holds a write at index %d", what, last)
	}
	if from == 0 {
		return
	}
	// Every write to the key between the first acknowledged token and the
	// version is in the value: a state is a prefix of the log, no gaps.
	list := w.acked[op.Key]
	for j := sort.Search(len(list), func(j int) bool { return list[j].Index > from }); j < len(list) && list[j].Index <= op.Index; j++ {
		m := list[j]
		switch {
		case m.Kind != KindAppend:
			r.violate("%s: misses %v #%d acknowledged at index %d, which replaced the value", what, m.Kind, m.ID, m.Index)
		case !seen[m.Value]:
			r.violate("%s: misses append #%d (%q) acknowledged at index %d", what, m.ID, m.Value, m.Index)
		}
	}
}

// checkFinal checks a read taken after the cluster healed and every client
// stopped: no acknowledged write to its key may be newer than it.
func checkFinal(r *Report, w writeIndex, op *Op) {
	list := w.acked[op.Key]
	if len(list) == 0 {
		return
	}
	newest := list[len(list)-1]
	if op.Outcome == NotFound || newest.Index > op.Index {
		r.violate("lost write: %v #%d to %s acknowledged at index %d, but the final read shows version %d (%s)",
			newest.Kind, newest.ID, op.Key, newest.Index, op.Index, op.Outcome)
	}
}
