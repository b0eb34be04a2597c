package wire

// This file owns Conn, a buffered framed connection, and its Options. The
// read side (Recv) belongs to one reader goroutine at a time; Send, SendRaw
// and Flush may be called from any goroutine, serialized by wmu; Close from
// any goroutine, once or more.

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// DefaultHandshakeTimeout bounds a whole handshake unless configured.
	DefaultHandshakeTimeout = 5 * time.Second

	// MaxFrameLimit is the largest MaxFrame Options accept: 1 GiB.
	MaxFrameLimit = 1 << 30

	// bufSize is the size of a Conn's bufio reader and writer: room for a
	// batch of typical Accepts per flush.
	bufSize = 64 << 10

	// keepBuf is the largest frame buffer a Conn keeps between messages,
	// so one huge frame does not pin its memory for the connection's life.
	keepBuf = 1 << 20
)

// Options configure a Conn. The zero value is valid and means the
// defaults.
type Options struct {
	// MaxFrame is the largest frame body, in bytes, this side reads or
	// sends. 0 means DefaultMaxFrame; at most MaxFrameLimit. Both sides of
	// a connection should agree: a peer's larger frame closes the
	// connection.
	MaxFrame int

	// ReadTimeout bounds each Recv. 0 means no limit. A Recv that times
	// out closes the connection, so with a read timeout a peer must send
	// something (KindPing, heartbeats) at least that often.
	ReadTimeout time.Duration

	// WriteTimeout bounds each Flush, and each Send that has to write to
	// the network because the buffer is full. 0 means no limit.
	WriteTimeout time.Duration

	// HandshakeTimeout bounds Dial's and Accept's handshake. 0 means
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration

	// TLS, when not nil, runs every connection over TLS: Dial uses it as
	// the client's config (ServerName defaults to the dialled host), Accept
	// as the server's. Both then hold the peer's certificate to the role
	// it claims (see wire/tlsconf). nil means plaintext.
	TLS *tls.Config
}

// DefaultOptions returns Options with every default filled in.
func DefaultOptions() Options {
	return Options{MaxFrame: DefaultMaxFrame, HandshakeTimeout: DefaultHandshakeTimeout}
}

// Validate reports whether o is usable.
func (o Options) Validate() error {
	switch {
	case o.MaxFrame < 0 || o.MaxFrame > MaxFrameLimit:
		return fmt.Errorf("wire: options: MaxFrame %d outside [0, %d]", o.MaxFrame, MaxFrameLimit)
	case o.ReadTimeout < 0:
		return fmt.Errorf("wire: options: negative ReadTimeout %v", o.ReadTimeout)
	case o.WriteTimeout < 0:
		return fmt.Errorf("wire: options: negative WriteTimeout %v", o.WriteTimeout)
	case o.HandshakeTimeout < 0:
		return fmt.Errorf("wire: options: negative HandshakeTimeout %v", o.HandshakeTimeout)
	}
	return nil
}

// withDefaults fills in zero fields and clamps what Validate would refuse,
// for NewConn, which cannot fail.
func (o Options) withDefaults() Options {
	if o.MaxFrame <= 0 {
		o.MaxFrame = DefaultMaxFrame
	}
	o.MaxFrame = min(o.MaxFrame, MaxFrameLimit, math.MaxUint32)
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	o.ReadTimeout = max(o.ReadTimeout, 0)
	o.WriteTimeout = max(o.WriteTimeout, 0)
	return o
}

// Conn is a framed connection: envelopes in, envelopes out, over a
// buffered net.Conn.
//
// Send, SendRaw and Flush may be called from many goroutines at once; they
// share one lock. Recv is for one reader goroutine. Close may be called
// from anywhere, any number of times.
//
// Any failure to read (a bad frame, a timeout, the peer going away) or to
// write closes the connection, and the error sticks: every later call
// returns it or ErrClosed. Encoding errors in Send write nothing and leave
// the connection usable.
type Conn struct {
	nc   net.Conn
	opts Options
	peer Hello

	// Read side, owned by the reader goroutine.
	r       *bufio.Reader
	rbuf    []byte
	hdr     [HeaderSize]byte
	rerr    error
	trusted int // bytes of body the peer has recently sent whole (readBody)

	// Write side, under wmu.
	wmu  sync.Mutex
	w    *bufio.Writer
	wbuf []byte
	enc  *encoder
	werr error

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
	cause     atomic.Pointer[error] // why the Conn closed itself, if it did
}

// NewConn wraps nc without a handshake; Dial and Accept use it after
// theirs. Invalid option values are clamped (see Options.Validate). The
// Conn owns nc from now on.
func NewConn(nc net.Conn, opts Options) *Conn {
	return &Conn{
		nc:   nc,
		opts: opts.withDefaults(),
		r:    bufio.NewReaderSize(nc, bufSize),
		w:    bufio.NewWriterSize(nc, bufSize),
		enc:  newEncoder(),
	}
}

// Peer returns the Hello the other side sent in the handshake (zero for a
// Conn made by NewConn).
func (c *Conn) Peer() Hello { return c.peer }

// RemoteAddr returns the peer's network address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// LocalAddr returns this side's network address.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// Send encodes body as msgpack into an envelope of kind and id and buffers
// it. It does not flush: call Flush once per batch. If body cannot be
// encoded, or the frame would exceed MaxFrame (ErrFrameTooLarge), nothing
// is written and the connection stays usable.
func (c *Conn) Send(kind Kind, id uint64, body any) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.writable(); err != nil {
		return err
	}
	frame, refs, err := appendMessageRefs(c.enc, c.wbuf[:0], kind, id, body, c.opts.MaxFrame)
	if err != nil {
		return err
	}
	if len(refs) == 0 {
		return c.writeLocked(frame)
	}
	err = c.writeRefsLocked(frame, refs)
	clear(refs) // keep no caller's bytes alive
	return err
}

// SendRaw is Send for a body already encoded as one msgpack value (an
// empty body is sent as nil). A body that is not well-formed msgpack gives
// ErrBadBody and nothing is written.
func (c *Conn) SendRaw(kind Kind, id uint64, body []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.writable(); err != nil {
		return err
	}
	frame, err := appendRawMessage(c.wbuf[:0], kind, id, body, c.opts.MaxFrame)
	if err != nil {
		return err
	}
	return c.writeLocked(frame)
}

// Flush writes every buffered frame to the network.
func (c *Conn) Flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.writable(); err != nil {
		return err
	}
	if c.w.Buffered() == 0 {
		return nil
	}
	if err := c.setWriteDeadline(); err != nil {
		return c.failWrite(err)
	}
	if err := c.w.Flush(); err != nil {
		return c.failWrite(err)
	}
	return nil
}

func (c *Conn) writable() error {
	if c.werr != nil {
		return c.werr
	}
	if c.closed.Load() {
		return c.closedErr()
	}
	return nil
}

func (c *Conn) writeLocked(frame []byte) error {
	if cap(frame) <= keepBuf {
		c.wbuf = frame[:0]
	} else {
		c.wbuf = nil
	}
	if len(frame) > c.w.Available() {
		// bufio will write to the network within this call.
		if err := c.setWriteDeadline(); err != nil {
			return c.failWrite(err)
		}
	}
	if _, err := c.w.Write(frame); err != nil {
		return c.failWrite(err)
	}
	return nil
}

// writeRefsLocked writes a frame whose large byte strings the encoder kept
// by reference (appendBuf): the bytes between them go through the buffered
// writer, and each large one, after a flush, straight to the network, so
// its bytes are copied once, by the kernel, instead of into the frame and
// again into the buffer. It returns once every byte is written, so the
// caller's slices are free again, as after Send of any other frame.
func (c *Conn) writeRefsLocked(frame []byte, refs []bigRef) error {
	if cap(frame) <= keepBuf {
		c.wbuf = frame[:0]
	} else {
		c.wbuf = nil
	}
	if err := c.setWriteDeadline(); err != nil {
		return c.failWrite(err)
	}
	pos := 0
	for _, r := range refs {
		if _, err := c.w.Write(frame[pos:r.at]); err != nil {
			return c.failWrite(err)
		}
		pos = r.at
		if err := c.w.Flush(); err != nil {
			return c.failWrite(err)
		}
		if _, err := c.nc.Write(r.p); err != nil {
			return c.failWrite(err)
		}
	}
	if _, err := c.w.Write(frame[pos:]); err != nil {
		return c.failWrite(err)
	}
	return nil
}

func (c *Conn) setWriteDeadline() error {
	if c.opts.WriteTimeout <= 0 {
		return nil
	}
	return c.nc.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
}

func (c *Conn) failWrite(err error) error {
	if c.closed.Load() && errors.Is(err, net.ErrClosed) {
		c.werr = c.closedErr()
	} else {
		c.werr = fmt.Errorf("wire: write to %s: %w", c.nc.RemoteAddr(), err)
		c.closeWith(c.werr)
	}
	return c.werr
}

// Recv reads the next envelope. A non-zero ReadTimeout bounds the wait.
//
// The returned Body aliases the Conn's read buffer and is valid only until
// the next Recv: decode it (Envelope.Decode copies) or keep
// Envelope.Clone() before reading on.
func (c *Conn) Recv() (Envelope, error) {
	if c.rerr != nil {
		return Envelope{}, c.rerr
	}
	if c.opts.ReadTimeout > 0 {
		if err := c.nc.SetReadDeadline(time.Now().Add(c.opts.ReadTimeout)); err != nil {
			return Envelope{}, c.failRead(err)
		}
	}
	return c.recv(c.opts.MaxFrame)
}

// recv reads one envelope of at most limit bytes, with whatever deadline is
// already set.
func (c *Conn) recv(limit int) (Envelope, error) {
	if c.rerr != nil {
		return Envelope{}, c.rerr
	}
	if c.closed.Load() {
		c.rerr = c.closedErr()
		return Envelope{}, c.rerr
	}
	if cap(c.rbuf) > keepBuf {
		// The last frame was large: its buffer goes back to the pool,
		// which the next large frame on any Conn draws from.
		putBig(c.rbuf)
		c.rbuf = nil
	}
	body, err := readFrame(c.r, limit, c.rbuf, c.hdr[:], c.trusted)
	if err != nil {
		return Envelope{}, c.failRead(err)
	}
	// The peer has shown it sends frames this large: the next one may be
	// allocated whole at once, not grown as it arrives (readBody).
	c.trusted = max(c.trusted, len(body))
	if cap(body) > cap(c.rbuf) {
		c.rbuf = body[:0]
	}
	env, err := DecodeEnvelope(body)
	if err != nil {
		return Envelope{}, c.failRead(err)
	}
	return env, nil
}

// KeepBody hands the memory of the last envelope Recv returned over to
// the caller: the Conn neither reuses nor pools it, so slices of that Body
// (a decoder's that aliases it, RawReader's) stay valid after the next
// Recv. For the reader goroutine, between Recvs. The next frame is read
// into a buffer of its own size.
func (c *Conn) KeepBody() { c.rbuf = nil }

func (c *Conn) failRead(err error) error {
	if c.closed.Load() && errors.Is(err, net.ErrClosed) {
		c.rerr = c.closedErr()
	} else {
		c.rerr = fmt.Errorf("wire: recv from %s: %w", c.nc.RemoteAddr(), err)
		c.closeWith(c.rerr)
	}
	return c.rerr
}

// Close closes the connection, discarding anything not flushed. Only the
// first call does anything; it returns the result of the first call.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.closeErr = c.nc.Close()
	})
	return c.closeErr
}

// closeWith closes the connection because of err, which later calls on
// the other side (reader or writers) report inside their ErrClosed.
func (c *Conn) closeWith(err error) {
	c.cause.CompareAndSwap(nil, &err)
	c.Close()
}

func (c *Conn) closedErr() error {
	if p := c.cause.Load(); p != nil {
		return fmt.Errorf("%w: %w", ErrClosed, *p)
	}
	return ErrClosed
}
