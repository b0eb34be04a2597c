package resp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReader feeds arbitrary bytes to the parser: it must never panic,
// never return an empty request or one over its limits, and fail only with
// a protocol error or the end of input.
func FuzzReader(f *testing.F) {
	for _, s := range []string{
		"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", "PING\r\n", "SET k \"v\\x00\"\r\n", "*1\r\n*1\r\n",
		"*-1\r\n*0\r\n", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nabc\r\n", "'a\\'b' c\n", "*1\r\n$-5\r\n",
	} {
		f.Add([]byte(s))
	}
	lim := Limits{MaxArgs: 8, MaxBulk: 64, MaxInline: 128, MaxRequest: 256}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bufio.NewReaderSize(bytes.NewReader(in), 16), lim)
		for {
			args, err := r.ReadRequest()
			if err != nil {
				if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.Is(err, ErrProtocol) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if len(args) == 0 || len(args) > lim.MaxArgs {
				t.Fatalf("request of %d arguments", len(args))
			}
			total := 0
			for _, a := range args {
				if len(a) > lim.MaxBulk && len(a) > lim.MaxInline {
					t.Fatalf("argument of %d bytes", len(a))
				}
				total += len(a)
			}
			if total > lim.MaxRequest && total > lim.MaxInline {
				t.Fatalf("request of %d bytes", total)
			}
		}
	})
}

// FuzzMatch checks Match never panics and agrees with itself on a pattern
// made literal by quoting.
func FuzzMatch(f *testing.F) {
	f.Add("a*b?[c-d]\\*", "axbyc*")
	f.Fuzz(func(t *testing.T, pattern, s string) {
		_ = Match(pattern, s) // must not panic
		var q []byte
		for i := range len(s) {
			q = append(q, '\\', s[i])
		}
		if !Match(string(q), s) {
			t.Fatalf("quoted %q does not match itself", s)
		}
	})
}
