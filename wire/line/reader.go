package line

// This file owns Reader, the server's request parser: one request per line
// or block, within Limits, resynchronising after a refused one where it
// can. Not safe for concurrent use: the proxy's connection reader
// goroutine (readLoop) alone uses it.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Reader parses requests from a client's byte stream, within Limits. It is
// not safe for concurrent use.
type Reader struct {
	br    *bufio.Reader
	lim   Limits
	acc   []byte // collects lines longer than br's buffer
	err   error  // sticky fatal error
	admit AdmitFunc
}

// AdmitFunc decides whether a value block of n bytes may be read into
// memory, before a byte of it is: a server under a memory budget refuses
// what would exceed it. An error (its message is the reply's) makes the
// Reader drain the block without keeping it and answer ERR BUSY.
type AdmitFunc func(n int) error

// SetAdmit installs f to be asked before every value block within the
// limits is read; nil admits every block.
func (r *Reader) SetAdmit(f AdmitFunc) { r.admit = f }

// NewReader returns a Reader of requests from br. Zero fields of lim take
// their defaults. br's buffer size does not bound the line length; a few KiB
// is enough, and longer lines are collected up to lim.MaxLine.
func NewReader(br *bufio.Reader, lim Limits) *Reader {
	return &Reader{br: br, lim: lim.withDefaults()}
}

// Buffered returns how many bytes of input are already buffered. A server
// flushes its replies when this is 0: no pipelined request is waiting.
func (r *Reader) Buffered() int { return r.br.Buffered() }

// ReadRequest returns the next request, skipping blank lines. Its Key, Prefix
// and Value are the caller's to keep.
//
// Errors: io.EOF at a clean end of input; an error matching
// io.ErrUnexpectedEOF when input ends inside a line or block; a *ProtoError
// for a request the server answers with ERR (see IsFatal); or the underlying
// read error. After a fatal error every call returns that error.
func (r *Reader) ReadRequest() (Request, error) {
	if r.err != nil {
		return Request{}, r.err
	}
	req, err := r.readRequest()
	if IsFatal(err) {
		r.err = err
	}
	return req, err
}

func (r *Reader) readRequest() (Request, error) {
	for {
		line, err := readLine(r.br, r.lim.MaxLine, &r.acc)
		switch {
		case err == errLong:
			return Request{}, &ProtoError{
				Code:  CodeTooLarge,
				Msg:   fmt.Sprintf("request line over %d bytes", r.lim.MaxLine),
				Fatal: true,
				cause: ErrLineTooLong,
			}
		case err == io.EOF:
			if isBlank(line) {
				return Request{}, io.EOF
			}
			return Request{}, fmt.Errorf("line: read request: input ends inside a line: %w", io.ErrUnexpectedEOF)
		case err != nil:
			return Request{}, fmt.Errorf("line: read request: %w", err)
		}
		if isBlank(line) {
			continue
		}
		return r.parse(trimSpaces(line))
	}
}

// parse parses one non-blank request line, reading its block if it has one.
// line aliases the read buffer, so everything kept is copied before the block
// is read.
func (r *Reader) parse(line []byte) (Request, error) {
	tok, rest, _ := cut(line)
	if equalFold(tok, "MEMBER") {
		return parseMemberRequest(rest)
	}
	if isAuthWord(tok) {
		return parseAuthRequest(tok, rest)
	}
	cmd := lookupCmd(tok)
	if cmd == 0 {
		return Request{}, badRequest("unknown command %.32q (try HELP)", tok)
	}
	if cmd.hasValue() {
		return r.parseWrite(cmd, rest)
	}
	if cmd == CmdPutFile {
		return r.parsePutFile(rest)
	}

	if cmd == CmdWatch || cmd == CmdUnwatch {
		return r.parseWatch(cmd, rest)
	}
	var args [6][]byte
	n := fields(rest, args[:])
	req := Request{Cmd: cmd}
	switch cmd {
	case CmdDel, CmdStat:
		if n != 1 {
			return Request{}, badRequest("usage: %s <key>", cmd)
		}
		key, perr := r.key(args[0])
		if perr != nil {
			return Request{}, perr
		}
		req.Key = key
	case CmdGet:
		if n > 3 && n <= len(args) && equalFold(args[n-3], "RANGE") {
			return r.parseGetRange(args[:n])
		}
		if n != 1 && n != 3 {
			return Request{}, badRequest("usage: GET <key> [MIN <index>]")
		}
		key, perr := r.key(args[0])
		if perr != nil {
			return Request{}, perr
		}
		req.Key = key
		if n == 3 {
			if !equalFold(args[1], "MIN") {
				return Request{}, badRequest("usage: GET <key> [MIN <index>]")
			}
			v, ok := parseUint(args[2])
			if !ok {
				return Request{}, badRequest("MIN index %.32q is not a decimal number", args[2])
			}
			req.MinIndex = v
		}
	case CmdList:
		if n > 1 {
			return Request{}, badRequest("usage: LIST [<prefix>]")
		}
		if n == 1 {
			prefix, perr := r.key(args[0])
			if perr != nil {
				return Request{}, perr
			}
			req.Prefix = prefix
		}
	case CmdConsistency:
		if n != 1 {
			return Request{}, badRequest("usage: CONSISTENCY linearizable|session|stale")
		}
		l, ok := lookupLevel(args[0])
		if !ok {
			return Request{}, badRequest("unknown consistency level %.32q (want linearizable, session or stale)", args[0])
		}
		req.Level = l
	case CmdSnapshot:
		if n > 1 {
			return Request{}, badRequest("usage: SNAPSHOT [<chunk-bytes>]")
		}
		if n == 1 {
			v, ok := parseUint(args[0])
			if !ok || v < MinSnapshotChunk || v > MaxSnapshotChunk {
				return Request{}, badRequest("SNAPSHOT chunk %.32q: want %d to %d bytes", args[0], MinSnapshotChunk, MaxSnapshotChunk)
			}
			req.Chunk = v
		}
	default: // STATUS, STATS, PING, QUIT, HELP
		if n != 0 {
			return Request{}, badRequest("%s takes no arguments", cmd)
		}
	}
	return req, nil
}

// memberUsage is the reply to a MEMBER request that does not parse.
const memberUsage = "usage: MEMBER LIST | MEMBER ADD <id> <host:port> | MEMBER REMOVE <id> | MEMBER PROMOTE <id>"

// parseMemberRequest parses what follows "MEMBER": a sub-command and its
// arguments. None has a block, so a refusal leaves the stream in sync.
func parseMemberRequest(rest []byte) (Request, error) {
	var args [3][]byte
	n := fields(rest, args[:])
	if n == 0 {
		return Request{}, badRequest("%s", memberUsage)
	}
	cmd := lookupMemberCmd(args[0])
	want := 2 // REMOVE, PROMOTE: the id
	switch cmd {
	case CmdMemberList:
		want = 1
	case CmdMemberAdd:
		want = 3
	}
	if cmd == 0 || n != want {
		return Request{}, badRequest("%s", memberUsage)
	}
	req := Request{Cmd: cmd}
	if cmd.IsMemberChange() {
		id, ok := parseUint(args[1])
		if !ok || id == 0 {
			return Request{}, badRequest("member id %.32q is not a positive decimal number", args[1])
		}
		req.MemberID = id
	}
	if cmd == CmdMemberAdd {
		addr := string(args[2])
		if !ValidMemberAddr(addr) {
			return Request{}, badRequest("member address %.64q is not host:port (a host and a port in 1..65535)", args[2])
		}
		req.MemberAddr = addr
	}
	return req, nil
}

// parseWrite parses the arguments of PUT, APPEND and CAS. When the value is a
// block it is read (or drained) even if an earlier argument was bad, so the
// next request starts where the client thinks it does.
func (r *Reader) parseWrite(cmd Cmd, rest []byte) (Request, error) {
	req := Request{Cmd: cmd}
	var perr *ProtoError // the first bad argument, reported after the block

	keyTok, rest, sep := cut(trimSpaces(rest))
	if len(keyTok) == 0 {
		return Request{}, badRequest("%s", writeUsage(cmd))
	}
	req.Key, perr = r.key(keyTok)
	if cmd == CmdCAS {
		if !sep {
			return Request{}, badRequest("%s", writeUsage(cmd))
		}
		var verTok []byte
		verTok, rest, sep = cut(trimSpaces(rest))
		v, ok := parseUint(verTok)
		if !ok && perr == nil {
			perr = badRequest("version %.32q is not a decimal number", verTok)
		}
		req.Version = v
	}
	if !sep {
		return Request{}, badRequest("missing value; %s", writeUsage(cmd))
	}

	if len(rest) == 0 || rest[0] != '$' {
		if perr != nil {
			return Request{}, perr
		}
		if len(rest) > r.lim.MaxValue {
			return Request{}, &ProtoError{Code: CodeTooLarge, Msg: fmt.Sprintf("value over %d bytes", r.lim.MaxValue)}
		}
		req.Value = append(make([]byte, 0, len(rest)), rest...)
		return req, nil
	}

	if !allDigits(rest[1:]) {
		if perr != nil {
			return Request{}, perr
		}
		return Request{}, badRequest("block header %.32q is not $<n> with n decimal; an inline value cannot begin with '$'", rest)
	}
	n, ok := parseUint(rest[1:])
	if !ok || n > uint64(r.lim.MaxDiscard) {
		return Request{}, &ProtoError{Code: CodeTooLarge, Msg: fmt.Sprintf("value over %d bytes", r.lim.MaxValue), Fatal: true}
	}
	if perr != nil || n > uint64(r.lim.MaxValue) {
		if err := r.discardBlock(int(n)); err != nil {
			return Request{}, err
		}
		if perr != nil {
			return Request{}, perr
		}
		return Request{}, &ProtoError{Code: CodeTooLarge, Msg: fmt.Sprintf("value of %d bytes over %d", n, r.lim.MaxValue)}
	}
	if r.admit != nil {
		if err := r.admit(int(n)); err != nil {
			if derr := r.discardBlock(int(n)); derr != nil {
				return Request{}, derr
			}
			return Request{}, &ProtoError{Code: CodeBusy, Msg: err.Error()}
		}
	}
	val := make([]byte, n)
	if _, err := io.ReadFull(r.br, val); err != nil {
		return Request{}, blockErr(err)
	}
	if err := r.blockEnd(); err != nil {
		return Request{}, err
	}
	req.Value = val
	return req, nil
}

func writeUsage(cmd Cmd) string {
	if cmd == CmdCAS {
		return "usage: CAS <key> <version> <value>|$<n>"
	}
	return "usage: " + cmd.String() + " <key> <value>|$<n>"
}

// discardPool holds scratch buffers for draining blocks: larger than a
// connection's read buffer, so a drained megabyte costs a few reads, not
// hundreds.
var discardPool = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// discardBlock drains a block the server does not keep, and its line end.
func (r *Reader) discardBlock(n int) error {
	skip := min(n, r.br.Buffered())
	r.br.Discard(skip) // buffered: cannot fail
	if n -= skip; n > 0 {
		bp := discardPool.Get().(*[]byte)
		defer discardPool.Put(bp)
		for n > 0 {
			// bufio reads straight into a buffer larger than its own.
			k, err := io.ReadFull(r.br, (*bp)[:min(n, len(*bp))])
			n -= k
			if err != nil {
				return blockErr(err)
			}
		}
	}
	return r.blockEnd()
}

// blockEnd consumes the line end after a block. Anything else means the
// client's idea of the block differs from ours, so nothing after it can be
// trusted: fatal.
func (r *Reader) blockEnd() error {
	ok, err := readEOL(r.br)
	if err != nil {
		return blockErr(err)
	}
	if !ok {
		return &ProtoError{Code: CodeBadRequest, Msg: "block not followed by \\r\\n", Fatal: true}
	}
	return nil
}

func blockErr(err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("line: read block: %w", err)
}

// key validates and copies a key or prefix token.
func (r *Reader) key(tok []byte) (string, *ProtoError) {
	if len(tok) > r.lim.MaxKey {
		return "", &ProtoError{Code: CodeBadRequest, Msg: fmt.Sprintf("key over %d bytes", r.lim.MaxKey), cause: ErrInvalidKey}
	}
	key := string(tok)
	if !validKeyChars(key) {
		return "", &ProtoError{Code: CodeBadRequest, Msg: "key must be printable UTF-8 without spaces or control characters", cause: ErrInvalidKey}
	}
	return key, nil
}
