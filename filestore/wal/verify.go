package wal

// This file owns Verify, the read-only check of a log directory: what Open
// would find there (the manifest, missing and stale segments, torn tails,
// damage to acknowledged batches), found by the same code Open recovers
// with, but reported instead of acted on. It never creates, cuts, deletes
// or rewrites a file, so `synod check` and `synod dump` can look at the
// directory of a stopped replica, or a copy of one. It runs on the
// caller's goroutine.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Position names a line of a file: a record's place in the log.
type Position struct {
	File string // path of the segment
	Line int    // 1-based line number
}

// SegmentReport is what Verify found in one segment file.
type SegmentReport struct {
	Path string
	// Name is the segment's first-slot name (the number in its file name).
	Name  uint64
	Bytes int64
	// Batches and Records count the valid ones (after damage too, where a
	// valid batch was found past it).
	Batches, Records int
	// MinSlot and MaxSlot bound the slots of its valid records, when
	// Records > 0.
	MinSlot, MaxSlot uint64

	// Listed says the manifest names it. A segment that is not listed is
	// Unlisted when it is newer than every listed one (a roll that crashed
	// before listing it: Open keeps it) and Stale otherwise (left by a
	// truncation that crashed after rewriting the manifest: Open deletes it
	// unread, and Verify does not read it either).
	Listed, Unlisted, Stale bool

	// Torn is set when the segment ends in an incomplete batch that was
	// never acknowledged (the last segment only): Open cuts TornBytes off,
	// from TornLine on.
	Torn      bool
	TornBytes int64
	TornLine  int

	// Damage lists every damaged stretch of acknowledged data found, in
	// file order: the first is what Open refuses to start on (or, with
	// Options.Repair, cuts the log at). Past each one Verify resumes at the
	// next whole batch, if there is one.
	Damage []*CorruptError

	// Err is set when the segment could not be read at all, or not to its
	// end: an unsupported format (ErrVersion) or an I/O error.
	Err error
}

// VerifyReport is what Verify found in a log directory.
type VerifyReport struct {
	Dir string
	// Exists says the directory exists; without it there is no log (a new
	// directory, or a lost log).
	Exists bool
	// Manifest says log/SEGMENTS exists and reads; ManifestDamage is set
	// when it exists but is damaged (Open refuses the log, unless it
	// repairs it by rebuilding the manifest from the segments).
	Manifest       bool
	ManifestDamage *CorruptError
	// Floor is the manifest's floor: a snapshot must cover every slot
	// below it.
	Floor uint64
	// Listed is the number of segments the manifest lists.
	Listed int
	// Segments holds every segment file, in name order, stale ones too.
	Segments []SegmentReport
	// Missing lists, as Recovery.Missing does, the pieces the manifest
	// promised that are gone: for a replica that had a log, lost state.
	Missing []string
	// Batches and Records count the valid ones of every segment read.
	Batches, Records int
}

// Damaged reports whether Open would refuse the log: a damaged manifest,
// damage to acknowledged data or a segment it cannot read.
func (r *VerifyReport) Damaged() bool {
	if r.ManifestDamage != nil {
		return true
	}
	for _, s := range r.Segments {
		if len(s.Damage) > 0 || s.Err != nil {
			return true
		}
	}
	return false
}

// Verify checks the log in dir the way Open recovers it, without changing
// anything: every line's checksum, every batch header, the manifest and the
// segments it lists, and whether a bad last batch is a torn write (never
// acknowledged, which Open would cut off) or damage (which Open refuses).
// Unlike Open it does not stop at the first damage: it goes on from the
// next whole batch and through every later segment, so it finds all of it.
//
// visit, if not nil, is called with each valid record in log order, batch
// by batch, with its place; records of stale segments are not visited (Open
// does not replay them). An error from visit stops Verify and is returned.
// Verify returns an error only for that and for a directory it cannot
// list; everything it finds wrong with the files is in the report. opts
// gives the limits (MaxLine, MaxBatchBytes) Open would apply; Repair and
// the test fields are ignored.
func Verify(dir string, opts Options, visit func(at Position, r Record) error) (*VerifyReport, error) {
	rep := &VerifyReport{Dir: dir}
	if err := opts.Validate(); err != nil {
		return rep, err
	}
	opts = opts.withDefaults()
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return rep, nil
	case err != nil:
		return rep, fmt.Errorf("wal: verify: %w", err)
	case !fi.IsDir():
		return rep, fmt.Errorf("wal: verify: %s is not a directory", dir)
	}
	rep.Exists = true
	found, err := listSegments(dir)
	if err != nil {
		return rep, err
	}
	man, err := readManifest(dir)
	var ce *CorruptError
	switch {
	case err == nil:
		rep.Manifest = true
	case errors.Is(err, fs.ErrNotExist):
		if len(found) > 0 {
			rep.Missing = append(rep.Missing, "the manifest "+manifestFile)
		}
	case errors.As(err, &ce):
		rep.ManifestDamage = ce
	default:
		return rep, fmt.Errorf("wal: verify: %w", err)
	}
	keep := found
	stale := map[uint64]bool{}
	listed := map[uint64]bool{}
	if rep.Manifest {
		rep.Floor, rep.Listed = man.floor, len(man.names)
		for _, n := range man.names {
			listed[n] = true
		}
		var staleSegs []segment
		var missing []string
		keep, staleSegs, missing = reconcile(man, found)
		rep.Missing = append(rep.Missing, missing...)
		for _, s := range staleSegs {
			stale[s.name] = true
		}
	}
	reports := map[uint64]*SegmentReport{}
	for _, s := range found {
		rep.Segments = append(rep.Segments, SegmentReport{
			Path: s.path, Name: s.name, Bytes: s.size,
			Listed: listed[s.name], Stale: stale[s.name], Unlisted: rep.Manifest && !listed[s.name] && !stale[s.name],
		})
	}
	for i := range rep.Segments {
		reports[rep.Segments[i].Name] = &rep.Segments[i]
	}
	var rec Recovery
	rc := recoverer{opts: opts, rec: &rec, visit: visit}
	if visit == nil {
		rc.visit = func(Position, Record) error { return nil }
	}
	for i := range keep {
		sr := reports[keep[i].name]
		if err := rc.verifySegment(&keep[i], i == len(keep)-1, sr); err != nil {
			return rep, err
		}
	}
	rep.Batches, rep.Records = rec.Batches, rec.Records
	return rep, nil
}

// errVisit marks an error of the visit callback, which ends Verify.
type errVisit struct{ err error }

func (e errVisit) Error() string { return e.err.Error() }
func (e errVisit) Unwrap() error { return e.err }

// verifySegment scans seg into sr: the batches up to its first damage as
// Open does, then on from every whole batch found past a damage.
func (rc *recoverer) verifySegment(seg *segment, last bool, sr *SegmentReport) error {
	visit := rc.visit
	rc.visit = func(at Position, r Record) error {
		if sr.Records == 0 || r.Slot < sr.MinSlot {
			sr.MinSlot = r.Slot
		}
		if sr.Records == 0 || r.Slot > sr.MaxSlot {
			sr.MaxSlot = r.Slot
		}
		sr.Records++
		if err := visit(at, r); err != nil {
			return errVisit{err}
		}
		return nil
	}
	defer func() { rc.visit = visit }()
	note := func(d *damage, err error) (bool, error) {
		var ev errVisit
		switch {
		case errors.As(err, &ev):
			return false, ev.err
		case err != nil:
			sr.Err = err
			return false, nil
		case d == nil:
			return false, nil
		case d.torn:
			sr.Torn, sr.TornBytes, sr.TornLine = true, seg.size-d.off, d.line
			return false, nil
		}
		sr.Damage = append(sr.Damage, &CorruptError{File: seg.path, Line: d.line, Reason: d.reason})
		return true, nil
	}
	batches := seg.batches
	d, err := rc.scan(seg, last)
	more, err := note(d, err)
	if err != nil || !more {
		sr.Batches = seg.batches - batches
		return err
	}
	f, err := os.Open(seg.path)
	if err != nil {
		sr.Err = fmt.Errorf("wal: verify: %w", err)
		return nil
	}
	defer f.Close()
	for more {
		at, err := nextValidBatch(f, d.off+1, seg.size, rc.opts.MaxBatchBytes)
		if err != nil {
			sr.Err = err
			break
		}
		if at < 0 {
			break
		}
		line, err := lineOf(f, at)
		if err != nil {
			sr.Err = err
			break
		}
		br := bufio.NewReaderSize(io.NewSectionReader(f, at, seg.size-at), 64<<10)
		d, err = rc.scanBatches(f, br, seg, seg.size, last, at, line)
		if more, err = note(d, err); err != nil {
			return err
		}
	}
	sr.Batches = seg.batches - batches
	return nil
}

// lineOf returns the 1-based number of the line that starts at off.
func lineOf(f *os.File, off int64) (int, error) {
	line := 1
	buf := make([]byte, 64<<10)
	for pos := int64(0); pos < off; {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), off-pos)], pos)
		line += bytes.Count(buf[:n], []byte{'\n'})
		pos += int64(n)
		if err != nil && !(errors.Is(err, io.EOF) && pos >= off) {
			return 0, fmt.Errorf("wal: verify: %w", err)
		}
	}
	return line, nil
}
