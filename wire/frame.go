package wire

// This file owns the frame: a body behind its 4-byte big-endian length,
// written by AppendFrame and read by ReadFrame within a maximum, growing
// the buffer only as bytes arrive. Pure functions: the caller's goroutine.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

const (
	// DefaultMaxFrame is the largest frame body accepted unless configured
	// otherwise: 16 MiB.
	DefaultMaxFrame = 16 << 20

	// HeaderSize is the length of a frame's length prefix.
	HeaderSize = 4

	// growStep is the first allocation for a body that does not fit the
	// caller's buffer. The buffer then doubles as bytes actually arrive, so
	// a peer that announces a large frame and sends little of it costs at
	// most twice what it sent.
	growStep = 64 << 10
)

// AppendFrame appends body to dst behind its 4-byte big-endian length and
// returns the extended slice. The caller keeps body within the reader's
// maximum; Conn checks that before it writes.
func AppendFrame(dst, body []byte) []byte {
	if uint64(len(body)) > math.MaxUint32 {
		// A programming error, never network input: nothing that large
		// is ever built from a bounded frame.
		panic("wire: frame body longer than 4 GiB")
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)))
	return append(dst, body...)
}

// ReadFrame reads one frame from r and returns its body. max bounds the
// body length (DefaultMaxFrame if max <= 0). The body is read into buf when
// it fits (so the result may alias buf) and otherwise into a new slice that
// grows no larger than the announced length.
//
// It returns io.EOF when r ends before the first header byte, an error
// matching ErrTruncated when r ends inside the frame, and an error matching
// ErrFrameTooLarge, before reading or allocating the body, when the length
// is above max. Other read errors are returned wrapped.
func ReadFrame(r io.Reader, max int, buf []byte) ([]byte, error) {
	var hdr [HeaderSize]byte
	return readFrame(r, max, buf, hdr[:], 0)
}

// readFrame is ReadFrame with the header scratch supplied, so that a Conn
// reading many frames does not allocate one per frame, and a size the
// body may be allocated at before its bytes arrive (see readBody).
func readFrame(r io.Reader, max int, buf, hdr []byte, trusted int) ([]byte, error) {
	max = frameLimit(max)
	if _, err := io.ReadFull(r, hdr[:HeaderSize]); err != nil {
		switch {
		case err == io.EOF:
			return nil, io.EOF
		case errors.Is(err, io.ErrUnexpectedEOF):
			return nil, fmt.Errorf("%w: in header: %w", ErrTruncated, io.ErrUnexpectedEOF)
		}
		return nil, fmt.Errorf("wire: read frame header: %w", err)
	}
	n := uint64(binary.BigEndian.Uint32(hdr))
	if n > uint64(max) {
		return nil, fmt.Errorf("%w: length %d, max %d", ErrFrameTooLarge, n, max)
	}
	body, err := readBody(r, int(n), buf, trusted)
	if err != nil {
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: body of %d bytes: %w", ErrTruncated, n, io.ErrUnexpectedEOF)
		}
		return nil, fmt.Errorf("wire: read frame body: %w", err)
	}
	return body, nil
}

// readBody reads exactly n bytes: into buf when it is large enough, else
// into a pooled buffer (bigbuf.go) when one is free, else into a slice
// grown only as data arrives, from trusted bytes (a size this sender has
// already filled with data, so a lie costs no more than it sent before)
// or growStep; when it has to grow, its last growth is rounded up to its
// pool class so that it can be pooled after use. Memory that is neither pooled nor backed by
// data received stays below about four times what was sent.
func readBody(r io.Reader, n int, buf []byte, trusted int) ([]byte, error) {
	if n <= cap(buf) {
		b := buf[:n]
		_, err := io.ReadFull(r, b)
		return b, err
	}
	if b := getBig(n); b != nil {
		if _, err := io.ReadFull(r, b); err != nil {
			putBig(b)
			return nil, err
		}
		return b, nil
	}
	// A body allocated whole at once gets exactly its size: it may be kept
	// (Conn.KeepBody) for as long as its values live.
	b := make([]byte, 0, min(n, max(growStep, trusted)))
	for {
		got := len(b)
		b = b[:min(cap(b), n)]
		if _, err := io.ReadFull(r, b[got:]); err != nil {
			return nil, err
		}
		if len(b) == n {
			return b, nil
		}
		next := min(n, 2*len(b))
		if next == n {
			next = pooledCap(n)
		}
		nb := make([]byte, len(b), next)
		copy(nb, b)
		b = nb
	}
}
