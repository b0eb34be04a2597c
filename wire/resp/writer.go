package resp

// writer.go owns Writer, the reply writer: simple strings, errors,
// integers, bulk strings, nulls, arrays and maps, in RESP2 or, after
// SetProto(3), RESP3 (where null and maps have types of their own). Not safe for concurrent use:
// the proxy's connection writer goroutine (conn.writeLoop) alone uses one.

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
)

// Writer writes replies. Replies are buffered until Flush. Once a write
// fails, every later call returns that error.
type Writer struct {
	bw    *bufio.Writer
	buf   []byte
	err   error
	proto int // 2 or 3
}

// NewWriter returns a Writer of replies to bw.
func NewWriter(bw *bufio.Writer) *Writer {
	return &Writer{bw: bw, buf: make([]byte, 0, 64), proto: 2}
}

// SetProto makes the replies from now on RESP2 (2) or RESP3 (3), as a
// client's HELLO asked.
func (w *Writer) SetProto(v int) {
	if v == 2 || v == 3 {
		w.proto = v
	}
}

// Proto returns the protocol version replies are written in.
func (w *Writer) Proto() int { return w.proto }

// Flush writes the buffered replies out.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if err := w.bw.Flush(); err != nil {
		w.err = fmt.Errorf("resp: flush replies: %w", err)
	}
	return w.err
}

// Buffered returns how many reply bytes await Flush.
func (w *Writer) Buffered() int { return w.bw.Buffered() }

func (w *Writer) write(b []byte) error {
	if w.err != nil {
		return w.err
	}
	if _, err := w.bw.Write(b); err != nil {
		w.err = fmt.Errorf("resp: write reply: %w", err)
	}
	return w.err
}

func (w *Writer) writeBuf() error {
	err := w.write(w.buf)
	w.buf = w.buf[:0]
	return err
}

// clean replaces CR and LF, which would end a simple string or an error
// early, by spaces.
func clean(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}

// Simple writes "+s" (CR and LF in s become spaces).
func (w *Writer) Simple(s string) error {
	w.buf = append(w.buf, '+')
	w.buf = append(w.buf, clean(s)...)
	w.buf = append(w.buf, "\r\n"...)
	return w.writeBuf()
}

// OK writes "+OK".
func (w *Writer) OK() error { return w.Simple("OK") }

// Error writes "-<code> <msg>": code is Redis's error word (ERR,
// WRONGTYPE, NOPROTO) or synod's (UNAVAILABLE, BUSY, TIMEOUT, CONFLICT).
func (w *Writer) Error(code, msg string) error {
	w.buf = append(w.buf, '-')
	w.buf = append(w.buf, code...)
	if msg != "" {
		w.buf = append(w.buf, ' ')
		w.buf = append(w.buf, clean(msg)...)
	}
	w.buf = append(w.buf, "\r\n"...)
	return w.writeBuf()
}

// Int writes ":n".
func (w *Writer) Int(n int64) error {
	w.buf = append(w.buf, ':')
	w.buf = strconv.AppendInt(w.buf, n, 10)
	w.buf = append(w.buf, "\r\n"...)
	return w.writeBuf()
}

// Bulk writes "$<len>", b and "\r\n".
func (w *Writer) Bulk(b []byte) error {
	w.buf = append(w.buf, '$')
	w.buf = strconv.AppendInt(w.buf, int64(len(b)), 10)
	w.buf = append(w.buf, "\r\n"...)
	w.writeBuf()
	w.write(b)
	return w.write(crlf)
}

var crlf = []byte("\r\n")

// BulkString writes s as a bulk string.
func (w *Writer) BulkString(s string) error {
	w.buf = append(w.buf, '$')
	w.buf = strconv.AppendInt(w.buf, int64(len(s)), 10)
	w.buf = append(w.buf, "\r\n"...)
	w.buf = append(w.buf, s...)
	w.buf = append(w.buf, "\r\n"...)
	return w.writeBuf()
}

// Null writes a null (a missing key): the null bulk string "$-1" in
// RESP2, "_" in RESP3.
func (w *Writer) Null() error {
	if w.proto == 3 {
		w.buf = append(w.buf, "_\r\n"...)
	} else {
		w.buf = append(w.buf, "$-1\r\n"...)
	}
	return w.writeBuf()
}

// NullArray writes a null where an array was expected: "*-1" in RESP2,
// "_" in RESP3.
func (w *Writer) NullArray() error {
	if w.proto == 3 {
		w.buf = append(w.buf, "_\r\n"...)
	} else {
		w.buf = append(w.buf, "*-1\r\n"...)
	}
	return w.writeBuf()
}

// Map writes the header of a map of n pairs: "%n" in RESP3, an array of
// 2n elements in RESP2; the caller writes the n keys and values after it.
func (w *Writer) Map(n int) error {
	if w.proto == 3 {
		w.buf = append(w.buf, '%')
		w.buf = strconv.AppendInt(w.buf, int64(n), 10)
		w.buf = append(w.buf, "\r\n"...)
		return w.writeBuf()
	}
	return w.Array(2 * n)
}

// Array writes the header of an array of n elements; the caller writes the
// n elements after it.
func (w *Writer) Array(n int) error {
	w.buf = append(w.buf, '*')
	w.buf = strconv.AppendInt(w.buf, int64(n), 10)
	w.buf = append(w.buf, "\r\n"...)
	return w.writeBuf()
}

// Strings writes an array of bulk strings.
func (w *Writer) Strings(ss []string) error {
	w.Array(len(ss))
	for _, s := range ss {
		w.BulkString(s)
	}
	return w.err
}
