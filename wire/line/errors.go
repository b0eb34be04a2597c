package line

// This file owns the protocol's error codes and errors: the sentinels,
// ProtoError (a request the server refuses) and ServerError (an ERR or
// NOT_FOUND reply the client read), and which are fatal or transient.
// Plain values, safe from any goroutine.

import (
	"errors"
	"fmt"
)

// Codes of the line protocol. All but CodeNotFound appear as the <CODE> of an
// "ERR <CODE> <message>" reply; CodeNotFound is the code a ServerError carries
// for the NOT_FOUND reply.
const (
	// CodeBadRequest: the request was malformed. Permanent.
	CodeBadRequest = "BAD_REQUEST"
	// CodeTooLarge: a line or value over the limits. Permanent.
	CodeTooLarge = "TOO_LARGE"
	// CodeConflict: a CAS found another version. Permanent.
	CodeConflict = "CONFLICT"
	// CodeUnavailable: no master within the hold window; nothing applied. Transient.
	CodeUnavailable = "UNAVAILABLE"
	// CodeBusy: too many connections or requests in flight. Transient.
	CodeBusy = "BUSY"
	// CodeTimeout: the requested index was not reached in time. Transient.
	CodeTimeout = "TIMEOUT"
	// CodeInternal: a bug on the server side.
	CodeInternal = "INTERNAL"
	// CodeNoPerm: the connection is not authenticated, or its user may
	// not do this (or AUTH failed). Permanent for this connection's user.
	CodeNoPerm = "NOPERM"
	// CodeNotFound: the key does not exist (the NOT_FOUND reply).
	CodeNotFound = "NOT_FOUND"
	// CodeCompacted: a WATCH FROM an index older than the history kept;
	// the message starts with the oldest index that can be watched from.
	// Permanent for that index: read the state, then watch from there.
	CodeCompacted = "COMPACTED"
	// CodeSlow: a watch was cut because its client did not read its
	// events fast enough (a CANCELED line's code). Resume it.
	CodeSlow = "SLOW"
)

// Sentinel errors, testable with errors.Is on a *ProtoError (server side) or a
// *ServerError (client side) of the matching code.
var (
	// ErrBadRequest is matched by errors with code BAD_REQUEST.
	ErrBadRequest = errors.New("line: bad request")
	// ErrTooLarge is matched by errors with code TOO_LARGE, and wraps the
	// client's refusal of a reply over its limits.
	ErrTooLarge = errors.New("line: too large")
	// ErrLineTooLong is matched by the fatal TOO_LARGE ProtoError returned
	// when a request line exceeds Limits.MaxLine.
	ErrLineTooLong = errors.New("line: request line too long")
	// ErrInvalidKey is matched by the BAD_REQUEST ProtoError for a bad key and
	// returned by AppendRequest and the Client for a key no server accepts.
	ErrInvalidKey = errors.New("line: invalid key")
	// ErrNotFound is matched by the ServerError for a NOT_FOUND reply.
	ErrNotFound = errors.New("line: not found")
	// ErrConflict is matched by the ServerError for ERR CONFLICT; its Version
	// field holds the file's current version.
	ErrConflict = errors.New("line: conflict")
	// ErrUnavailable is matched by the ServerError for ERR UNAVAILABLE.
	ErrUnavailable = errors.New("line: unavailable")
	// ErrBusy is matched by the ServerError for ERR BUSY.
	ErrBusy = errors.New("line: busy")
	// ErrTimeout is matched by the ServerError for ERR TIMEOUT.
	ErrTimeout = errors.New("line: timeout")
	// ErrInternal is matched by the ServerError for ERR INTERNAL.
	ErrInternal = errors.New("line: internal error")
	// ErrNoPerm is matched by the ServerError for ERR NOPERM.
	ErrNoPerm = errors.New("line: permission denied")
	// ErrCompacted is matched by the ServerError for ERR COMPACTED: a
	// WATCH FROM an index the server's history no longer holds.
	ErrCompacted = errors.New("line: watch history compacted")
	// ErrWatchCanceled is returned by Watch.Next when the server cut the
	// watch (a CANCELED line); the WatchMessage says where to resume.
	ErrWatchCanceled = errors.New("line: watch canceled")

	// ErrBadReply is returned by the Client when a server's reply does not
	// follow the protocol; the connection is unusable afterwards.
	ErrBadReply = errors.New("line: malformed reply")
	// ErrClosed is returned by Client methods after Close.
	ErrClosed = errors.New("line: client closed")
	// ErrPipelineBusy is returned by the Client's request methods while
	// replies to requests queued with Send have not all been received.
	ErrPipelineBusy = errors.New("line: pipelined replies outstanding")
	// ErrNothingPending is returned by Client.Recv when no sent request
	// awaits a reply.
	ErrNothingPending = errors.New("line: no request awaiting a reply")
)

// codeSentinel maps a protocol code to the sentinel errors.Is matches it with.
func codeSentinel(code string) error {
	switch code {
	case CodeBadRequest:
		return ErrBadRequest
	case CodeTooLarge:
		return ErrTooLarge
	case CodeConflict:
		return ErrConflict
	case CodeUnavailable:
		return ErrUnavailable
	case CodeBusy:
		return ErrBusy
	case CodeTimeout:
		return ErrTimeout
	case CodeInternal:
		return ErrInternal
	case CodeNoPerm:
		return ErrNoPerm
	case CodeNotFound:
		return ErrNotFound
	case CodeCompacted:
		return ErrCompacted
	}
	return nil
}

// ProtoError is a request the Reader refused. The server answers it with
// "ERR <Code> <Msg>"; if Fatal, the stream cannot be resynchronised and the
// server closes the connection after answering.
type ProtoError struct {
	Code  string // CodeBadRequest, CodeTooLarge, or CodeBusy (a block SetAdmit refused)
	Msg   string // one line for the client
	Fatal bool   // the Reader is unusable; every later ReadRequest returns this error

	cause error // a finer sentinel (ErrLineTooLong, ErrInvalidKey) or nil
}

func (e *ProtoError) Error() string { return "line: " + e.Code + " " + e.Msg }

// Is matches the sentinel of e's code (ErrBadRequest, ErrTooLarge).
func (e *ProtoError) Is(target error) bool {
	s := codeSentinel(e.Code)
	return s != nil && s == target
}

// Unwrap returns the finer sentinel, if any.
func (e *ProtoError) Unwrap() error { return e.cause }

func badRequest(format string, args ...any) *ProtoError {
	return &ProtoError{Code: CodeBadRequest, Msg: fmt.Sprintf(format, args...)}
}

// IsFatal reports whether err, returned by Reader.ReadRequest, leaves the
// stream unusable: true for every error but a non-fatal *ProtoError (and
// false for nil).
func IsFatal(err error) bool {
	if err == nil {
		return false
	}
	var pe *ProtoError
	if errors.As(err, &pe) {
		return pe.Fatal
	}
	return true
}

// ServerError is an "ERR <CODE> <message>" or NOT_FOUND reply as the Client
// returns it. The connection stays usable.
type ServerError struct {
	Code    string // e.g. CodeConflict; unknown codes are kept as sent
	Msg     string
	Version uint64 // CONFLICT: the file's current version, parsed from "version <v>"
}

func (e *ServerError) Error() string {
	if e.Msg == "" {
		return "line: server: " + e.Code
	}
	return "line: server: " + e.Code + " " + e.Msg
}

// Is matches the sentinel of e's code (ErrNotFound, ErrConflict, ...).
func (e *ServerError) Is(target error) bool {
	s := codeSentinel(e.Code)
	return s != nil && s == target
}

// Transient reports whether the server promised that nothing was applied and a
// retry may succeed: UNAVAILABLE, BUSY and TIMEOUT.
func (e *ServerError) Transient() bool {
	switch e.Code {
	case CodeUnavailable, CodeBusy, CodeTimeout:
		return true
	}
	return false
}

// IsTransient reports whether err holds a transient *ServerError. Connection
// errors are not transient: a write whose connection broke may have been
// applied.
func IsTransient(err error) bool {
	var se *ServerError
	return errors.As(err, &se) && se.Transient()
}
