package nemesis

// This file owns the nemesis's watchers and their check. Each watcher
// runs on a goroutine of its own for the whole run: it watches a key or a
// prefix through a proxy, and when its connection breaks or the proxy
// cuts it, it watches again FROM the index after the last it is sure of,
// through the other proxy next. What it saw is kept as segments of
// complete coverage: a segment ends only when a resume is refused
// COMPACTED (the history it needed is gone everywhere, a declared gap).
// checkWatchers, on the test's goroutine, holds them against the
// history's writes and against each other.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"synod/wire"
	"synod/wire/line"
)

// WatchSegment is a stretch of the index sequence a watcher saw whole:
// every change of its keys in [From, Through], in Events.
type WatchSegment struct {
	From, Through uint64
	Events        []line.Event
}

// WatcherLog is what one watcher saw.
type WatcherLog struct {
	Name     string
	Key      string
	Prefix   bool
	Segments []WatchSegment
	// Resumes counts the watches started again after a broken connection
	// or a cut; Compacted the resumes refused COMPACTED.
	Resumes, Compacted int
	// Errs are what broke its streams, the first few.
	Errs []string

	mu sync.Mutex // guards the fields above while the watcher runs
}

func (w *WatcherLog) matches(key string) bool {
	if w.Prefix {
		return strings.HasPrefix(key, w.Key)
	}
	return key == w.Key
}

func (w *WatcherLog) pattern() string {
	if w.Prefix {
		return w.Key + "*"
	}
	return w.Key
}

// through is the last index w is complete to (0 before it started).
func (w *WatcherLog) through() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.Segments) == 0 {
		return 0
	}
	return w.Segments[len(w.Segments)-1].Through
}

// watchPatterns are the nemesis watchers' keys and prefixes: every key,
// each family, a few keys of each, and single keys.
var watchPatterns = []struct {
	key    string
	prefix bool
}{
	{"", true}, {"k/", true}, {"log/", true}, {"k/0", true}, {"k/01", false}, {"log/01", false},
}

// runWatcher watches w's keys from index 1 (from1) or from now, through
// proxies in turn, until ctx ends. It drops its own connection now and
// then (after 1 to 6 s, drawn from seed), as a client that reconnects
// would, and resumes through the other proxy.
func runWatcher(ctx context.Context, proxies []string, first int, w *WatcherLog, from1 bool, seed int64) {
	rnd := rand.New(rand.NewPCG(uint64(seed), uint64(first)))
	var next uint64 // where the current segment resumes; 0 before the first WATCH
	if from1 {
		next = 1
	}
	started := false
	for attempt := first; ctx.Err() == nil; attempt++ {
		addr := proxies[attempt%len(proxies)]
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		cl, err := line.Dial(dctx, addr, line.Options{})
		if err != nil {
			cancel()
			sleep(ctx, 100*time.Millisecond)
			continue
		}
		lw, err := cl.Watch(dctx, line.Request{Key: w.Key, WatchPrefix: w.Prefix, From: next})
		cancel()
		if oldest, ok := line.IsCompacted(err); ok {
			// The history it needed is gone everywhere: a new segment
			// from the oldest index left.
			cl.Close()
			w.mu.Lock()
			w.Compacted++
			w.mu.Unlock()
			next = oldest
			started = false
			continue
		}
		if err != nil {
			cl.Close()
			w.note(err)
			sleep(ctx, 100*time.Millisecond)
			continue
		}
		w.mu.Lock()
		if !started {
			w.Segments = append(w.Segments, WatchSegment{From: lw.From(), Through: lw.From() - 1})
			started = true
		} else {
			w.Resumes++
			if seg := &w.Segments[len(w.Segments)-1]; lw.From() != seg.Through+1 {
				w.Errs = append(w.Errs, fmt.Sprintf("resumed from %d, asked %d", lw.From(), seg.Through+1))
			}
		}
		w.mu.Unlock()
		stop := context.AfterFunc(ctx, func() { cl.Close() })
		drop := time.AfterFunc(time.Second+time.Duration(rnd.Int64N(int64(5*time.Second))), func() { cl.Close() })
		for {
			m, err := lw.Next()
			if err != nil {
				if ctx.Err() == nil && drop.Stop() {
					w.note(err) // not the drop's doing
				}
				break
			}
			w.mu.Lock()
			seg := &w.Segments[len(w.Segments)-1]
			if m.Kind == line.WatchEvent {
				seg.Events = append(seg.Events, m.Event)
			}
			seg.Through = max(seg.Through, m.Index)
			next = seg.Through + 1
			w.mu.Unlock()
		}
		drop.Stop()
		stop()
		cl.Close()
	}
}

func (w *WatcherLog) note(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.Errs) < 8 {
		w.Errs = append(w.Errs, err.Error())
	}
}

// Watch violation kinds.
const (
	VWatchMissed   = "watch-missed"   // a change of its keys a watcher did not see
	VWatchBogus    = "watch-bogus"    // an event no write explains, or out of order, or twice
	VWatchDisagree = "watch-disagree" // two watchers saw different changes at one index
	VWatchShort    = "watch-short"    // a watcher never caught up with the last write
	VWatchState    = "watch-state"    // replaying a watcher's events does not give what a read saw
)

// checkWatchers holds what the watchers saw against the history's writes
// and against each other: within a segment, indices rise and each is a
// change of the watcher's keys; every event is a write of the history
// (tokens are unique) at its index when that is known; no two watchers
// disagree on an index; every change any watcher or acknowledged write
// shows at an index a segment covers, of a key it watches, is in it; and
// each watcher reached last, the last acknowledged write. An event of a
// file key (files.go) carries the file's manifest: it stands for the
// write whose file has the SHA-256 the manifest names.
func checkWatchers(r *Report, ops []Op, logs []*WatcherLog, last uint64) {
	type change struct {
		key, value string
		op         line.EventOp
	}
	byToken := map[string]*Op{}
	truth := map[uint64]change{} // index -> the change there, as far as known
	files := fileTokens(ops)
	for i := range ops {
		op := &ops[i]
		if !op.Kind.IsWrite() || op.Final {
			continue
		}
		byToken[op.Key+"\x00"+op.Value] = op
		if op.Outcome == OK {
			ch := change{key: op.Key, value: op.Value, op: line.EventPut}
			if op.Kind == KindAppend {
				ch.op = line.EventAppend
			}
			truth[op.Index] = ch
		}
	}
	for _, w := range logs {
		for _, seg := range w.Segments {
			prev := seg.From - 1
			for _, ev := range seg.Events {
				if ev.Index <= prev || ev.Index > seg.Through || !w.matches(ev.Key) {
					r.violate(VWatchBogus, "%s (%s): event %d %s %s out of order, twice or not its key (segment %d..%d)", w.Name, w.pattern(), ev.Index, ev.Op, ev.Key, seg.From, seg.Through)
					continue
				}
				prev = ev.Index
				value := files.value(ev)
				op := byToken[ev.Key+"\x00"+value]
				if op == nil || op.Outcome == OK && op.Index != ev.Index || op.Outcome == Failed {
					r.violate(VWatchBogus, "%s (%s): event %d %s %s %q is no write of the history at that index", w.Name, w.pattern(), ev.Index, ev.Op, ev.Key, value)
					continue
				}
				ch := change{key: ev.Key, value: value, op: ev.Op}
				if known, ok := truth[ev.Index]; ok && known != ch {
					r.violate(VWatchDisagree, "%s (%s): at %d saw %s %s %q, elsewhere %s %s %q", w.Name, w.pattern(), ev.Index, ch.op, ch.key, ch.value, known.op, known.key, known.value)
					continue
				}
				truth[ev.Index] = ch
			}
		}
	}
	for _, w := range logs {
		for _, seg := range w.Segments {
			seen := map[uint64]bool{}
			for _, ev := range seg.Events {
				seen[ev.Index] = true
			}
			for idx, ch := range truth {
				if idx >= seg.From && idx <= seg.Through && w.matches(ch.key) && !seen[idx] {
					r.violate(VWatchMissed, "%s (%s): missed %d %s %s %q (segment %d..%d)", w.Name, w.pattern(), idx, ch.op, ch.key, ch.value, seg.From, seg.Through)
				}
			}
		}
		if t := w.through(); t < last {
			r.violate(VWatchShort, "%s (%s): complete to %d only, the last acknowledged write is %d (%v)", w.Name, w.pattern(), t, last, w.Errs)
		}
	}
	checkReplay(r, ops, logs, files)
}

// fileTokenMap names the files of a history's writes by their SHA-256.
type fileTokenMap map[string]string

// fileTokens maps the SHA-256 of every file written in ops to its token.
func fileTokens(ops []Op) fileTokenMap {
	m := fileTokenMap{}
	for i := range ops {
		if op := &ops[i]; op.File && op.Kind.IsWrite() {
			m[op.Sum] = op.Value
		}
	}
	return m
}

// value is what ev put as the history knows it: its bytes, or for a file
// key, whose event carries the file's manifest, the token of the write
// whose file the manifest's SHA-256 names (else a description no write
// has, which the checks report).
func (m fileTokenMap) value(ev line.Event) string {
	if !isFileKey(ev.Key) || ev.Op != line.EventPut {
		return string(ev.Value)
	}
	mf, err := wire.ParseManifest(ev.Value)
	if err != nil {
		return fmt.Sprintf("bad-manifest(%.80q);", ev.Value)
	}
	if tok, ok := m[mf.Sum.String()]; ok {
		return tok
	}
	return fmt.Sprintf("unknown-file(sha256 %s);", mf.Sum)
}

// checkReplay replays the events of every watcher whose first segment
// starts at index 1 (so it holds each of its keys' whole history) and
// holds every read of those keys against it: a read that found a key at
// version V must see the value the events up to V build, and the watcher
// must have an event of that key at V itself (a version is the index of
// the key's last write).
func checkReplay(r *Report, ops []Op, logs []*WatcherLog, files fileTokenMap) {
	type state struct {
		index uint64
		value string
	}
	for _, w := range logs {
		if len(w.Segments) == 0 || w.Segments[0].From != 1 {
			continue
		}
		seg := w.Segments[0]
		byKey := map[string][]state{}
		cur := map[string]string{}
		for _, ev := range seg.Events {
			switch ev.Op {
			case line.EventPut:
				cur[ev.Key] = files.value(ev)
			case line.EventAppend:
				cur[ev.Key] += string(ev.Value)
			case line.EventDel:
				delete(cur, ev.Key)
			}
			byKey[ev.Key] = append(byKey[ev.Key], state{index: ev.Index, value: cur[ev.Key]})
		}
		for i := range ops {
			op := &ops[i]
			if op.Kind != KindGet || op.Outcome != OK || op.Index == 0 || op.Index > seg.Through || !w.matches(op.Key) {
				continue
			}
			r.WatchReads++
			states := byKey[op.Key]
			j := len(states) - 1
			for j >= 0 && states[j].index > op.Index {
				j--
			}
			switch {
			case j < 0 || states[j].index != op.Index:
				r.violate(VWatchState, "%s (%s): a read found %s at version %d, and the watcher saw no change of it there", w.Name, w.pattern(), op.Key, op.Index)
			case states[j].value != op.Value:
				r.violate(VWatchState, "%s (%s): a read found %s = %q at version %d, the watcher's events make it %q", w.Name, w.pattern(), op.Key, op.Value, op.Index, states[j].value)
			}
		}
	}
}

// errWatchersBehind is returned by waitWatchers when a watcher did not
// catch up in time.
var errWatchersBehind = errors.New("nemesis: watchers did not catch up")

// waitWatchers waits until every watcher is complete to index last.
func waitWatchers(ctx context.Context, logs []*WatcherLog, last uint64) error {
	for {
		behind := 0
		for _, w := range logs {
			if w.through() < last {
				behind++
			}
		}
		if behind == 0 {
			return nil
		}
		if !sleep(ctx, 50*time.Millisecond) {
			return fmt.Errorf("%w: %d of %d below %d", errWatchersBehind, behind, len(logs), last)
		}
	}
}
