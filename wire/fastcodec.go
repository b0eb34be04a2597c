package wire

// This file owns the hand-written msgpack codec of the two bodies every
// client operation carries, Request and Reply: it writes the very bytes the
// reflective encoder writes, and reads them back with the decoder's result,
// without reflection. A body it does not cover (a watch poll, a LIST or
// MEMBER reply, a value of refMin bytes or more, any encoding another
// writer may choose) goes through msgpack as before. Pure functions: the
// caller's goroutine.

import "fmt"

// fastBody is a body with its own codec. appendFast appends the body's
// encoding to dst, or reports false (dst untouched) to leave it to msgpack;
// decodeFast decodes b, a whole well-formed value, or returns ErrNotRaw to
// leave it to msgpack (the receiver is then unchanged).
type fastBody interface {
	appendFast(dst []byte) ([]byte, bool)
	decodeFast(b []byte) error
}

// requestFields and replyFields are how many fields Request and Reply
// encode (as arrays).
const (
	requestFields = 15
	replyFields   = 17
)

func (r *Request) appendFast(dst []byte) ([]byte, bool) {
	if r.Watch != nil || len(r.Value) >= refMin {
		return dst, false
	}
	dst = AppendArrayLen(dst, requestFields)
	dst = AppendUint(dst, uint64(r.Op))
	dst = appendStr(dst, r.Key)
	dst = AppendBin(dst, r.Value)
	dst = AppendUint(dst, r.Version)
	dst = AppendUint(dst, r.ClientID)
	dst = AppendUint(dst, r.Seq)
	dst = AppendUint(dst, uint64(r.Consistency))
	dst = AppendUint(dst, r.MinIndex)
	dst = AppendUint(dst, r.Ack)
	dst = AppendBool(dst, r.Retry)
	dst = AppendUint(dst, r.MemberID)
	dst = appendStr(dst, r.MemberAddr)
	dst = append(dst, 0xc0) // Watch: nil
	dst = AppendUint(dst, r.Offset)
	dst = AppendUint(dst, r.Length)
	return dst, true
}

func (r *Request) decodeFast(b []byte) error {
	d := fastReader{b: b}
	if d.arrayLen() != requestFields {
		return ErrNotRaw
	}
	var q Request
	q.Op = Op(d.uint8())
	q.Key = d.str()
	q.Value = d.bin()
	q.Version = d.uint()
	q.ClientID = d.uint()
	q.Seq = d.uint()
	q.Consistency = Consistency(d.uint8())
	q.MinIndex = d.uint()
	q.Ack = d.uint()
	q.Retry = d.bool()
	q.MemberID = d.uint()
	q.MemberAddr = d.str()
	d.nil() // Watch: a poll goes through msgpack
	q.Offset = d.uint()
	q.Length = d.uint()
	if !d.done() {
		return ErrNotRaw
	}
	*r = q
	return nil
}

func (r *Reply) appendFast(dst []byte) ([]byte, bool) {
	if r.Keys != nil || r.Members != nil || r.Events != nil || len(r.Value) >= refMin {
		return dst, false
	}
	dst = AppendArrayLen(dst, replyFields)
	dst = AppendUint(dst, uint64(r.Code))
	dst = AppendUint(dst, r.Index)
	dst = AppendUint(dst, r.Version)
	dst = AppendBin(dst, r.Value)
	dst = append(dst, 0xc0) // Keys: nil
	dst = appendStr(dst, r.Msg)
	dst = AppendUint(dst, r.MasterID)
	dst = appendStr(dst, r.MasterAddr)
	dst = AppendUint(dst, r.Applied)
	dst = AppendUint(dst, r.Size)
	dst = AppendBool(dst, r.NotApplied)
	dst = append(dst, 0xc0) // Members: nil
	dst = AppendUint(dst, r.ConfigSlot)
	dst = append(dst, 0xc0) // Events: nil
	dst = AppendUint(dst, r.Through)
	dst = AppendUint(dst, r.Oldest)
	dst = appendStr(dst, r.Sum)
	return dst, true
}

func (r *Reply) decodeFast(b []byte) error {
	d := fastReader{b: b}
	if d.arrayLen() != replyFields {
		return ErrNotRaw
	}
	var p Reply
	p.Code = Code(d.uint8())
	p.Index = d.uint()
	p.Version = d.uint()
	p.Value = d.bin()
	d.nil() // Keys
	p.Msg = d.str()
	p.MasterID = d.uint()
	p.MasterAddr = d.str()
	p.Applied = d.uint()
	p.Size = d.uint()
	p.NotApplied = d.bool()
	d.nil() // Members
	p.ConfigSlot = d.uint()
	d.nil() // Events
	p.Through = d.uint()
	p.Oldest = d.uint()
	p.Sum = d.str()
	if !d.done() {
		return ErrNotRaw
	}
	*r = p
	return nil
}

// appendStr appends s as msgpack's encoder writes a string.
func appendStr(dst []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		dst = append(dst, 0xa0|byte(n))
	case n < 256:
		dst = append(dst, 0xd9, byte(n))
	case n <= 0xffff:
		dst = append(dst, 0xda, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0xdb, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, s...)
}

// fastReader reads the values of a fast body one after another. The first
// value not in an encoding it reads, or not of the kind asked, sets bad,
// after which every read returns a zero value; done then reports false.
type fastReader struct {
	b   []byte
	pos int
	bad bool
}

func (d *fastReader) done() bool { return !d.bad && d.pos == len(d.b) }

func (d *fastReader) arrayLen() int {
	n, pos, err := readArrayLen(d.b, d.pos)
	if err != nil {
		d.bad = true
		return -1
	}
	d.pos = pos
	return n
}

func (d *fastReader) uint() uint64 {
	if d.bad {
		return 0
	}
	n, pos, err := readUint(d.b, d.pos)
	if err != nil {
		d.bad = true
		return 0
	}
	d.pos = pos
	return n
}

// uint8 reads an unsigned integer that fits a byte: msgpack would
// truncate a larger one, which is left to it.
func (d *fastReader) uint8() uint8 {
	n := d.uint()
	if n > 0xff {
		d.bad = true
		return 0
	}
	return uint8(n)
}

func (d *fastReader) bool() bool {
	if d.bad || d.pos >= len(d.b) {
		d.bad = true
		return false
	}
	switch d.b[d.pos] {
	case 0xc2:
		d.pos++
		return false
	case 0xc3:
		d.pos++
		return true
	}
	d.bad = true
	return false
}

// nil reads msgpack nil.
func (d *fastReader) nil() {
	if d.bad || d.pos >= len(d.b) || d.b[d.pos] != 0xc0 {
		d.bad = true
		return
	}
	d.pos++
}

// str reads a string in a str encoding, copied (msgpack accepts more,
// which is left to it).
func (d *fastReader) str() string {
	if d.bad || d.pos >= len(d.b) {
		d.bad = true
		return ""
	}
	c := d.b[d.pos]
	var size int
	switch {
	case c >= 0xa0 && c <= 0xbf:
		n := int(c & 0x1f)
		start := d.pos + 1
		if n > len(d.b)-start {
			d.bad = true
			return ""
		}
		d.pos = start + n
		return string(d.b[start:d.pos])
	case c == 0xd9:
		size = 1
	case c == 0xda:
		size = 2
	case c == 0xdb:
		size = 4
	default:
		d.bad = true
		return ""
	}
	n, err := readLen(d.b, d.pos+1, size)
	start := d.pos + 1 + size
	if err != nil || n > len(d.b)-start {
		d.bad = true
		return ""
	}
	d.pos = start + n
	return string(d.b[start:d.pos])
}

// bin reads a []byte as msgpack's decoder does into a nil slice: nil for
// nil, else a copy that is never nil, empty included.
func (d *fastReader) bin() []byte {
	if d.bad {
		return nil
	}
	a, pos, ok := aliasBin(d.b, d.pos)
	if !ok {
		d.bad = true
		return nil
	}
	isNil := d.b[d.pos] == 0xc0
	d.pos = pos
	if isNil {
		return nil
	}
	v := make([]byte, len(a))
	copy(v, a)
	return v
}

// DecodeRequest is Unmarshal(b, r) for the Request every client operation
// sends, without r escaping to the heap: a replica decodes one per request
// into a variable of its own.
func DecodeRequest(b []byte, r *Request) error {
	if err := checkValue(b); err != nil {
		return fmt.Errorf("%w: %v", ErrBadBody, err)
	}
	if r.decodeFast(b) == nil {
		return nil
	}
	tmp := new(Request) // msgpack gets a value of its own: r stays off the heap
	if err := Unmarshal(b, tmp); err != nil {
		return err
	}
	*r = *tmp
	return nil
}

// DecodeReply is Unmarshal(b, r) for a Reply, without r escaping to the
// heap: a proxy decodes one per request.
func DecodeReply(b []byte, r *Reply) error {
	if err := checkValue(b); err != nil {
		return fmt.Errorf("%w: %v", ErrBadBody, err)
	}
	if r.decodeFast(b) == nil {
		return nil
	}
	tmp := new(Reply)
	if err := Unmarshal(b, tmp); err != nil {
		return err
	}
	*r = *tmp
	return nil
}
