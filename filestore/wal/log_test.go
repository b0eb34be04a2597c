package wal

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"synod/paxos"
)

func TestRoundTrip(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 99))
			dir := filepath.Join(t.TempDir(), "log")
			opts := Options{SegmentBytes: 8 << 10}
			var want []Record
			for round := range 3 {
				l, rec, got := mustOpen(t, dir, opts)
				checkRecords(t, got, want)
				if rec.TornBytes != 0 || rec.Repaired || rec.Records != len(want) {
					t.Fatalf("reopen %d: unexpected recovery %+v", round, rec)
				}
				for range 40 {
					batch := genBatch(rng)
					mustAppend(t, l, batch)
					want = append(want, batch...)
				}
				mustClose(t, l)
			}
			_, _, got := mustOpen(t, dir, opts)
			checkRecords(t, got, want)
			names := segmentNames(t, dir)
			if len(names) < 3 {
				t.Fatalf("expected several segments, got %v", names)
			}
			if !slices.IsSorted(names) {
				t.Fatalf("segment names not sorted: %v", names)
			}
		})
	}
}

func TestSegmentNames(t *testing.T) {
	dir := t.TempDir()
	l, _, _ := mustOpen(t, dir, Options{SegmentBytes: 1})
	// Slots go backwards, as when a new master re-proposes old slots; the
	// names must still sort in write order.
	slots := []uint64{100, 50, 100, 7, 1 << 40}
	var want []Record
	for _, s := range slots {
		batch := smallBatch(s)
		mustAppend(t, l, batch)
		want = append(want, batch...)
	}
	mustClose(t, l)
	names := segmentNames(t, dir)
	wantNames := []string{
		"00000000000000000100.log",
		"00000000000000000101.log",
		"00000000000000000102.log",
		"00000000000000000103.log",
		"00000001099511627776.log",
	}
	if !slices.Equal(names, wantNames) {
		t.Fatalf("segments %v, want %v", names, wantNames)
	}
	l, _, got := mustOpen(t, dir, Options{SegmentBytes: 1})
	checkRecords(t, got, want)
	mustClose(t, l)
}

func TestTruncateBefore(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 1} // one batch per segment
	l, _, _ := mustOpen(t, dir, opts)
	if err := l.TruncateBefore(10); err != nil { // empty log: nothing to do
		t.Fatal(err)
	}
	batches := [][]Record{
		{{Kind: KindAccept, Slot: 1, Value: paxos.ValueNoop}, {Kind: KindAccept, Slot: 5, Value: paxos.ValueNoop}},
		{{Kind: KindAccept, Slot: 8, Value: paxos.ValueNoop}, {Kind: KindCommit, Slot: 3}},
		{{Kind: KindAccept, Slot: 2, Value: paxos.ValueNoop}, {Kind: KindAccept, Slot: 12, Value: paxos.ValueNoop}},
		{{Kind: KindAccept, Slot: 4, Value: paxos.ValueNoop}},
		{{Kind: KindAccept, Slot: 6, Value: paxos.ValueNoop}}, // active: never removed
	}
	for _, b := range batches {
		mustAppend(t, l, b)
	}
	if got := len(segmentNames(t, dir)); got != 5 {
		t.Fatalf("%d segments, want 5", got)
	}
	if err := l.TruncateBefore(9); err != nil {
		t.Fatal(err)
	}
	// Named 1, 8, 9 (slot 2, raised), 10 (slot 4), 11 (slot 6); the
	// segment named 9 holds slot 12, the active one is 11.
	want := []string{"00000000000000000009.log", "00000000000000000011.log"}
	if got := segmentNames(t, dir); !slices.Equal(got, want) {
		t.Fatalf("after TruncateBefore(9): %v, want %v", got, want)
	}
	if err := l.TruncateBefore(1 << 60); err != nil {
		t.Fatal(err)
	}
	want = want[1:]
	if got := segmentNames(t, dir); !slices.Equal(got, want) {
		t.Fatalf("after TruncateBefore(max): %v, want %v", got, want)
	}
	mustAppend(t, l, smallBatch(20))
	mustClose(t, l)
	l, _, got := mustOpen(t, dir, opts)
	checkRecords(t, got, append(batches[4], smallBatch(20)...))
	mustClose(t, l)
}

func TestAppendLimits(t *testing.T) {
	dir := t.TempDir()
	l, _, _ := mustOpen(t, dir, Options{MaxLine: 100, MaxBatchBytes: 300})
	big := Record{Kind: KindAccept, Slot: 1, Value: paxos.ValueCmds, Cmds: [][]byte{make([]byte, 100)}}
	escapesBig := Record{Kind: KindAccept, Slot: 1, Value: paxos.ValueCmds, Cmds: [][]byte{make([]byte, 30)}} // 120 bytes escaped
	fits := Record{Kind: KindAccept, Slot: 1, Value: paxos.ValueCmds, Cmds: [][]byte{make([]byte, 10)}}       // 60 bytes
	tests := []struct {
		name string
		recs []Record
		want error
	}{
		{"raw command over MaxLine", []Record{big}, ErrTooLarge},
		{"escaped line over MaxLine", []Record{escapesBig}, ErrTooLarge},
		{"batch over MaxBatchBytes", []Record{fits, fits, fits, fits, fits, fits, fits, fits, fits, fits}, ErrTooLarge},
		{"invalid record", []Record{fits, {Kind: KindCommit, Slot: 1, Value: paxos.ValueNoop}}, ErrInvalidRecord},
		{"empty", nil, nil},
	}
	for _, tc := range tests {
		if err := l.Append(tc.recs); !errors.Is(err, tc.want) {
			t.Errorf("%s: Append = %v, want %v", tc.name, err, tc.want)
		}
	}
	ok := []Record{{Kind: KindAccept, Slot: 1, Value: paxos.ValueCmds, Cmds: [][]byte{[]byte("fine")}}}
	mustAppend(t, l, ok) // refused appends leave the log usable
	mustClose(t, l)
	_, _, got := mustOpen(t, dir, Options{})
	checkRecords(t, got, ok)
}

func TestStickyError(t *testing.T) {
	dir := t.TempDir()
	l, _, _ := mustOpen(t, dir, Options{})
	mustAppend(t, l, smallBatch(1))
	l.f.Close() // the next write fails underneath the log
	err := l.Append(smallBatch(2))
	if err == nil {
		t.Fatal("Append on a closed file succeeded")
	}
	if !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Append error %v does not wrap os.ErrClosed", err)
	}
	if again := l.Append(smallBatch(3)); again != err {
		t.Fatalf("second Append = %v, want the same error %v", again, err)
	}
	if again := l.Append(nil); again != err {
		t.Fatalf("empty Append = %v, want the sticky error", again)
	}
	if again := l.TruncateBefore(5); again != err {
		t.Fatalf("TruncateBefore = %v, want the sticky error", again)
	}
	if again := l.Close(); again != err {
		t.Fatalf("Close = %v, want the sticky error", again)
	}
	if again := l.Append(smallBatch(3)); !errors.Is(again, ErrClosed) {
		t.Fatalf("Append after Close = %v, want ErrClosed", again)
	}
	_, _, got := mustOpen(t, dir, Options{})
	checkRecords(t, got, smallBatch(1))
}

func TestClosed(t *testing.T) {
	l, _, _ := mustOpen(t, t.TempDir(), Options{})
	mustClose(t, l)
	for name, err := range map[string]error{
		"Append":         l.Append(smallBatch(1)),
		"TruncateBefore": l.TruncateBefore(1),
		"Close":          l.Close(),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}

func TestConcurrentAppend(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 4 << 10}
	l, _, _ := mustOpen(t, dir, opts)
	const writers, per = 8, 20
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range per {
				batch := []Record{
					{Kind: KindAccept, Slot: uint64(w), Ballot: Ballot{uint64(i), 0}, Value: paxos.ValueCmds, Cmds: [][]byte{fmt.Appendf(nil, "w%d-%d", w, i)}},
					{Kind: KindCommit, Slot: uint64(w)},
				}
				if err := l.Append(batch); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	mustClose(t, l)
	_, rec, got := mustOpen(t, dir, opts)
	if rec.Batches != writers*per || len(got) != 2*writers*per {
		t.Fatalf("recovered %d batches, %d records; want %d, %d", rec.Batches, len(got), writers*per, 2*writers*per)
	}
	next := make([]uint64, writers)
	for i := 0; i < len(got); i += 2 {
		a, c := got[i], got[i+1]
		// Batches are never interleaved, and each writer's batches are in order.
		if a.Kind != KindAccept || c.Kind != KindCommit || a.Slot != c.Slot || a.Ballot.Round != next[a.Slot] {
			t.Fatalf("records %d, %d out of order: %+v %+v", i, i+1, a, c)
		}
		next[a.Slot]++
	}
}

func TestOpenCreatesDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "log")
	l, rec, got := mustOpen(t, dir, Options{})
	if len(got) != 0 || rec.Segments != 0 {
		t.Fatalf("new log replayed %d records, %d segments", len(got), rec.Segments)
	}
	if names := segmentNames(t, dir); len(names) != 0 {
		t.Fatalf("new log has segments %v before the first Append", names)
	}
	mustAppend(t, l, smallBatch(0))
	mustClose(t, l)
	if names := segmentNames(t, dir); !slices.Equal(names, []string{"00000000000000000000.log"}) {
		t.Fatalf("segments %v", names)
	}
}

func TestOpenRejects(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	writeFile(t, file, nil)
	if _, _, err := Open(file, Options{}, nil); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Open(file) = %v", err)
	}
	for _, o := range []Options{{SegmentBytes: -1}, {MaxLine: -1}, {MaxBatchBytes: -1}} {
		if err := o.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", o)
		}
		if _, _, err := Open(t.TempDir(), o, nil); err == nil {
			t.Errorf("Open with %+v succeeded", o)
		}
	}
	if err := DefaultOptions().Validate(); err != nil {
		t.Errorf("DefaultOptions invalid: %v", err)
	}
}

func TestReplayError(t *testing.T) {
	dir := t.TempDir()
	buildLog(t, dir, Options{}, [][]Record{smallBatch(1)})
	stop := errors.New("stop")
	if _, _, err := Open(dir, Options{}, func(Record) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("Open = %v, want the replay error", err)
	}
}

func TestIgnoresOtherFiles(t *testing.T) {
	dir := t.TempDir()
	buildLog(t, dir, Options{}, [][]Record{smallBatch(1)})
	for _, name := range []string{"notes.txt", "1.log", "99999999999999999999.log", "0000000000000000000x.log"} {
		writeFile(t, filepath.Join(dir, name), []byte("junk"))
	}
	_, _, got := mustOpen(t, dir, Options{})
	checkRecords(t, got, smallBatch(1))
}

func TestSegmentNameAtMax(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 1}
	l, _, _ := mustOpen(t, dir, opts)
	max := Record{Kind: KindCommit, Slot: 1<<64 - 1}
	for range 3 {
		mustAppend(t, l, []Record{max}) // no name after MaxUint64: the segment grows
	}
	mustClose(t, l)
	if names := segmentNames(t, dir); !slices.Equal(names, []string{"18446744073709551615.log"}) {
		t.Fatalf("segments %v", names)
	}
	_, _, got := mustOpen(t, dir, opts)
	checkRecords(t, got, []Record{max, max, max})
}
