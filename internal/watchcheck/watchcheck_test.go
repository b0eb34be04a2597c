package watchcheck

import (
	"errors"
	"testing"

	"synod/wire/line"
)

// TestCheck checks that Check passes a watcher that saw exactly its
// changes and names each way one can be wrong.
func TestCheck(t *testing.T) {
	changes := []Change{
		{Index: 2, Op: line.EventPut, Key: "a/1", Value: []byte("x")},
		{Index: 3, Op: line.EventPut, Key: "b", Value: []byte("y")},
		{Index: 5, Op: line.EventAppend, Key: "a/2", Value: []byte("+")},
		{Index: 7, Op: line.EventDel, Key: "a/1"},
	}
	ev := func(c Change) line.Event { return line.Event{Index: c.Index, Op: c.Op, Key: c.Key, Value: c.Value} }
	tests := []struct {
		name string
		w    Watcher
		ok   bool
	}{
		{"prefix, all", Watcher{Key: "a/", Prefix: true, From: 1, Through: 9, Events: []line.Event{ev(changes[0]), ev(changes[2]), ev(changes[3])}}, true},
		{"one key, a window", Watcher{Key: "a/1", From: 3, Through: 7, Events: []line.Event{ev(changes[3])}}, true},
		{"through bounds what is owed", Watcher{Key: "a/", Prefix: true, From: 1, Through: 4, Events: []line.Event{ev(changes[0])}}, true},
		{"missed one", Watcher{Key: "a/", Prefix: true, From: 1, Through: 9, Events: []line.Event{ev(changes[0]), ev(changes[3])}}, false},
		{"twice", Watcher{Key: "a/", Prefix: true, From: 1, Through: 9, Events: []line.Event{ev(changes[0]), ev(changes[0]), ev(changes[2]), ev(changes[3])}}, false},
		{"another key", Watcher{Key: "a/1", From: 1, Through: 9, Events: []line.Event{ev(changes[0]), ev(changes[1]), ev(changes[3])}}, false},
		{"another value", Watcher{Key: "b", From: 1, Through: 9, Events: []line.Event{{Index: 3, Op: line.EventPut, Key: "b", Value: []byte("z")}}}, false},
		{"out of order", Watcher{Key: "a/", Prefix: true, From: 1, Through: 9, Events: []line.Event{ev(changes[2]), ev(changes[0]), ev(changes[3])}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(&tt.w, changes)
			if tt.ok != (err == nil) || err != nil && !errors.Is(err, ErrMismatch) {
				t.Fatalf("Check = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
