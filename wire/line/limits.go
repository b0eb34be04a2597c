package line

// This file owns Limits, the bounds on a request (line, key, value and
// block sizes), their defaults and checks. Plain values: read on the
// caller's goroutine.

import "fmt"

// Default limits (DESIGN.md, "The line protocol").
const (
	DefaultMaxLine    = 64 << 10 // bytes in a request line, terminator excluded
	DefaultMaxValue   = 1 << 20  // bytes in a value
	DefaultMaxKey     = 1024     // bytes in a key
	DefaultMaxDiscard = 64 << 20 // bytes of an oversized block the server reads and drops
	// DefaultMaxFileSize bounds a PUTFILE upload, 16 GiB: its manifest
	// (65 bytes per 4 MiB chunk) stays well inside a 1 MiB command.
	DefaultMaxFileSize = 16 << 30
)

// Limits bound what a Reader accepts from a client. A zero field takes its
// default.
type Limits struct {
	// MaxLine is the longest request line in bytes, without "\r\n". A longer
	// line is a fatal TOO_LARGE. At least MaxKey+64 so every request with a
	// valid key fits when its value is sent as a block.
	MaxLine int
	// MaxValue is the largest value in bytes, inline or block. A larger one
	// is answered TOO_LARGE and the connection goes on.
	MaxValue int
	// MaxKey is the longest key or LIST prefix in bytes.
	MaxKey int
	// MaxDiscard is the largest block the Reader reads and drops to stay in
	// sync after TOO_LARGE. A block announcing more is a fatal TOO_LARGE:
	// draining it would tie the connection up for too long. At least MaxValue.
	MaxDiscard int
	// MaxFileSize is the largest file PUTFILE may upload, in bytes. A
	// larger one is a fatal TOO_LARGE: its bytes are not drained.
	MaxFileSize int64
}

// DefaultLimits returns the limits of the design: 64 KiB lines, 1 MiB values,
// 1024-byte keys, and oversized blocks up to 64 MiB drained.
func DefaultLimits() Limits {
	return Limits{
		MaxLine:     DefaultMaxLine,
		MaxValue:    DefaultMaxValue,
		MaxKey:      DefaultMaxKey,
		MaxDiscard:  DefaultMaxDiscard,
		MaxFileSize: DefaultMaxFileSize,
	}
}

// withDefaults fills zero fields with their defaults.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxLine == 0 {
		l.MaxLine = d.MaxLine
	}
	if l.MaxValue == 0 {
		l.MaxValue = d.MaxValue
	}
	if l.MaxKey == 0 {
		l.MaxKey = d.MaxKey
	}
	if l.MaxDiscard == 0 {
		l.MaxDiscard = max(d.MaxDiscard, l.MaxValue)
	}
	if l.MaxFileSize == 0 {
		l.MaxFileSize = d.MaxFileSize
	}
	return l
}

// Validate reports limits that cannot work together, after zero fields took
// their defaults.
func (l Limits) Validate() error {
	l = l.withDefaults()
	switch {
	case l.MaxLine < 0 || l.MaxValue < 0 || l.MaxKey < 0 || l.MaxDiscard < 0 || l.MaxFileSize < 0:
		return fmt.Errorf("line: limits must not be negative: %+v", l)
	case l.MaxLine < l.MaxKey+64:
		return fmt.Errorf("line: MaxLine %d must be at least MaxKey+64 (%d)", l.MaxLine, l.MaxKey+64)
	case l.MaxDiscard < l.MaxValue:
		return fmt.Errorf("line: MaxDiscard %d must be at least MaxValue %d", l.MaxDiscard, l.MaxValue)
	}
	return nil
}
