package wal

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The manifest makes every piece of the log that goes missing noticed.
func TestMissingPiecesAreReported(t *testing.T) {
	t.Parallel()
	opts := Options{SegmentBytes: 1} // a segment per batch
	src := t.TempDir()
	b := buildLog(t, src, opts, [][]Record{smallBatch(1), smallBatch(2), smallBatch(3)})
	for _, tc := range []struct {
		name        string
		damage      func(dir string)
		created     bool
		wantMissing string
	}{
		{"nothing", func(string) {}, false, ""},
		{"the newest segment", func(dir string) { os.Remove(filepath.Join(dir, filepath.Base(b.path[2]))) }, false, "segment " + filepath.Base(b.path[2])},
		{"a middle segment", func(dir string) { os.Remove(filepath.Join(dir, filepath.Base(b.path[1]))) }, false, "segment " + filepath.Base(b.path[1])},
		{"the manifest", func(dir string) { os.Remove(filepath.Join(dir, manifestFile)) }, false, "the manifest SEGMENTS"},
		{"the whole directory", func(dir string) { os.RemoveAll(dir) }, true, ""},
		{"every file", func(dir string) {
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				os.Remove(filepath.Join(dir, e.Name()))
			}
		}, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, src)
			tc.damage(dir)
			l, rec, _ := mustOpen(t, dir, opts)
			defer mustClose(t, l)
			if rec.Created != tc.created || strings.Join(rec.Missing, ",") != tc.wantMissing {
				t.Fatalf("recovery %+v, want created=%v missing %q", rec, tc.created, tc.wantMissing)
			}
		})
	}
}

// After the report, the log goes on from what it has, and a second Open
// finds nothing missing.
func TestMissingSegmentReportedOnce(t *testing.T) {
	opts := Options{SegmentBytes: 1}
	dir := t.TempDir()
	b := buildLog(t, dir, opts, [][]Record{smallBatch(1), smallBatch(2), smallBatch(3)})
	os.Remove(b.path[1])
	l, rec, got := mustOpen(t, dir, opts)
	if len(rec.Missing) != 1 {
		t.Fatalf("recovery %+v, want one missing segment", rec)
	}
	checkRecords(t, got, append(slices.Clone(b.batches[0]), b.batches[2]...))
	mustClose(t, l)
	l, rec, _ = mustOpen(t, dir, opts)
	if len(rec.Missing) != 0 || rec.Created {
		t.Fatalf("second open: %+v", rec)
	}
	mustClose(t, l)
}

// TruncateBefore lists the remaining segments and the floor before it
// deletes files; a crash between the two leaves stale files that Open
// removes, never a listed segment gone.
func TestTruncateKeepsTheManifest(t *testing.T) {
	opts := Options{SegmentBytes: 1}
	dir := t.TempDir()
	b := buildLog(t, dir, opts, [][]Record{smallBatch(1), smallBatch(2), smallBatch(3)})
	l, _, _ := mustOpen(t, dir, opts)
	if err := l.TruncateBefore(3); err != nil {
		t.Fatal(err)
	}
	mustClose(t, l)
	l, rec, got := mustOpen(t, dir, opts)
	if rec.Floor != 3 || len(rec.Missing) != 0 {
		t.Fatalf("recovery %+v, want floor 3 and nothing missing", rec)
	}
	checkRecords(t, got, b.batches[2])
	mustClose(t, l)

	// A truncate that crashed after the manifest: the segment's file stays.
	writeFile(t, b.path[0], readFileOr(t, b.path[0], append([]byte(versionLine), "B 0 0 00000000 00000000\n"...)))
	l, rec, got = mustOpen(t, dir, opts)
	if len(rec.Missing) != 0 || len(segmentNames(t, dir)) != 1 {
		t.Fatalf("recovery %+v, segments %v: want the stale segment removed", rec, segmentNames(t, dir))
	}
	checkRecords(t, got, b.batches[2])
	mustClose(t, l)
}

// A roll that crashed after creating the segment and before listing it
// keeps the segment.
func TestUnlistedNewestSegmentIsKept(t *testing.T) {
	opts := Options{SegmentBytes: 1}
	dir := t.TempDir()
	b := buildLog(t, dir, opts, [][]Record{smallBatch(1), smallBatch(2)})
	if err := writeManifest(dir, manifest{names: []uint64{1}}); err != nil {
		t.Fatal(err)
	}
	l, rec, got := mustOpen(t, dir, opts)
	if len(rec.Missing) != 0 {
		t.Fatalf("recovery %+v", rec)
	}
	checkRecords(t, got, b.recordsBefore(2))
	mustClose(t, l)
}

func readFileOr(t *testing.T, path string, or []byte) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		return or
	}
	return data
}

func FuzzParseManifest(f *testing.F) {
	f.Add(manifest{floor: 7, names: []uint64{1, 5, 9}}.encode())
	f.Add([]byte("synod-segments 1 0 00000000\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseManifest(data)
		if err != nil {
			return
		}
		if again, err := parseManifest(m.encode()); err != nil || again.floor != m.floor || !slices.Equal(again.names, m.names) {
			t.Fatalf("%q parsed to %+v, which does not round-trip: %+v %v", data, m, again, err)
		}
	})
}
