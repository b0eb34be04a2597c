package filestore

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"synod/filestore/wal"
)

// TestSnapshotNamesTheDamagedLine flips every byte of a snapshot, and turns
// each into a newline: the read fails with a *SnapshotError naming the line
// that holds the byte.
func TestSnapshotNamesTheDamagedLine(t *testing.T) {
	m := New(Options{})
	applyAll(m, [][]byte{
		[]byte("put 17.1.1 1732000000000 docs/a hello world"),
		[]byte("put 0 0 1732000000100 docs/b "),
		[]byte("cas 17.2.1 1732000000200 docs/a 1 hi there"),
	})
	var buf bytes.Buffer
	meta := SnapshotMeta{Slot: 3, Members: []uint64{1, 2, 3}, ConfigSlot: 1, Config: [][]byte{[]byte("c1"), []byte("v 1 a:1")}}
	if err := m.WriteSnapshot(&buf, meta); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	for off := range data {
		line := 1 + bytes.Count(data[:off], []byte("\n"))
		for _, mutate := range []func(byte) byte{
			func(b byte) byte { return b ^ 0x01 },
			func(b byte) byte { return b ^ 0x40 },
			func(byte) byte { return '\n' },
		} {
			bad := bytes.Clone(data)
			if bad[off] = mutate(bad[off]); bad[off] == data[off] {
				continue
			}
			_, _, err := ReadSnapshot(bytes.NewReader(bad), Options{})
			var se *SnapshotError
			if !errors.As(err, &se) || !errors.Is(err, ErrCorruptSnapshot) || se.Line != line {
				t.Fatalf("byte %d (%q → %q): %v, want a *SnapshotError at line %d", off, data[off], bad[off], err, line)
			}
		}
	}
}

// TestSnapshotMetaChecksum: ReadSnapshot reports the format and the
// trailer's body checksum, which is the CRC-32C of every line before it.
func TestSnapshotMetaChecksum(t *testing.T) {
	m := randomMachine(t, 5)
	var buf bytes.Buffer
	if err := m.WriteSnapshot(&buf, SnapshotMeta{Slot: 9}); err != nil {
		t.Fatal(err)
	}
	_, meta, err := ReadSnapshot(bytes.NewReader(buf.Bytes()), m.Options())
	if err != nil {
		t.Fatal(err)
	}
	body := buf.Bytes()[:bytes.LastIndex(buf.Bytes()[:buf.Len()-1], []byte("\n"))+1]
	if meta.Format != 3 || meta.Checksum != wal.Checksum(body) {
		t.Fatalf("meta %+v, want format 3 and checksum %08x", meta, wal.Checksum(body))
	}
}

// TestLoadSnapshotNameMismatch: a file whose name gives another slot than
// its header is corrupt at line 1.
func TestLoadSnapshotNameMismatch(t *testing.T) {
	dir := t.TempDir()
	path, err := SaveSnapshot(dir, New(Options{}), SnapshotMeta{Slot: 4})
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, filepath.Base(SnapshotPath(dir, 5)))
	if err := os.Rename(path, other); err != nil {
		t.Fatal(err)
	}
	_, _, err = LoadSnapshot(other, Options{})
	var se *SnapshotError
	if !errors.As(err, &se) || se.Line != 1 {
		t.Fatalf("LoadSnapshot = %v, want a *SnapshotError at line 1", err)
	}
}
