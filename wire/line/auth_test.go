package line

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

var authSeeds = []string{
	"AUTH alice s3cret pw\r\n",
	"auth alice\r\nAUTH\r\nAUTH a\x01b pw\r\n",
	"USER ADD bob pw\r\nuser passwd bob new one\nUSER DEL bob\r\nUSER GRANT bob reader\r\nUSER REVOKE bob reader\r\nUSER LIST\r\n",
	"ROLE ADD reader\r\nROLE GRANT reader read a/\r\nrole grant reader readwrite *\r\nROLE REVOKE reader write b/\r\nROLE LIST\r\nROLE DEL reader\r\n",
	"ROLE GRANT reader admin a/\r\nROLE GRANT reader read\r\nUSER FOO\r\nROLE\r\nUSER LIST extra\r\n",
}

func TestParseAuthRequests(t *testing.T) {
	tests := []struct {
		line string
		want Request
		err  bool
	}{
		{"AUTH alice s3cret", Request{Cmd: CmdAuth, Name: "alice", Password: "s3cret"}, false},
		{"auth alice two  words", Request{Cmd: CmdAuth, Name: "alice", Password: "two  words"}, false},
		{"AUTH alice", Request{}, true},
		{"AUTH al/ice pw", Request{}, true},
		{"USER ADD bob pw", Request{Cmd: CmdUserAdd, Name: "bob", Password: "pw"}, false},
		{"user passwd bob pw2", Request{Cmd: CmdUserPasswd, Name: "bob", Password: "pw2"}, false},
		{"USER DEL bob", Request{Cmd: CmdUserDel, Name: "bob"}, false},
		{"USER DEL bob extra", Request{}, true},
		{"USER GRANT bob reader", Request{Cmd: CmdUserGrant, Name: "bob", Role: "reader"}, false},
		{"USER REVOKE bob reader", Request{Cmd: CmdUserRevoke, Name: "bob", Role: "reader"}, false},
		{"USER LIST", Request{Cmd: CmdUserList}, false},
		{"USER", Request{}, true},
		{"ROLE ADD reader", Request{Cmd: CmdRoleAdd, Name: "reader"}, false},
		{"ROLE GRANT reader read a/", Request{Cmd: CmdRoleGrant, Name: "reader", Perm: PermRead, Prefix: "a/"}, false},
		{"ROLE GRANT reader READWRITE *", Request{Cmd: CmdRoleGrant, Name: "reader", Perm: PermReadWrite, Prefix: "*"}, false},
		{"ROLE REVOKE reader write b/", Request{Cmd: CmdRoleRevoke, Name: "reader", Perm: PermWrite, Prefix: "b/"}, false},
		{"ROLE GRANT reader all a/", Request{}, true},
		{"ROLE GRANT reader read", Request{}, true},
		{"ROLE LIST", Request{Cmd: CmdRoleList}, false},
		{"ROLE DEL reader", Request{Cmd: CmdRoleDel, Name: "reader"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			r := NewReader(bufio.NewReader(strings.NewReader(tt.line+"\r\nPING\r\n")), Limits{})
			req, err := r.ReadRequest()
			if tt.err {
				if !errors.Is(err, ErrBadRequest) {
					t.Fatalf("got %+v, %v; want BAD_REQUEST", req, err)
				}
			} else if err != nil || !reflect.DeepEqual(req, tt.want) {
				t.Fatalf("got %+v, %v; want %+v", req, err, tt.want)
			}
			if next, err := r.ReadRequest(); err != nil || next.Cmd != CmdPing {
				t.Fatalf("stream not in sync after %q: %+v, %v", tt.line, next, err)
			}
			if !tt.err {
				enc, err := AppendRequest(nil, req)
				if err != nil {
					t.Fatal(err)
				}
				again, err := NewReader(bufio.NewReader(bytes.NewReader(enc)), Limits{}).ReadRequest()
				if err != nil || !reflect.DeepEqual(again, req) {
					t.Fatalf("round trip of %q: %+v, %v", enc, again, err)
				}
			}
		})
	}
}

func TestAuthReplies(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(bufio.NewWriter(&out))
	w.OK()
	w.Lines("USERS", []string{"alice roles=reader", "root roles=admin"})
	w.Err(CodeNoPerm, "no write permission")
	w.Flush()
	rr := replyReader{br: bufio.NewReader(&out), opts: Options{}.withDefaults()}
	if _, err := rr.read(CmdAuth); err != nil {
		t.Fatal(err)
	}
	rep, err := rr.read(CmdUserList)
	if err != nil || len(rep.Lines) != 2 || rep.Lines[1] != "root roles=admin" {
		t.Fatalf("USER LIST: %+v, %v", rep, err)
	}
	if _, err := rr.read(CmdUserAdd); !errors.Is(err, ErrNoPerm) {
		t.Fatalf("NOPERM: %v", err)
	}
}

// FuzzAuthRequest: AUTH, USER and ROLE lines never panic the parser, and
// what it accepts re-encodes to a request it parses the same.
func FuzzAuthRequest(f *testing.F) {
	for _, s := range authSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bufio.NewReader(bytes.NewReader(data)), fuzzLimits)
		for range len(data) + 2 {
			req, err := r.ReadRequest()
			if err == io.EOF || IsFatal(err) {
				return
			}
			if err != nil || !req.Cmd.IsAuth() {
				continue
			}
			enc, err := AppendRequest(nil, req)
			if err != nil {
				t.Fatalf("accepted %+v that does not encode: %v", req, err)
			}
			again, err := NewReader(bufio.NewReader(bytes.NewReader(enc)), Limits{}).ReadRequest()
			if err != nil || !reflect.DeepEqual(again, req) {
				t.Fatalf("round trip of %q: %+v, %v; want %+v", enc, again, err, req)
			}
		}
	})
}
