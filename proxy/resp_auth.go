package proxy

// resp_auth.go: RESP through the auth layer (auth.go). Every request a
// RESP command becomes passes conn.gate, as a line request does, before
// any of them starts; AUTH and HELLO … AUTH authenticate as the line
// protocol's AUTH does; with --auth, nothing but AUTH, HELLO, PING and QUIT
// is answered before that. Run by the connection's reader goroutine.

import (
	"bufio"
	"bytes"
	"strings"

	"synod/wire/line"
	"synod/wire/resp"
)

// respOpenCommands are answered before a connection authenticated.
var respOpenCommands = map[string]bool{"AUTH": true, "HELLO": true, "PING": true, "QUIT": true}

// respNeedsAuth reports whether the command must wait for AUTH.
func (c *conn) respNeedsAuth(name string) bool {
	return c.s.cfg.Auth && c.user == "" && !respOpenCommands[name]
}

// respGate passes every request through the auth gate. If one is refused
// it answers the refusal for the whole command (nothing is started) and
// returns false, with whether to read on.
func (c *conn) respGate(reqs []line.Request) (ok, more bool) {
	for _, req := range reqs {
		if ref, more := c.gate(req); ref != nil {
			return false, c.respFromLine(ref) && more
		}
	}
	return true, true
}

// lineReply is what the auth layer's reply to cl reads as in the line
// protocol, one string a line.
func lineReply(cl *call) []string {
	if cl.custom == nil {
		return nil
	}
	var buf bytes.Buffer
	lw := line.NewWriter(bufio.NewWriter(&buf))
	if cl.custom(lw) != nil || lw.Flush() != nil {
		return nil
	}
	return strings.Split(strings.TrimSuffix(buf.String(), "\r\n"), "\r\n")
}

// respFromLine answers what the auth layer made of a request (its line
// reply) in RESP: ERR <CODE> <msg> as -<CODE> <msg> (BAD_REQUEST as
// Redis's ERR), OK as +OK, a list as an array of its lines.
func (c *conn) respFromLine(cl *call) bool {
	lines := lineReply(cl)
	var render func(w *resp.Writer) error
	switch {
	case len(lines) == 0:
		render = func(w *resp.Writer) error { return w.Error("ERR", "refused") }
	case strings.HasPrefix(lines[0], "ERR "):
		code, msg, _ := strings.Cut(strings.TrimPrefix(lines[0], "ERR "), " ")
		if code == line.CodeBadRequest {
			code = "ERR"
		}
		render = func(w *resp.Writer) error { return w.Error(code, msg) }
	case lines[0] == "OK" && len(lines) == 1:
		render = (*resp.Writer).OK
	default:
		render = func(w *resp.Writer) error { return w.Strings(lines[1:]) }
	}
	return c.respLocal(cl.close, render)
}

// respAuthenticate runs AUTH [user] password as the line protocol's AUTH;
// a password alone is the user "default", as in Redis. It answers the
// refusal itself and returns false (with whether to read on) if AUTH
// failed; on success it answers nothing.
func (c *conn) respAuthenticate(user, password []byte) (ok, more bool) {
	name := "default"
	if user != nil {
		name = string(user)
	}
	req := line.Request{Cmd: line.CmdAuth, Name: name, Password: string(password)}
	cl, more := c.gate(req)
	if cl == nil {
		return false, c.respError("ERR", "AUTH not answered") && more
	}
	if lines := lineReply(cl); len(lines) == 1 && lines[0] == "OK" && !cl.close {
		return true, more // authenticated: the caller answers
	}
	return false, c.respFromLine(cl) && more
}

func respAuth(c *conn, _ *respState, args [][]byte) bool {
	var user, password []byte
	switch len(args) {
	case 2:
		password = args[1]
	case 3:
		user, password = args[1], args[2]
	default:
		return c.respError("ERR", "syntax error")
	}
	if !c.s.cfg.Auth {
		return c.respError("ERR", "AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
	}
	ok, more := c.respAuthenticate(user, password)
	if !ok {
		return more
	}
	return c.respLocal(false, (*resp.Writer).OK) && more
}
