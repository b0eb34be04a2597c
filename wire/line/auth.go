package line

// auth.go: the line protocol's users and permissions: AUTH, and the USER
// and ROLE commands an admin manages them with, their parsing (Reader),
// encoding (AppendRequest) and replies (Client). No state: the proxy keeps
// the users, in the replicated state.
//
//	AUTH <user> <password>                       OK | ERR NOPERM ...
//	USER ADD <user> <password>                   OK
//	USER PASSWD <user> <password>                OK
//	USER DEL <user>                              OK | NOT_FOUND
//	USER GRANT <user> <role>                     OK
//	USER REVOKE <user> <role>                    OK
//	USER LIST                                    USERS <n>, then n lines "<user> roles=<r1,r2|->"
//	ROLE ADD <role>                              OK
//	ROLE DEL <role>                              OK | NOT_FOUND
//	ROLE GRANT <role> read|write|readwrite <prefix|*>   OK
//	ROLE REVOKE <role> read|write|readwrite <prefix|*>  OK
//	ROLE LIST                                    ROLES <n>, then n lines "<role> read=<p1,p2|-> write=<...|->"
//
// A password is the rest of the line after one space (trailing spaces
// are cut, as from every request line). A prefix of * means every key.

import (
	"fmt"
)

// Auth commands, after the others.
const (
	CmdAuth Cmd = iota + cmdCore
	CmdUserAdd
	CmdUserPasswd
	CmdUserDel
	CmdUserGrant
	CmdUserRevoke
	CmdUserList
	CmdRoleAdd
	CmdRoleDel
	CmdRoleGrant
	CmdRoleRevoke
	CmdRoleList
)

var authCmdNames = map[Cmd]string{
	CmdAuth:       "AUTH",
	CmdUserAdd:    "USER ADD",
	CmdUserPasswd: "USER PASSWD",
	CmdUserDel:    "USER DEL",
	CmdUserGrant:  "USER GRANT",
	CmdUserRevoke: "USER REVOKE",
	CmdUserList:   "USER LIST",
	CmdRoleAdd:    "ROLE ADD",
	CmdRoleDel:    "ROLE DEL",
	CmdRoleGrant:  "ROLE GRANT",
	CmdRoleRevoke: "ROLE REVOKE",
	CmdRoleList:   "ROLE LIST",
}

// IsAuth reports whether c is AUTH or a USER or ROLE command.
func (c Cmd) IsAuth() bool { return c >= CmdAuth && c <= CmdRoleList }

// IsAuthAdmin reports whether c is a USER or ROLE command.
func (c Cmd) IsAuthAdmin() bool { return c > CmdAuth && c <= CmdRoleList }

// Perm is a set of permissions on a key prefix.
type Perm uint8

// Permissions.
const (
	PermRead Perm = 1 << iota
	PermWrite
	PermReadWrite = PermRead | PermWrite
)

// String is the protocol word of p.
func (p Perm) String() string {
	switch p {
	case PermRead:
		return "read"
	case PermWrite:
		return "write"
	case PermReadWrite:
		return "readwrite"
	}
	return "none"
}

// ParsePerm reads read, write or readwrite, ignoring case.
func ParsePerm(s string) (Perm, bool) {
	for _, p := range []Perm{PermRead, PermWrite, PermReadWrite} {
		if equalFold([]byte(s), p.String()) {
			return p, true
		}
	}
	return 0, false
}

// Limits of names and passwords.
const (
	MaxNameLen     = 64
	MaxPasswordLen = 1024
	// AllKeys is the prefix word that grants every key.
	AllKeys = "*"
)

// ValidName reports whether s can name a user or a role: 1 to MaxNameLen
// bytes of ASCII letters, digits and . _ @ -.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLen {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '@', c == '-':
		default:
			return false
		}
	}
	return true
}

// ValidPassword reports whether s can be a password: 1 to MaxPasswordLen
// bytes of printable UTF-8 (spaces inside allowed), not starting or ending
// with a space.
func ValidPassword(s string) bool {
	if len(s) == 0 || len(s) > MaxPasswordLen || s[0] == ' ' || s[len(s)-1] == ' ' {
		return false
	}
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j] == ' ' {
			j++
		}
		k := j
		for k < len(s) && s[k] != ' ' {
			k++
		}
		if !validKeyChars(s[j:k]) {
			return false
		}
		i = k
	}
	return true
}

var authUsage = map[Cmd]string{
	CmdAuth:       "usage: AUTH <user> <password>",
	CmdUserAdd:    "usage: USER ADD <user> <password>",
	CmdUserPasswd: "usage: USER PASSWD <user> <password>",
	CmdUserDel:    "usage: USER DEL <user>",
	CmdUserGrant:  "usage: USER GRANT <user> <role>",
	CmdUserRevoke: "usage: USER REVOKE <user> <role>",
	CmdUserList:   "usage: USER LIST",
	CmdRoleAdd:    "usage: ROLE ADD <role>",
	CmdRoleDel:    "usage: ROLE DEL <role>",
	CmdRoleGrant:  "usage: ROLE GRANT <role> read|write|readwrite <prefix|*>",
	CmdRoleRevoke: "usage: ROLE REVOKE <role> read|write|readwrite <prefix|*>",
	CmdRoleList:   "usage: ROLE LIST",
}

const userUsage = "usage: USER ADD|PASSWD|DEL|GRANT|REVOKE|LIST ..."
const roleUsage = "usage: ROLE ADD|DEL|GRANT|REVOKE|LIST ..."

// isAuthWord reports whether tok starts an auth request.
func isAuthWord(tok []byte) bool {
	return equalFold(tok, "AUTH") || equalFold(tok, "USER") || equalFold(tok, "ROLE")
}

// parseAuthRequest parses a request that starts with AUTH, USER or ROLE.
// None has a block, so a refusal leaves the stream in sync.
func parseAuthRequest(tok, rest []byte) (Request, error) {
	var cmd Cmd
	if equalFold(tok, "AUTH") {
		cmd = CmdAuth
	} else {
		sub, after, _ := cut(trimSpaces(rest))
		group := "USER "
		usage := userUsage
		if equalFold(tok, "ROLE") {
			group, usage = "ROLE ", roleUsage
		}
		for c, name := range authCmdNames {
			if len(name) > len(group) && name[:len(group)] == group && equalFold(sub, name[len(group):]) {
				cmd = c
			}
		}
		if cmd == 0 {
			return Request{}, badRequest("%s", usage)
		}
		rest = after
	}
	req := Request{Cmd: cmd}
	usage := authUsage[cmd]
	switch cmd {
	case CmdAuth, CmdUserAdd, CmdUserPasswd:
		name, pw, _ := cut(trimSpaces(rest))
		if !ValidName(string(name)) {
			return Request{}, badRequest("%s (a name is 1 to %d letters, digits, . _ @ -)", usage, MaxNameLen)
		}
		pws := string(trimSpaces(pw))
		if !ValidPassword(pws) {
			return Request{}, badRequest("%s (a password is 1 to %d printable bytes)", usage, MaxPasswordLen)
		}
		req.Name, req.Password = string(name), pws
		return req, nil
	}
	var args [3][]byte
	n := fields(rest, args[:])
	switch cmd {
	case CmdUserList, CmdRoleList:
		if n != 0 {
			return Request{}, badRequest("%s", usage)
		}
	case CmdUserDel, CmdRoleAdd, CmdRoleDel:
		if n != 1 || !ValidName(string(args[0])) {
			return Request{}, badRequest("%s", usage)
		}
		req.Name = string(args[0])
	case CmdUserGrant, CmdUserRevoke:
		if n != 2 || !ValidName(string(args[0])) || !ValidName(string(args[1])) {
			return Request{}, badRequest("%s", usage)
		}
		req.Name, req.Role = string(args[0]), string(args[1])
	case CmdRoleGrant, CmdRoleRevoke:
		if n != 3 || !ValidName(string(args[0])) {
			return Request{}, badRequest("%s", usage)
		}
		p, ok := ParsePerm(string(args[1]))
		if !ok {
			return Request{}, badRequest("%s", usage)
		}
		prefix := string(args[2])
		if prefix != AllKeys && !ValidKey(prefix, 0) {
			return Request{}, badRequest("%s (a prefix is a key's beginning, or * for every key)", usage)
		}
		req.Name, req.Perm, req.Prefix = string(args[0]), p, prefix
	}
	return req, nil
}

// appendAuthRequest is AppendRequest for the auth commands.
func appendAuthRequest(dst []byte, req Request) ([]byte, error) {
	name := req.Cmd.String()
	bad := func(what string) ([]byte, error) {
		return dst, fmt.Errorf("line: encode %s: %s: %w", name, what, ErrBadRequest)
	}
	switch req.Cmd {
	case CmdUserList, CmdRoleList:
	default:
		if !ValidName(req.Name) {
			return bad(fmt.Sprintf("name %.64q", req.Name))
		}
	}
	dst = append(dst, name...)
	switch req.Cmd {
	case CmdAuth, CmdUserAdd, CmdUserPasswd:
		if !ValidPassword(req.Password) {
			return bad("password not 1 to 1024 printable bytes without spaces at its ends")
		}
		dst = append(dst, ' ')
		dst = append(dst, req.Name...)
		dst = append(dst, ' ')
		dst = append(dst, req.Password...)
	case CmdUserDel, CmdRoleAdd, CmdRoleDel:
		dst = append(dst, ' ')
		dst = append(dst, req.Name...)
	case CmdUserGrant, CmdUserRevoke:
		if !ValidName(req.Role) {
			return bad(fmt.Sprintf("role %.64q", req.Role))
		}
		dst = append(dst, ' ')
		dst = append(dst, req.Name...)
		dst = append(dst, ' ')
		dst = append(dst, req.Role...)
	case CmdRoleGrant, CmdRoleRevoke:
		if req.Perm.String() == "none" || (req.Prefix != AllKeys && !ValidKey(req.Prefix, 0)) {
			return bad("permission or prefix")
		}
		dst = append(dst, ' ')
		dst = append(dst, req.Name...)
		dst = append(dst, ' ')
		dst = append(dst, req.Perm.String()...)
		dst = append(dst, ' ')
		dst = append(dst, req.Prefix...)
	}
	return append(dst, "\r\n"...), nil
}

// authReply parses the reply to an auth command; l is its first line.
func (rr *replyReader) authReply(cmd Cmd, l []byte) (Reply, error) {
	rep := Reply{Cmd: cmd}
	head, rest, _ := cut(l)
	switch cmd {
	case CmdUserList, CmdRoleList:
		want := "USERS"
		if cmd == CmdRoleList {
			want = "ROLES"
		}
		if string(head) != want {
			break
		}
		n, err := count(cmd, rest, rr.opts.MaxLines)
		if err != nil {
			return Reply{}, err
		}
		for range n {
			l, err := rr.line(cmd)
			if err != nil {
				return Reply{}, err
			}
			rep.Lines = append(rep.Lines, string(l))
		}
		return rep, nil
	default:
		if string(l) == "OK" {
			return rep, nil
		}
	}
	return Reply{}, badReply(cmd, "unexpected %.64q", l)
}

// Lines writes a list reply: "<head> <n>" and then n lines, as USER LIST
// and ROLE LIST answer.
func (w *Writer) Lines(head string, lines []string) error {
	if err := w.writeString(fmt.Sprintf("%s %d\r\n", head, len(lines))); err != nil {
		return err
	}
	for _, l := range lines {
		if err := w.writeString(l + "\r\n"); err != nil {
			return err
		}
	}
	return nil
}
