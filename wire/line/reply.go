package line

// This file owns Reply and replyReader, the client's parser of the
// server's replies within the client's limits. It runs on whichever
// goroutine calls Client.Recv or a request method, under the Client's rmu.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

// Reply is a server's answer to one request, as the Client parsed it. Fields
// the command does not use are zero. ERR and NOT_FOUND replies are returned
// as a *ServerError instead.
type Reply struct {
	Cmd     Cmd               // the request this answers
	Index   uint64            // PUT, APPEND, CAS, DEL: the write's index
	Value   []byte            // GET
	Version uint64            // GET, STAT: the file's version
	Len     uint64            // STAT: the value's length; GET RANGE: the file's size
	Sum     string            // GET RANGE: the file's SHA-256, in hex
	Keys    []string          // LIST
	Nodes   []NodeStatus      // STATUS
	Stats   map[string]string // STATS
	Lines   []string          // HELP
	// Members answers MEMBER LIST; ConfigSlot, the slot that chose the
	// configuration in force, answers MEMBER LIST and the changes.
	Members    []Member
	ConfigSlot uint64
}

// replyReader parses replies within the client's limits.
type replyReader struct {
	br   *bufio.Reader
	opts Options
	acc  []byte
}

// badReply reports a reply that breaks the protocol.
func badReply(cmd Cmd, format string, args ...any) error {
	return fmt.Errorf("line: reply to %s: %s: %w", cmd, fmt.Sprintf(format, args...), ErrBadReply)
}

// line reads one reply line.
func (rr *replyReader) line(cmd Cmd) ([]byte, error) {
	l, err := readLine(rr.br, rr.opts.MaxLine, &rr.acc)
	switch {
	case err == errLong:
		return nil, fmt.Errorf("line: reply to %s: line over %d bytes: %w", cmd, rr.opts.MaxLine, ErrTooLarge)
	case err == io.EOF:
		return nil, fmt.Errorf("line: reply to %s: %w", cmd, io.ErrUnexpectedEOF)
	case err != nil:
		return nil, fmt.Errorf("line: reply to %s: %w", cmd, err)
	}
	return l, nil
}

// read parses the reply to cmd. A *ServerError leaves the stream in sync;
// any other error means it is not.
func (rr *replyReader) read(cmd Cmd) (Reply, error) {
	l, err := rr.line(cmd)
	if err != nil {
		return Reply{}, err
	}
	rep := Reply{Cmd: cmd}
	head, rest, _ := cut(l)
	switch string(head) {
	case "ERR":
		return Reply{}, parseErrLine(cmd, rest)
	case "NOT_FOUND":
		if len(rest) == 0 {
			return Reply{}, &ServerError{Code: CodeNotFound}
		}
	}

	if cmd.IsAuth() {
		return rr.authReply(cmd, l)
	}
	switch cmd {
	case CmdPut, CmdAppend, CmdCAS, CmdDel, CmdPutFile:
		if string(head) == "OK" {
			if v, ok := parseUint(rest); ok {
				rep.Index = v
				return rep, nil
			}
		}
	case CmdConsistency:
		if string(head) == "OK" {
			return rep, nil
		}
	case CmdMemberAdd, CmdMemberRemove, CmdMemberPromote:
		if string(head) == "OK" {
			if v, ok := parseUint(rest); ok {
				rep.ConfigSlot = v
				return rep, nil
			}
		}
	case CmdMemberList:
		if string(head) == "MEMBERS" {
			return rr.members(rep, rest)
		}
	case CmdGet:
		if string(head) == "VALUE" {
			n, ver, ok := twoUints(rest)
			if !ok {
				break
			}
			if n > uint64(rr.opts.MaxValue) {
				return Reply{}, fmt.Errorf("line: reply to GET: value of %d bytes over the client's limit %d: %w", n, rr.opts.MaxValue, ErrTooLarge)
			}
			rep.Version = ver
			rep.Value = make([]byte, n)
			if _, err := io.ReadFull(rr.br, rep.Value); err != nil {
				return Reply{}, fmt.Errorf("line: reply to GET: read value: %w", unexpected(err))
			}
			ok, err := readEOL(rr.br)
			if err != nil {
				return Reply{}, fmt.Errorf("line: reply to GET: %w", err)
			}
			if !ok {
				return Reply{}, badReply(cmd, "value not followed by \\r\\n")
			}
			return rep, nil
		}
	case CmdGetRange:
		if string(head) == "RANGE" {
			return rr.rangeReply(rep, rest)
		}
	case CmdStat:
		if string(head) == "STAT" {
			if n, ver, ok := twoUints(rest); ok {
				rep.Len, rep.Version = n, ver
				return rep, nil
			}
		}
	case CmdList:
		if string(head) == "KEYS" {
			return rr.keys(rep, rest)
		}
	case CmdStatus:
		if string(head) == "NODES" {
			return rr.nodes(rep, rest)
		}
	case CmdStats:
		return rr.stats(rep, l)
	case CmdHelp:
		return rr.help(rep, l)
	case CmdPing:
		if string(l) == "PONG" {
			return rep, nil
		}
	case CmdQuit:
		if string(l) == "BYE" {
			return rep, nil
		}
	}
	return Reply{}, badReply(cmd, "unexpected %.64q", l)
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// parseErrLine parses the rest of "ERR <CODE> <message>".
func parseErrLine(cmd Cmd, rest []byte) error {
	code, msg, _ := cut(rest)
	if !validCode(string(code)) {
		return badReply(cmd, "ERR with bad code %.32q", code)
	}
	se := &ServerError{Code: string(code), Msg: string(msg)}
	if se.Code == CodeConflict {
		if v, ok := bytes.CutPrefix(msg, []byte("version ")); ok {
			tok, _, _ := cut(v)
			se.Version, _ = parseUint(tok)
		}
	}
	return se
}

// twoUints parses "<a> <b>".
func twoUints(b []byte) (x, y uint64, ok bool) {
	a, rest, sep := cut(b)
	if !sep {
		return 0, 0, false
	}
	x, ok1 := parseUint(a)
	y, ok2 := parseUint(rest)
	return x, y, ok1 && ok2
}

// count parses the <n> of "KEYS <n>" or "NODES <n>" within limit.
func count(cmd Cmd, b []byte, limit int) (int, error) {
	n, ok := parseUint(b)
	if !ok {
		return 0, badReply(cmd, "count %.32q is not a number", b)
	}
	if n > uint64(limit) {
		return 0, fmt.Errorf("line: reply to %s: %d lines over the client's limit %d: %w", cmd, n, limit, ErrTooLarge)
	}
	return int(n), nil
}

// prealloc caps an allocation sized by the server's word until the lines
// have actually arrived.
const prealloc = 1024

func (rr *replyReader) keys(rep Reply, rest []byte) (Reply, error) {
	n, err := count(rep.Cmd, rest, rr.opts.MaxKeys)
	if err != nil {
		return Reply{}, err
	}
	rep.Keys = make([]string, 0, min(n, prealloc))
	for range n {
		l, err := rr.line(rep.Cmd)
		if err != nil {
			return Reply{}, err
		}
		rep.Keys = append(rep.Keys, string(l))
	}
	return rep, nil
}

func (rr *replyReader) nodes(rep Reply, rest []byte) (Reply, error) {
	n, err := count(rep.Cmd, rest, rr.opts.MaxLines)
	if err != nil {
		return Reply{}, err
	}
	rep.Nodes = make([]NodeStatus, 0, min(n, prealloc))
	for range n {
		l, err := rr.line(rep.Cmd)
		if err != nil {
			return Reply{}, err
		}
		rep.Nodes = append(rep.Nodes, parseNode(l))
	}
	return rep, nil
}

// members parses the rest of "MEMBERS <n> <config-slot>" and the n lines.
func (rr *replyReader) members(rep Reply, rest []byte) (Reply, error) {
	nb, slotb, _ := cut(rest)
	slot, ok := parseUint(slotb)
	if !ok {
		return Reply{}, badReply(rep.Cmd, "config slot %.32q is not a number", slotb)
	}
	n, err := count(rep.Cmd, nb, rr.opts.MaxLines)
	if err != nil {
		return Reply{}, err
	}
	rep.ConfigSlot = slot
	rep.Members = make([]Member, 0, min(n, prealloc))
	for range n {
		l, err := rr.line(rep.Cmd)
		if err != nil {
			return Reply{}, err
		}
		m, ok := parseMember(l)
		if !ok {
			return Reply{}, badReply(rep.Cmd, "member line %.64q", l)
		}
		rep.Members = append(rep.Members, m)
	}
	return rep, nil
}

// parseMember parses "id=<id> addr=<addr> role=voter|learner". Unknown
// pairs are skipped, so a server may add some; the three must be there.
func parseMember(l []byte) (Member, bool) {
	var m Member
	var hasID, hasAddr, hasRole bool
	for {
		l = trimSpaces(l)
		if len(l) == 0 {
			return m, hasID && hasAddr && hasRole
		}
		var f []byte
		f, l, _ = cut(l)
		k, v, _ := bytes.Cut(f, []byte("="))
		switch string(k) {
		case "id":
			id, ok := parseUint(v)
			if !ok || id == 0 {
				return Member{}, false
			}
			m.ID, hasID = id, true
		case "addr":
			m.Addr, hasAddr = string(v), true
		case "role":
			switch string(v) {
			case "voter":
				m.Voter = true
			case "learner":
			default:
				return Member{}, false
			}
			hasRole = true
		}
	}
}

// parseNode parses "id=.. addr=.. role=.. ballot=.. commit=.. applied=..".
// It is lenient, as status lines are for people too: unknown pairs, and known
// numbers that do not parse, are kept in Extra.
func parseNode(l []byte) NodeStatus {
	var ns NodeStatus
	extra := func(k, v []byte) {
		if ns.Extra == nil {
			ns.Extra = make(map[string]string)
		}
		ns.Extra[string(k)] = string(v)
	}
	for {
		var f []byte
		l = trimSpaces(l)
		if len(l) == 0 {
			return ns
		}
		f, l, _ = cut(l)
		k, v, _ := bytes.Cut(f, []byte("="))
		num := func(dst *uint64) {
			if x, ok := parseUint(v); ok {
				*dst = x
			} else {
				extra(k, v)
			}
		}
		switch string(k) {
		case "id":
			num(&ns.ID)
		case "addr":
			ns.Addr = string(v)
		case "role":
			ns.Role = string(v)
		case "ballot":
			ns.Ballot = string(v)
		case "commit":
			num(&ns.Commit)
		case "applied":
			num(&ns.Applied)
		default:
			extra(k, v)
		}
	}
}

// stats parses "STAT <name> <value>" lines up to "END"; first is the line
// already read.
func (rr *replyReader) stats(rep Reply, first []byte) (Reply, error) {
	rep.Stats = make(map[string]string)
	l := first
	for i := 0; ; i++ {
		if string(l) == "END" {
			return rep, nil
		}
		if i >= rr.opts.MaxLines {
			return Reply{}, fmt.Errorf("line: reply to STATS: over %d lines: %w", rr.opts.MaxLines, ErrTooLarge)
		}
		head, rest, _ := cut(l)
		if string(head) != "STAT" {
			return Reply{}, badReply(rep.Cmd, "unexpected %.64q", l)
		}
		name, value, _ := cut(rest)
		rep.Stats[string(name)] = string(value)
		var err error
		if l, err = rr.line(rep.Cmd); err != nil {
			return Reply{}, err
		}
	}
}

// help collects lines up to "END"; first is the line already read.
func (rr *replyReader) help(rep Reply, first []byte) (Reply, error) {
	l := first
	for i := 0; ; i++ {
		if string(l) == "END" {
			return rep, nil
		}
		if i >= rr.opts.MaxLines {
			return Reply{}, fmt.Errorf("line: reply to HELP: over %d lines: %w", rr.opts.MaxLines, ErrTooLarge)
		}
		rep.Lines = append(rep.Lines, string(l))
		var err error
		if l, err = rr.line(rep.Cmd); err != nil {
			return Reply{}, err
		}
	}
}
