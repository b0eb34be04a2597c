package wire

// This file owns RawReader, which reads msgpack values in place for the
// hand-written decoders of the few messages whose bytes are worth not
// copying (a peer's Accept of large values). Pure: the caller's goroutine.

import "errors"

// ErrNotRaw is what RawReader's methods return for a value in an encoding
// they do not read: the caller falls back to Unmarshal, which reads every
// encoding Send may write.
var ErrNotRaw = errors.New("wire: value not in the encoding the raw reader reads")

// RawReader reads msgpack values one after another from a body, without
// copying: Bin's slices alias the body. Every method returns ErrNotRaw,
// and leaves the position alone, when the next value is not of its kind,
// is truncated, or is not in the encodings it reads.
type RawReader struct {
	b   []byte
	pos int
}

// NewRawReader reads body from its start.
func NewRawReader(body []byte) *RawReader { return &RawReader{b: body} }

// Done reports whether every byte of the body was read.
func (r *RawReader) Done() bool { return r.pos == len(r.b) }

// ArrayLen reads an array header and returns its count, or -1 for nil.
// The count is at most the bytes left, since every element takes one.
func (r *RawReader) ArrayLen() (int, error) {
	if r.pos < len(r.b) && r.b[r.pos] == 0xc0 {
		r.pos++
		return -1, nil
	}
	n, pos, err := readArrayLen(r.b, r.pos)
	if err != nil || n > len(r.b)-pos {
		return 0, ErrNotRaw
	}
	r.pos = pos
	return n, nil
}

// Uint reads a non-negative integer in any integer encoding.
func (r *RawReader) Uint() (uint64, error) {
	n, pos, err := readUint(r.b, r.pos)
	if err != nil {
		return 0, ErrNotRaw
	}
	r.pos = pos
	return n, nil
}

// Bool reads a bool.
func (r *RawReader) Bool() (bool, error) {
	if r.pos < len(r.b) {
		switch r.b[r.pos] {
		case 0xc2:
			r.pos++
			return false, nil
		case 0xc3:
			r.pos++
			return true, nil
		}
	}
	return false, ErrNotRaw
}

// Bin reads a bin value as a slice of the body (capacity clipped to it),
// or nil for msgpack nil.
func (r *RawReader) Bin() ([]byte, error) {
	b, pos, ok := aliasBin(r.b, r.pos)
	if !ok {
		return nil, ErrNotRaw
	}
	r.pos = pos
	return b, nil
}
