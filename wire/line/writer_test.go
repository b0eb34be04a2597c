package line

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestWriter(t *testing.T) {
	tests := []struct {
		name  string
		write func(w *Writer) error
		want  string
	}{
		{"ok", (*Writer).OK, "OK\r\n"},
		{"ok index", func(w *Writer) error { return w.OKIndex(42) }, "OK 42\r\n"},
		{"ok index max", func(w *Writer) error { return w.OKIndex(1<<64 - 1) }, "OK 18446744073709551615\r\n"},
		{"value", func(w *Writer) error { return w.Value([]byte("hello world"), 7) }, "VALUE 11 7\r\nhello world\r\n"},
		{"value binary", func(w *Writer) error { return w.Value([]byte("a\r\nb\x00"), 1) }, "VALUE 5 1\r\na\r\nb\x00\r\n"},
		{"value empty", func(w *Writer) error { return w.Value(nil, 3) }, "VALUE 0 3\r\n\r\n"},
		{"not found", (*Writer).NotFound, "NOT_FOUND\r\n"},
		{"stat", func(w *Writer) error { return w.Stat(11, 7) }, "STAT 11 7\r\n"},
		{"keys", func(w *Writer) error { return w.Keys([]string{"a", "docs/readme.txt"}) }, "KEYS 2\r\na\r\ndocs/readme.txt\r\n"},
		{"keys none", func(w *Writer) error { return w.Keys(nil) }, "KEYS 0\r\n"},
		{"keys unprintable kept on one line", func(w *Writer) error { return w.Keys([]string{"a\r\nb c\xff"}) }, "KEYS 1\r\na__b_c?\r\n"},
		{"nodes", func(w *Writer) error {
			return w.Nodes([]NodeStatus{
				{ID: 1, Addr: "127.0.0.1:7101", Role: "master", Ballot: "3.1", Commit: 42, Applied: 41},
				{ID: 2, Addr: "127.0.0.1:7102", Role: "follower", Ballot: "3.1", Commit: 40, Applied: 40,
					Extra: map[string]string{"lag_ms": "3", "inflight": "0"}},
				{ID: 3, Role: "down", Extra: map[string]string{"a=b": "x y\n", "": "e"}},
			})
		}, "NODES 3\r\n" +
			"id=1 addr=127.0.0.1:7101 role=master ballot=3.1 commit=42 applied=41\r\n" +
			"id=2 addr=127.0.0.1:7102 role=follower ballot=3.1 commit=40 applied=40 inflight=0 lag_ms=3\r\n" +
			"id=3 addr= role=down ballot= commit=0 applied=0 _=e a_b=x_y_\r\n"},
		{"members", func(w *Writer) error {
			return w.Members([]Member{{ID: 1, Addr: "127.0.0.1:7101", Voter: true}, {ID: 4, Addr: "h 4\r\n", Voter: false}}, 812)
		}, "MEMBERS 2 812\r\nid=1 addr=127.0.0.1:7101 role=voter\r\nid=4 addr=h_4__ role=learner\r\n"},
		{"members none", func(w *Writer) error { return w.Members(nil, 0) }, "MEMBERS 0 0\r\n"},
		{"stats", func(w *Writer) error {
			return w.Stats([]Stat{{"requests", "10"}, {"buffered requests", "0"}, {"latency", "p50 1ms\np99 4ms"}})
		}, "STAT requests 10\r\nSTAT buffered_requests 0\r\nSTAT latency p50 1ms p99 4ms\r\nEND\r\n"},
		{"stats none", func(w *Writer) error { return w.Stats(nil) }, "END\r\n"},
		{"pong", (*Writer).Pong, "PONG\r\n"},
		{"bye", (*Writer).Bye, "BYE\r\n"},
		{"help", (*Writer).Help, strings.Join(helpLines, "\r\n") + "\r\nEND\r\n"},
		{"err", func(w *Writer) error { return w.Err(CodeUnavailable, "no master within 10s") }, "ERR UNAVAILABLE no master within 10s\r\n"},
		{"err without message", func(w *Writer) error { return w.Err(CodeBusy, "") }, "ERR BUSY\r\n"},
		{"err message sanitised", func(w *Writer) error { return w.Err(CodeBadRequest, "two\r\nlines\x00 \xff\u2028") },
			"ERR BAD_REQUEST two  lines  ??\r\n"},
		{"err message cut", func(w *Writer) error { return w.Err(CodeInternal, strings.Repeat("é", 300)) },
			"ERR INTERNAL " + strings.Repeat("é", 256) + "\r\n"},
		{"err bad code", func(w *Writer) error { return w.Err("bad code\r\n", "m") }, "ERR INTERNAL m\r\n"},
		{"conflict", func(w *Writer) error { return w.Conflict(9) }, "ERR CONFLICT version 9\r\n"},
		{"reply proto error", func(w *Writer) error { return w.ReplyError(badRequest("unknown command")) }, "ERR BAD_REQUEST unknown command\r\n"},
		{"reply wrapped proto error", func(w *Writer) error {
			return w.ReplyError(fmt.Errorf("ctx: %w", &ProtoError{Code: CodeTooLarge, Msg: "big", Fatal: true}))
		}, "ERR TOO_LARGE big\r\n"},
		{"reply server errors", func(w *Writer) error {
			w.ReplyError(&ServerError{Code: CodeNotFound})
			w.ReplyError(&ServerError{Code: CodeConflict, Msg: "version 4", Version: 4})
			return w.ReplyError(&ServerError{Code: CodeTimeout, Msg: "index 9 not reached"})
		}, "NOT_FOUND\r\nERR CONFLICT version 4\r\nERR TIMEOUT index 9 not reached\r\n"},
		{"reply other error", func(w *Writer) error { return w.ReplyError(errors.New("disk\non fire")) }, "ERR INTERNAL disk on fire\r\n"},
		{"pipelined batch", func(w *Writer) error {
			w.OKIndex(1)
			w.Value([]byte("v"), 1)
			w.NotFound()
			return w.Pong()
		}, "OK 1\r\nVALUE 1 1\r\nv\r\nNOT_FOUND\r\nPONG\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			w := NewWriter(bufio.NewWriter(&out))
			if err := tt.write(w); err != nil {
				t.Fatal(err)
			}
			if out.Len() != 0 {
				t.Fatalf("%d bytes written before Flush", out.Len())
			}
			if w.Buffered() != len(tt.want) {
				t.Fatalf("Buffered = %d, want %d", w.Buffered(), len(tt.want))
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.want {
				t.Fatalf("got\n%q\nwant\n%q", out.String(), tt.want)
			}
		})
	}
}

// TestWriterSticky keeps returning the first write failure.
func TestWriterSticky(t *testing.T) {
	boom := errors.New("boom")
	w := NewWriter(bufio.NewWriterSize(&failWriter{boom}, 16))
	w.Value(bytes.Repeat([]byte("x"), 100), 1) // overflows the buffer: fails now
	for i, err := range []error{w.Pong(), w.Flush(), w.OKIndex(1)} {
		if !errors.Is(err, boom) {
			t.Fatalf("call %d: got %v, want boom", i, err)
		}
	}
}

type failWriter struct{ err error }

func (f *failWriter) Write([]byte) (int, error) { return 0, f.err }

// TestWriterReaderAgree parses every reply the Writer makes with the
// client's reply parser.
func TestWriterReaderAgree(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(bufio.NewWriter(&out))
	nodes := []NodeStatus{
		{ID: 1, Addr: "127.0.0.1:7101", Role: "master", Ballot: "3.1", Commit: 42, Applied: 41},
		{ID: 2, Addr: "h:2", Role: "follower", Ballot: "3.1", Extra: map[string]string{"lag": "3"}},
	}
	w.OKIndex(5)
	w.Value([]byte("a\r\nb"), 5)
	w.Stat(4, 5)
	w.Keys([]string{"a", "b/c"})
	w.OK()
	w.Nodes(nodes)
	w.Stats([]Stat{{"requests", "10"}, {"latency", "p50 1ms"}})
	w.Pong()
	w.Help()
	w.Bye()
	members := []Member{{ID: 1, Addr: "127.0.0.1:7101", Voter: true}, {ID: 4, Addr: "[::1]:7104"}}
	w.Members(members, 9)
	w.OKIndex(10)
	w.Flush()

	rr := replyReader{br: bufio.NewReader(&out), opts: Options{}.withDefaults()}
	check := func(cmd Cmd, want Reply) {
		t.Helper()
		got, err := rr.read(cmd)
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		want.Cmd = cmd
		if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
			t.Fatalf("%s: got %+v, want %+v", cmd, got, want)
		}
	}
	check(CmdPut, Reply{Index: 5})
	check(CmdGet, Reply{Value: []byte("a\r\nb"), Version: 5})
	check(CmdStat, Reply{Len: 4, Version: 5})
	check(CmdList, Reply{Keys: []string{"a", "b/c"}})
	check(CmdConsistency, Reply{})
	check(CmdStatus, Reply{Nodes: nodes})
	check(CmdStats, Reply{Stats: map[string]string{"requests": "10", "latency": "p50 1ms"}})
	check(CmdPing, Reply{})
	check(CmdHelp, Reply{Lines: helpLines})
	check(CmdQuit, Reply{})
	check(CmdMemberList, Reply{Members: members, ConfigSlot: 9})
	check(CmdMemberAdd, Reply{ConfigSlot: 10})
}
