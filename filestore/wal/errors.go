package wal

// This file owns wal's errors: the sentinels callers test with errors.Is
// and CorruptError, which names the file and line of damage. Plain values,
// safe from any goroutine.

import (
	"errors"
	"fmt"
)

// ErrCorrupt is returned (wrapped in a *CorruptError) when data that was
// acknowledged as durable fails its checksum or does not parse: an earlier
// batch of the log, the acceptor file, or the IDENTITY file. A node must not
// start on such a directory unless it repairs it and rejoins as a learner.
var ErrCorrupt = errors.New("wal: corrupt")

// ErrBadLine is returned by ParseLine for a line that is not a well-formed
// record line in canonical form (see the package comment).
var ErrBadLine = errors.New("wal: malformed record line")

// ErrBadEscape is returned by Unescape for a token that is not the canonical
// escaped form of any byte string.
var ErrBadEscape = errors.New("wal: bad escape")

// ErrInvalidRecord is returned by Append and AppendRecord for a record whose
// fields do not fit its kind (an unknown kind or value kind, a no-op with
// commands, a commit with a ballot or commands). Nothing is written.
var ErrInvalidRecord = errors.New("wal: invalid record")

// ErrTooLarge is returned by Append when a record line exceeds
// Options.MaxLine or a batch exceeds Options.MaxBatchBytes. Nothing is
// written; the log stays usable.
var ErrTooLarge = errors.New("wal: too large")

// ErrClosed is returned by every method of a Log after Close.
var ErrClosed = errors.New("wal: log closed")

// ErrVersion is returned by Open when a segment starts with a well-formed
// version line of a format this build does not read. It is never treated
// as damage, so Options.Repair does not delete such a segment.
var ErrVersion = errors.New("wal: unsupported format version")

// ErrNoIdentity is returned by ReadIdentity and CheckIdentity when the data
// directory has no IDENTITY file (a new or wiped directory).
var ErrNoIdentity = errors.New("wal: no IDENTITY file")

// ErrWrongIdentity is returned by CheckIdentity when the IDENTITY file names
// another cluster or node; the message names both.
var ErrWrongIdentity = errors.New("wal: wrong identity")

// CorruptError names the file and line of damaged, acknowledged data.
// errors.Is(err, ErrCorrupt) holds for it.
type CorruptError struct {
	File   string // path of the damaged file
	Line   int    // 1-based line number of the first damaged line
	Reason string // what is wrong with it
}

// Error names the file and line.
func (e *CorruptError) Error() string {
	return fmt.Sprintf("wal: corrupt %s line %d: %s", e.File, e.Line, e.Reason)
}

// Unwrap returns ErrCorrupt.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }
