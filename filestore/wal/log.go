package wal

// This file owns the Log: its segment files, Open (recovery through
// recover.go), Append's one write and one fsync per batch, rolling to a new
// segment, TruncateBefore and Close. Safe for concurrent use under Log.mu;
// in a node, New and Run open and close it and the persister goroutine
// alone appends and truncates.

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"
)

// versionLine starts every segment. It names the format this package reads
// and writes; see the package comment.
const versionLine = "synod-wal 1\n"

// Options configures a Log. The zero value of each field means its default.
type Options struct {
	// SegmentBytes is the size in bytes at which the current segment is
	// finished: the next Append starts a new segment file. A batch is never
	// split, so a segment may exceed it by one batch. Default 64 MiB.
	SegmentBytes int64

	// MaxLine bounds one record line in bytes, newline included, on write
	// and on read. Append refuses a longer record with ErrTooLarge; Open
	// treats a longer line as damage. Default 64 MiB.
	MaxLine int

	// MaxBatchBytes bounds the record bytes of one batch, on write and on
	// read. It is also the largest buffer recovery allocates. Default 1 GiB.
	MaxBatchBytes int64

	// Repair lets Open cut the log at the first damaged batch that is not
	// the torn tail, instead of refusing with a *CorruptError. Everything
	// from that batch on is deleted; Recovery.Repaired reports it, and the
	// node must rejoin as a learner because it forgot votes it gave.
	Repair bool

	// TestSyncDelay (tests only: a slow disk) sleeps this long between a
	// batch's write and its fsync.
	TestSyncDelay time.Duration
	// TestLossy (tests only) keeps a written batch in the process's memory
	// until its fsync, so a kill -9 before the fsync loses it as a power
	// cut would; without it the page cache keeps what was written.
	TestLossy bool

	// OnSync, if set, is called after every successful fsync of a batch
	// with the batch's bytes and the time the fsync alone took, on the
	// goroutine that called Append (for metrics; it must not block).
	OnSync func(bytes int, d time.Duration)
}

// DefaultOptions returns the options Open uses for zero fields.
func DefaultOptions() Options {
	return Options{
		SegmentBytes:  64 << 20,
		MaxLine:       64 << 20,
		MaxBatchBytes: 1 << 30,
	}
}

// Validate reports whether o is usable; zero fields are fine (defaults).
func (o Options) Validate() error {
	switch {
	case o.SegmentBytes < 0:
		return fmt.Errorf("wal: options: SegmentBytes %d is negative", o.SegmentBytes)
	case o.MaxLine < 0:
		return fmt.Errorf("wal: options: MaxLine %d is negative", o.MaxLine)
	case o.MaxBatchBytes < 0:
		return fmt.Errorf("wal: options: MaxBatchBytes %d is negative", o.MaxBatchBytes)
	}
	return nil
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.SegmentBytes == 0 {
		o.SegmentBytes = d.SegmentBytes
	}
	if o.MaxLine == 0 {
		o.MaxLine = d.MaxLine
	}
	if o.MaxBatchBytes == 0 {
		o.MaxBatchBytes = d.MaxBatchBytes
	}
	return o
}

// Recovery reports what Open found and did.
type Recovery struct {
	Segments int // segment files read
	Batches  int // valid batches replayed
	Records  int // valid records replayed

	// TornFile and TornBytes name the segment whose incomplete last batch
	// was cut off and how many bytes were cut. That batch was never
	// acknowledged, so nothing is lost. TornFile is empty if the log ended
	// cleanly; a torn, still empty new segment is removed whole.
	TornFile  string
	TornBytes int64

	// Repaired is set when Options.Repair cut acknowledged data: Damage says
	// where, DroppedBytes how much was deleted (later segments included).
	// The node has forgotten votes and must rejoin as a learner.
	Repaired     bool
	Damage       *CorruptError
	DroppedBytes int64

	// Created is set when there was no log: no directory, or one with
	// neither manifest nor segments. Missing lists
	// pieces the manifest promised that are gone (a segment, the manifest
	// itself). For a replica that had a log, either means lost state: it
	// has forgotten votes and must rejoin as a learner.
	Created bool
	Missing []string

	// Floor is the slot below which TruncateBefore dropped records: a
	// snapshot must cover every slot below it.
	Floor uint64
}

// segment is one log file. Segments are named by the slot of their first
// record, raised where needed so that names increase in write order.
type segment struct {
	name    uint64
	path    string
	size    int64
	batches int
	hasRecs bool
	maxSlot uint64
}

func (s *segment) add(r *Record) {
	if !s.hasRecs || r.Slot > s.maxSlot {
		s.maxSlot = r.Slot
	}
	s.hasRecs = true
}

func segmentFile(name uint64) string { return fmt.Sprintf("%020d.log", name) }

// Log is an open, append-only log directory. Its methods are safe for
// concurrent use; Append calls are serialized.
//
// After any failed write, fsync, create or close, the Log is broken: every
// later call returns that same error. The file may then end in a partial
// batch; Close the Log and Open it again to cut it off. (After a failed
// fsync the page cache cannot be trusted either, so restarting the process
// is safer still.)
type Log struct {
	dir  string
	opts Options

	mu     sync.Mutex
	segs   []segment // oldest first; the last one is the one appended to
	f      *os.File  // the last segment, nil while the log has none
	buf    []byte    // encoding buffer, reused between Appends
	hdr    []byte    // header scratch, reused (a local array would escape)
	floor  uint64    // the manifest's floor
	err    error     // sticky
	closed bool
}

// Open opens the log in dir (creating the directory if needed), recovers
// it, and returns it ready for appends.
//
// Recovery reads every segment in order and calls replay, if not nil, for
// each valid record in log order, batch by batch, a batch only once all of it
// checked out. Each record passed to replay is freshly allocated and belongs
// to it. Only one batch is held in memory at a time. If replay returns an
// error Open stops and returns it.
//
// An incomplete or damaged last batch of the last segment, with nothing
// valid after it, was never acknowledged and is cut off (Recovery.TornBytes).
// Damage anywhere else is corruption of acknowledged data: Open returns a
// *CorruptError naming the file and line (errors.Is(err, ErrCorrupt)),
// after having replayed the records before it, which the caller must then
// discard; or, with Options.Repair, it truncates the log at the damaged
// batch, deletes later segments and sets Recovery.Repaired.
func Open(dir string, opts Options, replay func(Record) error) (*Log, Recovery, error) {
	var rec Recovery
	if err := opts.Validate(); err != nil {
		return nil, rec, err
	}
	opts = opts.withDefaults()
	created, err := makeDir(dir)
	if err != nil {
		return nil, rec, err
	}
	rec.Created = created
	segs, err := listSegments(dir)
	if err != nil {
		return nil, rec, err
	}
	man, noManifest, err := openManifest(dir)
	var ce *CorruptError
	switch {
	case errors.As(err, &ce) && opts.Repair:
		noManifest = true // rebuilt from the segments below
	case err != nil:
		return nil, rec, err
	}
	removed := false
	if noManifest {
		switch {
		case len(segs) == 0:
			rec.Created = true // no log was here: a new one, or a lost one
		case !created:
			rec.Missing = append(rec.Missing, "the manifest "+manifestFile)
		}
		man = manifestOf(0, segs)
	} else {
		var stale []segment
		var missing []string
		segs, stale, missing = reconcile(man, segs)
		rec.Missing = append(rec.Missing, missing...)
		for _, s := range stale {
			if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, rec, fmt.Errorf("wal: remove truncated segment: %w", err)
			}
			removed = true
		}
	}
	rec.Floor = man.floor
	rc := recoverer{opts: opts, replay: replay, rec: &rec}
	for i := range segs {
		seg := &segs[i]
		last := i == len(segs)-1
		d, err := rc.scan(seg, last)
		if err != nil {
			return nil, rec, err
		}
		rec.Segments++
		if d == nil {
			continue
		}
		if d.torn {
			rec.TornFile, rec.TornBytes = seg.path, seg.size-d.off
		} else {
			ce := &CorruptError{File: seg.path, Line: d.line, Reason: d.reason}
			if !opts.Repair {
				return nil, rec, ce
			}
			rec.Repaired, rec.Damage = true, ce
			rec.DroppedBytes = seg.size - d.off
			for _, later := range segs[i+1:] {
				if err := os.Remove(later.path); err != nil {
					return nil, rec, fmt.Errorf("wal: repair: %w", err)
				}
				rec.DroppedBytes += later.size
				removed = true
			}
		}
		segs = segs[:i+1]
		if d.off == 0 {
			// Not even the version line is good: the file holds nothing.
			if err := os.Remove(seg.path); err != nil {
				return nil, rec, fmt.Errorf("wal: recover: %w", err)
			}
			segs, removed = segs[:i], true
		} else if err := truncateFile(seg.path, d.off); err != nil {
			return nil, rec, err
		} else {
			seg.size = d.off
		}
		break
	}
	if removed {
		if err := syncDir(dir); err != nil {
			return nil, rec, err
		}
	}
	if now := manifestOf(man.floor, segs); noManifest || !slices.Equal(now.names, man.names) {
		if err := writeManifest(dir, now); err != nil {
			return nil, rec, err
		}
	}
	l := &Log{dir: dir, opts: opts, segs: segs, floor: man.floor}
	if n := len(segs); n > 0 {
		f, err := os.OpenFile(segs[n-1].path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return nil, rec, fmt.Errorf("wal: open: %w", err)
		}
		l.f = f
	}
	return l, rec, nil
}

// Dir returns the log directory.
func (l *Log) Dir() string { return l.dir }

// Append writes recs as one batch: the header and all record lines with one
// write, then one fsync, and returns only after the fsync. The next Append
// starts only after that, so callers get group commit by passing many
// records at once: the fsync costs the same for one record as for hundreds.
// It returns nil at once for an empty recs.
//
// A record that does not fit its kind (ErrInvalidRecord) or a limit
// (ErrTooLarge) fails the call before anything is written. Any I/O failure
// breaks the log (see Log).
func (l *Log) Append(recs []Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if l.err != nil {
		return l.err
	}
	if len(recs) == 0 {
		return nil
	}
	batch, err := l.encode(recs)
	if err != nil {
		return err
	}
	if l.needRoll() {
		if err := l.roll(recs[0].Slot); err != nil {
			l.err = err
			return err
		}
	}
	seg := l.active()
	if l.opts.TestLossy {
		// The batch lives in this process until the fsync: a kill -9
		// meanwhile loses it.
		time.Sleep(l.opts.TestSyncDelay)
	}
	if _, err := l.f.Write(batch); err != nil {
		l.err = fmt.Errorf("wal: write %s: %w", seg.path, err)
		return l.err
	}
	if !l.opts.TestLossy {
		time.Sleep(l.opts.TestSyncDelay)
	}
	var synced time.Time
	if l.opts.OnSync != nil {
		synced = time.Now()
	}
	if err := l.f.Sync(); err != nil {
		l.err = fmt.Errorf("wal: fsync %s: %w: %w", seg.path, ErrSync, err)
		return l.err
	}
	if l.opts.OnSync != nil {
		l.opts.OnSync(len(batch), time.Since(synced))
	}
	seg.size += int64(len(batch))
	seg.batches++
	for i := range recs {
		seg.add(&recs[i])
	}
	if cap(l.buf) > 4<<20 {
		l.buf = nil // do not pin one huge batch's memory forever
	}
	return nil
}

func (l *Log) active() *segment { return &l.segs[len(l.segs)-1] }

// needRoll reports whether the next batch goes into a new segment.
func (l *Log) needRoll() bool {
	if l.f == nil {
		return true
	}
	a := l.active()
	// A segment named MaxUint64 has no successor name: it just grows.
	return a.size >= l.opts.SegmentBytes && a.batches > 0 && a.name < math.MaxUint64
}

// encode returns the batch for recs: header line, then one line per record.
// The body is encoded after room left for the header, and the header is
// then written right before it, so the batch is one slice without a copy.
// recordOverhead is about what a record's line takes besides its
// commands' bytes: kind, slot, ballot, value kind, count, CRC.
const recordOverhead = 64

func (l *Log) encode(recs []Record) ([]byte, error) {
	const room = maxHeaderLen
	if cap(l.buf) < room {
		l.buf = make([]byte, 0, 64<<10)
	}
	b := l.buf[:room]
	// Room for the whole batch at once, if its values need no escaping
	// (text, the common case): a batch of large values would otherwise
	// grow the buffer, copying it, several times.
	want := 0
	for i := range recs {
		want += recordOverhead
		for _, c := range recs[i].Cmds {
			want += len(c) + 1
		}
	}
	b = slices.Grow(b, int(min(int64(want), l.opts.MaxBatchBytes+recordOverhead)))
	for i := range recs {
		r := &recs[i]
		if err := r.validate(); err != nil {
			return nil, err
		}
		raw := 0
		for _, c := range r.Cmds {
			raw += len(c)
		}
		start := len(b)
		if raw < l.opts.MaxLine { // escaping never shrinks, so skip hopeless encodes
			b = appendRecord(b, r)
		}
		if n := len(b) - start; raw >= l.opts.MaxLine || n > l.opts.MaxLine {
			l.buf = b[:0]
			return nil, fmt.Errorf("%w: record for slot %d exceeds MaxLine %d", ErrTooLarge, r.Slot, l.opts.MaxLine)
		}
		if int64(len(b)-room) > l.opts.MaxBatchBytes {
			l.buf = b[:0]
			return nil, fmt.Errorf("%w: batch exceeds MaxBatchBytes %d", ErrTooLarge, l.opts.MaxBatchBytes)
		}
	}
	l.buf = b[:0]
	l.hdr = appendHeader(l.hdr[:0], len(recs), b[room:])
	start := room - len(l.hdr)
	copy(b[start:], l.hdr)
	return b[start:], nil
}

// roll starts a new segment for a batch whose first record is for slot
// first. The file is complete (version line written and fsynced, directory
// fsynced) before any batch goes into it.
func (l *Log) roll(first uint64) error {
	name := first
	if n := len(l.segs); n > 0 && name <= l.segs[n-1].name {
		// Slots need not grow (a new master re-proposes old slots), but
		// names must sort in write order. needRoll keeps this from
		// overflowing.
		name = l.segs[n-1].name + 1
	}
	path := filepath.Join(l.dir, segmentFile(name))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("wal: create segment: %w", err)
	}
	if _, err := f.WriteString(versionLine); err != nil {
		f.Close()
		return fmt.Errorf("wal: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("wal: fsync %s: %w: %w", path, ErrSync, err)
	}
	if err := syncDir(l.dir); err != nil {
		f.Close()
		return err
	}
	// Listed before its first batch, so a missing segment is noticed.
	if err := writeManifest(l.dir, manifestOf(l.floor, append(slices.Clone(l.segs), segment{name: name}))); err != nil {
		f.Close()
		return err
	}
	if l.f != nil {
		if err := l.f.Close(); err != nil {
			f.Close()
			return fmt.Errorf("wal: close %s: %w", l.active().path, err)
		}
	}
	l.f = f
	l.segs = append(l.segs, segment{name: name, path: path, size: int64(len(versionLine))})
	return nil
}

// TruncateBefore deletes every segment whose records all have slots below
// slot (a snapshot covers them), then fsyncs the directory. The segment
// being appended to is never deleted, so the log keeps at least one.
// A failure to remove a file is returned and leaves the log usable; a failed
// directory fsync breaks it.
func (l *Log) TruncateBefore(slot uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if l.err != nil {
		return l.err
	}
	keep := make([]segment, 0, len(l.segs))
	var drop []segment
	for i, s := range l.segs {
		if i < len(l.segs)-1 && (!s.hasRecs || s.maxSlot < slot) {
			drop = append(drop, s)
			continue
		}
		keep = append(keep, s)
	}
	floor := max(l.floor, slot)
	if len(drop) == 0 && floor == l.floor {
		return nil
	}
	// The manifest forgets the segments first: a crash before they are
	// removed leaves stale files that Open removes, never a listed
	// segment gone.
	if err := writeManifest(l.dir, manifestOf(floor, keep)); err != nil {
		l.err = err
		return err
	}
	l.floor = floor
	var err error
	for i, s := range drop {
		if rerr := os.Remove(s.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = fmt.Errorf("wal: truncate: %w", rerr)
			keep = append(keep, drop[i:]...) // still on disk, no longer listed: Open removes them
			break
		}
	}
	removed := len(drop) > 0
	slices.SortFunc(keep, func(a, b segment) int { return cmp.Compare(a.name, b.name) })
	l.segs = keep
	if removed {
		if serr := syncDir(l.dir); serr != nil {
			l.err = serr
			return serr
		}
	}
	return err
}

// Close closes the log. It returns the sticky error if the log was broken,
// and ErrClosed if it was already closed.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	l.closed = true
	var err error
	if l.f != nil {
		if cerr := l.f.Close(); cerr != nil {
			err = fmt.Errorf("wal: close: %w", cerr)
		}
		l.f = nil
	}
	if l.err != nil {
		return l.err
	}
	return err
}

// listSegments returns the segment files of dir in name order, which is
// write order. Other files are ignored.
func listSegments(dir string) ([]segment, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("wal: list %s: %w", dir, err)
	}
	var segs []segment
	for _, e := range entries {
		n := e.Name()
		if len(n) != 24 || n[20:] != ".log" || !e.Type().IsRegular() {
			continue
		}
		name, err := strconv.ParseUint(n[:20], 10, 64)
		if err != nil || segmentFile(name) != n {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("wal: list %s: %w", dir, err)
		}
		segs = append(segs, segment{name: name, path: filepath.Join(dir, n), size: info.Size()})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].name < segs[j].name })
	return segs, nil
}

// ensureDir creates dir if it does not exist, and then fsyncs its parent so
// that the new directory entry is durable too.
func ensureDir(dir string) error {
	_, err := makeDir(dir)
	return err
}

// makeDir is ensureDir, reporting whether it created dir.
func makeDir(dir string) (bool, error) {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return false, fmt.Errorf("wal: %s is not a directory", dir)
		}
		return false, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("wal: %w", err)
	}
	return true, syncDir(filepath.Dir(filepath.Clean(dir)))
}

// syncDir fsyncs a directory, making file creations, renames and removals
// in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("wal: open dir: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("wal: fsync dir %s: %w: %w", dir, ErrSync, err)
	}
	return nil
}

func truncateFile(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("wal: recover: %w", err)
	}
	err = f.Truncate(size)
	if err == nil {
		if err = f.Sync(); err != nil {
			err = fmt.Errorf("%w: %w", ErrSync, err)
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("wal: truncate %s: %w", path, err)
	}
	return nil
}
