package wal

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

func TestIdentity(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := CheckIdentity(dir, "prod", 1); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("CheckIdentity on a missing dir = %v, want ErrNoIdentity", err)
	}
	if err := CreateIdentity(dir, "prod", 3); err != nil {
		t.Fatal(err)
	}
	if err := CheckIdentity(dir, "prod", 3); err != nil {
		t.Fatalf("CheckIdentity of the creator = %v", err)
	}
	if c, n, err := ReadIdentity(dir); c != "prod" || n != 3 || err != nil {
		t.Fatalf("ReadIdentity = %q, %d, %v", c, n, err)
	}
	for _, tc := range []struct {
		cluster string
		node    uint64
	}{{"prod", 4}, {"test", 3}, {"prod ", 3}} {
		err := CheckIdentity(dir, tc.cluster, tc.node)
		if !errors.Is(err, ErrWrongIdentity) {
			t.Fatalf("CheckIdentity(%q, %d) = %v, want ErrWrongIdentity", tc.cluster, tc.node, err)
		}
		for _, part := range []string{`"prod" node 3`, tc.cluster, dir} {
			if !strings.Contains(err.Error(), part) {
				t.Errorf("error %q does not name %q", err, part)
			}
		}
	}
	if err := CreateIdentity(dir, "other", 1); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second CreateIdentity = %v, want fs.ErrExist", err)
	}
	if err := CheckIdentity(dir, "prod", 3); err != nil {
		t.Fatalf("identity changed by a refused create: %v", err)
	}
}

func TestIdentityClusterBytes(t *testing.T) {
	for _, cluster := range []string{"a", "with space", "tab\tand\nnewline", "\x00\xff", `back\slash`, strings.Repeat("x", maxClusterLen)} {
		dir := t.TempDir()
		if err := CreateIdentity(dir, cluster, 1<<64-1); err != nil {
			t.Fatalf("CreateIdentity(%q): %v", cluster, err)
		}
		if err := CheckIdentity(dir, cluster, 1<<64-1); err != nil {
			t.Fatalf("CheckIdentity(%q): %v", cluster, err)
		}
	}
	for _, cluster := range []string{"", strings.Repeat("x", maxClusterLen+1)} {
		if err := CreateIdentity(t.TempDir(), cluster, 1); err == nil {
			t.Errorf("CreateIdentity with a %d-byte cluster succeeded", len(cluster))
		}
	}
}

func TestIdentityCorrupt(t *testing.T) {
	dir := t.TempDir()
	if err := CreateIdentity(dir, "prod", 2); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "IDENTITY")
	good := readFile(t, path)
	for _, data := range [][]byte{
		nil,
		good[:len(good)-1],
		append([]byte("x"), good[1:]...),
		withCRC("synod-identity 1 prod"),
		withCRC("synod-identity 1 prod 2 3"),
		withCRC("synod-identity 1 \\e 2"),
		withCRC("synod-identity 2 prod 2"),
		withCRC("synod-acceptor 1 2.2"),
	} {
		writeFile(t, path, data)
		err := CheckIdentity(dir, "prod", 2)
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.File != path {
			t.Errorf("CheckIdentity with IDENTITY %q = %v, want a *CorruptError", data, err)
		}
	}
}

func TestJoinRoundTrip(t *testing.T) {
	dir := t.TempDir()
	cmds := [][]byte{[]byte("c1"), []byte("v 1 127.0.0.1:7101"), []byte("l 4 127.0.0.1:7104")}
	if err := WriteJoin(dir, 12, cmds); err != nil {
		t.Fatal(err)
	}
	slot, got, err := ReadJoin(dir)
	if err != nil || slot != 12 || len(got) != 3 || string(got[2]) != "l 4 127.0.0.1:7104" {
		t.Fatalf("ReadJoin = %d %q %v", slot, got, err)
	}
	if _, _, err := ReadJoin(t.TempDir()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing join file: %v", err)
	}
}
