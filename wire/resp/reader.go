package resp

// reader.go owns Reader, the request parser, and Limits, the bounds on
// everything a client controls. Not safe for concurrent use: the proxy's
// connection reader goroutine (conn.readLoop) alone uses one.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Default limits.
const (
	DefaultMaxArgs    = 1 << 16  // elements of one request array
	DefaultMaxBulk    = 1 << 20  // bytes of one bulk string (the proxy passes its --max-value)
	DefaultMaxInline  = 64 << 10 // bytes of an inline request line or a "*"/"$" header line
	DefaultMaxRequest = 8 << 20  // bytes of all bulk strings of one request together
)

// Limits bound what a Reader accepts. A zero field takes its default.
type Limits struct {
	MaxArgs    int // elements of a request array
	MaxBulk    int // bytes of one bulk string
	MaxInline  int // bytes of an inline request or a header line
	MaxRequest int // bytes of all bulk strings of one request
}

func (l Limits) withDefaults() Limits {
	if l.MaxArgs <= 0 {
		l.MaxArgs = DefaultMaxArgs
	}
	if l.MaxBulk <= 0 {
		l.MaxBulk = DefaultMaxBulk
	}
	if l.MaxInline <= 0 {
		l.MaxInline = DefaultMaxInline
	}
	if l.MaxRequest <= 0 {
		l.MaxRequest = max(DefaultMaxRequest, l.MaxBulk)
	}
	return l
}

// ErrProtocol is matched (errors.Is) by every error the Reader returns for
// input that breaks RESP. After one the stream cannot be resynchronised:
// answer the error (Error's text is what Redis says) and close.
var ErrProtocol = errors.New("resp: protocol error")

// ProtoError is a request the Reader refused. Msg is the reply text after
// "-ERR ", in Redis's words.
type ProtoError struct {
	Msg string
}

func (e *ProtoError) Error() string { return "resp: " + e.Msg }

// Unwrap makes a ProtoError match ErrProtocol.
func (e *ProtoError) Unwrap() error { return ErrProtocol }

func protoErr(format string, args ...any) error {
	return &ProtoError{Msg: "Protocol error: " + fmt.Sprintf(format, args...)}
}

// Reader parses requests from a client.
type Reader struct {
	br    *bufio.Reader
	lim   Limits
	acc   []byte // a header or inline line longer than br's buffer
	admit func(n int) error
}

// RefusedError is a request the admission function (SetAdmit) refused: it
// was read to its end and dropped, so the stream is still in sync and the
// connection can go on. Err is what admit returned.
type RefusedError struct {
	Err error
}

func (e *RefusedError) Error() string { return "resp: request refused: " + e.Err.Error() }

// Unwrap returns what admit returned.
func (e *RefusedError) Unwrap() error { return e.Err }

// SetAdmit makes the Reader ask f before it allocates a bulk string of n
// bytes, so a server can count them against a budget before they are
// read. Once f refuses one, the rest of that request is read and dropped
// and ReadRequest returns a *RefusedError.
func (r *Reader) SetAdmit(f func(n int) error) { r.admit = f }

// NewReader returns a Reader of br within lim.
func NewReader(br *bufio.Reader, lim Limits) *Reader {
	return &Reader{br: br, lim: lim.withDefaults()}
}

// Buffered returns how many bytes of later requests are already read.
func (r *Reader) Buffered() int { return r.br.Buffered() }

// ReadRequest returns the next request's arguments, the command name
// first; never an empty slice. The slices are the request's own (not
// reused). A *ProtoError (matching ErrProtocol) means the input broke the
// protocol or a limit; any other error is the connection's (io.EOF at a
// request boundary means the client left).
func (r *Reader) ReadRequest() ([][]byte, error) {
	for {
		b, err := r.br.Peek(1)
		if err != nil {
			return nil, err
		}
		if b[0] == '*' {
			args, err := r.multibulk()
			if err != nil || len(args) > 0 {
				return args, err
			}
			continue // "*0" and "*-1" are empty requests; Redis skips them too
		}
		l, err := r.line()
		if err != nil {
			return nil, err
		}
		args, err := splitInline(l)
		if err != nil {
			return nil, err
		}
		if len(args) > r.lim.MaxArgs {
			return nil, protoErr("invalid multibulk length")
		}
		if len(args) > 0 {
			return args, nil
		}
		// A blank line is skipped, as Redis does.
	}
}

// line reads one line up to "\n", without its "\r\n" or "\n".
func (r *Reader) line() ([]byte, error) {
	r.acc = r.acc[:0]
	for {
		frag, err := r.br.ReadSlice('\n')
		if len(r.acc)+len(frag) > r.lim.MaxInline+2 {
			return nil, protoErr("too big inline request")
		}
		switch {
		case err == nil:
			var l []byte
			if len(r.acc) == 0 {
				l = frag
			} else {
				r.acc = append(r.acc, frag...)
				l = r.acc
			}
			l = l[:len(l)-1]
			if n := len(l); n > 0 && l[n-1] == '\r' {
				l = l[:n-1]
			}
			if len(l) > r.lim.MaxInline {
				return nil, protoErr("too big inline request")
			}
			return l, nil
		case errors.Is(err, bufio.ErrBufferFull):
			r.acc = append(r.acc, frag...)
		case err == io.EOF && len(r.acc)+len(frag) > 0:
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

// header reads a "<kind><n>" line and returns n; -1 stands for a null.
func (r *Reader) header(kind byte, what string) (int, error) {
	l, err := r.line()
	if err != nil {
		if errors.Is(err, ErrProtocol) {
			return 0, protoErr("too big %s header", what)
		}
		return 0, unexpected(err)
	}
	if len(l) == 0 || l[0] != kind {
		got := "end of line"
		if len(l) > 0 {
			got = fmt.Sprintf("'%c'", l[0])
		}
		return 0, protoErr("expected '%c', got %s", kind, got)
	}
	n, ok := parseInt(l[1:])
	if !ok {
		return 0, protoErr("invalid %s length", what)
	}
	return n, nil
}

// multibulk reads "*<n>" and n bulk strings; none for an empty array.
func (r *Reader) multibulk() ([][]byte, error) {
	n, err := r.header('*', "multibulk")
	if err != nil {
		return nil, err
	}
	if n > r.lim.MaxArgs {
		return nil, protoErr("invalid multibulk length")
	}
	if n <= 0 {
		return nil, nil
	}
	args := make([][]byte, 0, min(n, 1024))
	total := 0
	var refused error
	for range n {
		size, err := r.header('$', "bulk")
		if err != nil {
			return nil, err
		}
		if size < 0 || size > r.lim.MaxBulk {
			return nil, protoErr("invalid bulk length")
		}
		if total += size; total > r.lim.MaxRequest {
			return nil, protoErr("request over %d bytes", r.lim.MaxRequest)
		}
		if refused == nil && r.admit != nil {
			refused = r.admit(size)
		}
		if refused != nil {
			if err := r.drop(size); err != nil {
				return nil, err
			}
			continue
		}
		arg := make([]byte, size+2)
		if _, err := io.ReadFull(r.br, arg); err != nil {
			return nil, unexpected(err)
		}
		if arg[size] != '\r' || arg[size+1] != '\n' {
			return nil, protoErr("bulk string not followed by CRLF")
		}
		args = append(args, arg[:size:size])
	}
	if refused != nil {
		return nil, &RefusedError{Err: refused}
	}
	return args, nil
}

// drop reads a bulk string of size bytes and its CRLF without keeping it.
func (r *Reader) drop(size int) error {
	if _, err := r.br.Discard(size); err != nil {
		return unexpected(err)
	}
	var crlf [2]byte
	if _, err := io.ReadFull(r.br, crlf[:]); err != nil {
		return unexpected(err)
	}
	if crlf != [2]byte{'\r', '\n'} {
		return protoErr("bulk string not followed by CRLF")
	}
	return nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// parseInt parses a decimal integer of at most 18 digits, optionally
// negative.
func parseInt(b []byte) (int, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg, b = true, b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// splitInline splits an inline request into words: spaces and tabs
// separate them; "..." allows \n \r \t \b \a \\ \" and \xHH escapes;
// '...' allows \'. A closing quote must be followed by a space or the end.
func splitInline(l []byte) ([][]byte, error) {
	var args [][]byte
	i := 0
	for {
		for i < len(l) && (l[i] == ' ' || l[i] == '\t') {
			i++
		}
		if i == len(l) {
			return args, nil
		}
		var w []byte
		switch l[i] {
		case '"', '\'':
			q := l[i]
			i++
			closed := false
			for i < len(l) && !closed {
				c := l[i]
				switch {
				case c == '\\' && q == '"' && i+3 < len(l) && l[i+1] == 'x' && isHex(l[i+2]) && isHex(l[i+3]):
					w = append(w, unhex(l[i+2])<<4|unhex(l[i+3]))
					i += 4
				case c == '\\' && q == '"' && i+1 < len(l):
					w = append(w, unescape(l[i+1]))
					i += 2
				case c == '\\' && q == '\'' && i+1 < len(l) && l[i+1] == '\'':
					w = append(w, '\'')
					i += 2
				case c == q:
					closed = true
					i++
				default:
					w = append(w, c)
					i++
				}
			}
			if !closed || (i < len(l) && l[i] != ' ' && l[i] != '\t') {
				return nil, protoErr("unbalanced quotes in request")
			}
		default:
			j := i
			for j < len(l) && l[j] != ' ' && l[j] != '\t' {
				j++
			}
			w = bytes.Clone(l[i:j])
			i = j
		}
		if w == nil {
			w = []byte{}
		}
		args = append(args, w)
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

func unescape(c byte) byte {
	switch c {
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	case 'b':
		return '\b'
	case 'a':
		return '\a'
	}
	return c
}
