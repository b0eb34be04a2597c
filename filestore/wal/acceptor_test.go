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
	for i, b := range []Ballot{{}, {1, 2}, {7, 3}, {1<<64 - 1, 1<<64 - 1}, {0, 5}} {
		st := AcceptorState{Promise: b, Membership: []string{MemberVoter, MemberFresh, MemberLearner}[i%3]}
		if err := WriteAcceptor(dir, st); err != nil {
			t.Fatalf("WriteAcceptor(%v): %v", st, err)
		}
		got, err := ReadAcceptor(dir)
		if err != nil || got != st {
			t.Fatalf("ReadAcceptor = %v, %v; want %v", got, err, st)
		}
	}
	if err := WriteAcceptor(dir, AcceptorState{Membership: "maybe"}); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("bad membership: %v", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "acceptor" {
		t.Fatalf("dir holds %v, want only the acceptor file", entries)
	}
	data := readFile(t, filepath.Join(dir, "acceptor"))
	if want := "synod-acceptor 2 0.5 fresh "; !strings.HasPrefix(string(data), want) {
		t.Fatalf("acceptor file %q does not start with %q", data, want)
	}
}

// A format 1 file (before membership moved into it) is still read.
func TestAcceptorFormat1(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "acceptor"), withCRC("synod-acceptor 1 4.2"))
	st, err := ReadAcceptor(dir)
	if err != nil || st != (AcceptorState{Promise: Ballot{4, 2}}) {
		t.Fatalf("ReadAcceptor = %+v, %v", st, err)
	}
}

func TestAcceptorMissing(t *testing.T) {
	st, err := ReadAcceptor(t.TempDir())
	if !errors.Is(err, fs.ErrNotExist) || st != (AcceptorState{}) {
		t.Fatalf("ReadAcceptor on an empty dir = %v, %v; want zero and fs.ErrNotExist", st, err)
	}
	if err := WriteAcceptor(filepath.Join(t.TempDir(), "missing"), AcceptorState{Promise: Ballot{1, 1}, Membership: MemberVoter}); err == nil {
		t.Fatal("WriteAcceptor into a missing dir succeeded")
	}
}

func TestAcceptorCorrupt(t *testing.T) {
	dir := t.TempDir()
	if err := WriteAcceptor(dir, AcceptorState{Promise: Ballot{12, 3}, Membership: MemberLearner}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "acceptor")
	good := readFile(t, path)
	check := func(name string, data []byte) {
		t.Helper()
		writeFile(t, path, data)
		st, err := ReadAcceptor(dir)
		var ce *CorruptError
		if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) || ce.File != path || st != (AcceptorState{}) {
			t.Fatalf("%s: ReadAcceptor(%q) = %v, %v; want a *CorruptError", name, data, st, err)
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
	check("bad ballot, format 2", withCRC("synod-acceptor 2 12 voter"))
	check("no membership", withCRC("synod-acceptor 2 12.1"))
	check("unknown membership", withCRC("synod-acceptor 2 12.1 boss"))
	check("too large", make([]byte, maxSmallFile+1))
}
