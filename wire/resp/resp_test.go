package resp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func read(t *testing.T, in string, lim Limits) ([][]string, error) {
	t.Helper()
	r := NewReader(bufio.NewReaderSize(strings.NewReader(in), 16), lim)
	var out [][]string
	for {
		args, err := r.ReadRequest()
		if err != nil {
			return out, err
		}
		var ss []string
		for _, a := range args {
			ss = append(ss, string(a))
		}
		out = append(out, ss)
	}
}

func TestReader(t *testing.T) {
	small := Limits{MaxArgs: 3, MaxBulk: 5, MaxInline: 20, MaxRequest: 8}
	tests := []struct {
		name string
		in   string
		lim  Limits
		want [][]string
		err  string // "" = clean io.EOF at the end
	}{
		{"multibulk", "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", Limits{}, [][]string{{"GET", "k"}}, ""},
		{"binary bulk", "*2\r\n$4\r\nECHO\r\n$4\r\na\r\nb\r\n", Limits{}, [][]string{{"ECHO", "a\r\nb"}}, ""},
		{"empty bulk", "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", Limits{}, [][]string{{"ECHO", ""}}, ""},
		{"pipelined", "*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n", Limits{}, [][]string{{"PING"}, {"PING"}}, ""},
		{"empty arrays skipped", "*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n", Limits{}, [][]string{{"PING"}}, ""},
		{"inline", "SET k \"a b\\x41\\n\" 'it\\'s'\r\n\r\nPING\n", Limits{}, [][]string{{"SET", "k", "a bA\n", "it's"}, {"PING"}}, ""},
		{"long header line", "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", Limits{MaxInline: 2}, [][]string{{"GET", "k"}}, ""},
		{"unbalanced quotes", "GET \"k\r\n", Limits{}, nil, "unbalanced quotes"},
		{"quote then letter", "GET \"k\"x\r\n", Limits{}, nil, "unbalanced quotes"},
		{"too many args", "*4\r\n", small, nil, "invalid multibulk length"},
		{"too many inline args", "a b c d\r\n", small, nil, "invalid multibulk length"},
		{"bad count", "*x\r\n", Limits{}, nil, "invalid multibulk length"},
		{"huge count", "*99999999999999999999\r\n", Limits{}, nil, "invalid multibulk length"},
		{"bulk too large", "*1\r\n$6\r\n", small, nil, "invalid bulk length"},
		{"negative bulk", "*1\r\n$-1\r\n", Limits{}, nil, "invalid bulk length"},
		{"request too large", "*2\r\n$5\r\naaaaa\r\n$5\r\n", small, nil, "request over 8 bytes"},
		{"not a bulk", "*1\r\n:1\r\n", Limits{}, nil, "expected '$', got ':'"},
		{"nested array", "*1\r\n*1\r\n", Limits{}, nil, "expected '$', got '*'"},
		{"no CRLF after bulk", "*1\r\n$1\r\nabc\r\n", Limits{}, nil, "not followed by CRLF"},
		{"inline too long", strings.Repeat("a", 40) + "\r\n", small, nil, "too big inline request"},
		{"truncated bulk", "*1\r\n$4\r\nPI", Limits{}, nil, io.ErrUnexpectedEOF.Error()},
		{"truncated header", "*1\r\n$4", Limits{}, nil, io.ErrUnexpectedEOF.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := read(t, tt.in, tt.lim)
			if tt.err == "" {
				if err != io.EOF {
					t.Fatalf("err %v, want io.EOF", err)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want one containing %q", err, tt.err)
				}
				if tt.err != io.ErrUnexpectedEOF.Error() && !errors.Is(err, ErrProtocol) {
					t.Fatalf("err %v does not match ErrProtocol", err)
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			for i := range got {
				if strings.Join(got[i], "|") != strings.Join(tt.want[i], "|") {
					t.Fatalf("request %d: got %q, want %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestWriter(t *testing.T) {
	tests := []struct {
		name  string
		write func(w *Writer) error
		want  string
	}{
		{"ok", (*Writer).OK, "+OK\r\n"},
		{"simple cleaned", func(w *Writer) error { return w.Simple("a\r\nb") }, "+a  b\r\n"},
		{"error", func(w *Writer) error { return w.Error("ERR", "unknown command 'X'") }, "-ERR unknown command 'X'\r\n"},
		{"error without message", func(w *Writer) error { return w.Error("NOPROTO", "") }, "-NOPROTO\r\n"},
		{"int", func(w *Writer) error { return w.Int(-3) }, ":-3\r\n"},
		{"bulk", func(w *Writer) error { return w.Bulk([]byte("a\r\nb")) }, "$4\r\na\r\nb\r\n"},
		{"empty bulk", func(w *Writer) error { return w.Bulk(nil) }, "$0\r\n\r\n"},
		{"null", (*Writer).Null, "$-1\r\n"},
		{"null array", (*Writer).NullArray, "*-1\r\n"},
		{"strings", func(w *Writer) error { return w.Strings([]string{"a", "bc"}) }, "*2\r\n$1\r\na\r\n$2\r\nbc\r\n"},
		{"map in RESP2", func(w *Writer) error { w.Map(1); w.BulkString("k"); return w.Int(1) }, "*2\r\n$1\r\nk\r\n:1\r\n"},
		{"map in RESP3", func(w *Writer) error { w.SetProto(3); w.Map(1); w.BulkString("k"); return w.Int(1) }, "%1\r\n$1\r\nk\r\n:1\r\n"},
		{"null in RESP3", func(w *Writer) error { w.SetProto(3); return w.Null() }, "_\r\n"},
		{"null array in RESP3", func(w *Writer) error { w.SetProto(3); return w.NullArray() }, "_\r\n"},
		{"proto 4 ignored", func(w *Writer) error { w.SetProto(4); return w.Null() }, "$-1\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := NewWriter(bufio.NewWriter(&buf))
			if err := tt.write(w); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if buf.String() != tt.want {
				t.Fatalf("got %q, want %q", buf.String(), tt.want)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "abc", true},
		{"a*", "abc", true},
		{"a*", "bac", false},
		{"*c", "abc", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"h?llo", "hello", true},
		{"h?llo", "hllo", false},
		{"h[ae]llo", "hallo", true},
		{"h[ae]llo", "hillo", false},
		{"h[^e]llo", "hallo", true},
		{"h[^e]llo", "hello", false},
		{"h[a-b]llo", "hbllo", true},
		{"h[b-a]llo", "hallo", true},
		{"h[a-b]llo", "hcllo", false},
		{`h\*llo`, "h*llo", true},
		{`h\*llo`, "hello", false},
		{"docs/*", "docs/readme.txt", true},
		{"docs/*", "doc/readme.txt", false},
		{"*a", "aaaaaaaaaaaaaaaaaaaaaaaaab", false},
	}
	for _, tt := range tests {
		if got := Match(tt.pattern, tt.s); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}

func TestPrefix(t *testing.T) {
	tests := []struct{ pattern, want string }{
		{"*", ""}, {"docs/*", "docs/"}, {"a?c", "a"}, {"ab[c]", "ab"}, {`a\*b*`, "a*b"}, {"abc", "abc"}, {`ab\`, "ab"},
	}
	for _, tt := range tests {
		if got := Prefix(tt.pattern); got != tt.want {
			t.Errorf("Prefix(%q) = %q, want %q", tt.pattern, got, tt.want)
		}
	}
}

func TestReaderAdmit(t *testing.T) {
	in := "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\n0123456789\r\n*1\r\n$4\r\nPING\r\n"
	r := NewReader(bufio.NewReaderSize(strings.NewReader(in), 16), Limits{})
	var asked []int
	full := errors.New("full")
	r.SetAdmit(func(n int) error {
		asked = append(asked, n)
		if n > 5 {
			return full
		}
		return nil
	})
	_, err := r.ReadRequest()
	var re *RefusedError
	if !errors.As(err, &re) || !errors.Is(err, full) {
		t.Fatalf("err %v, want a RefusedError of full", err)
	}
	args, err := r.ReadRequest()
	if err != nil || len(args) != 1 || string(args[0]) != "PING" {
		t.Fatalf("after the refused request: %q, %v; want PING in sync", args, err)
	}
	if fmt.Sprint(asked) != "[3 1 10 4]" {
		t.Fatalf("admit asked for %v", asked)
	}
}
