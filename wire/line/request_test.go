package line

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestAppendRequest(t *testing.T) {
	tests := []struct {
		req  Request
		want string
	}{
		{Request{Cmd: CmdPut, Key: "greeting", Value: []byte("hello world")}, "PUT greeting $11\r\nhello world\r\n"},
		{Request{Cmd: CmdPut, Key: "k"}, "PUT k $0\r\n\r\n"},
		{Request{Cmd: CmdAppend, Key: "k", Value: []byte("\r\n")}, "APPEND k $2\r\n\r\n\r\n"},
		{Request{Cmd: CmdCAS, Key: "k", Version: 7, Value: []byte("v")}, "CAS k 7 $1\r\nv\r\n"},
		{Request{Cmd: CmdDel, Key: "a/b"}, "DEL a/b\r\n"},
		{Request{Cmd: CmdGet, Key: "k"}, "GET k\r\n"},
		{Request{Cmd: CmdGet, Key: "k", MinIndex: 42}, "GET k MIN 42\r\n"},
		{Request{Cmd: CmdStat, Key: "k"}, "STAT k\r\n"},
		{Request{Cmd: CmdList}, "LIST\r\n"},
		{Request{Cmd: CmdList, Prefix: "docs/"}, "LIST docs/\r\n"},
		{Request{Cmd: CmdConsistency, Level: LevelSession}, "CONSISTENCY session\r\n"},
		{Request{Cmd: CmdStatus}, "STATUS\r\n"},
		{Request{Cmd: CmdStats}, "STATS\r\n"},
		{Request{Cmd: CmdPing}, "PING\r\n"},
		{Request{Cmd: CmdQuit}, "QUIT\r\n"},
		{Request{Cmd: CmdHelp}, "HELP\r\n"},
		{Request{Cmd: CmdMemberList}, "MEMBER LIST\r\n"},
		{Request{Cmd: CmdMemberAdd, MemberID: 4, MemberAddr: "127.0.0.1:7104"}, "MEMBER ADD 4 127.0.0.1:7104\r\n"},
		{Request{Cmd: CmdMemberRemove, MemberID: 3}, "MEMBER REMOVE 3\r\n"},
		{Request{Cmd: CmdMemberPromote, MemberID: 18446744073709551615}, "MEMBER PROMOTE 18446744073709551615\r\n"},
	}
	for _, tt := range tests {
		got, err := AppendRequest([]byte("prefix:"), tt.req)
		if err != nil {
			t.Fatalf("%+v: %v", tt.req, err)
		}
		if string(got) != "prefix:"+tt.want {
			t.Fatalf("%+v: got %q, want %q", tt.req, got, tt.want)
		}
		// And the server side parses it back.
		r := NewReader(bufio.NewReader(strings.NewReader(tt.want)), Limits{})
		back, err := r.ReadRequest()
		if tt.req.Cmd.hasValue() && tt.req.Value == nil {
			tt.req.Value = []byte{}
		}
		if err != nil || !equalRequest(back, tt.req) {
			t.Fatalf("%q parsed back as %+v, %v", tt.want, back, err)
		}
	}
}

func TestAppendRequestRefuses(t *testing.T) {
	tests := []struct {
		name string
		req  Request
		key  bool // also ErrInvalidKey
	}{
		{"zero command", Request{}, false},
		{"unknown command", Request{Cmd: 200}, false},
		{"empty key", Request{Cmd: CmdGet}, true},
		{"key with space", Request{Cmd: CmdPut, Key: "a b"}, true},
		{"key with newline", Request{Cmd: CmdDel, Key: "a\nDEL b"}, true},
		{"key too long", Request{Cmd: CmdStat, Key: strings.Repeat("k", 1025)}, true},
		{"bad prefix", Request{Cmd: CmdList, Prefix: "a b"}, true},
		{"bad level", Request{Cmd: CmdConsistency, Level: 9}, false},
		{"member id 0", Request{Cmd: CmdMemberRemove}, false},
		{"add without address", Request{Cmd: CmdMemberAdd, MemberID: 4}, false},
		{"add with a bad address", Request{Cmd: CmdMemberAdd, MemberID: 4, MemberAddr: "h:1\r\nMEMBER REMOVE 1"}, false},
	}
	for _, tt := range tests {
		got, err := AppendRequest([]byte("x"), tt.req)
		if !errors.Is(err, ErrBadRequest) || errors.Is(err, ErrInvalidKey) != tt.key {
			t.Errorf("%s: got %v", tt.name, err)
		}
		if string(got) != "x" {
			t.Errorf("%s: appended %q on failure", tt.name, got)
		}
	}
}

func TestValidKey(t *testing.T) {
	tests := []struct {
		key  string
		want bool
	}{
		{"a", true},
		{"docs/readme.txt", true},
		{"café/日本/🙂", true},
		{"~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./", true},
		{strings.Repeat("k", 1024), true},
		{strings.Repeat("k", 1025), false},
		{"", false},
		{"a b", false},
		{"a\tb", false},
		{"a\x00", false},
		{"a\x7f", false},
		{"\xff", false},
		{"a\u00a0b", false}, // no-break space
		{"a\u3000b", false}, // ideographic space
		{"a\u200bb", false}, // zero-width space: a format character
		{"a\u0085b", false}, // next line: a control character
	}
	for _, tt := range tests {
		if got := ValidKey(tt.key, 0); got != tt.want {
			t.Errorf("ValidKey(%q) = %v, want %v", tt.key, got, tt.want)
		}
	}
	if ValidKey("abc", 2) {
		t.Errorf("ValidKey with maxKey 2 accepted 3 bytes")
	}
}

func TestValidMemberAddr(t *testing.T) {
	tests := []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:7104", true},
		{"localhost:1", true},
		{"[::1]:65535", true},
		{"db-4.example.com:7000", true},
		{strings.Repeat("h", MaxMemberAddr-2) + ":1", true},
		{strings.Repeat("h", MaxMemberAddr-1) + ":1", false},
		{"", false},
		{"127.0.0.1", false},
		{":7104", false},
		{"h:", false},
		{"h:0", false},
		{"h:65536", false},
		{"h:http", false},
		{"h:+1", false},
		{"::1:7104", false},
		{"h 1:2", false},
		{"h\x00:1", false},
	}
	for _, tt := range tests {
		if got := ValidMemberAddr(tt.addr); got != tt.ok {
			t.Errorf("ValidMemberAddr(%q) = %v, want %v", tt.addr, got, tt.ok)
		}
	}
}

func TestCmdAndLevelNames(t *testing.T) {
	for c := CmdPut; c <= CmdHelp; c++ {
		if got := lookupCmd([]byte(strings.ToLower(c.String()))); got != c {
			t.Errorf("lookupCmd(%q) = %v", strings.ToLower(c.String()), got)
		}
	}
	for c := CmdMemberList; c <= CmdMemberPromote; c++ {
		sub := strings.TrimPrefix(c.String(), "MEMBER ")
		if !c.IsMember() || c.IsWrite() || lookupCmd([]byte(c.String())) != 0 || lookupMemberCmd([]byte(strings.ToLower(sub))) != c {
			t.Errorf("%s: IsMember %v, IsWrite %v, lookupMemberCmd(%q) = %v", c, c.IsMember(), c.IsWrite(), sub, lookupMemberCmd([]byte(sub)))
		}
		if c.IsMemberChange() != (c != CmdMemberList) {
			t.Errorf("%s: IsMemberChange %v", c, c.IsMemberChange())
		}
	}
	if CmdHelp.IsMember() || CmdHelp.IsMemberChange() {
		t.Errorf("HELP counts as a member command")
	}
	if Cmd(0).String() != "UNKNOWN" || Cmd(99).String() != "UNKNOWN" {
		t.Errorf("invalid commands have names")
	}
	for _, c := range []Cmd{CmdPut, CmdAppend, CmdCAS, CmdDel} {
		if !c.IsWrite() {
			t.Errorf("%s is not a write", c)
		}
	}
	if CmdGet.IsWrite() || CmdQuit.IsWrite() {
		t.Errorf("reads count as writes")
	}
	for _, l := range []Level{LevelLinearizable, LevelSession, LevelStale} {
		got, err := ParseLevel(strings.ToUpper(l.String()))
		if err != nil || got != l {
			t.Errorf("ParseLevel(%q) = %v, %v", strings.ToUpper(l.String()), got, err)
		}
	}
	if _, err := ParseLevel("strong"); !errors.Is(err, ErrBadRequest) {
		t.Errorf("ParseLevel(strong) = %v", err)
	}
}

func TestErrorsMatchSentinels(t *testing.T) {
	tests := []struct {
		code      string
		sentinel  error
		transient bool
	}{
		{CodeBadRequest, ErrBadRequest, false},
		{CodeTooLarge, ErrTooLarge, false},
		{CodeConflict, ErrConflict, false},
		{CodeUnavailable, ErrUnavailable, true},
		{CodeBusy, ErrBusy, true},
		{CodeTimeout, ErrTimeout, true},
		{CodeInternal, ErrInternal, false},
		{CodeNotFound, ErrNotFound, false},
		{"NOT_MASTER", nil, false},
	}
	all := []error{ErrBadRequest, ErrTooLarge, ErrConflict, ErrUnavailable, ErrBusy, ErrTimeout, ErrInternal, ErrNotFound}
	for _, tt := range tests {
		se := &ServerError{Code: tt.code, Msg: "m"}
		wrapped := errors.Join(errors.New("context"), se)
		for _, s := range all {
			if got := errors.Is(wrapped, s); got != (s == tt.sentinel) {
				t.Errorf("ServerError %s: errors.Is(%v) = %v", tt.code, s, got)
			}
			pe := &ProtoError{Code: tt.code}
			if got := errors.Is(pe, s); got != (s == tt.sentinel) {
				t.Errorf("ProtoError %s: errors.Is(%v) = %v", tt.code, s, got)
			}
		}
		if se.Transient() != tt.transient || IsTransient(wrapped) != tt.transient {
			t.Errorf("%s: Transient = %v, want %v", tt.code, se.Transient(), tt.transient)
		}
	}
	if IsTransient(errors.New("connection reset")) || IsTransient(nil) {
		t.Errorf("a connection error counts as transient")
	}
	if IsFatal(nil) || !IsFatal(errors.New("x")) || IsFatal(badRequest("x")) {
		t.Errorf("IsFatal is wrong")
	}
	if !bytes.Contains([]byte((&ServerError{Code: CodeBusy}).Error()), []byte("BUSY")) {
		t.Errorf("ServerError text lacks its code")
	}
}

// TestCmdsDistinct: every command has a value of its own and a name:
// commands declared in different files (auth.go numbers after
// request.go) never share one.
func TestCmdsDistinct(t *testing.T) {
	seen := map[string]Cmd{}
	for c := Cmd(1); c <= CmdRoleList; c++ {
		name := c.String()
		if name == "UNKNOWN" {
			t.Errorf("command %d has no name", c)
			continue
		}
		if prev, ok := seen[name]; ok {
			t.Errorf("commands %d and %d are both %s", prev, c, name)
		}
		seen[name] = c
	}
	if CmdSnapshot == CmdAuth || CmdSnapshot.String() != "SNAPSHOT" || CmdAuth.String() != "AUTH" {
		t.Errorf("SNAPSHOT is %d (%s), AUTH is %d (%s)", CmdSnapshot, CmdSnapshot, CmdAuth, CmdAuth)
	}
}
