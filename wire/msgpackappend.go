package wire

// This file owns the msgpack encodings that hand-written encoders share:
// the bytes wire's msgpack encoder (compact integers) writes for an
// unsigned integer, a bool, an array header and a []byte. The envelope
// header, the fast Request and Reply bodies (fastcodec.go) and the node's
// paxos messages (node/peermsg.go) use them; tests hold each encoder to
// msgpack's bytes. Pure functions, safe on any goroutine.

import "encoding/binary"

// AppendUint appends n in msgpack's shortest unsigned encoding.
func AppendUint(dst []byte, n uint64) []byte {
	switch {
	case n <= 0x7f:
		return append(dst, byte(n))
	case n <= 0xff:
		return append(dst, 0xcc, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(dst, 0xcd), uint16(n))
	case n <= 0xffffffff:
		return binary.BigEndian.AppendUint32(append(dst, 0xce), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(dst, 0xcf), n)
}

// AppendBool appends v as msgpack writes a bool.
func AppendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, 0xc3)
	}
	return append(dst, 0xc2)
}

// AppendArrayLen appends the header of an array of n elements.
func AppendArrayLen(dst []byte, n int) []byte {
	switch {
	case n < 16:
		return append(dst, 0x90|byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(dst, 0xdc), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(dst, 0xdd), uint32(n))
}

// AppendBin appends b as msgpack's encoder writes a []byte: nil as nil.
func AppendBin(dst []byte, b []byte) []byte {
	n := len(b)
	switch {
	case b == nil:
		return append(dst, 0xc0)
	case n < 256:
		dst = append(dst, 0xc4, byte(n))
	case n <= 0xffff:
		dst = binary.BigEndian.AppendUint16(append(dst, 0xc5), uint16(n))
	default:
		dst = binary.BigEndian.AppendUint32(append(dst, 0xc6), uint32(n))
	}
	return append(dst, b...)
}
