package filestore

// This file owns the command encoding: Command, its one-line text form in
// the log (EncodeCommand, DecodeCommand, the op words) and the key checks.
// Pure: the caller's goroutine (a node's server goroutines encode writes,
// the applier parses them in Apply, the offline dump decodes them).

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode"
	"unicode/utf8"

	"synod/filestore/wal"
	"synod/wire"
)

// MaxKeyLen is the longest key in bytes (DESIGN.md, the line protocol).
const MaxKeyLen = 1024

var (
	// ErrBadCommand is returned by DecodeCommand (and reported in
	// Result.Err) when a command is not in the canonical encoding the
	// package comment describes.
	ErrBadCommand = errors.New("filestore: bad command")
	// ErrBadKey is returned by ValidateKey, and wrapped together with
	// ErrBadCommand by DecodeCommand, when a key is empty, longer than
	// MaxKeyLen, not UTF-8, or holds a space or a non-printable character.
	ErrBadKey = errors.New("filestore: bad key")
)

// opWords are the words the command encoding writes for the write
// operations (wire.Op.IsWrite): put, append, cas, del.
// putfile and casfile carry a large file's manifest (wire.ParseManifest)
// as their value; casfile has cas's version field before it.
var opWords = map[wire.Op]string{wire.OpPut: "put", wire.OpAppend: "append", wire.OpCAS: "cas", wire.OpDel: "del", wire.OpPutFile: "putfile", wire.OpCASFile: "casfile"}

// OpWord is the word the log writes for op ("put"), or op's name for an
// operation no log line carries.
func OpWord(op wire.Op) string {
	if w, ok := opWords[op]; ok {
		return w
	}
	return op.String()
}

// Command is one client write as replicated through the log.
type Command struct {
	Op wire.Op
	// ClientID and Seq identify the write for exactly-once, in-order
	// application: a session's writes are numbered 1, 2, 3 ... and apply
	// only in that order (see Machine.Apply). ClientID 0 means no
	// session: the write applies whenever it is chosen.
	ClientID, Seq uint64
	// Ack is the lowest Seq of this client whose reply the client has not
	// been given yet: the machine may forget the replies below it. 0
	// means Seq (a client with one write at a time).
	Ack uint64
	// Retry marks a write that may have been proposed before (its sender
	// had no definitive refusal of an earlier attempt). A retry whose
	// session is unknown is refused, never applied: its first attempt may
	// have been applied before the session expired.
	Retry bool
	// Legacy marks a command in the version 1 form (see the package
	// comment), which the machine applies by the old rule: only older
	// seqs are duplicates, gaps are allowed. Only decoding old logs sets
	// it; it is meaningless with ClientID 0.
	Legacy bool
	// Stamp is the master's wall clock in milliseconds when it proposed
	// the command. It drives session expiry, nothing else: no outcome of
	// exactly-once depends on it.
	Stamp int64
	Key   string
	// Version is the expected version for wire.OpCAS and ignored otherwise.
	Version uint64
	// Value is the bytes to put, append or swap in; empty for wire.OpDel.
	Value []byte
}

// EncodeCommand appends the encoding of c to dst and returns the extended
// slice. It does not validate c: DecodeCommand rejects what is not a valid
// command (a bad op or key, Seq 0 or Ack above Seq in a session). Version
// is written only for wire.OpCAS, Value is not written for wire.OpDel. A command with
// ClientID 0 (or Legacy set) is written in the version 1 form.
func EncodeCommand(dst []byte, c Command) []byte {
	dst = append(dst, opWords[c.Op]...)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, c.ClientID, 10)
	if c.ClientID != 0 && !c.Legacy {
		ack := c.Ack
		if ack == 0 {
			ack = c.Seq
		}
		dst = append(dst, '.')
		dst = strconv.AppendUint(dst, c.Seq, 10)
		dst = append(dst, '.')
		dst = strconv.AppendUint(dst, ack, 10)
		if c.Retry {
			dst = append(dst, ".r"...)
		}
	} else {
		dst = append(dst, ' ')
		dst = strconv.AppendUint(dst, c.Seq, 10)
	}
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, c.Stamp, 10)
	dst = append(dst, ' ')
	dst = append(dst, c.Key...)
	switch c.Op {
	case wire.OpDel:
		return dst
	case wire.OpCAS, wire.OpCASFile:
		dst = append(dst, ' ')
		dst = strconv.AppendUint(dst, c.Version, 10)
	}
	dst = append(dst, ' ')
	return append(dst, c.Value...)
}

// DecodeCommand parses a command written by EncodeCommand. Only the
// canonical form is accepted, so a command that decodes re-encodes to the
// same bytes (Ack comes back non-zero). The returned Value aliases b.
// Errors wrap ErrBadCommand (and ErrBadKey when the key is at fault).
func DecodeCommand(b []byte) (Command, error) {
	v, err := parseCommand(b)
	if err != nil {
		return Command{}, err
	}
	return Command{
		Op:       v.op,
		ClientID: v.client,
		Seq:      v.seq,
		Ack:      v.ack,
		Retry:    v.retry,
		Legacy:   v.legacy,
		Stamp:    v.stamp,
		Key:      string(v.key),
		Version:  v.version,
		Value:    v.value,
	}, nil
}

// commandView is a decoded command whose key and value alias the input, so
// Apply allocates a key string only when it creates a file.
type commandView struct {
	op          wire.Op
	client, seq uint64
	ack         uint64
	retry       bool
	legacy      bool // version 1 form with a client id
	stamp       int64
	key         []byte
	version     uint64
	value       []byte
	size        uint64 // putfile: the large file's size, from its manifest
}

func badCommand(what string) error {
	return fmt.Errorf("%w: %s", ErrBadCommand, what)
}

// parseCommand is DecodeCommand without copying the key.
func parseCommand(b []byte) (commandView, error) {
	var v commandView
	name, rest, ok := bytes.Cut(b, []byte{' '})
	if !ok {
		return v, badCommand("too few fields")
	}
	switch string(name) {
	case "put":
		v.op = wire.OpPut
	case "append":
		v.op = wire.OpAppend
	case "cas":
		v.op = wire.OpCAS
	case "del":
		v.op = wire.OpDel
	case "putfile":
		v.op = wire.OpPutFile
	case "casfile":
		v.op = wire.OpCASFile
	default:
		return v, badCommand("unknown op")
	}
	var field []byte
	if field, rest, ok = bytes.Cut(rest, []byte{' '}); !ok {
		return v, badCommand("too few fields")
	}
	if bytes.IndexByte(field, '.') >= 0 {
		if !parseSessionField(field, &v) {
			return v, badCommand("bad session field")
		}
	} else {
		if v.client, ok = wal.ParseUint(field); !ok {
			return v, badCommand("bad client id")
		}
		if field, rest, ok = bytes.Cut(rest, []byte{' '}); !ok {
			return v, badCommand("too few fields")
		}
		if v.seq, ok = wal.ParseUint(field); !ok {
			return v, badCommand("bad seq")
		}
		v.legacy = v.client != 0
	}
	if field, rest, ok = bytes.Cut(rest, []byte{' '}); !ok {
		return v, badCommand("too few fields")
	}
	if v.stamp, ok = parseInt(field); !ok {
		return v, badCommand("bad stamp")
	}
	if v.op == wire.OpDel {
		// The key runs to the end; validKey rejects a space in it.
		v.key = rest
	} else {
		if v.key, rest, ok = bytes.Cut(rest, []byte{' '}); !ok {
			return v, badCommand("missing value")
		}
		if v.op == wire.OpCAS || v.op == wire.OpCASFile {
			if field, rest, ok = bytes.Cut(rest, []byte{' '}); !ok {
				return v, badCommand("missing value")
			}
			if v.version, ok = wal.ParseUint(field); !ok {
				return v, badCommand("bad version")
			}
		}
		v.value = rest
	}
	if !validKeyBytes(v.key) {
		return v, fmt.Errorf("%w: %w", ErrBadCommand, ErrBadKey)
	}
	if v.op == wire.OpPutFile || v.op == wire.OpCASFile {
		m, err := wire.ParseManifest(v.value)
		if err != nil {
			return v, fmt.Errorf("%w: %w", ErrBadCommand, err)
		}
		v.size = m.Size
	}
	return v, nil
}

// parseSessionField parses the version 2 session field
// <client>.<seq>.<ack>[.r] into v: client and seq at least 1, ack in
// [1, seq].
func parseSessionField(f []byte, v *commandView) bool {
	var parts [4][]byte
	n := 0
	for part := range bytes.SplitSeq(f, []byte{'.'}) {
		if n == len(parts) {
			return false
		}
		parts[n] = part
		n++
	}
	var ok1, ok2, ok3 bool
	v.client, ok1 = wal.ParseUint(parts[0])
	v.seq, ok2 = wal.ParseUint(parts[1])
	v.ack, ok3 = wal.ParseUint(parts[2])
	switch {
	case n < 3 || !ok1 || !ok2 || !ok3:
		return false
	case n == 4 && string(parts[3]) != "r":
		return false
	case v.client == 0 || v.seq == 0 || v.ack == 0 || v.ack > v.seq:
		return false
	}
	v.retry = n == 4
	return true
}

// parseInt parses canonical signed decimal: wal.ParseUint's form with an
// optional '-' on a non-zero magnitude.
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	n, ok := wal.ParseUint(b)
	switch {
	case !ok:
		return 0, false
	case neg && n == 0:
		return 0, false
	case neg && n <= 1<<63:
		return int64(-n), true
	case !neg && n <= math.MaxInt64:
		return int64(n), true
	}
	return 0, false
}

// ValidateKey returns an error wrapping ErrBadKey unless key is 1 to
// MaxKeyLen bytes of UTF-8 made of printable characters other than space
// (so '/' can make keys look like paths, and a key is always one field of
// the line protocol).
func ValidateKey(key string) error {
	if !validKeyString(key) {
		return fmt.Errorf("%w: %s", ErrBadKey, quoteShort(key))
	}
	return nil
}

// quoteShort quotes s for an error message, cut to a readable length: keys
// come from clients and disks, and an error should not carry a megabyte.
func quoteShort[T string | []byte](s T) string {
	const max = 64
	if len(s) > max {
		return strconv.Quote(string(s[:max])) + "..."
	}
	return strconv.Quote(string(s))
}

func validKeyBytes(k []byte) bool {
	if len(k) == 0 || len(k) > MaxKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] >= utf8.RuneSelf {
			// Rare; the conversion is allowed to allocate.
			return validKeyString(string(k))
		}
		if k[i] <= ' ' || k[i] == 0x7f {
			return false
		}
	}
	return true
}

func validKeyString(k string) bool {
	if len(k) == 0 || len(k) > MaxKeyLen {
		return false
	}
	for i := 0; i < len(k); {
		c := k[i]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(k[i:])
		// IsPrint admits only the ASCII space among spaces, and that
		// is handled above; RuneError of size 1 is invalid UTF-8.
		if (r == utf8.RuneError && size == 1) || !unicode.IsPrint(r) {
			return false
		}
		i += size
	}
	return true
}
