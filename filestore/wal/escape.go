package wal

// This file owns the escaping of commands into one field of a line
// (printable ASCII as is, \s \n \r \t \\ and \xNN for the rest) and back.
// Pure: the caller's goroutine (the log and its small files, filestore's
// commands and snapshots, the offline commands).

import (
	"encoding/binary"
	"fmt"
)

const hexDigits = "0123456789abcdef"

// escapeAs[b] is 0 for a byte written as itself, 'x' for one written \xNN,
// and otherwise the letter of its short escape (\\ \s \n \r \t). Spaces and
// newlines are always escaped, so an escaped token never splits a line or a
// field, and printable bytes stay verbatim so keys can be grepped.
var escapeAs = func() (t [256]byte) {
	for b := range t {
		if b < 0x21 || b > 0x7e {
			t[b] = 'x'
		}
	}
	t['\\'] = '\\'
	t[' '] = 's'
	t['\n'] = 'n'
	t['\r'] = 'r'
	t['\t'] = 't'
	return t
}()

// Escape appends the escaped form of src to dst and returns the extended
// slice. The result is never empty and holds only bytes 0x21..0x7e: bytes
// 0x21..0x7e other than backslash stand for themselves; backslash, space,
// newline, carriage return and tab are written \\ \s \n \r \t; every other
// byte is \xNN with two lower-case hex digits; an empty src is written \e.
// The format is part of the log format and never changes without a version
// bump.
func Escape(dst, src []byte) []byte {
	if len(src) == 0 {
		return append(dst, '\\', 'e')
	}
	run := 0 // start of the current run of verbatim bytes
	for i := 0; i < len(src); i++ {
		// Most values are mostly printable: skip verbatim bytes 32, then
		// 8, at a time.
		for i+32 <= len(src) && !wordsNeedEscape(src[i:i+32]) {
			i += 32
		}
		for i+8 <= len(src) && !wordNeedsEscape(binary.LittleEndian.Uint64(src[i:])) {
			i += 8
		}
		if i == len(src) {
			break
		}
		b := src[i]
		e := escapeAs[b]
		if e == 0 {
			continue
		}
		dst = append(dst, src[run:i]...)
		if e == 'x' {
			dst = append(dst, '\\', 'x', hexDigits[b>>4], hexDigits[b&0xf])
		} else {
			dst = append(dst, '\\', e)
		}
		run = i + 1
	}
	return append(dst, src[run:]...)
}

// Byte-lane masks for wordNeedsEscape.
const (
	lanes1    = 0x0101010101010101
	lanesHigh = 0x8080808080808080
)

// wordNeedsEscape reports whether any of the eight bytes of w is one that
// Escape does not write as itself: below 0x21, above 0x7e, or a backslash.
// Each test is the exact "some byte is less than / more than / equal to"
// test on a whole word (no carry crosses a lane whose answer decides it).
func wordNeedsEscape(w uint64) bool {
	return escapeBits(w) != 0
}

// wordsNeedEscape is wordNeedsEscape for the four words of b[:32].
func wordsNeedEscape(b []byte) bool {
	_ = b[31]
	return escapeBits(binary.LittleEndian.Uint64(b))|
		escapeBits(binary.LittleEndian.Uint64(b[8:]))|
		escapeBits(binary.LittleEndian.Uint64(b[16:]))|
		escapeBits(binary.LittleEndian.Uint64(b[24:])) != 0
}

// escapeBits is non-zero when some byte of w needs escaping.
func escapeBits(w uint64) uint64 {
	below := (w - lanes1*0x21) &^ w
	above := (w + lanes1*(0x7f-0x7e)) | w
	bs := w ^ (lanes1 * '\\')
	backslash := (bs - lanes1) &^ bs
	return (below | above | backslash) & lanesHigh
}

// Unescape appends the bytes that the escaped token src stands for to dst
// and returns the extended slice. It accepts exactly what Escape writes and
// nothing else (no empty token, no \e inside a longer token, no escape of a
// byte that is written verbatim, no upper-case hex), so every token it
// accepts re-escapes to the same bytes. Errors wrap ErrBadEscape.
func Unescape(dst, src []byte) ([]byte, error) {
	if len(src) == 0 {
		return dst, fmt.Errorf("%w: empty token", ErrBadEscape)
	}
	if len(src) == 2 && src[0] == '\\' && src[1] == 'e' {
		return dst, nil
	}
	for i := 0; i < len(src); {
		b := src[i]
		if escapeAs[b] == 0 {
			j := i + 1
			for j < len(src) && escapeAs[src[j]] == 0 {
				j++
			}
			dst = append(dst, src[i:j]...)
			i = j
			continue
		}
		if b != '\\' {
			return dst, fmt.Errorf("%w: byte 0x%02x at %d must be escaped", ErrBadEscape, b, i)
		}
		if i+1 >= len(src) {
			return dst, fmt.Errorf("%w: lone backslash at %d", ErrBadEscape, i)
		}
		var v byte
		switch src[i+1] {
		case '\\':
			v = '\\'
		case 's':
			v = ' '
		case 'n':
			v = '\n'
		case 'r':
			v = '\r'
		case 't':
			v = '\t'
		case 'x':
			if i+4 > len(src) {
				return dst, fmt.Errorf("%w: short \\x escape at %d", ErrBadEscape, i)
			}
			hi, ok1 := unhex(src[i+2])
			lo, ok2 := unhex(src[i+3])
			if !ok1 || !ok2 {
				return dst, fmt.Errorf("%w: bad hex in \\x escape at %d", ErrBadEscape, i)
			}
			v = hi<<4 | lo
			if escapeAs[v] != 'x' {
				return dst, fmt.Errorf("%w: byte 0x%02x at %d is not written as \\x", ErrBadEscape, v, i)
			}
			dst = append(dst, v)
			i += 4
			continue
		default:
			return dst, fmt.Errorf("%w: unknown escape \\%c at %d", ErrBadEscape, src[i+1], i)
		}
		dst = append(dst, v)
		i += 2
	}
	return dst, nil
}

// unhex decodes one lower-case hex digit.
func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
