package wire

// This file owns wire's errors: the sentinels callers test with errors.Is,
// the handshake's refusal codes and RefusedError. Plain values, safe from
// any goroutine.

import (
	"errors"
	"fmt"
)

// Sentinel errors, testable with errors.Is. Returned errors wrap them with
// context.
var (
	// ErrFrameTooLarge is returned when a frame's length is above the
	// maximum: by a reader before it allocates anything (the connection is
	// then closed), and by Send for a message that would not fit (nothing is
	// written and the connection stays usable).
	ErrFrameTooLarge = errors.New("wire: frame too large")

	// ErrTruncated is returned when the stream ends inside a frame, in its
	// length header or in its body. A stream that ends cleanly between
	// frames gives io.EOF instead. It also wraps io.ErrUnexpectedEOF.
	ErrTruncated = errors.New("wire: truncated frame")

	// ErrBadBody is returned when a frame's body is not a well-formed
	// envelope, when a body does not decode into the type asked for, and
	// when a handshake frame is not the one expected.
	ErrBadBody = errors.New("wire: bad body")

	// ErrVersion is returned when the two sides of a handshake speak
	// different protocol versions.
	ErrVersion = errors.New("wire: protocol version mismatch")

	// ErrClusterMismatch is returned when the two sides of a handshake
	// belong to different clusters.
	ErrClusterMismatch = errors.New("wire: cluster id mismatch")

	// ErrRefused is returned by Dial when the peer refused the handshake.
	// The error is a *RefusedError carrying the peer's reason.
	ErrRefused = errors.New("wire: handshake refused")

	// ErrClosed is returned by a Conn after Close, and by Calls after the
	// connection they wait on died without a more precise error.
	ErrClosed = errors.New("wire: connection closed")
)

// refuseCode tells the dialer which check failed, so its error can match
// ErrVersion or ErrClusterMismatch as well as ErrRefused.
type refuseCode uint8

const (
	refuseOther refuseCode = iota
	refuseVersion
	refuseCluster
	refuseBadHello
)

func (c refuseCode) sentinel() error {
	switch c {
	case refuseVersion:
		return ErrVersion
	case refuseCluster:
		return ErrClusterMismatch
	case refuseBadHello:
		return ErrBadBody
	}
	return nil
}

// RefusedError is the error Dial returns when the peer refused the
// handshake. It matches ErrRefused, and also ErrVersion,
// ErrClusterMismatch or ErrBadBody when the peer said that was the cause.
type RefusedError struct {
	// Reason is the peer's explanation, as it sent it.
	Reason string
	code   refuseCode
}

// Error returns the peer's reason.
func (e *RefusedError) Error() string {
	return fmt.Sprintf("wire: handshake refused by peer: %s", e.Reason)
}

// Unwrap lets errors.Is match ErrRefused and the specific cause.
func (e *RefusedError) Unwrap() []error {
	if s := e.code.sentinel(); s != nil {
		return []error{ErrRefused, s}
	}
	return []error{ErrRefused}
}
