package filestore

import (
	"bytes"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"synod/filestore/wal"
	"synod/wire"
)

func FuzzDecodeCommand(f *testing.F) {
	for _, s := range []string{
		"put 17 4 1732000000000 docs/a hello world",
		"put 17.4.2 1732000000000 docs/a hello world",
		"put 17.1.1.r 1 k v",
		"del 9.3.3 8 a/b",
		"put 1.2.3 3 k v",
		"put 1 1 0 k ",
		"append 0 9 -5 log \x00\xff\r\n",
		"cas 2 3 7 a/b 12 v",
		"cas 2 3 7 a 0 ",
		"del 2 4 8 a/b",
		"del 18446744073709551615 0 -9223372036854775808 é",
		"put 01 2 3 k v",
		"putfile 7.1.1 1 big 5 4096 " + strings.Repeat("ab", 32) + " " + strings.Repeat("cd", 32),
		"putfile 0 0 1 big 4097 4096 " + strings.Repeat("ab", 32) + " " + strings.Repeat("cd", 32),
		"del 1 2 3 a b",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// Whatever the bytes, applying them never panics and a failure
		// changes nothing.
		m := New(Options{MaxValue: 64})
		r := m.Apply(1, b)
		if m.Applied() != 1 {
			t.Fatalf("Applied() = %d", m.Applied())
		}

		c, err := DecodeCommand(b)
		if err != nil {
			if !errors.Is(err, ErrBadCommand) {
				t.Fatalf("error %v does not wrap ErrBadCommand", err)
			}
			if r.Code != wire.CodeBadRequest || m.Len() != 0 || m.Sessions() != 0 {
				t.Fatalf("undecodable command applied: %+v", r)
			}
			return
		}
		if r.Code == wire.CodeBadRequest {
			t.Fatalf("Apply rejected a command that decodes: %v", r.Err)
		}
		if ValidateKey(c.Key) != nil {
			t.Fatalf("decoded an invalid key %q", c.Key)
		}
		// Canonical: what decodes re-encodes to the same bytes...
		enc := EncodeCommand(nil, c)
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoded %q as %q", b, enc)
		}
		// ...and decodes to the same command.
		c2, err := DecodeCommand(enc)
		if err != nil || c2.Op != c.Op || c2.ClientID != c.ClientID || c2.Seq != c.Seq || c2.Ack != c.Ack ||
			c2.Retry != c.Retry || c2.Legacy != c.Legacy ||
			c2.Stamp != c.Stamp || c2.Key != c.Key || c2.Version != c.Version || !bytes.Equal(c2.Value, c.Value) {
			t.Fatalf("second decode = %+v, %v; want %+v", c2, err, c)
		}
	})
}

// checkRewrite checks that writing m back gives the snapshot it was read
// from: byte for byte for the current version, and for version 1 a
// version 2 snapshot that reads back to the same state.
func checkRewrite(t *testing.T, m *Machine, meta SnapshotMeta, in []byte, opts Options) {
	t.Helper()
	var out bytes.Buffer
	if err := m.WriteSnapshot(&out, meta); err != nil {
		t.Fatal(err)
	}
	if bytes.HasPrefix(in, []byte("SNAP "+snapshotVersion+" ")) {
		if !bytes.Equal(out.Bytes(), in) {
			t.Fatalf("accepted a snapshot that rewrites differently:\n%q\n%q", in, out.Bytes())
		}
		return
	}
	again, _, err := ReadSnapshot(bytes.NewReader(out.Bytes()), opts)
	if err != nil {
		t.Fatalf("older snapshot rewritten as one that does not read: %v\n%q", err, out.Bytes())
	}
	if again.Digest() != m.Digest() {
		t.Fatalf("older snapshot rewritten as another state:\n%q\n%q", in, out.Bytes())
	}
}

func FuzzReadSnapshot(f *testing.F) {
	opts := Options{MaxValue: 256, MaxSessions: 16}
	seed := func(m *Machine, slot uint64) []byte {
		var buf bytes.Buffer
		if err := m.WriteSnapshot(&buf, SnapshotMeta{Slot: slot, Members: []uint64{1, 2, 3}}); err != nil {
			f.Fatal(err)
		}
		return buf.Bytes()
	}
	small := New(opts)
	applyAll(small, [][]byte{
		cmd(wire.OpPut, 4, 1, 10, "a", 0, "x y"),
		cmd(wire.OpAppend, 5, 1, 11, "b", 0, "\x00\n\\"),
		cmd(wire.OpCAS, 5, 2, 12, "b", 9, "z"),
		cmd(wire.OpDel, 6, 1, 13, "c", 0, ""),
	})
	data := seed(small, 7)
	f.Add(data)
	for _, n := range []int{0, 10, len(data) / 2, len(data) - 1} {
		f.Add(data[:n])
	}
	f.Add(seed(New(opts), 0))
	gen := New(Options{MaxValue: 48, SessionTTL: genOptions.SessionTTL, MaxSessions: 16})
	applyAll(gen, genCommands(rand.New(rand.NewPCG(1, 1)), 200))
	f.Add(seed(gen, 1))

	f.Fuzz(func(t *testing.T, b []byte) {
		m, meta, err := ReadSnapshot(bytes.NewReader(b), opts)
		if err != nil {
			if m != nil {
				t.Fatal("machine returned with an error")
			}
			return
		}
		// The format is canonical: whatever is accepted is exactly
		// what writing the machine back produces.
		checkRewrite(t, m, meta, b, opts)
		// And the restored machine keeps working.
		m.Digest()
		m.Apply(m.Applied()+1, cmd(wire.OpPut, 3, 1<<40, meta.LogTime+1, "k", 0, "v"))
		m.Digest()
	})
}

// FuzzReadSnapshotContent gets past the checksums: it takes snapshot lines
// without them, adds each line's CRC and fixes the trailer's body checksum,
// so the fuzzer explores the syntax and semantic checks behind them.
func FuzzReadSnapshotContent(f *testing.F) {
	opts := Options{MaxValue: 256, MaxSessions: 16}
	strip := func(snap []byte) []byte {
		var out []byte
		for line := range bytes.Lines(snap) {
			if i := bytes.LastIndexByte(line, ' '); i >= 0 {
				out = append(append(out, line[:i]...), '\n')
			}
		}
		return out
	}
	m := New(opts)
	applyAll(m, [][]byte{
		cmd(wire.OpPut, 4, 1, 10, "a", 0, "x y"),
		cmd(wire.OpAppend, 5, 1, 11, "b", 0, "\x00\n\\"),
		cmd(wire.OpCAS, 5, 2, 12, "b", 9, "z"),
		cmd(wire.OpDel, 6, 1, 13, "c", 0, ""),
		cmd(wire.OpPut, 7, 1, 14, "big", 0, string(bytes.Repeat([]byte{'x'}, 300))),
	})
	var buf bytes.Buffer
	if err := m.WriteSnapshot(&buf, SnapshotMeta{Slot: 7, Members: []uint64{1, 2, 3}}); err != nil {
		f.Fatal(err)
	}
	f.Add(strip(buf.Bytes()))
	f.Add([]byte("SNAP 1 0 0 0 -\nEND 0 0 x\n"))
	f.Add([]byte("SNAP 1 9 20 500 1\nF a 1 \\e\nS 1 1 499 CONFLICT 3 2\nEND 1 1 x\n"))
	f.Add([]byte("SNAP 2 9 20 500 1\nF a 1 \\e\nS 1 3 499 OK.1.1,CONFLICT.3.2\nS 2 1 500 -\nEND 1 2 x\n"))
	f.Add([]byte("SNAP 3 9 20 500 1\nC 1 c1 v\\s1\\s127.0.0.1:7101\nF a 1 \\e\nS 2 1 500 -\nEND 1 1 x\n"))

	f.Fuzz(func(t *testing.T, content []byte) {
		var snap []byte
		var body uint32
		for line := range bytes.Lines(content) {
			line = bytes.TrimSuffix(line, []byte{'\n'})
			if rest, ok := bytes.CutPrefix(line, []byte("END ")); ok && bytes.Count(rest, []byte{' '}) == 2 {
				i := bytes.LastIndexByte(line, ' ')
				line = appendHex32(append(slices.Clone(line[:i]), ' '), body)
			}
			start := len(snap)
			snap = append(snap, line...)
			snap = append(snap, ' ')
			snap = appendHex32(snap, crc32.Checksum(line, wal.CRC32C))
			snap = append(snap, '\n')
			body = crc32.Update(body, wal.CRC32C, snap[start:])
		}
		m, meta, err := ReadSnapshot(bytes.NewReader(snap), opts)
		if err != nil {
			if !errors.Is(err, ErrCorruptSnapshot) {
				t.Fatalf("error %v is not ErrCorruptSnapshot", err)
			}
			return
		}
		checkRewrite(t, m, meta, snap, opts)
		m.Apply(m.Applied()+1, cmd(wire.OpPut, 3, 1<<40, meta.LogTime, "k", 0, "v"))
		m.Digest()
	})
}
