package line

// This file owns the large-file forms of the protocol: the PUTFILE request
// (a line, then the file's raw bytes, which the server reads in pieces
// through Reader.Body rather than as one value), GET ... RANGE and its
// RANGE reply, and the Client's PutFile and GetRange. Parsing runs on the
// reading goroutine of a server connection; the Client's methods on the
// caller's goroutine, under the Client's locks.
//
//	PUTFILE <key> <size> <sha256> [VERSION <v>]\r\n<size raw bytes>\r\n   ->  OK <index> | ERR CONFLICT version <v>
//	GET <key> [MIN <index>] RANGE <offset> <length>          ->  RANGE <n> <version> <size> <sha256>\r\n<n bytes>\r\n
//
// size is 1 to Limits.MaxFileSize; sha256 is the whole file's SHA-256 in
// 64 lowercase hex digits, checked by the server once every byte is in. A
// RANGE reply carries at most MaxRange bytes (fewer at the end of the
// file), with the file's version, total size and SHA-256, so a client
// reading a file piece by piece can tell that every piece came from the
// same version and check the whole at the end.

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"
)

// MaxRange is the most bytes one RANGE reply carries.
const MaxRange = 8 << 20

// SumLen is the length of a SHA-256 in hex.
const SumLen = 64

// ValidSum reports whether s is 64 lowercase hex digits.
func ValidSum(s string) bool {
	if len(s) != SumLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// parsePutFile parses "<key> <size> <sha256> [VERSION <v>]". The raw bytes follow the
// line, so any refusal is fatal: the stream cannot be trusted to hold
// what the line says.
func (r *Reader) parsePutFile(rest []byte) (Request, error) {
	fatal := func(code, format string, args ...any) (Request, error) {
		return Request{}, &ProtoError{Code: code, Msg: fmt.Sprintf(format, args...), Fatal: true}
	}
	const usage = "usage: PUTFILE <key> <size> <sha256> [VERSION <v>], then the bytes and \\r\\n"
	var args [5][]byte
	n := fields(rest, args[:])
	if n != 3 && (n != 5 || !equalFold(args[3], "VERSION")) {
		return fatal(CodeBadRequest, usage)
	}
	key, perr := r.key(args[0])
	if perr != nil {
		perr.Fatal = true
		return Request{}, perr
	}
	size, ok := parseUint(args[1])
	switch {
	case !ok:
		return fatal(CodeBadRequest, "PUTFILE size %.32q is not a decimal number", args[1])
	case size == 0:
		return fatal(CodeBadRequest, "PUTFILE of an empty file: use PUT")
	case size > uint64(r.lim.MaxFileSize):
		return fatal(CodeTooLarge, "file of %d bytes over the maximum file size %d", size, r.lim.MaxFileSize)
	}
	if !ValidSum(string(args[2])) {
		return fatal(CodeBadRequest, "PUTFILE sha256 %.80q is not 64 lowercase hex digits", args[2])
	}
	req := Request{Cmd: CmdPutFile, Key: key, Size: size, Sum: string(args[2])}
	if n == 5 {
		if req.Version, ok = parseUint(args[4]); !ok {
			return fatal(CodeBadRequest, "PUTFILE VERSION %.32q is not a decimal number", args[4])
		}
		req.CAS = true
	}
	return req, nil
}

// parseGetRange parses the fields of "GET <key> [MIN <index>] RANGE
// <offset> <length>".
func (r *Reader) parseGetRange(args [][]byte) (Request, error) {
	const usage = "usage: GET <key> [MIN <index>] RANGE <offset> <length>"
	n := len(args)
	if n != 4 && n != 6 {
		return Request{}, badRequest(usage)
	}
	key, perr := r.key(args[0])
	if perr != nil {
		return Request{}, perr
	}
	req := Request{Cmd: CmdGetRange, Key: key}
	if n == 6 {
		if !equalFold(args[1], "MIN") {
			return Request{}, badRequest(usage)
		}
		v, ok := parseUint(args[2])
		if !ok {
			return Request{}, badRequest("MIN index %.32q is not a decimal number", args[2])
		}
		req.MinIndex = v
	}
	var ok1, ok2 bool
	req.Offset, ok1 = parseUint(args[n-2])
	req.Length, ok2 = parseUint(args[n-1])
	if !ok1 || !ok2 {
		return Request{}, badRequest("RANGE offset and length are decimal numbers")
	}
	if req.Length == 0 || req.Length > MaxRange {
		return Request{}, badRequest("RANGE length %d: want 1 to %d", req.Length, MaxRange)
	}
	return req, nil
}

// Body returns a reader of the n raw bytes that follow a PUTFILE request
// line; read them all, then call EndBody. The bytes come straight from
// the connection's buffer: nothing is copied or held.
func (r *Reader) Body(n uint64) io.Reader { return io.LimitReader(r.br, int64(n)) }

// EndBody consumes the "\r\n" after a PUTFILE's bytes. Anything else is
// fatal, as after a block.
func (r *Reader) EndBody() error {
	if err := r.blockEnd(); err != nil {
		if IsFatal(err) {
			r.err = err
		}
		return err
	}
	return nil
}

// appendFileRequest encodes PUTFILE's line (the caller sends the bytes)
// and GET ... RANGE.
func appendFileRequest(dst []byte, req Request) ([]byte, error) {
	if !ValidKey(req.Key, 0) {
		return dst, fmt.Errorf("line: encode %s: key %.64q: %w: %w", req.Cmd, req.Key, ErrBadRequest, ErrInvalidKey)
	}
	if req.Cmd == CmdPutFile {
		if req.Size == 0 || !ValidSum(req.Sum) {
			return dst, fmt.Errorf("line: encode PUTFILE: want a size above 0 and a sha256 in hex: %w", ErrBadRequest)
		}
		dst = append(dst, "PUTFILE "...)
		dst = append(dst, req.Key...)
		dst = append(dst, ' ')
		dst = strconv.AppendUint(dst, req.Size, 10)
		dst = append(dst, ' ')
		dst = append(dst, req.Sum...)
		if req.CAS {
			dst = append(dst, " VERSION "...)
			dst = strconv.AppendUint(dst, req.Version, 10)
		}
		return append(dst, "\r\n"...), nil
	}
	if req.Length == 0 || req.Length > MaxRange {
		return dst, fmt.Errorf("line: encode GET RANGE: length %d, want 1 to %d: %w", req.Length, MaxRange, ErrBadRequest)
	}
	dst = append(dst, "GET "...)
	dst = append(dst, req.Key...)
	if req.MinIndex > 0 {
		dst = append(dst, " MIN "...)
		dst = strconv.AppendUint(dst, req.MinIndex, 10)
	}
	dst = append(dst, " RANGE "...)
	dst = strconv.AppendUint(dst, req.Offset, 10)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, req.Length, 10)
	return append(dst, "\r\n"...), nil
}

// Range writes "RANGE <n> <version> <size> <sha256>", the range's bytes
// and "\r\n", the reply to GET ... RANGE.
func (w *Writer) Range(value []byte, version, size uint64, sum string) error {
	w.buf = append(w.buf, "RANGE "...)
	w.buf = strconv.AppendUint(w.buf, uint64(len(value)), 10)
	w.buf = append(w.buf, ' ')
	w.buf = strconv.AppendUint(w.buf, version, 10)
	w.buf = append(w.buf, ' ')
	w.buf = strconv.AppendUint(w.buf, size, 10)
	w.buf = append(w.buf, ' ')
	w.buf = append(w.buf, sum...)
	w.buf = append(w.buf, "\r\n"...)
	w.writeBuf()
	w.write(value)
	return w.writeString("\r\n")
}

// rangeReply parses what follows "RANGE": "<n> <version> <size> <sha256>",
// then the bytes.
func (rr *replyReader) rangeReply(rep Reply, rest []byte) (Reply, error) {
	var f [4][]byte
	if fields(rest, f[:]) != 4 {
		return Reply{}, badReply(CmdGetRange, "want RANGE <n> <version> <size> <sha256>")
	}
	n, ok1 := parseUint(f[0])
	ver, ok2 := parseUint(f[1])
	size, ok3 := parseUint(f[2])
	if !ok1 || !ok2 || !ok3 || !ValidSum(string(f[3])) || n > MaxRange || n > size {
		return Reply{}, badReply(CmdGetRange, "bad RANGE line %.100q", rest)
	}
	if n > uint64(rr.opts.MaxValue) {
		return Reply{}, fmt.Errorf("line: reply to GET RANGE: %d bytes over the client's limit %d: %w", n, rr.opts.MaxValue, ErrTooLarge)
	}
	rep.Version, rep.Len, rep.Sum = ver, size, string(f[3])
	rep.Value = make([]byte, n)
	if _, err := io.ReadFull(rr.br, rep.Value); err != nil {
		return Reply{}, fmt.Errorf("line: reply to GET RANGE: read bytes: %w", unexpected(err))
	}
	ok, err := readEOL(rr.br)
	if err != nil {
		return Reply{}, fmt.Errorf("line: reply to GET RANGE: %w", err)
	}
	if !ok {
		return Reply{}, badReply(CmdGetRange, "bytes not followed by \\r\\n")
	}
	return rep, nil
}

// GetRange reads up to length bytes of key at offset: the reply's Value
// holds them, Version the file's version, Len its size and Sum its
// SHA-256.
func (c *Client) GetRange(ctx context.Context, key string, offset, length, minIndex uint64) (Reply, error) {
	return c.Do(ctx, Request{Cmd: CmdGetRange, Key: key, Offset: offset, Length: length, MinIndex: minIndex})
}

// PutFile uploads size bytes read from body as key, whose SHA-256 is sum
// (hex), and returns the write's index. body must yield exactly size
// bytes: fewer is an error and the connection is closed, so the server
// sees a short upload and stores nothing. ctx bounds the whole upload.
func (c *Client) PutFile(ctx context.Context, key string, size uint64, sum string, body io.Reader) (uint64, error) {
	return c.putFile(ctx, Request{Cmd: CmdPutFile, Key: key, Size: size, Sum: sum}, body)
}

// PutFileCAS is PutFile only if key is at version (0: must not exist);
// otherwise the error matches ErrConflict.
func (c *Client) PutFileCAS(ctx context.Context, key string, version, size uint64, sum string, body io.Reader) (uint64, error) {
	return c.putFile(ctx, Request{Cmd: CmdPutFile, Key: key, Size: size, Sum: sum, CAS: true, Version: version}, body)
}

func (c *Client) putFile(ctx context.Context, req Request, body io.Reader) (uint64, error) {
	key, size := req.Key, req.Size
	c.callMu.Lock()
	defer c.callMu.Unlock()
	if err := c.broken(); err != nil {
		return 0, err
	}
	if c.Pending() > 0 {
		return 0, ErrPipelineBusy
	}
	deadline, _ := ctx.Deadline()
	if err := c.conn.SetDeadline(deadline); err != nil {
		return 0, c.fail(fmt.Errorf("line: set deadline: %w", err))
	}
	var (
		gmu  sync.Mutex
		done bool
	)
	stop := context.AfterFunc(ctx, func() {
		gmu.Lock()
		defer gmu.Unlock()
		if !done {
			_ = c.conn.SetDeadline(time.Unix(1, 0))
		}
	})
	defer func() {
		gmu.Lock()
		done = true
		gmu.Unlock()
		stop()
		if c.broken() == nil {
			_ = c.conn.SetDeadline(time.Time{})
		}
	}()

	head, err := AppendRequest(nil, req)
	if err != nil {
		return 0, err
	}
	c.wmu.Lock()
	_, err = c.bw.Write(head)
	if err == nil {
		var n int64
		n, err = io.CopyN(c.bw, body, int64(size))
		if err != nil && n < int64(size) {
			err = fmt.Errorf("line: PUTFILE: the source gave %d of %d bytes: %w", n, size, err)
		}
	}
	if err == nil {
		_, err = c.bw.WriteString("\r\n")
	}
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil {
		c.wmu.Unlock()
		return 0, c.fail(fmt.Errorf("line: PUTFILE %s: %w", key, err))
	}
	c.push(CmdPutFile)
	c.wmu.Unlock()
	rep, err := c.Recv()
	if err != nil {
		if cerr := ctx.Err(); cerr != nil && !isServerError(err) {
			return 0, fmt.Errorf("line: PUTFILE: %w: %w", cerr, err)
		}
		return 0, err
	}
	return rep.Index, nil
}
