package wal

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"synod/paxos"
)

// genRecord returns a random record: any kind, slots and ballots of every
// magnitude, commands with every byte value, empty commands, many commands.
func genRecord(rng *rand.Rand) Record {
	if rng.IntN(8) == 0 {
		return Record{Kind: KindCommit, Slot: genUint(rng)}
	}
	r := Record{
		Kind:   KindAccept,
		Slot:   genUint(rng),
		Ballot: Ballot{Round: genUint(rng), Node: genUint(rng)},
		Value:  paxos.ValueKind(rng.IntN(3)),
	}
	if r.Value == paxos.ValueNoop {
		return r
	}
	n := rng.IntN(4)
	if rng.IntN(10) == 0 {
		n = 20 + rng.IntN(100)
	}
	for range n {
		r.Cmds = append(r.Cmds, genCmd(rng))
	}
	return r
}

// genUint favours small numbers and the edges of the range.
func genUint(rng *rand.Rand) uint64 {
	switch rng.IntN(6) {
	case 0:
		return 0
	case 1:
		return ^uint64(0) - uint64(rng.IntN(3))
	case 2:
		return rng.Uint64()
	default:
		return uint64(rng.IntN(1000))
	}
}

func genCmd(rng *rand.Rand) []byte {
	switch rng.IntN(5) {
	case 0:
		return []byte{}
	case 1: // binary
		b := make([]byte, rng.IntN(64))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return b
	case 2: // every byte value
		b := make([]byte, 256)
		for i := range b {
			b[i] = byte(i)
		}
		return b
	default: // text, as filestore writes it
		return fmt.Appendf(nil, "put %d %d 0 docs/%d hello world", rng.IntN(100), rng.IntN(1000), rng.IntN(50))
	}
}

func genBatch(rng *rand.Rand) []Record {
	n := 1 + rng.IntN(5)
	if rng.IntN(8) == 0 {
		n = 30 + rng.IntN(50)
	}
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = genRecord(rng)
	}
	return recs
}

func sameRecord(a, b Record) bool {
	if a.Kind != b.Kind || a.Slot != b.Slot || a.Ballot != b.Ballot || a.Value != b.Value || len(a.Cmds) != len(b.Cmds) {
		return false
	}
	for i := range a.Cmds {
		if !bytes.Equal(a.Cmds[i], b.Cmds[i]) {
			return false
		}
	}
	return true
}

func checkRecords(t *testing.T, got, want []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range got {
		if !sameRecord(got[i], want[i]) {
			t.Fatalf("record %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

// openCollect opens dir and returns the log and every replayed record.
func openCollect(t *testing.T, dir string, opts Options) (*Log, Recovery, []Record, error) {
	t.Helper()
	var got []Record
	l, rec, err := Open(dir, opts, func(r Record) error {
		got = append(got, r)
		return nil
	})
	return l, rec, got, err
}

func mustOpen(t *testing.T, dir string, opts Options) (*Log, Recovery, []Record) {
	t.Helper()
	l, rec, got, err := openCollect(t, dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l, rec, got
}

func mustAppend(t *testing.T, l *Log, recs []Record) {
	t.Helper()
	if err := l.Append(recs); err != nil {
		t.Fatalf("Append: %v", err)
	}
}

func mustClose(t *testing.T, l *Log) {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// builtLog describes a log written by buildLog: the batches and where each
// ends in its segment.
type builtLog struct {
	batches [][]Record
	path    []string // segment of batch i
	start   []int64  // offset of batch i in its segment
	end     []int64  // offset just past batch i
	line    []int    // line number of batch i's header
}

func (b *builtLog) recordsBefore(n int) []Record {
	var out []Record
	for _, batch := range b.batches[:n] {
		out = append(out, batch...)
	}
	return out
}

// buildLog appends batches to a new log in dir and closes it.
func buildLog(t *testing.T, dir string, opts Options, batches [][]Record) *builtLog {
	t.Helper()
	l, _, _ := mustOpen(t, dir, opts)
	b := &builtLog{batches: batches}
	lines := map[string]int{}
	for _, batch := range batches {
		mustAppend(t, l, batch)
		seg := l.active()
		b.path = append(b.path, seg.path)
		b.end = append(b.end, seg.size)
		if lines[seg.path] == 0 {
			lines[seg.path] = 2
		}
		b.line = append(b.line, lines[seg.path])
		lines[seg.path] += 1 + len(batch)
	}
	for i := range b.end {
		if i > 0 && b.path[i] == b.path[i-1] {
			b.start = append(b.start, b.end[i-1])
		} else {
			b.start = append(b.start, int64(len(versionLine)))
		}
	}
	mustClose(t, l)
	return b
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// copyDir copies the regular files of src into a new temporary directory.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		writeFile(t, filepath.Join(dst, e.Name()), readFile(t, filepath.Join(src, e.Name())))
	}
	return dst
}

func segmentNames(t *testing.T, dir string) []string {
	t.Helper()
	segs, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range segs {
		names = append(names, filepath.Base(s.path))
	}
	return names
}

// smallBatch is a short, fixed batch for byte-by-byte damage tests.
func smallBatch(slot uint64) []Record {
	return []Record{
		{Kind: KindAccept, Slot: slot, Ballot: Ballot{3, 1}, Value: paxos.ValueCmds, Cmds: [][]byte{[]byte("put 1 1 0 k v"), {}}},
		{Kind: KindCommit, Slot: slot},
	}
}
