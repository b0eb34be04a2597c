package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestPrefixWriter(t *testing.T) {
	tests := []struct {
		name   string
		json   bool
		chunks []string
		want   string
	}{
		{name: "one line", chunks: []string{"hello\n"}, want: "node1 | hello\n"},
		{name: "split across writes", chunks: []string{"hel", "lo\nwor", "ld\n"}, want: "node1 | hello\nnode1 | world\n"},
		{name: "crlf", chunks: []string{"a\r\nb\r\n"}, want: "node1 | a\nnode1 | b\n"},
		{name: "empty line", chunks: []string{"\n"}, want: "node1 | \n"},
		{name: "unfinished last line is flushed", chunks: []string{"a\nb"}, want: "node1 | a\nnode1 | b\n"},
		{name: "json gets a proc field", json: true, chunks: []string{`{"level":"info"}` + "\n"}, want: `{"proc":"node1","level":"info"}` + "\n"},
		{name: "empty json object", json: true, chunks: []string{"{}\n"}, want: `{"proc":"node1"}` + "\n"},
		{name: "json mode, text line", json: true, chunks: []string{"panic: boom\n"}, want: "node1 | panic: boom\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			pw := newPrefixWriter(&lineSink{w: &out}, "node1", tt.json)
			for _, c := range tt.chunks {
				if n, err := pw.Write([]byte(c)); n != len(c) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			pw.Flush()
			if out.String() != tt.want {
				t.Fatalf("got %q, want %q", out.String(), tt.want)
			}
		})
	}
}

func TestPrefixWriterCutsRunawayLines(t *testing.T) {
	var out bytes.Buffer
	pw := newPrefixWriter(&lineSink{w: &out}, "proxy", false)
	pw.Write(bytes.Repeat([]byte("x"), 2*maxPartialLine+10))
	pw.Write([]byte("\n"))
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3", len(lines))
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, "proxy | ") {
			t.Fatalf("line %d lacks the prefix: %.20q", i, l)
		}
	}
	if got := len(lines[2]) - len("proxy | "); got != 10 {
		t.Fatalf("last piece holds %d bytes, want 10", got)
	}
}
