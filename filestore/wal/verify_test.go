package wal

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// dirHash hashes the names, sizes and contents of dir's files, to show
// Verify left them alone.
func dirHash(t *testing.T, dir string) [32]byte {
	t.Helper()
	h := sha256.New()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		h.Write([]byte(e.Name() + "\x00"))
		h.Write(readFile(t, filepath.Join(dir, e.Name())))
		h.Write([]byte{0})
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// mustVerify runs Verify, collects the visited records and checks that the
// directory did not change.
func mustVerify(t *testing.T, dir string, opts Options) (*VerifyReport, []Record, []Position) {
	t.Helper()
	before := dirHash(t, dir)
	var recs []Record
	var at []Position
	rep, err := Verify(dir, opts, func(p Position, r Record) error {
		recs = append(recs, r)
		at = append(at, p)
		return nil
	})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if dirHash(t, dir) != before {
		t.Fatalf("Verify changed %s", dir)
	}
	return rep, recs, at
}

// firstDamage returns the first damage of rep, in segment order.
func firstDamage(rep *VerifyReport) *CorruptError {
	for _, s := range rep.Segments {
		if len(s.Damage) > 0 {
			return s.Damage[0]
		}
	}
	return nil
}

func TestVerifyWholeLog(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 3))
	dir := t.TempDir()
	var batches [][]Record
	for range 20 {
		batches = append(batches, genBatch(rng))
	}
	b := buildLog(t, dir, Options{SegmentBytes: 2000}, batches)
	rep, got, at := mustVerify(t, dir, Options{})
	checkRecords(t, got, b.recordsBefore(len(batches)))
	if rep.Damaged() || !rep.Manifest || len(rep.Missing) > 0 || rep.Records != len(got) || rep.Batches != len(batches) {
		t.Fatalf("report %+v", rep)
	}
	if len(rep.Segments) < 2 || rep.Listed != len(rep.Segments) {
		t.Fatalf("want several listed segments, got %+v", rep.Segments)
	}
	// Every position names the record's own line.
	for i, p := range at {
		lines := bytes.Split(readFile(t, p.File), []byte("\n"))
		line := append(slices.Clone(lines[p.Line-1]), '\n')
		r, err := ParseLine(line)
		if err != nil || !sameRecord(r, got[i]) {
			t.Fatalf("record %d at %s:%d: the line there is %q (%v)", i, p.File, p.Line, line, err)
		}
	}
}

// TestVerifyAgreesWithOpen damages a log every way the recovery tests do,
// and checks that Verify, without changing anything, reports what Open then
// does: the same torn bytes, the same first damage, the same records before
// it.
func TestVerifyAgreesWithOpen(t *testing.T) {
	t.Parallel()
	for _, opts := range []Options{{}, {SegmentBytes: 1}} {
		src := t.TempDir()
		b := buildLog(t, src, opts, [][]Record{smallBatch(1), smallBatch(2), smallBatch(3)})
		for target := range b.batches {
			path := b.path[target]
			orig := readFile(t, path)
			check := func(what string, data []byte) {
				t.Helper()
				dir := copyDir(t, src)
				seg := filepath.Join(dir, filepath.Base(path))
				writeFile(t, seg, data)
				rep, vgot, _ := mustVerify(t, dir, Options{})
				_, rec, ogot, err := openCollect(t, dir, Options{})
				var ce *CorruptError
				switch {
				case errors.As(err, &ce):
					fd := firstDamage(rep)
					if fd == nil || *fd != *ce {
						t.Fatalf("%s: Open refuses with %v, Verify's first damage is %v", what, ce, fd)
					}
					checkRecords(t, vgot[:len(ogot)], ogot)
				case err != nil:
					t.Fatalf("%s: Open: %v", what, err)
				default:
					if rep.Damaged() {
						t.Fatalf("%s: Open recovers (%+v), Verify reports damage %v", what, rec, firstDamage(rep))
					}
					var torn int64
					for _, s := range rep.Segments {
						if s.Torn {
							torn = s.TornBytes
						}
					}
					if torn != rec.TornBytes {
						t.Fatalf("%s: Open cut %d torn bytes, Verify reports %d", what, rec.TornBytes, torn)
					}
					checkRecords(t, vgot, ogot)
				}
			}
			for cut := b.start[target]; cut < b.end[target]; cut++ {
				check("cut", orig[:cut])
			}
			for off := b.start[target]; off < b.end[target]; off++ {
				data := bytes.Clone(orig)
				data[off] ^= 0x20
				check("flip", data)
			}
			zeroed := bytes.Clone(orig)
			for i := b.start[target]; i < b.end[target]; i++ {
				zeroed[i] = 0
			}
			check("zeroed", zeroed)
		}
	}
}

// TestVerifyFindsEveryDamage damages two batches of one segment and one of
// another: Verify names all three, and still visits the good batches
// between them.
func TestVerifyFindsEveryDamage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var batches [][]Record
	for i := range 8 {
		batches = append(batches, smallBatch(uint64(i+1)))
	}
	b := buildLog(t, dir, Options{SegmentBytes: 400}, batches)
	if b.path[1] != b.path[3] || b.path[3] == b.path[7] {
		t.Fatalf("want batches 1 and 3 in one segment and 7 in another: %v", b.path)
	}
	flip := func(batch int) int {
		data := readFile(t, b.path[batch])
		off := b.start[batch] + 20
		data[off] ^= 1
		writeFile(t, b.path[batch], data)
		return 1 + bytes.Count(data[:off], []byte("\n"))
	}
	want := []Position{{b.path[1], flip(1)}, {b.path[3], flip(3)}, {b.path[6], flip(6)}}
	rep, got, _ := mustVerify(t, dir, Options{})
	var found []Position
	for _, s := range rep.Segments {
		for _, d := range s.Damage {
			found = append(found, Position{d.File, d.Line})
		}
	}
	if !slices.Equal(found, want) {
		t.Fatalf("damage found at %v, want %v", found, want)
	}
	var slots []uint64
	for _, r := range got {
		if r.Kind == KindAccept {
			slots = append(slots, r.Slot)
		}
	}
	if !slices.Equal(slots, []uint64{1, 3, 5, 6, 8}) {
		t.Fatalf("visited slots %v, want every undamaged batch's", slots)
	}
}

func TestVerifyManifest(t *testing.T) {
	t.Parallel()
	build := func(t *testing.T) (string, *builtLog) {
		dir := t.TempDir()
		b := buildLog(t, dir, Options{SegmentBytes: 1}, [][]Record{smallBatch(1), smallBatch(2), smallBatch(3)})
		return dir, b
	}
	t.Run("no directory", func(t *testing.T) {
		rep, err := Verify(filepath.Join(t.TempDir(), "log"), Options{}, nil)
		if err != nil || rep.Exists || rep.Damaged() {
			t.Fatalf("Verify = %+v, %v", rep, err)
		}
	})
	t.Run("missing segment", func(t *testing.T) {
		dir, b := build(t)
		os.Remove(b.path[1])
		rep, _, _ := mustVerify(t, dir, Options{})
		if !slices.Equal(rep.Missing, []string{"segment " + filepath.Base(b.path[1])}) {
			t.Fatalf("Missing = %v", rep.Missing)
		}
	})
	t.Run("missing manifest", func(t *testing.T) {
		dir, _ := build(t)
		os.Remove(filepath.Join(dir, manifestFile))
		rep, got, _ := mustVerify(t, dir, Options{})
		if rep.Manifest || !slices.Equal(rep.Missing, []string{"the manifest " + manifestFile}) || len(got) != 6 {
			t.Fatalf("report %+v, %d records", rep, len(got))
		}
	})
	t.Run("damaged manifest", func(t *testing.T) {
		dir, _ := build(t)
		path := filepath.Join(dir, manifestFile)
		data := readFile(t, path)
		data[3] ^= 1
		writeFile(t, path, data)
		rep, got, _ := mustVerify(t, dir, Options{})
		if rep.ManifestDamage == nil || rep.ManifestDamage.File != path || !rep.Damaged() || len(got) != 6 {
			t.Fatalf("report %+v, %d records", rep, len(got))
		}
	})
	t.Run("stale and unlisted segments", func(t *testing.T) {
		dir, b := build(t)
		// A truncation that crashed after rewriting the manifest: the
		// first segment is no longer listed. A roll that crashed before
		// listing: a newer segment that is not listed.
		m, err := readManifest(dir)
		if err != nil {
			t.Fatal(err)
		}
		m.names = m.names[1:]
		if err := writeManifest(dir, m); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, segmentFile(1000)), []byte(versionLine))
		rep, got, _ := mustVerify(t, dir, Options{})
		if len(rep.Segments) != 4 || !rep.Segments[0].Stale || rep.Segments[0].Path != b.path[0] || !rep.Segments[3].Unlisted || rep.Damaged() {
			t.Fatalf("report %+v", rep.Segments)
		}
		if len(got) != 4 {
			t.Fatalf("visited %d records, want the 4 of the listed segments", len(got))
		}
	})
	t.Run("other version", func(t *testing.T) {
		dir, b := build(t)
		writeFile(t, b.path[0], []byte("synod-wal 9\n"))
		rep, _, _ := mustVerify(t, dir, Options{})
		if !errors.Is(rep.Segments[0].Err, ErrVersion) || !rep.Damaged() {
			t.Fatalf("report %+v", rep.Segments[0])
		}
	})
	t.Run("visit error", func(t *testing.T) {
		dir, _ := build(t)
		stop := errors.New("stop")
		if _, err := Verify(dir, Options{}, func(Position, Record) error { return stop }); err != stop {
			t.Fatalf("Verify = %v, want the visit error itself", err)
		}
	})
}

// FuzzVerify writes arbitrary bytes as the last of two segments and checks
// that Verify neither panics nor changes anything, and agrees with Open.
func FuzzVerify(f *testing.F) {
	var seg []byte
	seg = append(seg, versionLine...)
	for i := range 3 {
		body := appendRecord(nil, &smallBatch(uint64(i))[0])
		body = appendRecord(body, &smallBatch(uint64(i))[1])
		seg = append(append(seg, appendHeader(nil, 2, body)...), body...)
	}
	f.Add(seg)
	f.Add(seg[:len(seg)-7])
	flipped := bytes.Clone(seg)
	flipped[40] ^= 4
	f.Add(flipped)
	f.Add(append(bytes.Clone(seg), make([]byte, 100)...))
	f.Add([]byte("synod-wal 2\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		dir := fuzzDir(t)
		opts := Options{MaxLine: 1 << 12, MaxBatchBytes: 1 << 14}
		l, _, _ := mustOpen(t, dir, opts)
		mustAppend(t, l, smallBatch(1))
		mustClose(t, l)
		writeFile(t, filepath.Join(dir, segmentFile(2)), data)
		rep, vgot, _ := mustVerify(t, dir, opts)
		_, rec, ogot, err := openCollect(t, dir, opts)
		var ce *CorruptError
		switch {
		case errors.As(err, &ce):
			if fd := firstDamage(rep); fd == nil || *fd != *ce {
				t.Fatalf("Open refuses with %v, Verify's first damage is %v", ce, fd)
			}
			checkRecords(t, vgot[:len(ogot)], ogot)
		case errors.Is(err, ErrVersion):
			if !rep.Damaged() {
				t.Fatalf("Open: %v; Verify finds nothing", err)
			}
		case err != nil:
			t.Fatalf("Open: %v", err)
		default:
			if rep.Damaged() {
				t.Fatalf("Open recovers, Verify reports damage: %+v", rep.Segments)
			}
			if rep.Segments[1].TornBytes != rec.TornBytes {
				t.Fatalf("Open cut %d bytes, Verify reports %d torn", rec.TornBytes, rep.Segments[1].TornBytes)
			}
			checkRecords(t, vgot, ogot)
		}
	})
}
