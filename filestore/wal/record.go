package wal

// This file owns the record lines and batch headers of the log: Record,
// their encoding, their CRC-32C and canonical parsing, and the Ballot as
// the log stores it. Pure: the caller's goroutine (the Log under its mutex,
// the persister converting records, the offline dump and check).

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"strconv"

	"synod/paxos"
)

// CRC32C is the CRC-32C (Castagnoli) table of every checksum in synod's
// files and snapshot transfers, the one table in the module; the hardware
// computes it on amd64 and arm64.
var CRC32C = crc32.MakeTable(crc32.Castagnoli)

// Checksum returns the CRC-32C of b.
func Checksum(b []byte) uint32 { return crc32.Checksum(b, CRC32C) }

// Ballot is a Paxos ballot as the log stores it: ordered by Round, then Node.
// wal only stores ballots; comparing them is the caller's business.
type Ballot struct {
	Round uint64
	Node  uint64
}

// String formats b as the log writes it, "round.node".
func (b Ballot) String() string { return string(b.append(nil)) }

func (b Ballot) append(dst []byte) []byte {
	dst = strconv.AppendUint(dst, b.Round, 10)
	dst = append(dst, '.')
	return strconv.AppendUint(dst, b.Node, 10)
}

// RecordKind says what a log record means. Its value is the letter that
// starts the record's line.
type RecordKind uint8

const (
	// KindAccept records that the acceptor accepted Value (and Cmds) for
	// Slot under Ballot.
	KindAccept RecordKind = 'A'
	// KindCommit is a replay hint: every slot <= Slot is chosen, and the
	// value this log holds for each of them is the chosen one. Ballot, Value
	// and Cmds are unused and must be zero.
	KindCommit RecordKind = 'C'
)

// String returns the kind's letter.
func (k RecordKind) String() string {
	if k == KindAccept || k == KindCommit {
		return string(rune(k))
	}
	return fmt.Sprintf("RecordKind(%d)", uint8(k))
}

// valueNames are the words the log writes for each paxos.ValueKind, the
// core's own type: the log stores it, it does not declare its own.
var valueNames = [...]string{paxos.ValueCmds: "cmds", paxos.ValueNoop: "noop", paxos.ValueConfig: "config"}

// Record is one line of the log. Append does not retain it; records handed
// to the replay callback of Open are freshly allocated and owned by it.
type Record struct {
	Kind   RecordKind
	Slot   uint64
	Ballot Ballot          // the ballot the value was accepted in; zero for commits
	Value  paxos.ValueKind // zero (paxos.ValueCmds) for commits
	Cmds   [][]byte        // opaque commands (a configuration's encoding for paxos.ValueConfig); nil for no-ops and commits
}

// validate reports whether r's fields fit its kind.
func (r *Record) validate() error {
	switch r.Kind {
	case KindAccept:
		if int(r.Value) >= len(valueNames) {
			return fmt.Errorf("%w: slot %d: unknown value kind %d", ErrInvalidRecord, r.Slot, r.Value)
		}
		if r.Value == paxos.ValueNoop && len(r.Cmds) != 0 {
			return fmt.Errorf("%w: slot %d: no-op with %d commands", ErrInvalidRecord, r.Slot, len(r.Cmds))
		}
	case KindCommit:
		if r.Ballot != (Ballot{}) || r.Value != 0 || len(r.Cmds) != 0 {
			return fmt.Errorf("%w: commit %d carries a ballot, value or commands", ErrInvalidRecord, r.Slot)
		}
	default:
		return fmt.Errorf("%w: slot %d: unknown kind %d", ErrInvalidRecord, r.Slot, r.Kind)
	}
	return nil
}

// AppendRecord appends r's line, newline included, to dst. It returns an
// error wrapping ErrInvalidRecord, and dst unchanged, if r's fields do not
// fit its kind.
func AppendRecord(dst []byte, r Record) ([]byte, error) {
	if err := r.validate(); err != nil {
		return dst, err
	}
	return appendRecord(dst, &r), nil
}

// appendRecord appends the line of a validated record.
func appendRecord(dst []byte, r *Record) []byte {
	start := len(dst)
	dst = append(dst, byte(r.Kind), ' ')
	dst = strconv.AppendUint(dst, r.Slot, 10)
	if r.Kind == KindAccept {
		dst = append(dst, ' ')
		dst = r.Ballot.append(dst)
		dst = append(dst, ' ')
		dst = append(dst, valueNames[r.Value]...)
		dst = append(dst, ' ')
		dst = strconv.AppendUint(dst, uint64(len(r.Cmds)), 10)
		for _, c := range r.Cmds {
			dst = append(dst, ' ')
			dst = Escape(dst, c)
		}
	}
	return appendCRC(dst, start)
}

// appendCRC ends the line that starts at dst[start] with a space, the CRC-32C
// of the line so far, and a newline.
func appendCRC(dst []byte, start int) []byte {
	sum := crc32.Checksum(dst[start:], CRC32C)
	dst = append(dst, ' ')
	dst = appendHex32(dst, sum)
	return append(dst, '\n')
}

func appendHex32(dst []byte, v uint32) []byte {
	for shift := 28; shift >= 0; shift -= 4 {
		dst = append(dst, hexDigits[v>>uint(shift)&0xf])
	}
	return dst
}

// parseHex32 decodes exactly 8 lower-case hex digits.
func parseHex32(b []byte) (uint32, bool) {
	if len(b) != 8 {
		return 0, false
	}
	var v uint32
	for _, c := range b {
		d, ok := unhex(c)
		if !ok {
			return 0, false
		}
		v = v<<4 | uint32(d)
	}
	return v, true
}

// ParseUint decodes a canonical decimal uint64, as every number in the log
// and in snapshots is written: digits only, no leading zero except "0"
// itself, no overflow.
func ParseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 || (b[0] == '0' && len(b) > 1) {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (math.MaxUint64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

func parseBallot(b []byte) (Ballot, bool) {
	i := bytes.IndexByte(b, '.')
	if i < 0 {
		return Ballot{}, false
	}
	round, ok1 := ParseUint(b[:i])
	node, ok2 := ParseUint(b[i+1:])
	return Ballot{Round: round, Node: node}, ok1 && ok2
}

// Errors of the line parsers. They are reasons, not API: ParseLine wraps
// them in ErrBadLine and recovery puts their text into a CorruptError.
var (
	errNoNewline = errors.New("line does not end with a newline")
	errNoCRC     = errors.New("line does not end with a space and 8 hex digits")
	errChecksum  = errors.New("line checksum mismatch")
	errFields    = errors.New("fields do not match the grammar")
)

// checkLineCRC checks that line is "<content> <crc>\n" with crc the CRC-32C
// of content, and returns content.
func checkLineCRC(line []byte) ([]byte, error) {
	n := len(line)
	if n == 0 || line[n-1] != '\n' {
		return nil, errNoNewline
	}
	if n < 11 || line[n-10] != ' ' {
		return nil, errNoCRC
	}
	want, ok := parseHex32(line[n-9 : n-1])
	if !ok {
		return nil, errNoCRC
	}
	content := line[:n-10]
	if crc32.Checksum(content, CRC32C) != want {
		return nil, errChecksum
	}
	return content, nil
}

// fields walks the single-space separated fields of a line's content.
// Any empty field (a leading, trailing or doubled space) makes it bad.
type fields struct {
	s   []byte
	bad bool
}

func (f *fields) next() []byte {
	if len(f.s) == 0 {
		f.bad = true
		return nil
	}
	var tok []byte
	if i := bytes.IndexByte(f.s, ' '); i < 0 {
		tok, f.s = f.s, nil
	} else {
		tok, f.s = f.s[:i], f.s[i+1:]
		if len(f.s) == 0 {
			f.bad = true
		}
	}
	if len(tok) == 0 {
		f.bad = true
	}
	return tok
}

func (f *fields) uint() uint64 {
	v, ok := ParseUint(f.next())
	if !ok {
		f.bad = true
	}
	return v
}

// end reports whether every field was consumed and all were good.
func (f *fields) end() bool { return !f.bad && len(f.s) == 0 }

// ParseLine parses one record line, its newline included. It accepts only
// the canonical form AppendRecord writes, so any line it accepts re-encodes
// to exactly the same bytes. Errors wrap ErrBadLine. The commands of the
// returned record are freshly allocated.
func ParseLine(line []byte) (Record, error) {
	r, err := parseRecord(line)
	if err != nil {
		return Record{}, fmt.Errorf("%w: %w", ErrBadLine, err)
	}
	return r, nil
}

func parseRecord(line []byte) (Record, error) {
	content, err := checkLineCRC(line)
	if err != nil {
		return Record{}, err
	}
	f := fields{s: content}
	kind := f.next()
	if len(kind) != 1 {
		return Record{}, errors.New("unknown record kind")
	}
	switch RecordKind(kind[0]) {
	case KindCommit:
		slot := f.uint()
		if !f.end() {
			return Record{}, errFields
		}
		return Record{Kind: KindCommit, Slot: slot}, nil
	case KindAccept:
	default:
		return Record{}, errors.New("unknown record kind")
	}
	r := Record{Kind: KindAccept, Slot: f.uint()}
	var ok bool
	if r.Ballot, ok = parseBallot(f.next()); !ok {
		return Record{}, errors.New("bad ballot")
	}
	switch string(f.next()) {
	case "cmds":
		r.Value = paxos.ValueCmds
	case "noop":
		r.Value = paxos.ValueNoop
	case "config":
		r.Value = paxos.ValueConfig
	default:
		return Record{}, errors.New("unknown value kind")
	}
	count := f.uint()
	if f.bad {
		return Record{}, errFields
	}
	// Every command takes at least one byte and a separator, so a count
	// beyond that is a lie; checking it first bounds the allocation.
	if count > uint64(len(f.s)+1)/2 {
		return Record{}, errors.New("command count exceeds the line")
	}
	if r.Value == paxos.ValueNoop && count != 0 {
		return Record{}, errors.New("no-op with commands")
	}
	if count > 0 {
		r.Cmds = make([][]byte, 0, count)
		// One backing array for all commands: unescaping never grows a
		// token, so it is never reallocated.
		backing := make([]byte, 0, len(f.s))
		for range count {
			tok := f.next()
			if f.bad {
				return Record{}, errFields
			}
			start := len(backing)
			if backing, err = Unescape(backing, tok); err != nil {
				return Record{}, err
			}
			r.Cmds = append(r.Cmds, backing[start:len(backing):len(backing)])
		}
	}
	if !f.end() {
		return Record{}, errFields
	}
	return r, nil
}

// A batch header line: "B <nlines> <nbytes> <body crc> <crc>\n".
const (
	maxHeaderLen = len("B ") + 20 + 1 + 20 + 1 + 8 + 1 + 8 + 1
	// minRecordLen is the shortest record line, "C 0 xxxxxxxx\n"; it bounds
	// the line count a header may claim for its byte count.
	minRecordLen = 13
)

type batchHeader struct {
	lines uint64 // record lines in the batch
	bytes uint64 // bytes of those lines, newlines included
	crc   uint32 // CRC-32C of those bytes
}

func appendHeader(dst []byte, lines int, body []byte) []byte {
	start := len(dst)
	dst = append(dst, 'B', ' ')
	dst = strconv.AppendUint(dst, uint64(lines), 10)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, uint64(len(body)), 10)
	dst = append(dst, ' ')
	dst = appendHex32(dst, crc32.Checksum(body, CRC32C))
	return appendCRC(dst, start)
}

// parseHeader parses a batch header line, its newline included.
func parseHeader(line []byte) (batchHeader, error) {
	if len(line) > maxHeaderLen {
		return batchHeader{}, errors.New("header line too long")
	}
	content, err := checkLineCRC(line)
	if err != nil {
		return batchHeader{}, err
	}
	f := fields{s: content}
	if string(f.next()) != "B" {
		return batchHeader{}, errors.New("not a batch header")
	}
	var h batchHeader
	h.lines = f.uint()
	h.bytes = f.uint()
	crc, ok := parseHex32(f.next())
	if !ok || !f.end() {
		return batchHeader{}, errFields
	}
	h.crc = crc
	if h.lines == 0 || h.bytes/minRecordLen < h.lines {
		return batchHeader{}, errors.New("impossible line count for the batch size")
	}
	return h, nil
}
