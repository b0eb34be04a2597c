package proc

// This file tests the labelled lines, on the test goroutine.

import (
	"bytes"
	"strings"
	"testing"
)

func TestLines(t *testing.T) {
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
			pw := NewLines(&out, tt.json).writer("node1")
			for _, c := range tt.chunks {
				if n, err := pw.Write([]byte(c)); n != len(c) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			pw.flush()
			if out.String() != tt.want {
				t.Fatalf("got %q, want %q", out.String(), tt.want)
			}
		})
	}
}

func TestLinesCutsRunawayLines(t *testing.T) {
	var out bytes.Buffer
	pw := NewLines(&out, false).writer("proxy")
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

// FuzzLines checks that every byte a child writes comes out, in
// order, on lines that all carry the child's label.
func FuzzLines(f *testing.F) {
	f.Add([]byte("hello\nworld"), uint8(3))
	f.Add([]byte("a\r\n\r\nb\n"), uint8(1))
	f.Add([]byte{}, uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		if len(data) > maxPartialLine {
			return // runaway lines are cut: TestLinesCutsRunawayLines
		}
		var out bytes.Buffer
		pw := NewLines(&out, false).writer("node1")
		step := int(chunk) + 1
		for i := 0; i < len(data); i += step {
			pw.Write(data[i:min(i+step, len(data))])
		}
		pw.flush()
		var got []byte
		if out.Len() > 0 {
			if out.Bytes()[out.Len()-1] != '\n' {
				t.Fatalf("output does not end a line: %q", out.Bytes())
			}
			for _, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
				if !strings.HasPrefix(l, "node1 | ") {
					t.Fatalf("line without label: %q", l)
				}
				got = append(got, strings.TrimPrefix(l, "node1 | ")...)
				got = append(got, '\n')
			}
		}
		// What went in, line by line, less one '\r' before each line end
		// (a child's "\r\n" becomes "\n"), with a final line ended.
		var want []byte
		if len(data) > 0 {
			for _, l := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
				want = append(want, bytes.TrimSuffix(l, []byte("\r"))...)
				want = append(want, '\n')
			}
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
}
