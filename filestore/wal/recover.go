package wal

// This file owns reading segments back: replaying their valid batches, and
// telling the torn tail of an interrupted write (cut off) from damage to
// acknowledged data (a CorruptError, or cut with Repair). Runs on the
// caller's goroutine, inside Open or Verify, before the Log is shared.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
)

// damage describes the first bad batch (or version line) of a segment.
type damage struct {
	off    int64  // where it starts: everything before it is good
	line   int    // 1-based line to report
	reason string // what is wrong
	// sealed means its checksums matched: it was written whole, so it is
	// never a torn write, whatever follows.
	sealed bool
	// incomplete means the file ends inside it: the batch was cut short.
	incomplete bool
	// torn means it is the never-acknowledged tail, to be cut off.
	torn bool
}

// recoverer reads segments for Open and for Verify.
type recoverer struct {
	opts   Options
	replay func(Record) error
	// visit, if set, is called instead of replay with each valid record's
	// place: its segment and 1-based line (Verify).
	visit func(at Position, r Record) error
	rec   *Recovery
	body  []byte // batch buffer, reused
}

// scan reads one segment, replays its good batches and returns its first
// damage, classified as torn or not, or nil if it is whole. It sets
// seg.size and the segment's slot range. err is for I/O failures, an
// unsupported version and replay errors.
func (rc *recoverer) scan(seg *segment, last bool) (*damage, error) {
	f, err := os.Open(seg.path)
	if err != nil {
		return nil, fmt.Errorf("wal: recover: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("wal: recover: %w", err)
	}
	size := fi.Size()
	seg.size = size
	br := bufio.NewReaderSize(io.NewSectionReader(f, 0, size), 64<<10)

	first, err := br.ReadSlice('\n')
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return nil, fmt.Errorf("wal: read %s: %w", seg.path, err)
	}
	if string(first) != versionLine {
		if v, ok := otherVersion(first); ok {
			return nil, fmt.Errorf("%w: %s has format %q, this build reads %q", ErrVersion, seg.path, v, versionLine[:len(versionLine)-1])
		}
		short := int64(len(first)) == size && !bytes.HasSuffix(first, []byte("\n"))
		return rc.classify(f, size, last, &damage{off: 0, line: 1, reason: "bad version line", incomplete: short})
	}
	return rc.scanBatches(f, br, seg, size, last, int64(len(versionLine)), 2)
}

// scanBatches reads the batches of seg from off, whose first line is line
// number line, with br positioned there; it replays the good ones and
// returns the first damage, classified, or nil at the end of the file.
func (rc *recoverer) scanBatches(f *os.File, br *bufio.Reader, seg *segment, size int64, last bool, off int64, line int) (*damage, error) {
	for off < size {
		n, recs, d, err := rc.readBatch(br, seg.path, off, size, line)
		if err != nil {
			return nil, err
		}
		if d != nil {
			return rc.classify(f, size, last, d)
		}
		for i := range recs {
			seg.add(&recs[i])
			var err error
			switch {
			case rc.visit != nil:
				err = rc.visit(Position{File: seg.path, Line: line + 1 + i}, recs[i])
			case rc.replay != nil:
				err = rc.replay(recs[i])
			}
			if err != nil {
				return nil, fmt.Errorf("wal: replay: %w", err)
			}
		}
		seg.batches++
		rc.rec.Batches++
		rc.rec.Records += len(recs)
		off += n
		line += 1 + len(recs)
	}
	return nil, nil
}

// otherVersion reports whether first is a well-formed version line of
// another format version, which is not damage but a newer (or older) file.
func otherVersion(first []byte) (string, bool) {
	v, ok := bytes.CutPrefix(first, []byte("synod-wal "))
	if !ok || len(v) < 2 || v[len(v)-1] != '\n' {
		return "", false
	}
	if _, ok := ParseUint(v[:len(v)-1]); !ok {
		return "", false
	}
	return string(first[:len(first)-1]), true
}

// classify decides whether damage d is the torn tail of an interrupted
// write, which was never acknowledged: only in the last segment, only if no
// valid batch follows it anywhere in the file, and only if it looks like an
// interrupted write: cut short by the end of the file, or with a stretch of
// never-written (zero) sectors in it. A whole batch whose checksum fails is
// not a torn write but damage to bytes that reached the disk, and the batch
// may have been acknowledged (trap 11). The text format never writes a zero
// byte, and a torn write zeroes whole sectors, from a sector boundary or the
// batch's start to a sector boundary or the end of the file; no single
// flipped bit makes that.
func (rc *recoverer) classify(f *os.File, size int64, last bool, d *damage) (*damage, error) {
	if d.sealed || !last {
		return d, nil
	}
	found, err := validBatchAfter(f, d.off+1, size, rc.opts.MaxBatchBytes)
	if err != nil || found {
		return d, err
	}
	if d.incomplete {
		d.torn = true
		return d, nil
	}
	zeroed, err := unwrittenSectors(f, d.off, size)
	if err != nil {
		return nil, err
	}
	if zeroed {
		d.torn = true
		return d, nil
	}
	d.reason += " (not the tail of an interrupted write: acknowledged data may be damaged)"
	return d, nil
}

// sectorSize is the unit a torn write loses: the smallest a disk writes
// atomically.
const sectorSize = 512

// unwrittenSectors reports whether f, from off to size, holds a run of zero
// bytes that starts at off or at a sector boundary and ends at the end of
// the file or at a sector boundary, covering at least one byte: what a
// write interrupted before some of its sectors reached the disk leaves.
func unwrittenSectors(f *os.File, off, size int64) (bool, error) {
	const chunk = 64 << 10
	buf := make([]byte, chunk)
	runStart := int64(-1)
	qualifies := func(a, b int64) bool {
		start := a
		if a != off {
			start = (a + sectorSize - 1) / sectorSize * sectorSize
		}
		end := b
		if b != size {
			end = b / sectorSize * sectorSize
		}
		return start < end
	}
	for pos := off; pos < size; {
		n, err := f.ReadAt(buf[:min(chunk, size-pos)], pos)
		if err != nil && !errors.Is(err, io.EOF) {
			return false, fmt.Errorf("wal: recover: %w", err)
		}
		if n == 0 {
			break
		}
		for i, c := range buf[:n] {
			at := pos + int64(i)
			switch {
			case c == 0 && runStart < 0:
				runStart = at
			case c != 0 && runStart >= 0:
				if qualifies(runStart, at) {
					return true, nil
				}
				runStart = -1
			}
		}
		pos += int64(n)
	}
	return runStart >= 0 && qualifies(runStart, size), nil
}

// readBatch reads the batch at off, whose header is line number line, into
// rc.body and parses it. It returns the batch's length in bytes
// and its records (freshly allocated), or the damage that stops it.
func (rc *recoverer) readBatch(br *bufio.Reader, path string, off, size int64, line int) (int64, []Record, *damage, error) {
	bad := func(reason string, args ...any) (int64, []Record, *damage, error) {
		return 0, nil, &damage{off: off, line: line, reason: fmt.Sprintf(reason, args...)}, nil
	}
	hdr, err := br.ReadSlice('\n')
	switch {
	case err == io.EOF:
		return 0, nil, &damage{off: off, line: line, reason: "incomplete batch header", incomplete: true}, nil
	case err == bufio.ErrBufferFull || err == nil && len(hdr) > maxHeaderLen:
		return bad("batch header line too long")
	case err != nil:
		return 0, nil, nil, fmt.Errorf("wal: read %s: %w", path, err)
	}
	h, err := parseHeader(hdr)
	if err != nil {
		return bad("bad batch header: %v", err)
	}
	bodyOff := off + int64(len(hdr))
	if h.bytes > uint64(size-bodyOff) {
		return 0, nil, &damage{off: off, line: line, reason: fmt.Sprintf("batch of %d bytes runs past the end of the file", h.bytes), incomplete: true}, nil
	}
	if h.bytes > uint64(rc.opts.MaxBatchBytes) {
		return bad("batch of %d bytes exceeds MaxBatchBytes %d", h.bytes, rc.opts.MaxBatchBytes)
	}
	// h.bytes is now bounded by the file and by MaxBatchBytes.
	if uint64(cap(rc.body)) < h.bytes {
		rc.body = make([]byte, h.bytes)
	}
	body := rc.body[:h.bytes]
	if _, err := io.ReadFull(br, body); err != nil {
		return 0, nil, nil, fmt.Errorf("wal: read %s: %w", path, err)
	}
	if crc32.Checksum(body, CRC32C) != h.crc {
		at, reason := rc.findBadLine(body, line)
		return 0, nil, &damage{off: off, line: at, reason: reason}, nil
	}
	// The batch was written whole; from here on damage is never a torn write.
	sealed := func(at int, reason string) (int64, []Record, *damage, error) {
		return 0, nil, &damage{off: off, line: at, reason: reason, sealed: true}, nil
	}
	// h.lines is bounded by h.bytes (parseHeader), but do not trust it
	// for more than a modest initial capacity either.
	recs := make([]Record, 0, min(h.lines, 1024))
	for rest := body; len(rest) > 0; {
		at := line + 1 + len(recs)
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return sealed(at, "batch does not end with a newline")
		}
		if i+1 > rc.opts.MaxLine {
			return sealed(at, fmt.Sprintf("line of %d bytes exceeds MaxLine %d", i+1, rc.opts.MaxLine))
		}
		if uint64(len(recs)) == h.lines {
			return sealed(line, fmt.Sprintf("batch has more lines than its header's %d", h.lines))
		}
		r, err := parseRecord(rest[:i+1])
		if err != nil {
			return sealed(at, err.Error())
		}
		recs = append(recs, r)
		rest = rest[i+1:]
	}
	if uint64(len(recs)) != h.lines {
		return sealed(line, fmt.Sprintf("batch has %d lines, its header says %d", len(recs), h.lines))
	}
	return int64(len(hdr)) + int64(h.bytes), recs, nil, nil
}

// findBadLine names the first line of a batch body with a checksum mismatch
// that is bad on its own, so a flipped bit is reported on its own line.
func (rc *recoverer) findBadLine(body []byte, header int) (int, string) {
	for i := 0; len(body) > 0; i++ {
		at := header + 1 + i
		j := bytes.IndexByte(body, '\n')
		if j < 0 {
			return at, "incomplete record line"
		}
		if j+1 > rc.opts.MaxLine {
			return at, "record line too long"
		}
		if _, err := parseRecord(body[:j+1]); err != nil {
			return at, err.Error()
		}
		body = body[j+1:]
	}
	return header, "batch checksum mismatch"
}

// validBatchAfter reports whether a whole batch (header and body checksums
// good) starts anywhere in f at or after from. Resynchronising on every
// "B " rather than on line starts finds the next batch even if the damage
// took out the newline before it.
func validBatchAfter(f *os.File, from, size, maxBatch int64) (bool, error) {
	at, err := nextValidBatch(f, from, size, maxBatch)
	return at >= 0, err
}

// nextValidBatch returns the offset of the first whole batch that starts in
// f at or after from, or -1 if there is none.
func nextValidBatch(f *os.File, from, size, maxBatch int64) (int64, error) {
	const chunk = 64 << 10
	buf := make([]byte, chunk)
	for pos := from; pos < size-1; {
		n, err := f.ReadAt(buf[:min(chunk, size-pos)], pos)
		if err != nil && !errors.Is(err, io.EOF) {
			return -1, fmt.Errorf("wal: recover: %w", err)
		}
		if n < 2 {
			return -1, nil
		}
		data := buf[:n]
		for i := 0; ; {
			j := bytes.Index(data[i:], []byte("B "))
			if j < 0 {
				break
			}
			at := pos + int64(i+j)
			ok, err := batchValidAt(f, at, size, maxBatch)
			if err != nil {
				return -1, err
			}
			if ok {
				return at, nil
			}
			i += j + 1
		}
		pos += int64(n) - 1 // overlap one byte: "B " may straddle chunks
	}
	return -1, nil
}

// batchValidAt reports whether a batch with good checksums starts at off.
// It streams the body, so a header's length is never allocated.
func batchValidAt(f *os.File, off, size, maxBatch int64) (bool, error) {
	var hb [maxHeaderLen]byte
	n, err := f.ReadAt(hb[:min(int64(len(hb)), size-off)], off)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("wal: recover: %w", err)
	}
	i := bytes.IndexByte(hb[:n], '\n')
	if i < 0 {
		return false, nil
	}
	h, err := parseHeader(hb[:i+1])
	if err != nil {
		return false, nil
	}
	start := off + int64(i) + 1
	if h.bytes > uint64(size-start) || h.bytes > uint64(maxBatch) {
		return false, nil
	}
	sum := crc32.New(CRC32C)
	if _, err := io.Copy(sum, io.NewSectionReader(f, start, int64(h.bytes))); err != nil {
		return false, fmt.Errorf("wal: recover: %w", err)
	}
	return sum.Sum32() == h.crc, nil
}
