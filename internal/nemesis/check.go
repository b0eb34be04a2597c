package nemesis

// This file owns the checker: Check's report of what the clients saw
// (linearizability per key through porcupine, every read against a prefix
// of the log, each connection's order) and Visualize. It runs on the caller's
// goroutine (Run's, or its periodic checker's); CheckLinearizable checks
// the keys on goroutines of its own, at most GOMAXPROCS at once.

import (
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"synod/wire/line"
)

// maxViolations bounds the violations a Report lists; the count goes on.
const maxViolations = 50

// The kinds of violation the checks other than porcupine report.
const (
	// VLost: a final read misses an acknowledged write.
	VLost = "lost"
	// VDuplicate: a read shows one write twice.
	VDuplicate = "duplicate"
	// VPrefix: a read shows no prefix of its key's log (a token never
	// written, refused or written later, out of index order, a gap).
	VPrefix = "prefix"
	// VSession: a session read misses a write it must show (its
	// connection's own, or one at or below the MIN index it sent).
	VSession = "session"
	// VOrder: one connection's writes took effect out of request order
	// (their indexes, or their tokens in a value). Issue 21, item 1.
	VOrder = "order"
	// VMonotonic: a session read on one connection went back behind what
	// an earlier one showed. Issue 21, item 2.
	VMonotonic = "monotonic"
)

// orderKinds are the violations the proxy's known bugs (issue 21) cause:
// they fail a check only with CheckOptions.Order.
var orderKinds = map[string]bool{VOrder: true, VMonotonic: true}

// CheckOptions shape Check.
type CheckOptions struct {
	// Timeout bounds porcupine; running out of time is a failure.
	Timeout time.Duration
	// Order makes the per-connection order and session monotonicity checks
	// fail the history; without it they are counted and listed as Known.
	Order bool
}

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

	// Pipelined counts the operations sent in pipelines.
	Pipelined int
	// FileWrites counts the large files' writes (FileAcked those
	// acknowledged), FileReads their answered whole-file reads.
	FileWrites, FileAcked, FileReads int
	// WatchReads counts the reads held against a watcher's replayed
	// events (watch.go), one per read and watcher.
	WatchReads int

	// Violations are what the other checks found, each prefixed with its
	// kind (VLost, ...): acknowledged writes lost, writes applied twice or
	// never made, reads outside every prefix of the log, session reads
	// that missed a write they must show, and, with CheckOptions.Order,
	// writes of one connection out of request order and session reads
	// going back. ByKind counts every kind found, Known ones included.
	Violations     []string
	ViolationCount int
	ByKind         map[string]int
	// Known lists the order and monotonicity violations found when
	// CheckOptions.Order is off: the proxy's known bugs (issue 21). They
	// do not fail the history; KnownCount counts them.
	Known      []string
	KnownCount int

	order bool // CheckOptions.Order
}

// OK reports whether the history passed every check.
func (r *Report) OK() bool {
	return r.Linearizable == porcupine.Ok && r.ViolationCount == 0
}

// Summary is a one-line account of the report.
func (r *Report) Summary() string {
	s := fmt.Sprintf("%d ops (%d writes: %d acked, %d unknown, %d refused; reads lin/session/stale %d/%d/%d, %d unanswered; %d pipelined; large files: %d written, %d acked, %d read whole); porcupine %s in %v; %d other violations",
		r.Ops, r.Writes, r.Acked, r.Unknown, r.Refused, r.Reads[0], r.Reads[1], r.Reads[2], r.ReadFails, r.Pipelined, r.FileWrites, r.FileAcked, r.FileReads,
		r.Linearizable, r.CheckTime.Round(time.Millisecond), r.ViolationCount)
	if len(r.ByKind) > 0 {
		kinds := make([]string, 0, len(r.ByKind))
		for k, n := range r.ByKind {
			kinds = append(kinds, fmt.Sprintf("%s×%d", k, n))
		}
		sort.Strings(kinds)
		s += " (" + strings.Join(kinds, " ") + ")"
	}
	if r.KnownCount > 0 {
		s += fmt.Sprintf("; %d known order/monotonicity violations (issue 21; not failing: -nemesis.order makes them fail)", r.KnownCount)
	}
	return s
}

// violate records a violation of the given kind.
func (r *Report) violate(kind, format string, args ...any) {
	if r.ByKind == nil {
		r.ByKind = map[string]int{}
	}
	r.ByKind[kind]++
	msg := kind + ": " + fmt.Sprintf(format, args...)
	if orderKinds[kind] && !r.order {
		r.KnownCount++
		if len(r.Known) < maxViolations {
			r.Known = append(r.Known, msg)
		}
		return
	}
	r.ViolationCount++
	if len(r.Violations) < maxViolations {
		r.Violations = append(r.Violations, msg)
	}
}

// Check runs every check on h: porcupine on the linearizable operations,
// partitioned by key, within opts.Timeout, and the prefix, session,
// lost-write, order and monotonicity checks on every read and connection.
func Check(h History, opts CheckOptions) Report {
	r := Report{order: opts.Order}
	count(&r, h.Ops)
	start := time.Now()
	r.Linearizable, r.BadKeys = CheckLinearizable(h.Ops, opts.Timeout)
	r.CheckTime = time.Since(start)
	checkReads(&r, h.Ops)
	checkConnections(&r, h.Ops)
	return r
}

func count(r *Report, ops []Op) {
	r.Ops = len(ops)
	for i := range ops {
		op := &ops[i]
		if op.Pipelined {
			r.Pipelined++
		}
		if op.File {
			switch {
			case op.Kind.IsWrite():
				r.FileWrites++
				if op.Outcome == OK {
					r.FileAcked++
				}
			case op.Outcome == OK || op.Outcome == NotFound:
				r.FileReads++
			}
		}
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
// porcupine, key by key, within timeout for all of them together (0: none),
// and returns the verdict and, if it is not Ok, the keys at fault: Illegal
// if any key's history is, else Unknown if any ran out of time.
func CheckLinearizable(ops []Op, timeout time.Duration) (porcupine.CheckResult, []string) {
	m := Model()
	parts := partitionByKey(linearizableOps(ops))
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	verdicts := make([]porcupine.CheckResult, len(parts))
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))
	for i, part := range parts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var left time.Duration
			if !deadline.IsZero() {
				if left = time.Until(deadline); left <= 0 {
					verdicts[i] = porcupine.Unknown
					return
				}
			}
			verdicts[i] = porcupine.CheckOperationsTimeout(m, part, left)
		}()
	}
	wg.Wait()
	res := porcupine.Ok
	var bad []string
	for i, v := range verdicts {
		if v == porcupine.Ok {
			continue
		}
		bad = append(bad, parts[i][0].Input.(*Op).Key)
		if res != porcupine.Illegal {
			res = v
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

// lastAtOrBelow returns the acknowledged write to key with the highest
// index at most idx, or nil.
func (w writeIndex) lastAtOrBelow(key string, idx uint64) *Op {
	list := w.acked[key]
	j := sort.Search(len(list), func(j int) bool { return list[j].Index > idx })
	if j == 0 {
		return nil
	}
	return list[j-1]
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
// version since the write it starts with; a session read must show every
// acknowledged write its connection made before it and every one at or
// below the MIN index it sent; a final read must show every acknowledged
// write.
func checkReads(r *Report, ops []Op) {
	w := indexWrites(ops)
	// mine[conn][key]: index of the connection's last acknowledged write
	// to the key so far (operations are recorded in call order, and one
	// connection's are sequential or pipelined in that order).
	mine := map[int]map[string]uint64{}
	finals := map[string]bool{}
	for i := range ops {
		op := &ops[i]
		if op.Kind.IsWrite() {
			if op.Outcome == OK && op.Conn != 0 {
				if mine[op.Conn] == nil {
					mine[op.Conn] = map[string]uint64{}
				}
				mine[op.Conn][op.Key] = max(mine[op.Conn][op.Key], op.Index)
			}
			continue
		}
		if op.Outcome != OK && op.Outcome != NotFound {
			continue
		}
		checkPrefix(r, w, op)
		if op.Level == line.LevelSession {
			checkSession(r, w, op, mine[op.Conn][op.Key])
		}
		if op.Final {
			finals[op.Key] = true
			checkFinal(r, w, op)
		}
	}
	if len(finals) > 0 {
		for k, list := range w.acked {
			if !finals[k] && len(list) > 0 {
				r.violate(VLost, "key %s has acknowledged writes but no final read", k)
			}
		}
	}
}

// checkSession checks a session read: it must show the last acknowledged
// write to its key made on its connection before it (own, 0 if none), and
// every acknowledged write to its key at or below the MIN index it sent.
func checkSession(r *Report, w writeIndex, op *Op, own uint64) {
	need, why := own, "its connection's own write"
	if op.Conn == 0 {
		need = 0
	}
	if op.Expect > 0 {
		if m := w.lastAtOrBelow(op.Key, op.Expect); m != nil && m.Index > need {
			need, why = m.Index, fmt.Sprintf("%v #%d at or below its MIN %d", m.Kind, m.ID, op.Expect)
		}
	}
	if need > 0 && (op.Outcome != OK || op.Index < need) {
		r.violate(VSession, "session read #%d of %s by client %d (conn %d) saw version %d (%s), before %s at %d",
			op.ID, op.Key, op.Client, op.Conn, op.Index, op.Outcome, why, need)
	}
}

// checkPrefix checks one read against the writes of its key.
func checkPrefix(r *Report, w writeIndex, op *Op) {
	if op.Outcome == NotFound {
		return // the state before the first write; porcupine and checkFinal judge the rest
	}
	what := fmt.Sprintf("%v read #%d of %s (version %d)", op.Level, op.ID, op.Key, op.Index)
	if op.Final {
		what = fmt.Sprintf("final read #%d of %s (version %d)", op.ID, op.Key, op.Index)
	}
	missing := VPrefix // what a write the read should show but does not is
	if op.Final {
		missing = VLost
	}
	toks := tokens(op.Value)
	if len(toks) == 0 {
		r.violate(VPrefix, "%s: empty value, never written", what)
		return
	}
	seen := map[string]bool{}
	lastSeq := map[int]*Op{} // per connection, its write seen last in the value
	var last uint64          // index of the last acknowledged token so far
	var from uint64          // index of the first acknowledged token
	for i, tok := range toks {
		src := w.byToken[tok]
		switch {
		case src == nil:
			r.violate(VPrefix, "%s: %q was never written", what, tok)
			return
		case src.Key != op.Key:
			r.violate(VPrefix, "%s: %q was written to %s", what, tok, src.Key)
			return
		case seen[tok]:
			r.violate(VDuplicate, "%s: %v #%d (%q) applied twice", what, src.Kind, src.ID, tok)
			return
		case src.Outcome == Failed:
			r.violate(VPrefix, "%s: %v #%d (%q) was refused (%s) but applied", what, src.Kind, src.ID, tok, src.Err)
		case src.Outcome == Conflict:
			r.violate(VPrefix, "%s: cas #%d (%q) conflicted but applied", what, src.ID, tok)
		case src.Call > op.Return:
			r.violate(VPrefix, "%s: shows %v #%d (%q), called after the read returned", what, src.Kind, src.ID, tok)
		case i > 0 && src.Kind != KindAppend:
			r.violate(VPrefix, "%s: %v #%d (%q) is not at the start of the value", what, src.Kind, src.ID, tok)
		}
		seen[tok] = true
		if src.Conn != 0 {
			if prev := lastSeq[src.Conn]; prev != nil && prev.Seq > src.Seq {
				r.violate(VOrder, "%s: %v #%d (%q, request %d of conn %d) comes after %v #%d (%q, request %d of the same connection)",
					what, src.Kind, src.ID, tok, src.Seq, src.Conn, prev.Kind, prev.ID, prev.Value, prev.Seq)
			}
			lastSeq[src.Conn] = src
		}
		if src.Outcome == OK {
			if src.Index <= last {
				r.violate(VPrefix, "%s: %q (index %d) after a write at index %d", what, tok, src.Index, last)
			}
			last = src.Index
			if from == 0 {
				from = src.Index
			}
		}
	}
	if src := w.byToken[toks[len(toks)-1]]; src.Outcome == OK && src.Index != op.Index {
		r.violate(VPrefix, "%s: its last write %q is at index %d", what, toks[len(toks)-1], src.Index)
	}
	if last > op.Index {
		r.violate(VPrefix, "%s: holds a write at index %d", what, last)
	}
	list := w.acked[op.Key]
	if first := w.byToken[toks[0]]; first.Kind == KindAppend {
		// The value starts with an append: the key did not exist before
		// it, so no acknowledged write to it can come earlier in the log
		// than the first acknowledged token shown (or, if none is, than
		// the version).
		bound := from
		if bound == 0 {
			bound = op.Index + 1
		}
		if len(list) > 0 && list[0].Index < bound && !seen[list[0].Value] {
			m := list[0]
			r.violate(missing, "%s: starts with append #%d (%q) but misses %v #%d (%q) acknowledged at index %d before it",
				what, first.ID, first.Value, m.Kind, m.ID, m.Value, m.Index)
		}
	}
	if from == 0 {
		return
	}
	// Every write to the key between the first acknowledged token and the
	// version is in the value: a state is a prefix of the log, no gaps.
	for j := sort.Search(len(list), func(j int) bool { return list[j].Index > from }); j < len(list) && list[j].Index <= op.Index; j++ {
		m := list[j]
		switch {
		case m.Kind != KindAppend:
			r.violate(missing, "%s: misses %v #%d acknowledged at index %d, which replaced the value", what, m.Kind, m.ID, m.Index)
		case !seen[m.Value]:
			r.violate(missing, "%s: misses append #%d (%q) acknowledged at index %d", what, m.ID, m.Value, m.Index)
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
		r.violate(VLost, "%v #%d to %s acknowledged at index %d, but the final read shows version %d (%s)",
			newest.Kind, newest.ID, op.Key, newest.Index, op.Index, op.Outcome)
	}
}

// checkConnections checks what one connection's operations promise
// together: its acknowledged writes have indexes in request order (a
// pipeline means what the same requests one after the other would), and
// its session reads never go back: none shows a key older than an earlier
// one did, nor misses an acknowledged write at or below a version an
// earlier one showed (that replica had applied that far).
func checkConnections(r *Report, ops []Op) {
	w := indexWrites(ops)
	byConn := map[int][]*Op{}
	for i := range ops {
		if op := &ops[i]; op.Conn != 0 {
			byConn[op.Conn] = append(byConn[op.Conn], op)
		}
	}
	conns := make([]int, 0, len(byConn))
	for c := range byConn {
		conns = append(conns, c)
	}
	sort.Ints(conns)
	for _, c := range conns {
		list := byConn[c]
		sort.Slice(list, func(i, j int) bool { return list[i].Seq < list[j].Seq })
		var lastWrite *Op
		var seen uint64 // highest version a session read on it showed
		var seenBy *Op
		versions := map[string]*Op{} // per key, the session read showing the newest version
		for _, op := range list {
			if op.Kind.IsWrite() {
				if op.Outcome != OK {
					continue
				}
				if lastWrite != nil && op.Index <= lastWrite.Index {
					r.violate(VOrder, "conn %d: %v #%d (request %d) acknowledged at index %d, after %v #%d (request %d) at index %d",
						c, op.Kind, op.ID, op.Seq, op.Index, lastWrite.Kind, lastWrite.ID, lastWrite.Seq, lastWrite.Index)
				}
				lastWrite = op
				continue
			}
			if op.Level != line.LevelSession || (op.Outcome != OK && op.Outcome != NotFound) {
				continue
			}
			ver := op.Index
			if op.Outcome == NotFound {
				ver = 0
			}
			if prev := versions[op.Key]; prev != nil && ver < prev.Index {
				r.violate(VMonotonic, "conn %d: session read #%d of %s (request %d) saw version %d after read #%d (request %d) saw %d",
					c, op.ID, op.Key, op.Seq, ver, prev.ID, prev.Seq, prev.Index)
			} else if m := w.lastAtOrBelow(op.Key, seen); m != nil && ver < m.Index {
				r.violate(VMonotonic, "conn %d: session read #%d of %s (request %d) saw version %d, missing %v #%d at index %d, though read #%d (request %d) saw a replica at %d",
					c, op.ID, op.Key, op.Seq, ver, m.Kind, m.ID, m.Index, seenBy.ID, seenBy.Seq, seen)
			}
			if op.Outcome == OK {
				if prev := versions[op.Key]; prev == nil || ver > prev.Index {
					versions[op.Key] = op
				}
				if ver > seen {
					seen, seenBy = ver, op
				}
			}
		}
	}
}
