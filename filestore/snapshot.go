package filestore

// This file owns the snapshot format: WriteSnapshot writes a Machine as
// checksummed lines, ReadSnapshot reads them back into a new Machine and
// names the line of any damage. Both run on the caller's goroutine;
// WriteSnapshot only reads the Machine (a node writes a clone of it).

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"strconv"

	"synod/filestore/wal"
	"synod/wire"
)

// ErrCorruptSnapshot is returned by ReadSnapshot and the Load functions
// when a snapshot is damaged or incomplete: a bad checksum, a malformed or
// over-long line, keys or clients out of order, counts that do not match,
// a missing trailer or bytes after it. The message names the line.
var ErrCorruptSnapshot = errors.New("filestore: corrupt snapshot")

// SnapshotError is the error ReadSnapshot and the Load functions return
// for a damaged or incomplete snapshot: it names the line, so a tool can
// point at it. errors.Is(err, ErrCorruptSnapshot) holds for it.
type SnapshotError struct {
	Line   int    // 1-based line number of the first bad line
	Reason string // what is wrong with it
}

// Error names the line.
func (e *SnapshotError) Error() string {
	return fmt.Sprintf("%v: line %d: %s", ErrCorruptSnapshot, e.Line, e.Reason)
}

// Unwrap returns ErrCorruptSnapshot.
func (e *SnapshotError) Unwrap() error { return ErrCorruptSnapshot }

// snapshotVersion is the format version WriteSnapshot writes in the header
// line. ReadSnapshot also reads version 2, which has no configuration line,
// and version 1, whose session lines also hold one reply (the last).
const (
	snapshotVersion   = "3"
	snapshotVersionV4 = "4" // version 3 with L lines: written only when the state holds a large file
	snapshotVersionV2 = "2"
	snapshotVersionV1 = "1"
)

// maxConfigMembers bounds the members of a snapshot's configuration line.
const maxConfigMembers = 1024

// maxMembers bounds the member list a snapshot header may carry.
const maxMembers = 1024

// SnapshotMeta describes a snapshot: where in the log it was taken and
// what the cluster looked like.
type SnapshotMeta struct {
	// Slot is the Paxos slot the snapshot covers, up to and including.
	Slot uint64
	// Index is the number of commands applied (Machine.Applied).
	Index uint64
	// LogTime is the machine's log time (Machine.LogTime).
	LogTime int64
	// Members is the cluster configuration in effect at Slot.
	Members []uint64
	// Config is the configuration in force at Slot as the log holds it,
	// the commands of its config value (paxos.Configuration.Value), and
	// ConfigSlot the slot that chose it (0: the one the cluster started
	// with). Empty in snapshots of format 1 and 2.
	Config     [][]byte
	ConfigSlot uint64
	// Files and Sessions count the snapshot's lines of each kind; they
	// are filled in by ReadSnapshot.
	Files, Sessions int
	// Format is the format version of the header (3 for what
	// WriteSnapshot writes) and Checksum the CRC-32C of every line before
	// the trailer, as the trailer holds it: both filled in by ReadSnapshot,
	// which has checked the checksum; WriteSnapshot ignores them.
	Format   int
	Checksum uint32
}

// WriteSnapshot writes m's state to w in the snapshot format the package
// comment describes. Slot and Members come from meta; Index, LogTime and
// the counts are m's own, whatever meta says. The output depends only on
// the state, so equal machines write byte-identical snapshots. It returns
// the first write error.
func (m *Machine) WriteSnapshot(w io.Writer, meta SnapshotMeta) error {
	sw := snapshotWriter{w: bufio.NewWriterSize(w, 64<<10)}

	version := snapshotVersion
	for _, f := range m.files {
		if f.large {
			// Older readers refuse version 4 by its number rather than
			// read an L line as damage (or not at all).
			version = snapshotVersionV4
			break
		}
	}
	b := append(sw.line[:0], "SNAP "+version+" "...)
	b = strconv.AppendUint(b, meta.Slot, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, m.applied, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, m.logTime, 10)
	b = append(b, ' ')
	if len(meta.Members) == 0 {
		b = append(b, '-')
	}
	for i, id := range meta.Members {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, id, 10)
	}
	sw.emit(b)
	if len(meta.Config) > 0 {
		b := append(sw.line[:0], "C "...)
		b = strconv.AppendUint(b, meta.ConfigSlot, 10)
		for _, cmd := range meta.Config {
			b = append(b, ' ')
			b = wal.Escape(b, cmd)
		}
		sw.emit(b)
	}

	m.keys.each(func(k string) bool {
		f := m.files[k]
		b := append(sw.line[:0], "F "...)
		if f.large {
			b = append(sw.line[:0], "L "...) // the value is the manifest
		}
		b = wal.Escape(b, []byte(f.key))
		b = append(b, ' ')
		b = strconv.AppendUint(b, f.version, 10)
		b = append(b, ' ')
		b = wal.Escape(b, f.value)
		return sw.emit(b)
	})

	sessions := slices.Clone(m.byActive)
	slices.SortFunc(sessions, func(a, b *session) int {
		switch {
		case a.client < b.client:
			return -1
		case a.client > b.client:
			return 1
		}
		return 0
	})
	for _, s := range sessions {
		b := append(sw.line[:0], "S "...)
		b = strconv.AppendUint(b, s.client, 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, s.last, 10)
		b = append(b, ' ')
		b = strconv.AppendInt(b, s.active, 10)
		b = append(b, ' ')
		if len(s.replies) == 0 {
			b = append(b, '-')
		}
		for i, r := range s.replies {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, r.code.String()...)
			b = append(b, '.')
			b = strconv.AppendUint(b, r.index, 10)
			b = append(b, '.')
			b = strconv.AppendUint(b, r.version, 10)
		}
		if !sw.emit(b) {
			break
		}
	}

	b = append(sw.line[:0], "END "...)
	b = strconv.AppendInt(b, int64(len(m.files)), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(sessions)), 10)
	b = append(b, ' ')
	b = appendHex32(b, sw.body)
	sw.emit(b)
	if sw.err == nil {
		sw.err = sw.w.Flush()
	}
	if sw.err != nil {
		return fmt.Errorf("filestore: write snapshot: %w", sw.err)
	}
	return nil
}

// snapshotWriter adds each line's checksum and keeps the first error.
type snapshotWriter struct {
	w    *bufio.Writer
	line []byte
	body uint32 // CRC-32C of every byte written so far
	err  error
}

// emit finishes the line held in b (which reuses sw.line) and writes it. It
// reports whether writing may go on.
func (sw *snapshotWriter) emit(b []byte) bool {
	if sw.err != nil {
		return false
	}
	sum := crc32.Checksum(b, wal.CRC32C)
	b = append(b, ' ')
	b = appendHex32(b, sum)
	b = append(b, '\n')
	sw.line = b
	sw.body = crc32.Update(sw.body, wal.CRC32C, b)
	_, sw.err = sw.w.Write(b)
	return sw.err == nil
}

const hexDigits = "0123456789abcdef"

func appendHex32(b []byte, v uint32) []byte {
	for shift := 28; shift >= 0; shift -= 4 {
		b = append(b, hexDigits[v>>uint(shift)&0xf])
	}
	return b
}

// parseHex32 parses exactly eight lower-case hex digits.
func parseHex32(b []byte) (uint32, bool) {
	if len(b) != 8 {
		return 0, false
	}
	var v uint32
	for _, c := range b {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		default:
			return 0, false
		}
		v = v<<4 | uint32(d)
	}
	return v, true
}

// maxSnapshotLine is the longest line a snapshot written with opts can
// hold: an F line with the longest key and value, both fully escaped, or an
// S line with a full window of replies.
func maxSnapshotLine(opts Options) int {
	return max(4*MaxKeyLen+4*opts.MaxValue, opts.SessionWindow*maxReplyField) + 128
}

// maxReplyField bounds one reply of an S line: a code name, two numbers
// of up to 20 digits, two dots and a comma.
const maxReplyField = len("NOT_FOUND") + 2*20 + 3

// ReadSnapshot reads a snapshot written by WriteSnapshot into a new Machine
// with the given options, checking every line's checksum and syntax, the
// order of keys and clients, and the trailer. Corruption is reported as
// ErrCorruptSnapshot naming the line; other read errors are wrapped as they
// are. Memory is bounded by the state the snapshot describes: no line may
// exceed what a value of opts.MaxValue needs, and no count from the input
// is trusted for an allocation.
func ReadSnapshot(r io.Reader, opts Options) (*Machine, SnapshotMeta, error) {
	if err := opts.Validate(); err != nil {
		return nil, SnapshotMeta{}, err
	}
	m := New(opts)
	sr := snapshotReader{
		r:   bufio.NewReaderSize(r, 16<<10),
		max: maxSnapshotLine(m.opts),
		m:   m,
	}
	meta, err := sr.read()
	if err != nil {
		return nil, SnapshotMeta{}, err
	}
	return m, meta, nil
}

type snapshotReader struct {
	r       *bufio.Reader
	max     int
	m       *Machine
	version string // the header's format version
	n       int    // line number of the current line, from 1
	body    uint32 // CRC-32C of every line read, the current one included
	before  uint32 // CRC-32C of every line before the current one
	long    []byte // buffer for lines longer than the bufio buffer
	scratch []byte // unescaped key or value
}

func (sr *snapshotReader) corrupt(format string, args ...any) error {
	return &SnapshotError{Line: sr.n, Reason: fmt.Sprintf(format, args...)}
}

// next returns the next line without its newline and checksum, after
// verifying the checksum. At the end of the input it returns io.EOF.
func (sr *snapshotReader) next() (fields []byte, err error) {
	sr.n++
	line, err := sr.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		sr.long = append(sr.long[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if len(sr.long) > sr.max {
				return nil, sr.corrupt("line longer than %d bytes", sr.max)
			}
			line, err = sr.r.ReadSlice('\n')
			sr.long = append(sr.long, line...)
		}
		line = sr.long
	}
	switch {
	case err == io.EOF && len(line) == 0:
		return nil, io.EOF
	case err == io.EOF:
		return nil, sr.corrupt("truncated: no newline")
	case err != nil:
		return nil, fmt.Errorf("filestore: read snapshot line %d: %w", sr.n, err)
	case len(line) > sr.max+1:
		return nil, sr.corrupt("line longer than %d bytes", sr.max)
	}
	body := line[:len(line)-1]
	sp := bytes.LastIndexByte(body, ' ')
	if sp < 0 {
		return nil, sr.corrupt("no checksum")
	}
	want, ok := parseHex32(body[sp+1:])
	if !ok {
		return nil, sr.corrupt("malformed checksum")
	}
	if got := crc32.Checksum(body[:sp], wal.CRC32C); got != want {
		return nil, sr.corrupt("checksum mismatch: have %08x, line says %08x", got, want)
	}
	sr.before = sr.body
	sr.body = crc32.Update(sr.body, wal.CRC32C, line)
	return body[:sp], nil
}

// split cuts line into exactly n space-separated fields.
func split(line []byte, n int, dst [][]byte) ([][]byte, bool) {
	dst = dst[:0]
	for range n - 1 {
		f, rest, ok := bytes.Cut(line, []byte{' '})
		if !ok {
			return dst, false
		}
		dst = append(dst, f)
		line = rest
	}
	if bytes.IndexByte(line, ' ') >= 0 {
		return dst, false
	}
	return append(dst, line), true
}

func (sr *snapshotReader) read() (SnapshotMeta, error) {
	var meta SnapshotMeta
	var fb [8][]byte
	m := sr.m

	line, err := sr.next()
	if err == io.EOF {
		return meta, sr.corrupt("empty snapshot")
	}
	if err != nil {
		return meta, err
	}
	f, ok := split(line, 6, fb[:])
	if !ok || string(f[0]) != "SNAP" {
		return meta, sr.corrupt("not a snapshot header")
	}
	if v := string(f[1]); v != snapshotVersion && v != snapshotVersionV4 && v != snapshotVersionV2 && v != snapshotVersionV1 {
		return meta, sr.corrupt("unsupported format version %s", quoteShort(f[1]))
	}
	sr.version = string(f[1])
	meta.Format = int(f[1][0] - '0')
	if meta.Slot, ok = wal.ParseUint(f[2]); !ok {
		return meta, sr.corrupt("bad slot")
	}
	if meta.Index, ok = wal.ParseUint(f[3]); !ok {
		return meta, sr.corrupt("bad index")
	}
	// Log time starts at 0 and only grows.
	if meta.LogTime, ok = parseInt(f[4]); !ok || meta.LogTime < 0 {
		return meta, sr.corrupt("bad log time")
	}
	if string(f[5]) != "-" {
		for id := range bytes.SplitSeq(f[5], []byte{','}) {
			v, ok := wal.ParseUint(id)
			if !ok || len(meta.Members) == maxMembers {
				return meta, sr.corrupt("bad member list")
			}
			meta.Members = append(meta.Members, v)
		}
	}
	m.applied, m.logTime = meta.Index, meta.LogTime

	var sessions sessionHeap
	for {
		line, err := sr.next()
		if err == io.EOF {
			return meta, sr.corrupt("truncated: no trailer")
		}
		if err != nil {
			return meta, err
		}
		switch {
		case bytes.HasPrefix(line, []byte("C ")) && (sr.version == snapshotVersion || sr.version == snapshotVersionV4):
			if len(m.files) > 0 || len(sessions) > 0 || meta.Config != nil {
				return meta, sr.corrupt("configuration line out of place")
			}
			if err := sr.readConfig(line, &meta); err != nil {
				return meta, err
			}
		case bytes.HasPrefix(line, []byte("F ")), bytes.HasPrefix(line, []byte("L ")) && sr.version == snapshotVersionV4:
			if len(sessions) > 0 {
				return meta, sr.corrupt("file after sessions")
			}
			if err := sr.readFile(line, &meta, fb[:]); err != nil {
				return meta, err
			}
		case bytes.HasPrefix(line, []byte("S ")):
			s, err := sr.readSession(line, &meta, sessions, fb[:])
			if err != nil {
				return meta, err
			}
			sessions = append(sessions, s)
		case bytes.HasPrefix(line, []byte("END ")):
			if err := sr.readTrailer(line, len(sessions), fb[:]); err != nil {
				return meta, err
			}
			meta.Checksum = sr.before
			sessions.init()
			m.byActive = sessions
			for _, s := range sessions {
				m.sessions[s.client] = s
				m.dirtySessions.mark(s)
			}
			meta.Files, meta.Sessions = len(m.files), len(sessions)
			return meta, nil
		default:
			return meta, sr.corrupt("unknown line kind")
		}
	}
}

// readConfig reads the configuration line: C <slot> <cmd>...
func (sr *snapshotReader) readConfig(line []byte, meta *SnapshotMeta) error {
	fields := bytes.Split(line[2:], []byte{' '})
	if len(fields) < 2 || len(fields) > maxConfigMembers+2 {
		return sr.corrupt("configuration line: want a slot and 1 to %d commands", maxConfigMembers+1)
	}
	slot, ok := wal.ParseUint(fields[0])
	if !ok || slot > meta.Slot {
		return sr.corrupt("bad configuration slot")
	}
	meta.ConfigSlot = slot
	meta.Config = [][]byte{}
	for _, f := range fields[1:] {
		cmd, err := wal.Unescape(nil, f)
		if err != nil {
			return sr.corrupt("bad configuration command: %v", err)
		}
		meta.Config = append(meta.Config, cmd)
	}
	return nil
}

func (sr *snapshotReader) readFile(line []byte, meta *SnapshotMeta, fb [][]byte) error {
	m := sr.m
	f, ok := split(line, 4, fb)
	if !ok {
		return sr.corrupt("file line: want 4 fields")
	}
	var err error
	if sr.scratch, err = wal.Unescape(sr.scratch[:0], f[1]); err != nil {
		return sr.corrupt("bad key: %v", err)
	}
	if !validKeyBytes(sr.scratch) {
		return sr.corrupt("bad key %s", quoteShort(sr.scratch))
	}
	if len(m.files) > 0 && string(sr.scratch) <= m.keys.max() {
		return sr.corrupt("key %s out of order", quoteShort(sr.scratch))
	}
	key := string(sr.scratch)
	version, ok := wal.ParseUint(f[2])
	if !ok || version == 0 || version > meta.Index {
		return sr.corrupt("bad version")
	}
	// Unescaping never grows a field, so the line limit bounds the
	// scratch buffer; the value itself is copied out at its exact size.
	if sr.scratch, err = wal.Unescape(sr.scratch[:0], f[3]); err != nil {
		return sr.corrupt("bad value: %v", err)
	}
	if len(sr.scratch) > m.opts.MaxValue {
		return sr.corrupt("value larger than %d bytes", m.opts.MaxValue)
	}
	value := slices.Clone(sr.scratch)
	file := &file{key: key, value: value, version: version}
	if line[0] == 'L' {
		mf, err := wire.ParseManifest(value)
		if err != nil {
			return sr.corrupt("bad manifest: %v", err)
		}
		file.large, file.size = true, mf.Size
	}
	m.files[file.key] = file
	m.keys.appendMax(file.key)
	m.valueBytes += int64(len(value))
	m.dirtyFiles.mark(file)
	return nil
}

func (sr *snapshotReader) readSession(line []byte, meta *SnapshotMeta, prev sessionHeap, fb [][]byte) (*session, error) {
	want := 5
	if sr.version == snapshotVersionV1 {
		want = 7
	}
	f, ok := split(line, want, fb)
	if !ok {
		return nil, sr.corrupt("session line: want %d fields", want)
	}
	s := &session{}
	if s.client, ok = wal.ParseUint(f[1]); !ok || s.client == 0 {
		return nil, sr.corrupt("bad client id")
	}
	if len(prev) > 0 && s.client <= prev[len(prev)-1].client {
		return nil, sr.corrupt("client %d out of order", s.client)
	}
	if len(prev) == sr.m.opts.MaxSessions {
		return nil, sr.corrupt("more than MaxSessions (%d) sessions", sr.m.opts.MaxSessions)
	}
	if s.last, ok = wal.ParseUint(f[2]); !ok {
		return nil, sr.corrupt("bad seq")
	}
	if s.active, ok = parseInt(f[3]); !ok || s.active < 0 || s.active > meta.LogTime {
		return nil, sr.corrupt("bad activity time")
	}
	if sr.version == snapshotVersionV1 {
		// One reply, the last one's, as version 1 sessions held.
		r, err := sr.reply(f[4], f[5], f[6], meta, 0)
		if err != nil {
			return nil, err
		}
		s.replies = []cached{r}
		return s, nil
	}
	if string(f[4]) == "-" {
		return s, nil
	}
	var prevIndex uint64
	for field := range bytes.SplitSeq(f[4], []byte{','}) {
		if len(s.replies) == sr.m.opts.SessionWindow || uint64(len(s.replies)) == s.last {
			return nil, sr.corrupt("more replies than the session window or its seqs")
		}
		var parts [3][]byte
		n := 0
		for p := range bytes.SplitSeq(field, []byte{'.'}) {
			if n == len(parts) {
				return nil, sr.corrupt("bad reply %s", quoteShort(field))
			}
			parts[n] = p
			n++
		}
		if n != len(parts) {
			return nil, sr.corrupt("bad reply %s", quoteShort(field))
		}
		r, err := sr.reply(parts[0], parts[1], parts[2], meta, prevIndex)
		if err != nil {
			return nil, err
		}
		prevIndex = r.index
		s.replies = append(s.replies, r)
	}
	return s, nil
}

// reply parses one remembered reply: a cacheable code's name, its index
// (above after, the index of the reply to the seq before: a session's
// writes apply in order) and the file's version then.
func (sr *snapshotReader) reply(code, index, version []byte, meta *SnapshotMeta, after uint64) (cached, error) {
	var r cached
	switch string(code) {
	case "OK":
		r.code = wire.CodeOK
	case "NOT_FOUND":
		r.code = wire.CodeNotFound
	case "CONFLICT":
		r.code = wire.CodeConflict
	case "TOO_LARGE":
		r.code = wire.CodeTooLarge
	default:
		return r, sr.corrupt("bad result code")
	}
	var ok bool
	if r.index, ok = wal.ParseUint(index); !ok || r.index == 0 || r.index > meta.Index || r.index <= after {
		return r, sr.corrupt("bad result index")
	}
	if r.version, ok = wal.ParseUint(version); !ok || r.version > r.index {
		return r, sr.corrupt("bad result version")
	}
	return r, nil
}

func (sr *snapshotReader) readTrailer(line []byte, sessions int, fb [][]byte) error {
	f, ok := split(line, 4, fb)
	if !ok {
		return sr.corrupt("trailer: want 4 fields")
	}
	nf, ok1 := wal.ParseUint(f[1])
	ns, ok2 := wal.ParseUint(f[2])
	crc, ok3 := parseHex32(f[3])
	switch {
	case !ok1 || !ok2 || !ok3:
		return sr.corrupt("malformed trailer")
	case nf != uint64(len(sr.m.files)) || ns != uint64(sessions):
		return sr.corrupt("trailer counts %d files, %d sessions; read %d and %d", nf, ns, len(sr.m.files), sessions)
	case crc != sr.before:
		return sr.corrupt("body checksum mismatch")
	}
	if _, err := sr.r.ReadByte(); err != io.EOF {
		if err != nil {
			return fmt.Errorf("filestore: read snapshot after trailer: %w", err)
		}
		return sr.corrupt("data after trailer")
	}
	return nil
}
