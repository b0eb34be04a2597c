package wal

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAcceptorRoundTrip(t *testing.T) {
	dir := t.TempDir()
	for _, b := range []Ballot{{}, {1, 2}, {7, 3}, {1<<64 - 1, 1<<64 - 1}, {0, 5}} {
		if err := WriteAcceptor(dir, b); err != nil {
			t.Fatalf("WriteAcceptor(%v): %v", b, err)
		}
		got, err := ReadAcceptor(dir)
		if err != nil || got != b {
			t.Fatalf("ReadAcceptor = %v, %v; want %v", got, err, b)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "acceptor" {
		t.Fatalf("dir holds %v, want only the acceptor file", entries)
	}
	data := readFile(t, filepath.Join(dir, "acceptor"))
	if want := "synod-acceptor 1 0.5 "; !strings.HasPrefix(string(data), want) {
		t.Fatalf("acceptor file %q does not start with %q", data, want)
	}
}

func TestAcceptorMissing(t *testing.T) {
	b, err := ReadAcceptor(t.TempDir())
	if !errors.Is(err, fs.ErrNotExist) || b != (Ballot{}) {
		t.Fatalf("ReadAcceptor on an empty dir = %v, %v; want zero and fs.ErrNotExist", b, err)
	}
	if err := WriteAcceptor(filepath.Join(t.TempDir(), "missing"), Ballot{1, 1}); err == nil {
		t.Fatal("WriteAcceptor into a missing dir succeeded")
	}
}

func TestAcceptorCorrupt(t *testing.T) {
	dir := t.TempDir()
	if err := WriteAcceptor(dir, Ballot{12, 3}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "acceptor")
	good := readFile(t, path)
	check := func(name string, data []byte) {
		t.Helper()
		writeFile(t, path, data)
		b, err := ReadAcceptor(dir)
		var ce *CorruptError
		if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) || ce.File != path || b != (Ballot{}) {
			t.Fatalf("%s: ReadAcceptor(%q) = %v, %v; want a *CorruptError", name, data, b, err)
		}
	}
	for i := range good {
		for bit := range 8 {
			data := []byte(string(good))
			data[i] ^= 1 << bit
			check("flipped bit", data)
		}
	}
	for n := range len(good) {
		check("truncated", good[:n])
	}
	check("two lines", append([]byte(string(good)), good...))
	check("another file's line", withCRC("synod-identity 1 c 1"))
	check("bad ballot", withCRC("synod-acceptor 1 12"))
	check("too large", make([]byte, maxSmallFile+1))
}
