package filestore

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"synod/wire"
)

// testManifest describes size bytes in chunks of chunkSize whose names are
// made up (a manifest does not check them against any bytes).
func testManifest(size, chunkSize uint64) wire.Manifest {
	m := wire.Manifest{Size: size, ChunkSize: chunkSize, Sum: wire.SumOf([]byte(fmt.Sprint("file", size)))}
	for i := uint64(0); i < (size-1)/chunkSize+1; i++ {
		m.Chunks = append(m.Chunks, wire.SumOf([]byte(fmt.Sprint("chunk", i))))
	}
	return m
}

func TestPutFileCommand(t *testing.T) {
	mf := testManifest(10<<20, wire.DefaultChunkSize)
	cmd := Command{Op: wire.OpPutFile, ClientID: 7, Seq: 1, Stamp: 1, Key: "big/file", Value: mf.Append(nil)}
	enc := EncodeCommand(nil, cmd)
	if !bytes.HasPrefix(enc, []byte("putfile 7.1.1 1 big/file 10485760 4194304 ")) {
		t.Fatalf("encoding %.80q", enc)
	}
	if _, err := DecodeCommand(enc); err != nil {
		t.Fatal(err)
	}
	bad := EncodeCommand(nil, Command{Op: wire.OpPutFile, Stamp: 1, Key: "k", Value: []byte("not a manifest")})
	if _, err := DecodeCommand(bad); !errors.Is(err, ErrBadCommand) || !errors.Is(err, wire.ErrBadManifest) {
		t.Fatalf("bad manifest decoded: %v", err)
	}

	m := New(Options{})
	if r := m.Apply(1, enc); r.Code != wire.CodeOK {
		t.Fatalf("putfile: %+v", r)
	}
	if size, ver, ok := m.Stat("big/file"); !ok || size != 10<<20 || ver != 1 || !m.IsLarge("big/file") {
		t.Fatalf("Stat = %d, %d, %v; large %v", size, ver, ok, m.IsLarge("big/file"))
	}
	app := EncodeCommand(nil, Command{Op: wire.OpAppend, Stamp: 2, Key: "big/file", Value: []byte("x")})
	if r := m.Apply(2, app); r.Code != wire.CodeTooLarge {
		t.Fatalf("APPEND to a large file: %+v", r)
	}
	// The same bytes as a small file are another state.
	small := New(Options{})
	small.Apply(1, EncodeCommand(nil, Command{Op: wire.OpPut, ClientID: 7, Seq: 1, Stamp: 1, Key: "big/file", Value: mf.Append(nil)}))
	small.Apply(2, app)
	if small.Digest() == m.Digest() {
		t.Fatal("a large file and a small file with its manifest as value digest alike")
	}

	// Snapshots carry it as an L line, in format 4.
	var buf bytes.Buffer
	if err := m.WriteSnapshot(&buf, SnapshotMeta{Slot: 2}); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(buf.Bytes(), []byte("SNAP 4 ")) || !bytes.Contains(buf.Bytes(), []byte("\nL big/file 1 10485760\\s4194304\\s")) {
		t.Fatalf("snapshot:\n%.300s", buf.Bytes())
	}
	back, _, err := ReadSnapshot(bytes.NewReader(buf.Bytes()), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !back.IsLarge("big/file") || back.Digest() != m.Digest() {
		t.Fatal("the snapshot lost the large file")
	}
	var large []string
	m.EachLarge(func(k string, manifest []byte) bool {
		if !bytes.Equal(manifest, mf.Append(nil)) {
			t.Errorf("EachLarge gave %s another manifest", k)
		}
		large = append(large, k)
		return true
	})
	if len(large) != 1 || large[0] != "big/file" {
		t.Fatalf("EachLarge: %q", large)
	}
	// SnapshotManifests reads only the L lines, and refuses damage.
	var scanned [][]byte
	if err := SnapshotManifests(bytes.NewReader(buf.Bytes()), Options{}, func(b []byte) error {
		scanned = append(scanned, bytes.Clone(b))
		return nil
	}); err != nil || len(scanned) != 1 || !bytes.Equal(scanned[0], mf.Append(nil)) {
		t.Fatalf("SnapshotManifests: %v, %q", err, scanned)
	}
	damaged := bytes.Replace(buf.Bytes(), []byte("L big/file"), []byte("L big/filf"), 1)
	if err := SnapshotManifests(bytes.NewReader(damaged), Options{}, func([]byte) error { return nil }); !errors.Is(err, ErrCorruptSnapshot) {
		t.Fatalf("SnapshotManifests of a damaged line: %v", err)
	}
	// casfile: the version must match, as for cas.
	casfile := func(version uint64) []byte {
		return EncodeCommand(nil, Command{Op: wire.OpCASFile, Stamp: 3, Key: "big/file", Version: version, Value: mf.Append(nil)})
	}
	if enc := casfile(1); !bytes.HasPrefix(enc, []byte("casfile 0 0 3 big/file 1 10485760 ")) {
		t.Fatalf("casfile encoding %.60q", enc)
	}
	if r := m.Apply(3, casfile(2)); r.Code != wire.CodeConflict || r.Version != 1 {
		t.Fatalf("casfile at a wrong version: %+v", r)
	}
	if r := m.Apply(4, casfile(1)); r.Code != wire.CodeOK || !m.IsLarge("big/file") {
		t.Fatalf("casfile at the right version: %+v", r)
	}
	if r := m.Apply(5, EncodeCommand(nil, Command{Op: wire.OpCASFile, Stamp: 3, Key: "new", Value: mf.Append(nil)})); r.Code != wire.CodeOK {
		t.Fatalf("casfile 0 of a new key: %+v", r)
	}
	// A PUT makes it small again.
	m.Apply(6, EncodeCommand(nil, Command{Op: wire.OpPut, Stamp: 3, Key: "big/file", Value: []byte("v")}))
	if m.IsLarge("big/file") {
		t.Fatal("PUT left the file large")
	}
}
