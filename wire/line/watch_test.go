package line

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// TestParseWatch checks WATCH and UNWATCH requests, good and bad.
func TestParseWatch(t *testing.T) {
	tests := []struct {
		in   string
		want Request
		err  string // a substring of the refusal; "" for none
	}{
		{"WATCH k", Request{Cmd: CmdWatch, Key: "k"}, ""},
		{"watch docs/* from 12 prev", Request{Cmd: CmdWatch, Key: "docs/", WatchPrefix: true, From: 12, Prev: true}, ""},
		{"WATCH * PREV FROM 3", Request{Cmd: CmdWatch, WatchPrefix: true, From: 3, Prev: true}, ""},
		{"WATCH a** FROM 1", Request{Cmd: CmdWatch, Key: "a*", WatchPrefix: true, From: 1}, ""},
		{"UNWATCH 7", Request{Cmd: CmdUnwatch, WatchID: 7}, ""},
		{"WATCH", Request{}, "usage"},
		{"WATCH k FROM", Request{}, "usage"},
		{"WATCH k FROM 0", Request{}, "positive"},
		{"WATCH k FROM x", Request{}, "positive"},
		{"WATCH k FROM 1 FROM 2", Request{}, "usage"},
		{"WATCH k PREV PREV", Request{}, "usage"},
		{"WATCH k SOON", Request{}, "usage"},
		{"WATCH a\x01b", Request{}, "printable"},
		{"WATCH " + strings.Repeat("k", DefaultMaxKey+1), Request{}, "key over"},
		{"UNWATCH", Request{}, "usage"},
		{"UNWATCH 0", Request{}, "positive"},
		{"UNWATCH 1 2", Request{}, "usage"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r := NewReader(bufio.NewReader(strings.NewReader(tt.in+"\r\nPING\r\n")), Limits{})
			got, err := r.ReadRequest()
			if tt.err != "" {
				var pe *ProtoError
				if !errors.As(err, &pe) || pe.Fatal || !strings.Contains(pe.Msg, tt.err) {
					t.Fatalf("%q: got %+v, %v; want a resumable refusal with %q", tt.in, got, err, tt.err)
				}
			} else if err != nil || !equalRequest(got, tt.want) {
				t.Fatalf("%q: got %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
			if next, err := r.ReadRequest(); err != nil || next.Cmd != CmdPing {
				t.Fatalf("%q: the stream lost its sync: %+v, %v", tt.in, next, err)
			}
			if tt.err == "" {
				checkRoundTrip(t, got)
			}
		})
	}
	if _, err := AppendRequest(nil, Request{Cmd: CmdWatch, Key: "a*"}); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("an exact watch of a key ending in '*' encoded: %v", err)
	}
}

// TestWatchStream writes every kind of stream line and reads it back.
func TestWatchStream(t *testing.T) {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	w := NewWriter(bw)
	events := []Event{
		{Index: 5, Op: EventPut, Key: "a/1", Value: []byte("one\r\ntwo")},
		{Index: 6, Op: EventAppend, Key: "a/1", Value: []byte("+"), WithPrev: true, HadPrev: true, Prev: []byte("one\r\ntwo")},
		{Index: 9, Op: EventDel, Key: "a/2", Value: []byte{}, WithPrev: true},
		{Index: 10, Op: EventPut, Key: "a/3", Value: []byte{}, WithPrev: true, HadPrev: true, Prev: []byte{}},
	}
	steps := []func() error{
		func() error { return w.Watching(1, 5) },
		func() error { return w.Event(1, events[0]) },
		func() error { return w.Event(1, events[1]) },
		func() error { return w.Progress(1, 8) },
		func() error { return w.Event(2, events[2]) },
		func() error { return w.Err(CodeCompacted, "3 the index is older than the watch history") },
		func() error { return w.Event(2, events[3]) },
		func() error { return w.Canceled(2, 11, CodeSlow, "fell\nbehind") },
		func() error { return w.Unwatched(1) },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Event(1, Event{Index: 1, Op: "CAS", Key: "k"}); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("an unknown op was written: %v", err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	wr := NewWatchReader(bufio.NewReader(&buf), Options{})
	want := []WatchMessage{
		{Kind: WatchStarted, ID: 1, Index: 5},
		{Kind: WatchEvent, ID: 1, Index: 5, Event: events[0]},
		{Kind: WatchEvent, ID: 1, Index: 6, Event: events[1]},
		{Kind: WatchProgress, ID: 1, Index: 8},
		{Kind: WatchEvent, ID: 2, Index: 9, Event: events[2]},
		{}, // the ERR
		{Kind: WatchEvent, ID: 2, Index: 10, Event: events[3]},
		{Kind: WatchCanceled, ID: 2, Index: 11, Code: CodeSlow, Msg: "fell behind"},
		{Kind: WatchUnwatched, ID: 1},
	}
	for i, wm := range want {
		m, err := wr.Next()
		if wm.Kind == 0 {
			if oldest, ok := IsCompacted(err); !ok || oldest != 3 || !errors.Is(err, ErrCompacted) {
				t.Fatalf("line %d: %+v, %v; want ERR COMPACTED 3", i, m, err)
			}
			continue
		}
		if err != nil || !equalWatchMessage(m, wm) {
			t.Fatalf("line %d: %+v, %v; want %+v", i, m, err, wm)
		}
	}
	if _, err := wr.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("after the stream: %v", err)
	}
}

func equalWatchMessage(a, b WatchMessage) bool {
	ea, eb := a.Event, b.Event
	return a.Kind == b.Kind && a.ID == b.ID && a.Index == b.Index && a.Code == b.Code && a.Msg == b.Msg &&
		ea.Index == eb.Index && ea.Op == eb.Op && ea.Key == eb.Key && bytes.Equal(ea.Value, eb.Value) &&
		ea.WithPrev == eb.WithPrev && ea.HadPrev == eb.HadPrev && bytes.Equal(ea.Prev, eb.Prev)
}

// TestWatchStreamLimits checks that the reader refuses lines and blocks
// over its limits and lines that are not the stream's.
func TestWatchStreamLimits(t *testing.T) {
	tests := []struct {
		in   string
		want error
	}{
		{"EVENT 1 2 PUT k 11\r\n" + strings.Repeat("x", 11) + "\r\n", ErrTooLarge},
		{"EVENT 1 2 PUT k 1 PREV 11\r\nx\r\n" + strings.Repeat("x", 11) + "\r\n", ErrTooLarge},
		{"PROGRESS " + strings.Repeat("1", 40) + "\r\n", ErrTooLarge},
		{"EVENT 1 2 CAS k 1\r\nx\r\n", ErrBadReply},
		{"EVENT 1 2 PUT k 1\r\nxy\r\n", ErrBadReply},
		{"EVENT 1 2 PUT k 1 NEXT 2\r\nx\r\n", ErrBadReply},
		{"CANCELED 1 2 bad msg\r\n", ErrBadReply},
		{"VALUE 1 1\r\nx\r\n", ErrBadReply},
		{"EVENT 1 2 PUT k 3\r\nab", io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		wr := NewWatchReader(bufio.NewReader(strings.NewReader(tt.in)), tinyOpts)
		if _, err := wr.Next(); !errors.Is(err, tt.want) {
			t.Errorf("%q: %v, want %v", tt.in, err, tt.want)
		}
	}
}

// FuzzWatchStream checks that the stream reader never panics, keeps its
// limits, always makes progress, and that whatever it accepts is written
// back by the Writer as it was read.
func FuzzWatchStream(f *testing.F) {
	for _, s := range []string{
		"WATCHING 1 5\r\nEVENT 1 5 PUT a/1 3\r\nabc\r\nPROGRESS 1 9\r\n",
		"EVENT 2 6 APPEND k 1 PREV 2\r\nx\r\nab\r\nEVENT 2 7 DEL k 0 PREV NONE\r\n\r\n",
		"CANCELED 3 44 SLOW the watcher fell behind\r\nUNWATCHED 3\r\nERR COMPACTED 12 too old\r\n",
		"EVENT 1 1 PUT k 4\r\n\r\n\r\n\r\nEVENT x\r\n",
	} {
		f.Add([]byte(s))
	}
	opts := tinyOpts.withDefaults()
	f.Fuzz(func(t *testing.T, data []byte) {
		wr := NewWatchReader(bufio.NewReaderSize(bytes.NewReader(data), 16), opts)
		for i := 0; ; i++ {
			if i > len(data)+1 {
				t.Fatalf("%d messages from %d bytes: no progress", i, len(data))
			}
			m, err := wr.Next()
			var se *ServerError
			if errors.As(err, &se) {
				continue
			}
			if err != nil {
				return
			}
			if len(m.Event.Value) > opts.MaxValue || len(m.Event.Prev) > opts.MaxValue {
				t.Fatalf("block over the limit: %+v", m)
			}
			var buf bytes.Buffer
			bw := bufio.NewWriter(&buf)
			w := NewWriter(bw)
			switch m.Kind {
			case WatchStarted:
				err = w.Watching(m.ID, m.Index)
			case WatchEvent:
				err = w.Event(m.ID, m.Event)
			case WatchProgress:
				err = w.Progress(m.ID, m.Index)
			case WatchCanceled:
				err = w.Canceled(m.ID, m.Index, m.Code, m.Msg)
			case WatchUnwatched:
				err = w.Unwatched(m.ID)
			}
			if err != nil || w.Flush() != nil {
				t.Fatalf("%+v read but not written: %v", m, err)
			}
			back, err := NewWatchReader(bufio.NewReader(&buf), opts).Next()
			if err != nil || !equalWatchMessage(back, m) {
				t.Fatalf("%+v written as %q read back as %+v, %v", m, buf.Bytes(), back, err)
			}
		}
	})
}
