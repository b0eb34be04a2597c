package filestore

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"synod/filestore/wal"
	"synod/wire"
)

// The format is pinned byte for byte: this is the example in doc.go. If
// this test fails, the format changed and needs a version bump.
func TestSnapshotGolden(t *testing.T) {
	m := New(Options{})
	applyAll(m, [][]byte{
		[]byte("put 17.1.1 1732000000000 docs/a hello world"),
		[]byte("put 0 0 1732000000100 docs/b "),
		[]byte("cas 17.2.1 1732000000200 docs/a 1 hi there"),
	})
	var buf bytes.Buffer
	meta := SnapshotMeta{Slot: 3, Members: []uint64{1, 2, 3}, ConfigSlot: 1,
		Config: [][]byte{[]byte("c1"), []byte("v 1 10.0.0.1:7101"), []byte("v 2 10.0.0.2:7101"), []byte("v 3 10.0.0.3:7101")}}
	if err := m.WriteSnapshot(&buf, meta); err != nil {
		t.Fatal(err)
	}
	want := "SNAP 3 3 3 1732000000200 1,2,3 6770ab14\n" +
		"C 1 c1 v\\s1\\s10.0.0.1:7101 v\\s2\\s10.0.0.2:7101 v\\s3\\s10.0.0.3:7101 b19a7798\n" +
		"F docs/a 3 hi\\sthere 64933b5d\n" +
		"F docs/b 2 \\e c817fa78\n" +
		"S 17 2 1732000000200 OK.1.1,OK.3.3 fc865d5f\n" +
		"END 2 1 478da125 8b71ee86\n"
	if buf.String() != want {
		t.Fatalf("snapshot:\n%s\nwant:\n%s", buf.String(), want)
	}
}

// TestSnapshotVersion1: a version 1 snapshot (the example the package
// comment gave before sessions kept a window) still loads, each session
// holding its one reply, and is written back as version 2.
func TestSnapshotVersion1(t *testing.T) {
	v1 := "SNAP 1 3 3 1732000000200 1,2,3 3b193c2e\n" +
		"F docs/a 3 hi\\sthere 64933b5d\n" +
		"F docs/b 2 \\e c817fa78\n" +
		"S 17 2 1732000000200 OK 3 3 24c07d7b\n" +
		"END 2 1 84ce9a57 6ae60308\n"
	m, meta, err := ReadSnapshot(strings.NewReader(v1), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if meta.Slot != 3 || meta.Sessions != 1 || m.Applied() != 3 {
		t.Fatalf("meta %+v", meta)
	}
	var buf bytes.Buffer
	if err := m.WriteSnapshot(&buf, meta); err != nil {
		t.Fatal(err)
	}
	if want := "S 17 2 1732000000200 OK.3.3 "; !strings.Contains(buf.String(), want) {
		t.Fatalf("rewritten as\n%s\nwant a line starting %q", buf.String(), want)
	}
	runSteps(t, m, []step{
		{[]byte("cas 17 2 1732000000300 docs/a 1 hi there"), ok(3, 3)}, // the old client's retry
		{scmd(wire.OpPut, 17, 3, 3, false, "docs/a", "x"), ok(5, 5)},
	})
}

// randomMachine returns a machine with varied state: binary values holding
// every byte, empty values, odd keys, sessions with every cached code.
func randomMachine(t testing.TB, seed uint64) *Machine {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 99))
	m := New(genOptions)
	applyAll(m, genCommands(rng, 500))
	every := make([]byte, 256)
	for i := range every {
		every[i] = byte(i)
	}
	m.opts.MaxValue = 300 // room for the all-bytes value
	applyAll(m, [][]byte{
		cmd(wire.OpPut, 0, 0, 0, `odd\key/é/\x00`, 0, string(every)),
		cmd(wire.OpPut, 0, 0, 0, "empty", 0, ""),
		cmd(wire.OpPut, 0, 0, 0, "spaces", 0, " \n\r\t \\e\\s "),
	})
	return m
}

func roundTrip(t *testing.T, m *Machine, meta SnapshotMeta) (*Machine, SnapshotMeta, []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := m.WriteSnapshot(&buf, meta); err != nil {
		t.Fatal(err)
	}
	data := slices.Clone(buf.Bytes())
	got, gotMeta, err := ReadSnapshot(&buf, m.Options())
	if err != nil {
		t.Fatalf("ReadSnapshot: %v", err)
	}
	return got, gotMeta, data
}

func TestSnapshotRoundTrip(t *testing.T) {
	for seed := range uint64(10) {
		m := randomMachine(t, seed)
		meta := SnapshotMeta{Slot: 1000 + seed, Members: []uint64{1, 2, 3, 4, 5}}
		got, gotMeta, data := roundTrip(t, m, meta)
		if got.Digest() != m.Digest() {
			t.Fatalf("seed %d: digest changed by a round trip", seed)
		}
		wantMeta := SnapshotMeta{Slot: meta.Slot, Index: m.Applied(), LogTime: m.LogTime(),
			Members: meta.Members, Files: m.Len(), Sessions: m.Sessions(),
			Format: 3, Checksum: gotMeta.Checksum} // the checksum: TestSnapshotMetaChecksum
		if fmt.Sprint(gotMeta) != fmt.Sprint(wantMeta) {
			t.Fatalf("seed %d: meta = %+v, want %+v", seed, gotMeta, wantMeta)
		}
		for _, k := range m.List("", 0) {
			a, av, _ := m.Get(k)
			b, bv, _ := got.Get(k)
			if !bytes.Equal(a, b) || av != bv {
				t.Fatalf("seed %d: %q differs after the round trip", seed, k)
			}
		}
		if got.Len() != m.Len() || got.ValueBytes() != m.ValueBytes() || got.Sessions() != m.Sessions() {
			t.Fatalf("seed %d: counts differ", seed)
		}
		// Equal machines write identical bytes.
		var again bytes.Buffer
		if err := got.WriteSnapshot(&again, meta); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again.Bytes(), data) {
			t.Fatalf("seed %d: rewritten snapshot differs", seed)
		}
		// The restored machine behaves the same from here on: the same
		// sessions expire and get evicted, the same retries hit.
		more := genCommands(rand.New(rand.NewPCG(seed, 5)), 400)
		applyAll(m, more)
		applyAll(got, more)
		if got.Digest() != m.Digest() {
			t.Fatalf("seed %d: restored machine diverged", seed)
		}
	}
}

func TestSnapshotEmpty(t *testing.T) {
	m := New(Options{})
	got, meta, data := roundTrip(t, m, SnapshotMeta{})
	if got.Digest() != m.Digest() || meta.Members != nil || meta.Files != 0 {
		t.Fatalf("empty round trip: meta %+v", meta)
	}
	if !bytes.HasPrefix(data, []byte("SNAP 3 0 0 0 - ")) {
		t.Fatalf("empty snapshot = %q", data)
	}
}

func smallSnapshot(t *testing.T) []byte {
	m := New(Options{})
	applyAll(m, [][]byte{
		cmd(wire.OpPut, 4, 1, 10, "a", 0, "x y"),
		cmd(wire.OpPut, 5, 1, 11, "b", 0, ""),
		cmd(wire.OpCAS, 5, 2, 12, "b", 9, "z"),
	})
	var buf bytes.Buffer
	if err := m.WriteSnapshot(&buf, SnapshotMeta{Slot: 7, Members: []uint64{1}}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSnapshotTruncatedAndFlipped(t *testing.T) {
	data := smallSnapshot(t)
	for n := range len(data) {
		if _, _, err := ReadSnapshot(bytes.NewReader(data[:n]), Options{}); !errors.Is(err, ErrCorruptSnapshot) {
			t.Fatalf("truncated to %d bytes: err = %v", n, err)
		}
	}
	for i := range data {
		for bit := range 8 {
			bad := slices.Clone(data)
			bad[i] ^= 1 << bit
			if _, _, err := ReadSnapshot(bytes.NewReader(bad), Options{}); !errors.Is(err, ErrCorruptSnapshot) {
				t.Fatalf("bit %d of byte %d flipped: err = %v", bit, i, err)
			}
		}
	}
	for _, tail := range []string{"x", "\n", "END 0 0 00000000 00000000\n"} {
		if _, _, err := ReadSnapshot(bytes.NewReader(append(slices.Clone(data), tail...)), Options{}); !errors.Is(err, ErrCorruptSnapshot) {
			t.Fatalf("trailing %q: err = %v", tail, err)
		}
	}
	if _, _, err := ReadSnapshot(bytes.NewReader(data), Options{}); err != nil {
		t.Fatalf("the intact snapshot: %v", err)
	}
}

// withCRC appends each line's checksum, so tests can build snapshots that
// are well-formed at the line level but wrong in content.
func withCRC(lines ...string) string {
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "%s %08x\n", l, crc32.Checksum([]byte(l), wal.CRC32C))
	}
	return b.String()
}

// build makes a snapshot from body lines, adding checksums and a correct
// trailer.
func build(files, sessions int, lines ...string) string {
	body := withCRC(lines...)
	end := fmt.Sprintf("END %d %d %08x", files, sessions, crc32.Checksum([]byte(body), wal.CRC32C))
	return body + withCRC(end)
}

func TestSnapshotRejects(t *testing.T) {
	const hdr = "SNAP 1 9 20 500 1,2,3"
	const hdr2 = "SNAP 2 9 20 500 1,2,3"
	long := strings.Repeat("v", 100)
	tests := []struct {
		name string
		data string
		line int
	}{
		{"empty", "", 1},
		{"not a header", build(0, 0, "SNAP1 9 20 500 -"), 1},
		{"future version", build(0, 0, "SNAP 5 9 20 500 -"), 1},
		{"header field missing", build(0, 0, "SNAP 1 9 20 -"), 1},
		{"negative log time", build(0, 0, "SNAP 1 9 20 -5 -"), 1},
		{"bad member", build(0, 0, "SNAP 1 9 20 500 1,,3"), 1},
		{"empty member list", build(0, 0, "SNAP 1 9 20 500 "), 1},
		{"no trailer", withCRC(hdr, "F a 1 x"), 3},
		{"unknown kind", build(0, 0, hdr, "X a 1 x"), 2},
		{"missing checksum", hdr + "\n", 1},
		{"file fields", build(1, 0, hdr, "F a 1"), 2},
		{"space in key", build(1, 0, hdr, `F a\sb 1 x`), 2},
		{"empty key", build(1, 0, hdr, `F \e 1 x`), 2},
		{"non-canonical escape", build(1, 0, hdr, `F a 1 \x41`), 2},
		{"unknown escape", build(1, 0, hdr, `F a 1 \q`), 2},
		{"empty value field", build(1, 0, hdr, `F a 1 `), 2},
		{"version 0", build(1, 0, hdr, "F a 0 x"), 2},
		{"version past index", build(1, 0, hdr, "F a 21 x"), 2},
		{"duplicate key", build(2, 0, hdr, "F a 1 x", "F a 2 y"), 3},
		{"keys out of order", build(2, 0, hdr, "F b 1 x", "F a 2 y"), 3},
		{"value too large", build(1, 0, hdr, "F a 1 "+long), 2},
		{"client 0", build(0, 1, hdr, "S 0 1 500 OK 3 3"), 2},
		{"clients out of order", build(0, 2, hdr, "S 5 1 500 OK 3 3", "S 4 1 500 OK 3 3"), 3},
		{"file after session", build(1, 1, hdr, "S 5 1 500 OK 3 3", "F a 1 x"), 3},
		{"uncacheable code", build(0, 1, hdr, "S 5 1 500 STALE 3 0"), 2},
		{"result index 0", build(0, 1, hdr, "S 5 1 500 OK 0 0"), 2},
		{"result index past applied", build(0, 1, hdr, "S 5 1 500 OK 21 21"), 2},
		{"result version past its index", build(0, 1, hdr, "S 5 1 500 OK 3 4"), 2},
		{"active after log time", build(0, 1, hdr, "S 5 1 501 OK 3 3"), 2},
		{"too many sessions", build(0, 3, hdr, "S 1 1 500 OK 3 3", "S 2 1 500 OK 3 3", "S 3 1 500 OK 3 3"), 4},
		{"file count", build(2, 0, hdr, "F a 1 x"), 3},
		{"session count", build(0, 0, hdr, "S 1 1 500 OK 3 3"), 3},
		{"body checksum", withCRC(hdr, "END 0 0 00000000"), 2},
		{"line too long", build(1, 0, hdr, "F a 1 "+strings.Repeat(`\x00`, 1200)), 2},
		{"no newline at end", strings.TrimSuffix(build(0, 0, hdr), "\n"), 2},
		// Version 2 session lines: last seq, activity, the window.
		{"v2 session fields", build(0, 1, hdr2, "S 5 2 500 OK 3 3"), 2},
		{"v2 reply fields", build(0, 1, hdr2, "S 5 2 500 OK.3"), 2},
		{"v2 reply extra field", build(0, 1, hdr2, "S 5 2 500 OK.3.3.3"), 2},
		{"v2 empty reply", build(0, 1, hdr2, "S 5 2 500 OK.3.3,"), 2},
		{"v2 uncacheable code", build(0, 1, hdr2, "S 5 2 500 OUT_OF_ORDER.3.0"), 2},
		{"v2 replies not in index order", build(0, 1, hdr2, "S 5 2 500 OK.4.4,OK.3.3"), 2},
		{"v2 more replies than seqs", build(0, 1, hdr2, "S 5 1 500 OK.3.3,OK.4.4"), 2},
		{"v2 more replies than the window", build(0, 1, hdr2, "S 5 9 500 OK.1.1,OK.2.2,OK.3.3,OK.4.4"), 2},
		{"v2 reply index past applied", build(0, 1, hdr2, "S 5 2 500 OK.21.21"), 2},
		{"v2 version past its index", build(0, 1, hdr2, "S 5 2 500 OK.3.4"), 2},
		{"v2 non-canonical number", build(0, 1, hdr2, "S 5 2 500 OK.03.3"), 2},
		{"v2 none written as empty", build(0, 1, hdr2, "S 5 2 500 "), 2},
	}
	opts := Options{MaxValue: 50, MaxSessions: 2, SessionWindow: 3}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ReadSnapshot(strings.NewReader(tt.data), opts)
			if !errors.Is(err, ErrCorruptSnapshot) {
				t.Fatalf("err = %v, want ErrCorruptSnapshot", err)
			}
			if want := fmt.Sprintf("line %d:", tt.line); !strings.Contains(err.Error(), want) {
				t.Fatalf("err = %v, want it to name %q", err, want)
			}
		})
	}
	// The same builder makes acceptable snapshots, so the cases above
	// fail for the reason they name.
	good2 := build(0, 2, hdr2, "S 1 5 499 OK.3.3,NOT_FOUND.4.0,OK.20.20", "S 2 9 500 -")
	if _, meta, err := ReadSnapshot(strings.NewReader(good2), opts); err != nil || meta.Sessions != 2 {
		t.Fatalf("good version 2 snapshot: %+v, %v", meta, err)
	}
	good := build(2, 2, hdr, "F a 1 x", `F b 20 \e`, "S 1 1 499 CONFLICT 3 2", "S 2 1 500 TOO_LARGE 20 0")
	m, meta, err := ReadSnapshot(strings.NewReader(good), opts)
	if err != nil {
		t.Fatalf("good snapshot: %v", err)
	}
	if meta.Files != 2 || meta.Sessions != 2 || m.Applied() != 20 || m.LogTime() != 500 {
		t.Fatalf("good snapshot read as %+v", meta)
	}
	if r := m.Apply(21, cmd(wire.OpPut, 1, 1, 500, "c", 0, "")); r != (Result{Code: wire.CodeConflict, Index: 3, Version: 2}) {
		t.Fatalf("restored session replied %+v", r)
	}
}

func TestSnapshotWriteError(t *testing.T) {
	m := New(Options{})
	for i := range 2000 { // several times the write buffer
		m.Apply(uint64(i+1), put(fmt.Sprint(i), strings.Repeat("v", 100)))
	}
	var buf bytes.Buffer
	if err := m.WriteSnapshot(&buf, SnapshotMeta{}); err != nil {
		t.Fatal(err)
	}
	// A writer that fails after some bytes; the error must surface.
	for _, n := range []int{0, 10, buf.Len() / 2, buf.Len() - 1} {
		w := &failingWriter{n: n}
		if err := m.WriteSnapshot(w, SnapshotMeta{}); !errors.Is(err, errDiskFull) {
			t.Errorf("failing after %d bytes: err = %v", n, err)
		}
	}
}

var errDiskFull = errors.New("disk full")

type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errDiskFull
	}
	w.n -= len(p)
	return len(p), nil
}

func TestSaveLoadPrune(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := LoadLatestSnapshot(dir, Options{}); !errors.Is(err, ErrNoSnapshot) {
		t.Fatalf("empty dir: err = %v", err)
	}
	m := New(genOptions)
	cmds := genCommands(rand.New(rand.NewPCG(3, 3)), 300)
	var digests []string
	for i, slot := range []uint64{5, 40, 300} {
		applyAll(m, cmds[i*100:(i+1)*100])
		path, err := SaveSnapshot(dir, m, SnapshotMeta{Slot: slot, Members: []uint64{1, 2, 3}})
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(dir, fmt.Sprintf("%020d.snap", slot)); path != want {
			t.Fatalf("saved to %s, want %s", path, want)
		}
		digests = append(digests, m.Digest())
	}
	// A crashed save leaves a temporary; an unrelated file stays put.
	for _, name := range []string{".snap-123.tmp", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("junk"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	slots, err := ListSnapshots(dir)
	if err != nil || !slices.Equal(slots, []uint64{5, 40, 300}) {
		t.Fatalf("ListSnapshots = %v, %v", slots, err)
	}
	got, meta, err := LoadLatestSnapshot(dir, genOptions)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Slot != 300 || got.Digest() != digests[2] {
		t.Fatalf("loaded slot %d with another digest", meta.Slot)
	}
	old, _, err := LoadSnapshot(SnapshotPath(dir, 5), genOptions)
	if err != nil || old.Digest() != digests[0] {
		t.Fatalf("LoadSnapshot(5): %v", err)
	}

	if err := PruneSnapshots(dir, 0); err == nil {
		t.Fatal("PruneSnapshots(keep 0) succeeded")
	}
	if err := PruneSnapshots(dir, 2); err != nil {
		t.Fatal(err)
	}
	var names []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"00000000000000000040.snap", "00000000000000000300.snap", "notes.txt"}
	if !slices.Equal(names, want) {
		t.Fatalf("after prune: %q, want %q", names, want)
	}

	// A corrupt latest snapshot is reported, not skipped.
	latest := SnapshotPath(dir, 300)
	data, _ := os.ReadFile(latest)
	data[len(data)/2] ^= 0x20
	if err := os.WriteFile(latest, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadLatestSnapshot(dir, genOptions); !errors.Is(err, ErrCorruptSnapshot) || !strings.Contains(err.Error(), latest) {
		t.Fatalf("corrupt latest: err = %v", err)
	}
	// A snapshot under another slot's name is corrupt too.
	good, _ := os.ReadFile(SnapshotPath(dir, 40))
	if err := os.WriteFile(SnapshotPath(dir, 41), good, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadSnapshot(SnapshotPath(dir, 41), genOptions); !errors.Is(err, ErrCorruptSnapshot) {
		t.Fatalf("renamed snapshot: err = %v", err)
	}
}

func TestSaveSnapshotMissingDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	if _, err := SaveSnapshot(dir, New(Options{}), SnapshotMeta{}); err == nil {
		t.Fatal("saved into a missing directory")
	}
}
