package wal

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"synod/paxos"
)

// recoverAndExtend checks that dir recovers to exactly want, that an
// Append after recovery works, and that both survive another reopen.
func recoverAndExtend(t *testing.T, dir string, opts Options, want []Record) Recovery {
	t.Helper()
	l, rec, got := mustOpen(t, dir, opts)
	checkRecords(t, got, want)
	extra := smallBatch(777)
	mustAppend(t, l, extra)
	mustClose(t, l)
	l, again, got := mustOpen(t, dir, Options{SegmentBytes: opts.SegmentBytes})
	checkRecords(t, got, append(append([]Record{}, want...), extra...))
	if again.TornBytes != 0 || again.Repaired {
		t.Fatalf("second reopen still found damage: %+v", again)
	}
	mustClose(t, l)
	return rec
}

func TestCutLastBatchAtEveryOffset(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"one segment", Options{}},
		{"last batch in its own segment", Options{SegmentBytes: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(7, 7))
			src := t.TempDir()
			batches := [][]Record{genBatch(rng), genBatch(rng), {
				{Kind: KindAccept, Slot: 5, Ballot: Ballot{2, 1}, Value: paxos.ValueCmds, Cmds: [][]byte{[]byte("put 1 1 0 k\x00v"), {}}},
				{Kind: KindAccept, Slot: 6, Ballot: Ballot{2, 1}, Value: paxos.ValueNoop},
				{Kind: KindCommit, Slot: 6},
			}}
			b := buildLog(t, src, tc.opts, batches)
			last := len(batches) - 1
			path := b.path[last]
			full := readFile(t, path)
			if int64(len(full)) != b.end[last] {
				t.Fatalf("segment is %d bytes, want %d", len(full), b.end[last])
			}
			want := b.recordsBefore(last)
			// In its own segment, the cuts inside the version line are
			// included: a torn new segment.
			from := b.start[last]
			if b.start[last] == int64(len(versionLine)) && tc.opts.SegmentBytes == 1 {
				from = 0
			}
			for cut := from; cut < b.end[last]; cut++ {
				dir := copyDir(t, src)
				target := filepath.Join(dir, filepath.Base(path))
				writeFile(t, target, full[:cut])
				rec := recoverAndExtend(t, dir, tc.opts, want)
				wantTorn := cut - b.start[last]
				if cut < int64(len(versionLine)) {
					wantTorn = cut
				}
				// A segment cut inside its version line is removed and
				// named even if it was empty.
				wantFile := wantTorn > 0 || cut < int64(len(versionLine))
				if rec.TornBytes != wantTorn || wantFile != (rec.TornFile == target) || rec.Repaired {
					t.Fatalf("cut at %d: recovery %+v, want %d torn bytes of %s", cut, rec, wantTorn, target)
				}
			}
		})
	}
}

// TestFlipEveryBitOfEarlierBatch flips each bit of a batch that has a good
// batch after it, and of the last batch: that is always corruption,
// reported at the flipped line. A flipped bit in the last batch is bit rot
// in a batch that may have been acknowledged, never a torn write.
func TestFlipEveryBitOfEarlierBatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		opts   Options
		target int // the batch to damage
	}{
		{"middle of the last segment", Options{}, 1},
		{"last batch of an earlier segment", Options{SegmentBytes: 1}, 1},
		{"last batch of the log", Options{}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := t.TempDir()
			b := buildLog(t, src, tc.opts, [][]Record{smallBatch(1), smallBatch(2), smallBatch(3)})
			path := b.path[tc.target]
			orig := readFile(t, path)
			want := b.recordsBefore(tc.target)
			repairs := 0
			for off := b.start[tc.target]; off < b.end[tc.target]; off++ {
				wantLine := 1 + bytes.Count(orig[:off], []byte("\n"))
				for bit := range 8 {
					dir := copyDir(t, src)
					target := filepath.Join(dir, filepath.Base(path))
					data := bytes.Clone(orig)
					data[off] ^= 1 << bit
					writeFile(t, target, data)

					_, _, _, err := openCollect(t, dir, tc.opts)
					var ce *CorruptError
					if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
						t.Fatalf("flip byte %d bit %d: Open = %v, want a *CorruptError", off, bit, err)
					}
					if ce.File != target || ce.Line != wantLine {
						t.Fatalf("flip byte %d bit %d: %v; want %s line %d", off, bit, err, target, wantLine)
					}
					// Repairing one flip per byte (rotating the bit) keeps
					// the test quick: repair and re-append cost fsyncs.
					if bit != int(off)%8 {
						continue
					}
					repairs++
					repaired := tc.opts
					repaired.Repair = true
					l, rec, got := mustOpen(t, dir, repaired)
					checkRecords(t, got, want)
					if !rec.Repaired || rec.Damage == nil || rec.Damage.Line != wantLine || rec.DroppedBytes <= 0 {
						t.Fatalf("flip byte %d bit %d: repair recovery %+v", off, bit, rec)
					}
					mustClose(t, l)
					recoverAndExtend(t, dir, tc.opts, want)
				}
			}
			if repairs < 40 {
				t.Fatalf("only %d repairs tried", repairs)
			}
		})
	}
}

func TestFlipVersionLine(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	b := buildLog(t, src, Options{}, [][]Record{smallBatch(1), smallBatch(2)})
	orig := readFile(t, b.path[0])
	for off := range len(versionLine) {
		for bit := range 8 {
			dir := copyDir(t, src)
			target := filepath.Join(dir, filepath.Base(b.path[0]))
			data := bytes.Clone(orig)
			data[off] ^= 1 << bit
			writeFile(t, target, data)
			_, _, _, err := openCollect(t, dir, Options{})
			var ce *CorruptError
			switch {
			case errors.Is(err, ErrVersion): // "synod-wal 1" became another version number
			case errors.As(err, &ce) && ce.File == target && ce.Line == 1:
				l, rec, got := mustOpen(t, dir, Options{Repair: true})
				checkRecords(t, got, nil)
				if !rec.Repaired || rec.DroppedBytes != int64(len(orig)) {
					t.Fatalf("repair: %+v", rec)
				}
				mustClose(t, l)
			default:
				t.Fatalf("flip byte %d bit %d: Open = %v", off, bit, err)
			}
		}
	}
}

// tailLog builds a log of many small batches in one segment.
func tailLog(t *testing.T) (string, *builtLog) {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(3, 3))
	var batches [][]Record
	for range 200 {
		batches = append(batches, genBatch(rng)[:1])
	}
	return dir, buildLog(t, dir, Options{}, batches)
}

// batchesBefore returns how many batches end at or before off.
func (b *builtLog) batchesBefore(off int64) int {
	n := 0
	for n < len(b.end) && b.end[n] <= off {
		n++
	}
	return n
}

func TestZeroFilledTail(t *testing.T) {
	t.Parallel()
	for _, zeroed := range []int64{512, 4096} {
		src, b := tailLog(t)
		path := b.path[0]
		full := readFile(t, path)
		size := int64(len(full))
		if size < 3*zeroed {
			t.Fatalf("log of %d bytes too small", size)
		}
		dir := copyDir(t, src)
		target := filepath.Join(dir, filepath.Base(path))
		data := bytes.Clone(full)
		clear(data[size-zeroed:])
		writeFile(t, target, data)
		keep := b.batchesBefore(size - zeroed)
		rec := recoverAndExtend(t, dir, Options{}, b.recordsBefore(keep))
		if rec.TornBytes != size-b.end[keep-1] || rec.TornFile != target {
			t.Fatalf("zeroed %d: recovery %+v, want %d torn bytes", zeroed, rec, size-b.end[keep-1])
		}
	}
}

// TestJunkAppended appends what an interrupted write can leave (a batch cut
// short, never-written zero pages) and what it cannot (bytes that were never
// a prefix of a batch): the first is a torn tail, cut off; the second is
// damage, refused.
func TestJunkAppended(t *testing.T) {
	t.Parallel()
	src, b := tailLog(t)
	path := b.path[0]
	full := readFile(t, path)
	rng := rand.New(rand.NewPCG(5, 5))
	garbage := make([]byte, 3000)
	for i := range garbage {
		garbage[i] = byte(1 + rng.IntN(255))
	}
	for _, tc := range []struct {
		name string
		junk []byte
		torn bool
	}{
		{"zeroed pages", make([]byte, 8192), true},
		{"header claiming a huge body", appendHeader(nil, 1, make([]byte, 1<<20)), true},
		{"half a line", []byte("A 12 3.4 cmds 1 x"), true},
		{"a batch cut short", appendHeader(nil, 2, append(withCRC("C 1"), withCRC("C 2")...)), true},
		{"a batch followed by zero pages", append(appendHeader(nil, 2, append(withCRC("C 1"), withCRC("C 2")...)), make([]byte, 4096)...), true},
		{"random bytes", garbage, false},
		{"fake headers", []byte("B 1 13 00000000 00000000\nB 1 13 deadbeef 0f7e87b3\nB 2 1000000000000 00000000 00000000\n"), false},
		{"a record without a header", withCRC("C 9"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, src)
			target := filepath.Join(dir, filepath.Base(path))
			writeFile(t, target, append(bytes.Clone(full), tc.junk...))
			if !tc.torn {
				_, _, _, err := openCollect(t, dir, Options{})
				var ce *CorruptError
				if !errors.As(err, &ce) || ce.File != target {
					t.Fatalf("Open = %v, want corruption of %s", err, target)
				}
				return
			}
			rec := recoverAndExtend(t, dir, Options{}, b.recordsBefore(len(b.batches)))
			if rec.TornBytes != int64(len(tc.junk)) {
				t.Fatalf("recovery %+v, want %d torn bytes", rec, len(tc.junk))
			}
		})
	}
}

func TestDamageBeforeGoodBatchIsCorrupt(t *testing.T) {
	t.Parallel()
	src, b := tailLog(t)
	path := b.path[0]
	full := readFile(t, path)
	tests := []struct {
		name   string
		damage func([]byte) []byte
		line   int
	}{
		{"zeroed block in the middle", func(d []byte) []byte {
			clear(d[b.start[50] : b.start[50]+512])
			return d
		}, b.line[50]},
		{"newline before a batch lost", func(d []byte) []byte {
			d[b.end[60]-1] = 'x'
			return d
		}, b.line[61] - 1},
		{"a batch cut out", func(d []byte) []byte {
			return append(d[:b.start[70]+5:b.start[70]+5], d[b.end[70]:]...)
		}, b.line[70]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, src)
			target := filepath.Join(dir, filepath.Base(path))
			writeFile(t, target, tc.damage(bytes.Clone(full)))
			_, _, _, err := openCollect(t, dir, Options{})
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.File != target || ce.Line != tc.line {
				t.Fatalf("Open = %v, want corruption at %s line %d", err, target, tc.line)
			}
		})
	}
}

// A last batch whose checksums match was written whole, so bad content in
// it is corruption, not a torn write.
func TestSealedLastBatchIsCorrupt(t *testing.T) {
	dir := t.TempDir()
	body := append(withCRC("C 1"), withCRC("C 01")...) // second line is not canonical
	seg := filepath.Join(dir, segmentFile(1))
	writeFile(t, seg, append(append([]byte(versionLine), appendHeader(nil, 2, body)...), body...))
	_, _, _, err := openCollect(t, dir, Options{})
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Line != 4 {
		t.Fatalf("Open = %v, want corruption at line 4", err)
	}
	body = append(withCRC("C 1"), append(withCRC("C 2"), withCRC("C 3")...)...)
	writeFile(t, seg, append(append([]byte(versionLine), appendHeader(nil, 2, body)...), body...)) // wrong line count
	if _, _, _, err := openCollect(t, dir, Options{}); !errors.As(err, &ce) || ce.Line != 2 {
		t.Fatalf("Open = %v, want corruption at line 2", err)
	}
}

func TestUnsupportedVersion(t *testing.T) {
	dir := t.TempDir()
	seg := filepath.Join(dir, segmentFile(1))
	writeFile(t, seg, []byte("synod-wal 2\nwhatever the future holds\n"))
	for _, repair := range []bool{false, true} {
		if _, _, _, err := openCollect(t, dir, Options{Repair: repair}); !errors.Is(err, ErrVersion) {
			t.Fatalf("Open(repair=%v) = %v, want ErrVersion", repair, err)
		}
	}
	if _, err := os.Stat(seg); err != nil {
		t.Fatalf("segment of another version was touched: %v", err)
	}
}

func TestLineOverMaxLine(t *testing.T) {
	dir := t.TempDir()
	big := []Record{{Kind: KindAccept, Slot: 1, Value: paxos.ValueCmds, Cmds: [][]byte{bytes.Repeat([]byte("x"), 200)}}}
	b := buildLog(t, dir, Options{}, [][]Record{big, smallBatch(2)})
	// Reading with a smaller limit than the writer's: written whole, so corrupt.
	_, _, _, err := openCollect(t, dir, Options{MaxLine: 100})
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Line != 3 {
		t.Fatalf("Open = %v, want corruption at line 3", err)
	}
	// Likewise a batch over MaxBatchBytes, reported at its header.
	if _, _, _, err := openCollect(t, dir, Options{MaxBatchBytes: 100}); !errors.As(err, &ce) || ce.Line != b.line[0] {
		t.Fatalf("Open = %v, want corruption at line %d", err, b.line[0])
	}
}

func TestRepairRemovesLaterSegments(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 1}
	b := buildLog(t, dir, opts, [][]Record{smallBatch(1), smallBatch(2), smallBatch(3), smallBatch(4)})
	data := readFile(t, b.path[1])
	data[b.start[1]+3] ^= 0x10
	writeFile(t, b.path[1], data)
	l, rec, got := mustOpen(t, dir, Options{SegmentBytes: 1, Repair: true})
	checkRecords(t, got, b.recordsBefore(1))
	if !rec.Repaired || rec.Damage.File != b.path[1] || rec.Damage.Line != 2 {
		t.Fatalf("recovery %+v", rec)
	}
	wantDropped := b.end[1] - b.start[1] + b.end[2] + b.end[3]
	if rec.DroppedBytes != wantDropped {
		t.Fatalf("dropped %d bytes, want %d", rec.DroppedBytes, wantDropped)
	}
	if names := segmentNames(t, dir); len(names) != 2 {
		t.Fatalf("segments after repair: %v", names)
	}
	mustAppend(t, l, smallBatch(9))
	mustClose(t, l)
	_, _, got = mustOpen(t, dir, opts)
	checkRecords(t, got, append(b.recordsBefore(1), smallBatch(9)...))
}

func TestEmptySegments(t *testing.T) {
	dir := t.TempDir()
	// An empty file and a bare version line as the last segment: the first
	// is a torn creation and goes, the second is a valid empty segment.
	writeFile(t, filepath.Join(dir, segmentFile(1)), []byte(versionLine))
	writeFile(t, filepath.Join(dir, segmentFile(2)), nil)
	l, rec, got := mustOpen(t, dir, Options{})
	if len(got) != 0 || rec.TornFile != filepath.Join(dir, segmentFile(2)) || rec.TornBytes != 0 {
		t.Fatalf("recovery %+v", rec)
	}
	mustAppend(t, l, smallBatch(5)) // goes into the empty segment 1
	mustClose(t, l)
	if names := segmentNames(t, dir); len(names) != 1 || names[0] != segmentFile(1) {
		t.Fatalf("segments %v", names)
	}
	_, _, got = mustOpen(t, dir, Options{})
	checkRecords(t, got, smallBatch(5))
}
