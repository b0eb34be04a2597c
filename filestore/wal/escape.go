package wal

// This file owns the escaping of commands into one field of a line
// (printable ASCII as is, \s \n \r \t \\ and \xNN for the rest) and back.
// Pure: the caller's goroutine (the log and its small files, filestore's
// commands and snapshots, the offline commands).

import "fmt"

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
	for i, b := range src {
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
