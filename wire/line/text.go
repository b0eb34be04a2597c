package line

// This file owns the text helpers the reader and the reply parser share:
// bounded line reads, end-of-line checks, blank lines, fields, canonical
// numbers and cleaned messages. Pure: the caller's goroutine.

import (
	"bufio"
	"errors"
	"io"
	"unicode"
	"unicode/utf8"
)

// errLong is readLine's report of a line over its limit.
var errLong = errors.New("line too long")

// readLine reads one line and returns it without its "\n" or "\r\n". The
// result aliases br's buffer or *acc and is valid only until the next read.
// A line longer than limit bytes returns errLong without reading the rest of
// it, so a peer cannot make us buffer more than about limit bytes. At end of
// input it returns the partial line read so far with the error.
func readLine(br *bufio.Reader, limit int, acc *[]byte) ([]byte, error) {
	frag, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		// The line is longer than br's buffer: collect it in *acc.
		buf := append((*acc)[:0], frag...)
		for err == bufio.ErrBufferFull {
			if len(buf) > limit+1 { // +1: a '\r' whose '\n' is still to come
				*acc = buf[:0]
				return nil, errLong
			}
			frag, err = br.ReadSlice('\n')
			buf = append(buf, frag...)
		}
		*acc = buf[:0]
		frag = buf
	}
	if err != nil {
		if len(frag) > limit+1 {
			return nil, errLong
		}
		return frag, err
	}
	frag = frag[:len(frag)-1]
	if n := len(frag); n > 0 && frag[n-1] == '\r' {
		frag = frag[:n-1]
	}
	if len(frag) > limit {
		return nil, errLong
	}
	return frag, nil
}

// readEOL consumes the "\r\n" (or bare "\n") that ends a block. ok is false
// when something else came; err reports a failed read, io.EOF as
// io.ErrUnexpectedEOF.
func readEOL(br *bufio.Reader) (ok bool, err error) {
	c, err := br.ReadByte()
	if err == nil && c == '\r' {
		c, err = br.ReadByte()
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return false, err
	}
	return c == '\n', nil
}

// isBlank reports whether b holds only spaces and tabs.
func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' {
			return false
		}
	}
	return true
}

// trimSpaces drops leading spaces.
func trimSpaces(b []byte) []byte {
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	return b
}

// cut splits b at its first space: tok before it, rest after that one space;
// sep reports whether there was a space.
func cut(b []byte) (tok, rest []byte, sep bool) {
	for i, c := range b {
		if c == ' ' {
			return b[:i], b[i+1:], true
		}
	}
	return b, nil, false
}

// fields splits b on runs of spaces into at most len(out) fields and returns
// how many it found, len(out)+1 meaning too many. It does not allocate.
func fields(b []byte, out [][]byte) int {
	n := 0
	for {
		b = trimSpaces(b)
		if len(b) == 0 {
			return n
		}
		if n == len(out) {
			return n + 1
		}
		out[n], b, _ = cut(b)
		n++
	}
}

// parseUint parses 1 to 20 decimal digits without sign; ok is false on any
// other byte or on overflow.
func parseUint(b []byte) (v uint64, ok bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// allDigits reports whether b is non-empty and only decimal digits.
func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// maxErrMsg bounds an error message on the wire, far below any reply line limit.
const maxErrMsg = 512

// appendClean appends s to dst as one printable line of at most limit bytes:
// control characters become spaces, other unprintable or invalid UTF-8 runes
// '?', and spaces become space (so '_' can keep a field unbroken). It keeps a
// reply from breaking the stream's framing whatever text it carries.
func appendClean(dst []byte, s string, limit int, space byte) []byte {
	n := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == ' ':
			r = rune(space)
		case r < ' ' || r == 0x7f:
			r = rune(space)
		case r == utf8.RuneError && size == 1, !unicode.IsPrint(r):
			r = '?'
		}
		w := utf8.RuneLen(r)
		if n+w > limit {
			break
		}
		dst = utf8.AppendRune(dst, r)
		n += w
	}
	return dst
}
