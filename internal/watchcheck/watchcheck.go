// Package watchcheck checks what watchers saw against the truth: the
// changes a replica's log holds. Changes replays a (stopped) replica's log
// through a fresh state machine, as the replica did, and Check compares
// one watcher's events with the changes of its key or prefix: the same
// ones, in index order, none missing, none twice. For the end-to-end
// tests and the nemesis; everything runs on the caller's goroutine.
package watchcheck

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"synod/filestore"
	"synod/filestore/wal"
	"synod/paxos"
	"synod/wire"
	"synod/wire/line"
)

// ErrMismatch is returned (wrapped) by Check when a watcher's events are
// not the changes it should have seen.
var ErrMismatch = errors.New("watchcheck: events differ from the log")

// Change is one change the log holds: the command at Index changed Key.
type Change struct {
	Index uint64
	Op    line.EventOp
	Key   string
	Value []byte // the new value (PUT), the bytes appended (APPEND), nil (DEL)
}

// Changes replays the log of the replica whose data directory is dir,
// from its first slot, through a state machine with opts (the replicas'
// --max-value), and returns every change in index order and the number of
// commands applied. The log must start at slot 1 (no snapshot cut it) and
// the replica should be stopped. For each slot the last value accepted
// counts: in a replica that applied the slot, that is the chosen one.
func Changes(dir string, opts filestore.Options) ([]Change, uint64, error) {
	values := map[uint64]wal.Record{}
	var top uint64
	rep, err := wal.Verify(filepath.Join(dir, "log"), wal.Options{}, func(_ wal.Position, r wal.Record) error {
		if r.Kind == wal.KindAccept {
			values[r.Slot] = r
			top = max(top, r.Slot)
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("watchcheck: read the log of %s: %w", dir, err)
	}
	if rep.Damaged() {
		return nil, 0, fmt.Errorf("watchcheck: the log of %s is damaged", dir)
	}
	if rep.Floor > 1 {
		return nil, 0, fmt.Errorf("watchcheck: the log of %s starts at slot %d, after a snapshot", dir, rep.Floor)
	}
	m := filestore.New(opts)
	var out []Change
	for slot := uint64(1); slot <= top; slot++ {
		r, ok := values[slot]
		if !ok {
			return nil, 0, fmt.Errorf("watchcheck: the log of %s has no value for slot %d (of %d)", dir, slot, top)
		}
		if r.Value != paxos.ValueCmds {
			continue
		}
		for _, cmd := range r.Cmds {
			index := m.Applied() + 1
			_, ch := m.ApplyChange(index, cmd)
			if ch.Op == 0 {
				continue
			}
			c := Change{Index: index, Op: eventOp(ch.Op), Key: ch.Key}
			if ch.Op != wire.OpDel {
				c.Value = bytes.Clone(ch.Value)
			}
			out = append(out, c)
		}
	}
	return out, m.Applied(), nil
}

func eventOp(op wire.Op) line.EventOp {
	switch op {
	case wire.OpAppend:
		return line.EventAppend
	case wire.OpDel:
		return line.EventDel
	}
	return line.EventPut
}

// Watcher is what one watcher asked for and saw.
type Watcher struct {
	Name   string
	Key    string // the key, or the prefix with Prefix
	Prefix bool
	From   uint64 // the first index it covered (WATCHING's)
	// Through is the last index it is known to be complete to: its last
	// event or PROGRESS. Check wants every change up to it.
	Through uint64
	Events  []line.Event
}

// Matches reports whether key is one w watches.
func (w *Watcher) Matches(key string) bool {
	if w.Prefix {
		return strings.HasPrefix(key, w.Key)
	}
	return key == w.Key
}

// Check compares w's events with the changes (as Changes returns them)
// in [w.From, w.Through] of w's key or prefix, and returns an error
// wrapping ErrMismatch that names the first difference.
func Check(w *Watcher, changes []Change) error {
	var want []Change
	for _, c := range changes {
		if c.Index >= w.From && c.Index <= w.Through && w.Matches(c.Key) {
			want = append(want, c)
		}
	}
	got := w.Events
	for i := 0; i < max(len(got), len(want)); i++ {
		switch {
		case i >= len(got):
			return fmt.Errorf("%w: %s (%s from %d through %d) missed the change at %d (%s %s), and %d more", ErrMismatch, w.Name, w.pattern(), w.From, w.Through, want[i].Index, want[i].Op, want[i].Key, len(want)-i-1)
		case i >= len(want):
			return fmt.Errorf("%w: %s (%s from %d through %d) saw an event at %d (%s %s) the log does not hold", ErrMismatch, w.Name, w.pattern(), w.From, w.Through, got[i].Index, got[i].Op, got[i].Key)
		}
		g, c := got[i], want[i]
		if g.Index != c.Index || g.Op != c.Op || g.Key != c.Key || !bytes.Equal(g.Value, c.Value) {
			return fmt.Errorf("%w: %s (%s): event %d is %d %s %s %.32q, the log's change is %d %s %s %.32q",
				ErrMismatch, w.Name, w.pattern(), i, g.Index, g.Op, g.Key, g.Value, c.Index, c.Op, c.Key, c.Value)
		}
	}
	return nil
}

func (w *Watcher) pattern() string {
	if w.Prefix {
		return w.Key + "*"
	}
	return w.Key
}
