package wire

// This file owns encoding and decoding of bodies and whole messages:
// Marshal and Unmarshal, the pooled msgpack encoders and decoders, and
// AppendMessage, which builds a frame. Runs on the caller's goroutine; safe
// for concurrent use (the pools hand each call its own coder).

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// appendBuf is an io.Writer and io.ByteWriter that appends to a slice, so a
// msgpack.Encoder can write straight into a caller's buffer. With byRef
// set, a write of refMin bytes or more (the encoder writes a []byte or
// string field's bytes in one call) is not copied but kept in refs, to be
// written from the caller's own memory (Conn.writeRefsLocked).
type appendBuf struct {
	b     []byte
	byRef bool
	refs  []bigRef
	refd  int // bytes in refs
}

// bigRef is a large write kept by reference: p belongs at offset at of b.
type bigRef struct {
	at int
	p  []byte
}

// refMin is the smallest write appendBuf keeps by reference: a Conn's
// buffer's size, above which bufio writes to the network directly anyway,
// and above which the flush it costs is cheaper than the copy it saves.
const refMin = bufSize

func (w *appendBuf) Write(p []byte) (int, error) {
	if w.byRef && len(p) >= refMin {
		w.refs = append(w.refs, bigRef{at: len(w.b), p: p})
		w.refd += len(p)
		return len(p), nil
	}
	w.b = append(w.b, p...)
	return len(p), nil
}

func (w *appendBuf) WriteByte(c byte) error {
	w.b = append(w.b, c)
	return nil
}

// encoder is a msgpack encoder bound to an appendBuf. Encoders are reused,
// from a pool or per Conn, because building one allocates.
type encoder struct {
	enc *msgpack.Encoder
	buf appendBuf
}

func newEncoder() *encoder {
	e := &encoder{}
	e.enc = msgpack.NewEncoder(&e.buf)
	e.enc.UseCompactInts(true) // small numbers in one byte: most ids, rounds and codes are small
	return e
}

var errEmptyBody = errors.New("value encodes to nothing")

// appendValue appends the msgpack encoding of v to dst. The encoding must
// be at least one byte: an empty msgpack.RawMessage would leave the frame
// without its body.
//
// With e.buf.byRef set, large writes are kept in e.buf.refs (reset here)
// instead of appended, at offsets into the returned slice.
func (e *encoder) appendValue(dst []byte, v any) ([]byte, error) {
	start := len(dst)
	clear(e.buf.refs)
	e.buf.refs, e.buf.refd = e.buf.refs[:0], 0
	if f, ok := v.(fastBody); ok {
		// The bodies of client operations, without reflection
		// (fastcodec.go); the same bytes.
		if out, ok := f.appendFast(dst); ok {
			return out, nil
		}
	}
	e.buf.b = dst
	err := e.enc.Encode(v)
	dst = e.buf.b
	e.buf.b = nil
	if err == nil && len(dst) == start && e.buf.refd == 0 {
		err = errEmptyBody
	}
	return dst, err
}

var encoderPool = sync.Pool{New: func() any { return newEncoder() }}

// decoder is a msgpack decoder reading from a reusable bytes.Reader.
type decoder struct {
	dec *msgpack.Decoder
	r   bytes.Reader
}

var decoderPool = sync.Pool{New: func() any {
	d := &decoder{}
	// Never UsePreallocateValues (as msgpack.Unmarshal does): it starts a
	// goroutine per decoded map type that never exits.
	d.dec = msgpack.NewDecoder(&d.r)
	return d
}}

// Marshal returns the msgpack encoding of v, as wire encodes bodies.
func Marshal(v any) ([]byte, error) {
	return AppendMarshal(nil, v)
}

// AppendMarshal appends the msgpack encoding of v to dst, so a caller can
// reuse its buffer.
func AppendMarshal(dst []byte, v any) ([]byte, error) {
	e := encoderPool.Get().(*encoder)
	out, err := e.appendValue(dst, v)
	encoderPool.Put(e)
	if err != nil {
		return dst, fmt.Errorf("wire: marshal %T: %w", v, err)
	}
	return out, nil
}

// Unmarshal decodes b, which must be exactly one msgpack value, into v.
// The result never aliases b. Errors match ErrBadBody.
//
// b is checked to be well formed first, so no count in it can make the
// decoder allocate more elements than b has bytes; memory use is still up
// to len(b) times the size of the largest element type, which is why
// frames are bounded.
func Unmarshal(b []byte, v any) error {
	if err := checkValue(b); err != nil {
		return fmt.Errorf("%w: %v", ErrBadBody, err)
	}
	if f, ok := v.(fastBody); ok && f.decodeFast(b) == nil {
		return nil // the same result as msgpack's, without reflection (fastcodec.go)
	}
	d := decoderPool.Get().(*decoder)
	d.r.Reset(b)
	err := d.dec.Decode(v)
	d.r.Reset(nil)
	decoderPool.Put(d)
	if err != nil {
		return fmt.Errorf("%w: into %T: %v", ErrBadBody, v, err)
	}
	return nil
}

// AppendMessage appends a whole frame to dst: the length header and an
// envelope of kind and id whose body is the msgpack encoding of body. It
// returns an error matching ErrFrameTooLarge, and dst unchanged, if the
// frame's body would exceed max (DefaultMaxFrame if max <= 0).
func AppendMessage(dst []byte, kind Kind, id uint64, body any, max int) ([]byte, error) {
	e := encoderPool.Get().(*encoder)
	out, err := appendMessage(e, dst, kind, id, body, max)
	encoderPool.Put(e)
	return out, err
}

func appendMessage(e *encoder, dst []byte, kind Kind, id uint64, body any, max int) ([]byte, error) {
	if !kind.Valid() {
		return dst, fmt.Errorf("wire: send %s: undefined kind", kind)
	}
	max = frameLimit(max)
	start := len(dst)
	out := append(dst, 0, 0, 0, 0)
	out = appendEnvelopeHeader(out, kind, id)
	out, err := e.appendValue(out, body)
	if err != nil {
		return dst, fmt.Errorf("wire: encode %s body %T: %w", kind, body, err)
	}
	n := len(out) - start - HeaderSize + e.buf.refd
	if n > max {
		return dst, fmt.Errorf("%w: %s of %d bytes, max %d", ErrFrameTooLarge, kind, n, max)
	}
	putLen(out[start:], n)
	return out, nil
}

// appendMessageRefs is appendMessage keeping the body's large byte strings
// by reference: the frame is dst's extension with each ref's bytes
// inserted at its offset (relative to the returned slice). The refs are
// e's, valid until e's next use; on error there are none.
func appendMessageRefs(e *encoder, dst []byte, kind Kind, id uint64, body any, max int) ([]byte, []bigRef, error) {
	e.buf.byRef = true
	out, err := appendMessage(e, dst, kind, id, body, max)
	e.buf.byRef = false
	refs := e.buf.refs
	if err != nil {
		clear(refs)
		e.buf.refs, e.buf.refd = refs[:0], 0
		return dst, nil, err
	}
	return out, refs, nil
}

// appendRawMessage is appendMessage for a body already encoded. The body
// is checked, so a caller's bad bytes fail here instead of making the peer
// close the connection.
func appendRawMessage(dst []byte, kind Kind, id uint64, body []byte, max int) ([]byte, error) {
	if !kind.Valid() {
		return dst, fmt.Errorf("wire: send %s: undefined kind", kind)
	}
	max = frameLimit(max)
	if len(body) == 0 {
		body = nilBody
	}
	if err := checkValue(body); err != nil {
		return dst, fmt.Errorf("%w: send %s: %v", ErrBadBody, kind, err)
	}
	start := len(dst)
	out := append(dst, 0, 0, 0, 0)
	out = AppendEnvelope(out, kind, id, body)
	n := len(out) - start - HeaderSize
	if n > max {
		return dst, fmt.Errorf("%w: %s of %d bytes, max %d", ErrFrameTooLarge, kind, n, max)
	}
	putLen(out[start:], n)
	return out, nil
}

// frameLimit turns a configured maximum into the one in force: the default
// for zero or less, and never more than a length header can say.
func frameLimit(max int) int {
	if max <= 0 {
		return DefaultMaxFrame
	}
	return int(min(uint64(max), math.MaxUint32))
}

func putLen(b []byte, n int) {
	b[0], b[1], b[2], b[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
}
