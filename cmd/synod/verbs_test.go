package main

// This file pins what every client verb prints and how it exits, against a
// fake line-protocol server on loopback: the test goroutine runs the verbs
// in process; the server runs one goroutine per connection.

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"synod/wire/line"
)

// fakeServer answers the line protocol from a map. A key or prefix
// "err/<CODE>" is answered "ERR <CODE> injected", and so is CONSISTENCY
// session with BUSY. It records each request it answers, as text.
type fakeServer struct {
	ln net.Listener
	wg sync.WaitGroup

	mu    sync.Mutex
	files map[string]fakeFile
	index uint64
	log   []string
	// The configuration MEMBER reads and changes; a change of member id
	// 90, 91 or 92 is answered ERR UNAVAILABLE, BUSY or BAD_REQUEST.
	members   []line.Member
	slot      uint64
	noMembers bool // answer MEMBER as a replica without membership changes does
}

type fakeFile struct {
	value   []byte
	version uint64
}

// startFake serves a, bin (not UTF-8) and nl (ends with a newline), at
// versions 1 to 3.
func startFake(t *testing.T) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{ln: ln, index: 3, files: map[string]fakeFile{
		"a":   {[]byte("hello"), 1},
		"bin": {[]byte{0xff, 0x00}, 2},
		"nl":  {[]byte("line\n"), 3},
	}, slot: 1, members: []line.Member{
		{ID: 1, Addr: "127.0.0.1:7101", Voter: true},
		{ID: 2, Addr: "127.0.0.1:7102", Voter: true},
		{ID: 4, Addr: "127.0.0.1:7104"},
	}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(conn)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *fakeServer) addr() string { return s.ln.Addr().String() }

// requests returns what the server was asked so far.
func (s *fakeServer) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// serve answers one connection until the client closes it; each verb
// closes its connection before it returns.
func (s *fakeServer) serve(conn net.Conn) {
	defer conn.Close()
	r := line.NewReader(bufio.NewReader(conn), line.DefaultLimits())
	w := line.NewWriter(bufio.NewWriter(conn))
	for {
		req, err := r.ReadRequest()
		if err != nil {
			return
		}
		s.apply(w, req)
		if w.Flush() != nil {
			return
		}
	}
}

func (s *fakeServer) apply(w *line.Writer, req line.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	desc := req.Cmd.String()
	for _, f := range []string{req.Key, req.Prefix} {
		if f != "" {
			desc += " " + f
		}
	}
	switch {
	case req.Cmd == line.CmdConsistency:
		desc += " " + req.Level.String()
	case req.MinIndex > 0:
		desc += fmt.Sprintf(" MIN %d", req.MinIndex)
	case req.Cmd.IsMemberChange():
		desc += fmt.Sprintf(" %d", req.MemberID)
		if req.MemberAddr != "" {
			desc += " " + req.MemberAddr
		}
	}
	s.log = append(s.log, desc)
	for _, k := range []string{req.Key, req.Prefix} {
		if code, ok := strings.CutPrefix(k, "err/"); ok {
			w.Err(code, "injected")
			return
		}
	}
	if req.Cmd.IsMember() {
		s.member(w, req)
		return
	}
	f, exists := s.files[req.Key]
	switch req.Cmd {
	case line.CmdPut, line.CmdAppend, line.CmdCAS:
		if req.Cmd == line.CmdCAS && req.Version != f.version {
			w.Conflict(f.version)
			return
		}
		s.index++
		v := req.Value
		if req.Cmd == line.CmdAppend {
			v = append(slices.Clip(f.value), v...)
		}
		s.files[req.Key] = fakeFile{value: bytes.Clone(v), version: s.index}
		w.OKIndex(s.index)
	case line.CmdDel:
		if !exists {
			w.NotFound()
			return
		}
		s.index++
		delete(s.files, req.Key)
		w.OKIndex(s.index)
	case line.CmdGet:
		switch {
		case req.MinIndex > s.index:
			w.Err(line.CodeTimeout, fmt.Sprintf("index %d not reached", req.MinIndex))
		case !exists:
			w.NotFound()
		default:
			w.Value(f.value, f.version)
		}
	case line.CmdStat:
		if !exists {
			w.NotFound()
			return
		}
		w.Stat(uint64(len(f.value)), f.version)
	case line.CmdList:
		var keys []string
		for k := range s.files {
			if strings.HasPrefix(k, req.Prefix) {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		w.Keys(keys)
	case line.CmdConsistency:
		if req.Level == line.LevelSession {
			w.Err(line.CodeBusy, "injected")
			return
		}
		w.OK()
	case line.CmdStatus:
		w.Nodes([]line.NodeStatus{
			{ID: 1, Addr: "127.0.0.1:7101", Role: "master", Ballot: "3.1", Commit: s.index, Applied: s.index},
			{ID: 2, Addr: "127.0.0.1:7102", Role: "follower", Ballot: "3.1", Commit: s.index, Applied: s.index - 1},
			{ID: 3, Addr: "127.0.0.1:7103", Role: "down"},
		})
	default:
		w.Err(line.CodeBadRequest, "not in the fake")
	}
}

// member answers a MEMBER request the way a master does.
func (s *fakeServer) member(w *line.Writer, req line.Request) {
	if s.noMembers {
		w.Err(line.CodeBadRequest, "unknown operation")
		return
	}
	if code, ok := map[uint64]string{90: line.CodeUnavailable, 91: line.CodeBusy, 92: line.CodeBadRequest}[req.MemberID]; ok {
		w.Err(code, "injected")
		return
	}
	i := slices.IndexFunc(s.members, func(m line.Member) bool { return m.ID == req.MemberID })
	switch {
	case req.Cmd == line.CmdMemberList:
		w.Members(s.members, s.slot)
		return
	case req.Cmd == line.CmdMemberAdd && i < 0:
		s.members = append(s.members, line.Member{ID: req.MemberID, Addr: req.MemberAddr})
		s.slot++
	case req.Cmd == line.CmdMemberRemove && i >= 0:
		s.members = slices.Delete(s.members, i, i+1)
		s.slot++
	case req.Cmd == line.CmdMemberPromote && i >= 0 && !s.members[i].Voter:
		s.members[i].Voter = true
		s.slot++
	}
	w.OKIndex(s.slot)
}

// runVerb runs `synod args...` in process, as main would, with stdin and
// SYNOD_ADDR set; it returns stdout, the error main would print after
// "synod: " ("" for none) and the exit code.
func runVerb(t *testing.T, addr string, stdin string, args ...string) (stdout, errText string, code int) {
	t.Helper()
	t.Setenv("SYNOD_ADDR", addr)
	app := newApp()
	var out, errOut bytes.Buffer
	app.Writer, app.ErrWriter, app.Reader = &out, &errOut, strings.NewReader(stdin)
	err := app.Run(append([]string{"synod"}, args...))
	if err != nil {
		return out.String(), err.Error(), exitCode(err)
	}
	return out.String(), "", 0
}

// TestVerbs pins each client verb's output, error and exit code.
func TestVerbs(t *testing.T) {
	local := filepath.Join(t.TempDir(), "local.txt")
	if err := os.WriteFile(local, []byte("from a file"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args  []string
		stdin string
		out   string   // stdout, exactly
		err   string   // the error main prints, exactly ("" none)
		code  int      // exit code
		reqs  []string // the requests sent, if not nil
	}{
		{args: []string{"put", "a", "x"}, out: "OK 4\n", reqs: []string{"PUT a"}},
		{args: []string{"put", "--json", "a", "x"}, out: `{"key":"a","index":4}` + "\n"},
		{args: []string{"put", "k"}, stdin: "piped", out: "OK 4\n"},
		{args: []string{"append", "a", "+"}, out: "OK 4\n", reqs: []string{"APPEND a"}},
		{args: []string{"cas", "a", "1", "y"}, out: "OK 4\n", reqs: []string{"CAS a"}},
		{args: []string{"cas", "a", "7", "y"}, err: "cas a: conflict: the current version is 1", code: exitNotFound},
		{args: []string{"cas", "--json", "new", "5", "y"},
			out: `{"error":{"code":"CONFLICT","message":"cas new: conflict: the key does not exist"}}` + "\n",
			err: "cas new: conflict: the key does not exist", code: exitNotFound},
		{args: []string{"del", "a"}, out: "OK 4\n", reqs: []string{"DEL a"}},
		{args: []string{"del", "--json", "missing"},
			out: `{"error":{"code":"NOT_FOUND","message":"del missing: not found"}}` + "\n",
			err: "del missing: not found", code: exitNotFound},
		{args: []string{"put", "err/TOO_LARGE", "v"}, err: "put err/TOO_LARGE: TOO_LARGE injected", code: exitUsage},
		{args: []string{"put", "--json", "err/UNAVAILABLE", "v"},
			out: `{"error":{"code":"UNAVAILABLE","message":"put err/UNAVAILABLE: UNAVAILABLE injected"}}` + "\n",
			err: "put err/UNAVAILABLE: UNAVAILABLE injected", code: exitUnavailable},
		{args: []string{"put", "a", "b", "c"}, err: "put takes KEY [VALUE]: quote a value that has spaces, or send it on stdin", code: exitUsage, reqs: []string{}},

		{args: []string{"get", "a"}, out: "hello\n", reqs: []string{"GET a"}},
		{args: []string{"get", "nl"}, out: "line\n"},
		{args: []string{"get", "--json", "a"}, out: `{"key":"a","value":"hello","version":1,"size":5}` + "\n"},
		{args: []string{"get", "--json", "bin"}, out: `{"key":"bin","value_base64":"/wA=","version":2,"size":2}` + "\n"},
		{args: []string{"get", "missing"}, err: "get missing: not found", code: exitNotFound},
		{args: []string{"get", "--min", "99", "a"}, err: "get a: TIMEOUT index 99 not reached", code: exitUnavailable, reqs: []string{"GET a MIN 99"}},
		{args: []string{"get", "--consistency", "stale", "a"}, out: "hello\n", reqs: []string{"CONSISTENCY stale", "GET a"}},
		{args: []string{"get", "--consistency", "bogus", "a"}, err: `--consistency "bogus": want linearizable, session or stale`, code: exitUsage, reqs: []string{}},
		{args: []string{"get", "--timeout", "0s", "a"}, err: "--timeout 0s: want a positive duration", code: exitUsage, reqs: []string{}},
		{args: []string{"get", "--json", "--consistency", "session", "a"},
			out: `{"error":{"code":"BUSY","message":"consistency: BUSY injected"}}` + "\n",
			err: "consistency: BUSY injected", code: exitUnavailable},

		{args: []string{"cat", "bin"}, out: "\xff\x00", reqs: []string{"GET bin"}},
		{args: []string{"cat", "--min", "2", "a"}, out: "hello", reqs: []string{"GET a MIN 2"}},
		{args: []string{"cat", "--json", "a"}, err: "cat writes raw bytes: use get --json", code: exitUsage, reqs: []string{}},
		{args: []string{"cat", "missing"}, err: "cat missing: not found", code: exitNotFound},

		{args: []string{"stat", "a"}, out: "key      a\nsize     5\nversion  1\n", reqs: []string{"STAT a"}},
		{args: []string{"stat", "--json", "nl"}, out: `{"key":"nl","size":5,"version":3}` + "\n"},
		{args: []string{"stat", "missing"}, err: "stat missing: not found", code: exitNotFound},

		{args: []string{"ls"}, out: "a\nbin\nnl\n", reqs: []string{"LIST"}},
		{args: []string{"ls", "--json"}, out: `{"prefix":"","keys":["a","bin","nl"]}` + "\n"},
		{args: []string{"ls", "--json", "zz"}, out: `{"prefix":"zz","keys":[]}` + "\n", reqs: []string{"LIST zz"}},
		{args: []string{"ls", "err/INTERNAL"}, err: "ls err/INTERNAL: INTERNAL injected", code: exitUnavailable},

		{args: []string{"status"}, out: "ID  ADDRESS         ROLE      BALLOT  COMMIT  APPLIED  LAG\n" +
			"1   127.0.0.1:7101  master    3.1     3       3        0\n" +
			"2   127.0.0.1:7102  follower  3.1     3       2        1\n" +
			"3   127.0.0.1:7103  down      -       0       0        -\n", reqs: []string{"STATUS"}},
		{args: []string{"status", "--json"}, out: `{"nodes":[` +
			`{"id":1,"addr":"127.0.0.1:7101","role":"master","ballot":"3.1","commit":3,"applied":3,"lag":0},` +
			`{"id":2,"addr":"127.0.0.1:7102","role":"follower","ballot":"3.1","commit":3,"applied":2,"lag":1},` +
			`{"id":3,"addr":"127.0.0.1:7103","role":"down","ballot":"","commit":0,"applied":0,"lag":null}]}` + "\n"},
		{args: []string{"status", "x"}, err: "status takes no arguments", code: exitUsage, reqs: []string{}},

		{args: []string{"cp", local, ":up"}, reqs: []string{"PUT up"}},
		{args: []string{"cp", "--json", local, ":up"}, out: `{"src":"` + local + `","dst":":up","bytes":11,"index":4}` + "\n"},
		{args: []string{"cp", "-", ":up"}, stdin: "stdin bytes", reqs: []string{"PUT up"}},
		{args: []string{"cp", ":a", ":b"}, reqs: []string{"GET a", "PUT b"}},
		{args: []string{"cp", ":a", "-"}, out: "hello"},
		{args: []string{"cp", "--json", ":a", "-"}, err: "cp to - writes raw bytes to stdout: leave out --json", code: exitUsage, reqs: []string{}},
		{args: []string{"cp", ":missing", "-"}, err: "cp :missing -: not found", code: exitNotFound},
		{args: []string{"cp", "--json", ":missing", ":b"},
			out: `{"error":{"code":"NOT_FOUND","message":"cp :missing :b: not found"}}` + "\n",
			err: "cp :missing :b: not found", code: exitNotFound},
		{args: []string{"cp", local + ".missing", ":k"}, err: "cp: open " + local + ".missing: no such file or directory", code: exitNotFound, reqs: []string{}},
		{args: []string{"cp", "a", "b"}, err: "cp a b: one side must be a key, written with a leading colon (:key)", code: exitUsage, reqs: []string{}},

		{args: []string{"member", "list"}, out: "ID  ADDRESS         ROLE\n" +
			"1   127.0.0.1:7101  voter\n" +
			"2   127.0.0.1:7102  voter\n" +
			"4   127.0.0.1:7104  learner\n", reqs: []string{"MEMBER LIST"}},
		{args: []string{"member", "list", "--json"}, out: `{"config_slot":1,"members":[` +
			`{"id":1,"addr":"127.0.0.1:7101","role":"voter"},{"id":2,"addr":"127.0.0.1:7102","role":"voter"},` +
			`{"id":4,"addr":"127.0.0.1:7104","role":"learner"}]}` + "\n"},
		{args: []string{"member", "add", "5", "127.0.0.1:7105"}, out: "member 5 added as a learner at 127.0.0.1:7105 (configuration 2)\n",
			reqs: []string{"MEMBER ADD 5 127.0.0.1:7105"}},
		{args: []string{"member", "add", "--json", "5", "[::1]:7105"}, out: `{"op":"add","id":5,"addr":"[::1]:7105","config_slot":2}` + "\n"},
		{args: []string{"member", "add", "1", "127.0.0.1:7101"}, out: "member 1 added as a learner at 127.0.0.1:7101 (configuration 1)\n"},
		{args: []string{"member", "remove", "2"}, out: "member 2 removed (configuration 2)\n", reqs: []string{"MEMBER REMOVE 2"}},
		{args: []string{"member", "remove", "--json", "9"}, out: `{"op":"remove","id":9,"config_slot":1}` + "\n"},
		{args: []string{"member", "promote", "4"}, out: "member 4 is a voter (configuration 2)\n", reqs: []string{"MEMBER PROMOTE 4"}},
		{args: []string{"member", "promote", "90"}, err: "member promote 90: UNAVAILABLE injected", code: exitUnavailable},
		{args: []string{"member", "remove", "--json", "91"},
			out: `{"error":{"code":"BUSY","message":"member remove 91: BUSY injected"}}` + "\n",
			err: "member remove 91: BUSY injected", code: exitUnavailable},
		{args: []string{"member", "add", "92", "h:1"}, err: "member add 92: BAD_REQUEST injected", code: exitUsage},
		{args: []string{"member", "add", "5"}, err: "member add takes ID ADDR, got 1 argument(s)", code: exitUsage, reqs: []string{}},
		{args: []string{"member", "add", "5", "127.0.0.1"}, err: `member address "127.0.0.1": want host:port, with a port in 1..65535`, code: exitUsage, reqs: []string{}},
		{args: []string{"member", "remove", "0"}, err: `member id "0": want a positive number`, code: exitUsage, reqs: []string{}},
		{args: []string{"member", "remove", "3", "--json"},
			err: `member remove takes ID; "--json" looks like a flag, and flags go before the arguments: synod member remove [flags] ID`, code: exitUsage, reqs: []string{}},
		{args: []string{"member", "list", "x"}, err: "member list takes no arguments", code: exitUsage, reqs: []string{}},
		{args: []string{"member"}, err: "member takes list, add ID ADDR, remove ID or promote ID", code: exitUsage, reqs: []string{}},
		{args: []string{"member", "join", "4"}, err: `member "join": want list, add, remove or promote`, code: exitUsage, reqs: []string{}},
		{args: []string{"member", "add", "--bogus", "4", "h:1"}, err: "flag provided but not defined: -bogus (see synod member add --help)", code: exitUsage, reqs: []string{}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			s := startFake(t)
			out, errText, code := runVerb(t, s.addr(), tt.stdin, tt.args...)
			if out != tt.out || errText != tt.err || code != tt.code {
				t.Fatalf("stdout %q, error %q, exit %d\nwant   %q, error %q, exit %d", out, errText, code, tt.out, tt.err, tt.code)
			}
			if tt.reqs != nil && !slices.Equal(s.requests(), tt.reqs) {
				t.Fatalf("requests %q, want %q", s.requests(), tt.reqs)
			}
		})
	}
}

// TestVerbsWriteWhatTheyRead checks the values that reach the server and a
// download to a local file.
func TestVerbsWriteWhatTheyRead(t *testing.T) {
	s := startFake(t)
	dir := t.TempDir()
	for _, args := range [][]string{{"put", "p", "inline"}, {"append", "p", "+"}, {"put", "q"}} {
		if _, errText, code := runVerb(t, s.addr(), "from stdin", args...); code != 0 {
			t.Fatalf("%q: exit %d: %s", args, code, errText)
		}
	}
	s.mu.Lock()
	p, q := string(s.files["p"].value), string(s.files["q"].value)
	s.mu.Unlock()
	if p != "inline+" || q != "from stdin" {
		t.Fatalf("p = %q, q = %q", p, q)
	}
	out, errText, code := runVerb(t, s.addr(), "", "cp", "--json", ":nl", dir)
	want := `{"src":":nl","dst":"` + filepath.Join(dir, "nl") + `","bytes":5}` + "\n"
	if out != want || code != 0 {
		t.Fatalf("cp into a directory: %q, %q, exit %d; want %q", out, errText, code, want)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "nl")); err != nil || string(b) != "line\n" {
		t.Fatalf("downloaded %q, %v", b, err)
	}
}

// TestVerbUnreachable checks that every client verb maps a refused
// connection to exit 3 with the same hint.
func TestVerbUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	for _, args := range [][]string{
		{"put", "a", "b"}, {"append", "a", "b"}, {"cas", "a", "0", "b"}, {"del", "a"}, {"get", "a"},
		{"cat", "a"}, {"stat", "a"}, {"ls"}, {"cp", ":a", ":b"}, {"status"},
		{"member", "list"}, {"member", "add", "4", "h:1"}, {"member", "remove", "4"}, {"member", "promote", "4"},
	} {
		_, errText, code := runVerb(t, addr, "", args...)
		if code != exitUnavailable || !strings.HasPrefix(errText, "cannot reach synod at "+addr+" (is `synod up` running? --addr / SYNOD_ADDR choose another): ") {
			t.Errorf("%q: exit %d, %q", args, code, errText)
		}
	}
}
