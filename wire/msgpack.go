package wire

// This file owns a hand-written reader for the little of msgpack wire
// needs to check before handing bytes to the reflection-based decoder: the
// envelope's header, and that a body is one whole value. Checking first
// means counts in a body are never larger than the bytes that back them, so
// the decoder cannot be talked into huge preallocations, and nesting is
// bounded, so the decoder's recursion cannot exhaust the stack. Pure
// functions: the caller's goroutine.

import (
	"encoding/binary"
	"errors"
	"fmt"
)

var (
	errShort       = errors.New("value runs past the end")
	errTrailing    = errors.New("trailing bytes after the value")
	errInvalidCode = errors.New("invalid msgpack code 0xc1")
)

// checkValue reports whether b holds exactly one well-formed msgpack value.
func checkValue(b []byte) error {
	n, err := valueLen(b)
	if err != nil {
		return err
	}
	if n != len(b) {
		return fmt.Errorf("%w (%d of %d)", errTrailing, len(b)-n, len(b))
	}
	return nil
}

// maxDepth bounds how deeply arrays and maps may nest in a body. synod's
// messages nest a few levels; the bound keeps the msgpack library, which
// recurses (when skipping unknown map fields, for one), far from the end of
// the stack whatever a peer sends.
const maxDepth = 64

var errTooDeep = fmt.Errorf("arrays and maps nested deeper than %d", maxDepth)

// valueLen returns the length of the msgpack value at the start of b. It
// walks the value without recursion, keeping the items left in each open
// array or map; a count larger than the bytes left cannot be backed by
// them and is refused.
func valueLen(b []byte) (int, error) {
	var openBuf [16]int
	open := openBuf[:0] // items left in each open container, innermost last
	pos := 0
	for {
		if pos >= len(b) {
			return 0, errShort
		}
		c := b[pos]
		pos++
		var items, skip int // values inside, payload bytes to skip
		switch {
		case c <= 0x7f, c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3:
			// fixint, nil, bool: the code is the value.
		case c <= 0x8f:
			items = 2 * int(c&0x0f)
		case c <= 0x9f:
			items = int(c & 0x0f)
		case c <= 0xbf:
			skip = int(c & 0x1f)
		case c == 0xc1:
			return 0, errInvalidCode
		case c == 0xcc, c == 0xd0:
			skip = 1
		case c == 0xcd, c == 0xd1:
			skip = 2
		case c == 0xce, c == 0xd2, c == 0xca:
			skip = 4
		case c == 0xcf, c == 0xd3, c == 0xcb:
			skip = 8
		case c == 0xd4, c == 0xd5, c == 0xd6, c == 0xd7, c == 0xd8:
			skip = 1 + 1<<(c-0xd4) // type byte + 1, 2, 4, 8 or 16
		default:
			// Codes followed by a 1, 2 or 4 byte length.
			var size int
			switch c {
			case 0xc4, 0xc7, 0xd9:
				size = 1
			case 0xc5, 0xc8, 0xda, 0xdc, 0xde:
				size = 2
			case 0xc6, 0xc9, 0xdb, 0xdd, 0xdf:
				size = 4
			}
			l, err := readLen(b, pos, size)
			if err != nil {
				return 0, err
			}
			pos += size
			switch c {
			case 0xdc, 0xdd:
				items = l
			case 0xde, 0xdf:
				items = 2 * l
			case 0xc7, 0xc8, 0xc9:
				skip = 1 + l // ext type byte + data
			default:
				skip = l
			}
		}
		if skip > len(b)-pos {
			return 0, errShort
		}
		pos += skip
		if items > 0 {
			if items > len(b)-pos { // every item takes a byte at least
				return 0, errShort
			}
			if len(open) == maxDepth {
				return 0, errTooDeep
			}
			open = append(open, items)
			continue
		}
		// A whole value ended: it fills one item of its container, which
		// may end that container in turn.
		for len(open) > 0 {
			top := len(open) - 1
			open[top]--
			if open[top] > 0 {
				break
			}
			open = open[:top]
		}
		if len(open) == 0 {
			return pos, nil
		}
	}
}

// readLen reads a big-endian length of size bytes at b[pos:]. A length
// larger than b cannot be backed by it, so it is refused here, which also
// keeps it from overflowing an int.
func readLen(b []byte, pos, size int) (int, error) {
	if size > len(b)-pos {
		return 0, errShort
	}
	var l uint64
	switch size {
	case 1:
		l = uint64(b[pos])
	case 2:
		l = uint64(binary.BigEndian.Uint16(b[pos:]))
	default:
		l = uint64(binary.BigEndian.Uint32(b[pos:]))
	}
	if l > uint64(len(b)) {
		return 0, errShort
	}
	return int(l), nil
}

// readArrayLen reads an array header at b[pos:] and returns its count and
// the position after it.
func readArrayLen(b []byte, pos int) (int, int, error) {
	if pos >= len(b) {
		return 0, pos, errShort
	}
	c := b[pos]
	pos++
	switch {
	case c >= 0x90 && c <= 0x9f:
		return int(c & 0x0f), pos, nil
	case c == 0xdc:
		n, err := readLen(b, pos, 2)
		return n, pos + 2, err
	case c == 0xdd:
		n, err := readLen(b, pos, 4)
		return n, pos + 4, err
	}
	return 0, pos, fmt.Errorf("code 0x%02x is not an array", c)
}

// readUint reads a non-negative integer in any msgpack integer encoding at
// b[pos:] and returns it and the position after it.
func readUint(b []byte, pos int) (uint64, int, error) {
	if pos >= len(b) {
		return 0, pos, errShort
	}
	c := b[pos]
	pos++
	if c <= 0x7f {
		return uint64(c), pos, nil
	}
	var size int
	switch c {
	case 0xcc, 0xd0:
		size = 1
	case 0xcd, 0xd1:
		size = 2
	case 0xce, 0xd2:
		size = 4
	case 0xcf, 0xd3:
		size = 8
	default:
		return 0, pos, fmt.Errorf("code 0x%02x is not an unsigned integer", c)
	}
	signed := c >= 0xd0
	if size > len(b)-pos {
		return 0, pos, errShort
	}
	var n uint64
	switch size {
	case 1:
		n = uint64(b[pos])
	case 2:
		n = uint64(binary.BigEndian.Uint16(b[pos:]))
	case 4:
		n = uint64(binary.BigEndian.Uint32(b[pos:]))
	default:
		n = binary.BigEndian.Uint64(b[pos:])
	}
	if signed && n>>(8*size-1) != 0 {
		return 0, pos, errors.New("negative integer")
	}
	return n, pos + size, nil
}
