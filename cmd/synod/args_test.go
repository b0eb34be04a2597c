package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"synod/wire/line"
)

func TestParseVerbArgs(t *testing.T) {
	long := strings.Repeat("k", line.DefaultMaxKey)
	tests := []struct {
		verb string
		args []string
		want verbArgs
		err  string // substring of the usage error; "" = success
	}{
		{verb: "put", args: []string{"a", "b"}, want: verbArgs{Key: "a", Value: []byte("b"), HasValue: true}},
		{verb: "put", args: []string{"docs/readme.txt", "hello world"}, want: verbArgs{Key: "docs/readme.txt", Value: []byte("hello world"), HasValue: true}},
		{verb: "put", args: []string{"a", ""}, want: verbArgs{Key: "a", Value: []byte{}, HasValue: true}},
		{verb: "put", args: []string{"a"}, want: verbArgs{Key: "a"}},
		{verb: "put", args: []string{"a", "--x"}, want: verbArgs{Key: "a", Value: []byte("--x"), HasValue: true}},
		{verb: "put", args: []string{long, "v"}, want: verbArgs{Key: long, Value: []byte("v"), HasValue: true}},
		{verb: "put", args: nil, err: "put takes KEY [VALUE]"},
		{verb: "put", args: []string{"a", "b", "c"}, err: "quote a value"},
		{verb: "put", args: []string{"a", "b", "--json"}, err: "flags go before the arguments"},
		{verb: "put", args: []string{"a b", "v"}, err: "invalid key"},
		{verb: "put", args: []string{"", "v"}, err: "invalid key"},
		{verb: "put", args: []string{long + "k", "v"}, err: "invalid key"},
		{verb: "put", args: []string{"a\x01", "v"}, err: "invalid key"},
		{verb: "append", args: []string{"log", "line\n"}, want: verbArgs{Key: "log", Value: []byte("line\n"), HasValue: true}},
		{verb: "cas", args: []string{"a", "0", "v"}, want: verbArgs{Key: "a", Version: 0, Value: []byte("v"), HasValue: true}},
		{verb: "cas", args: []string{"a", "42"}, want: verbArgs{Key: "a", Version: 42}},
		{verb: "cas", args: []string{"a", "18446744073709551615", "v"}, want: verbArgs{Key: "a", Version: 1<<64 - 1, Value: []byte("v"), HasValue: true}},
		{verb: "cas", args: []string{"a", "-1", "v"}, err: "want a number"},
		{verb: "cas", args: []string{"a", "x", "v"}, err: "want a number"},
		{verb: "cas", args: []string{"a", "18446744073709551616"}, err: "want a number"},
		{verb: "cas", args: []string{"a"}, err: "cas takes KEY VERSION [VALUE]"},
		{verb: "get", args: []string{"a"}, want: verbArgs{Key: "a"}},
		{verb: "get", args: []string{"a", "--json"}, err: `"--json" looks like a flag`},
		{verb: "get", args: []string{"a", "b"}, err: "get takes KEY, got 2"},
		{verb: "get", args: nil, err: "get takes KEY, got 0"},
		{verb: "cat", args: []string{"a/b/c"}, want: verbArgs{Key: "a/b/c"}},
		{verb: "del", args: []string{"a"}, want: verbArgs{Key: "a"}},
		{verb: "del", args: []string{"a", "b"}, err: "del takes KEY"},
		{verb: "stat", args: []string{"ключ"}, want: verbArgs{Key: "ключ"}},
		{verb: "ls", args: nil, want: verbArgs{}},
		{verb: "ls", args: []string{"docs/"}, want: verbArgs{Prefix: "docs/"}},
		{verb: "ls", args: []string{""}, want: verbArgs{}},
		{verb: "ls", args: []string{"a b"}, err: "invalid key"},
		{verb: "ls", args: []string{"a", "b"}, err: "ls takes [PREFIX]"},
		{verb: "status", args: nil, want: verbArgs{}},
		{verb: "status", args: []string{"x"}, err: "status takes no arguments"},
		{verb: "frob", args: nil, err: "unknown verb"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %q", tt.verb, tt.args), func(t *testing.T) {
			got, err := parseVerbArgs(tt.verb, tt.args)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one containing %q", err, tt.err)
				}
				if exitCode(err) != exitUsage {
					t.Fatalf("exit code %d, want %d", exitCode(err), exitUsage)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if got.Key != tt.want.Key || got.Version != tt.want.Version || got.HasValue != tt.want.HasValue ||
				!bytes.Equal(got.Value, tt.want.Value) || got.Prefix != tt.want.Prefix {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseCpArgs(t *testing.T) {
	tests := []struct {
		args     []string
		src, dst cpEnd
		err      string
	}{
		{args: []string{"photo.jpg", ":img/cat.jpg"}, src: cpEnd{Path: "photo.jpg"}, dst: cpEnd{Key: "img/cat.jpg", IsKey: true}},
		{args: []string{":img/cat.jpg", "out.jpg"}, src: cpEnd{Key: "img/cat.jpg", IsKey: true}, dst: cpEnd{Path: "out.jpg"}},
		{args: []string{"-", ":notes"}, src: cpEnd{Std: true}, dst: cpEnd{Key: "notes", IsKey: true}},
		{args: []string{":notes", "-"}, src: cpEnd{Key: "notes", IsKey: true}, dst: cpEnd{Std: true}},
		{args: []string{":a", ":b"}, src: cpEnd{Key: "a", IsKey: true}, dst: cpEnd{Key: "b", IsKey: true}},
		{args: []string{"./:odd", ":k"}, src: cpEnd{Path: "./:odd"}, dst: cpEnd{Key: "k", IsKey: true}},
		{args: []string{"/abs/path", ":k"}, src: cpEnd{Path: "/abs/path"}, dst: cpEnd{Key: "k", IsKey: true}},
		{args: []string{"a", "b"}, err: "one side must be a key"},
		{args: []string{"-", "-"}, err: "one side must be a key"},
		{args: []string{"a", ":"}, err: "invalid key"},
		{args: []string{":a b", "f"}, err: "invalid key"},
		{args: []string{"", ":k"}, err: "empty path"},
		{args: []string{":k"}, err: "cp takes SRC DST, got 1"},
		{args: []string{":k", "a", "b"}, err: "cp takes SRC DST, got 3"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.args), func(t *testing.T) {
			src, dst, err := parseCpArgs(tt.args)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || exitCode(err) != exitUsage {
					t.Fatalf("err = %v (exit %d), want a usage error containing %q", err, exitCode(err), tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if src != tt.src || dst != tt.dst {
				t.Fatalf("got %+v %+v, want %+v %+v", src, dst, tt.src, tt.dst)
			}
		})
	}
}

func TestCpEndString(t *testing.T) {
	for _, tt := range []struct {
		end  cpEnd
		want string
	}{
		{cpEnd{Key: "a/b", IsKey: true}, ":a/b"},
		{cpEnd{Std: true}, "-"},
		{cpEnd{Path: "x.bin"}, "x.bin"},
	} {
		if got := tt.end.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.end, got, tt.want)
		}
	}
}

func TestClientExitCode(t *testing.T) {
	tests := []struct {
		err  error
		code int
		msg  string // substring of the verbError's text
	}{
		{&line.ServerError{Code: line.CodeNotFound}, exitNotFound, "get k: not found"},
		{&line.ServerError{Code: line.CodeConflict, Version: 7}, exitNotFound, "the current version is 7"},
		{&line.ServerError{Code: line.CodeConflict}, exitNotFound, "the key does not exist"},
		{&line.ServerError{Code: line.CodeBadRequest, Msg: "bad key"}, exitUsage, "BAD_REQUEST bad key"},
		{&line.ServerError{Code: line.CodeTooLarge, Msg: "value over 1048576 bytes"}, exitUsage, "TOO_LARGE value over"},
		{fmt.Errorf("line: put: %w", line.ErrInvalidKey), exitUsage, "invalid key"},
		{&line.ServerError{Code: line.CodeUnavailable, Msg: "no master"}, exitUnavailable, "UNAVAILABLE no master"},
		{&line.ServerError{Code: line.CodeBusy}, exitUnavailable, "get k: BUSY"},
		{&line.ServerError{Code: line.CodeTimeout}, exitUnavailable, "TIMEOUT"},
		{&line.ServerError{Code: line.CodeInternal, Msg: "bug"}, exitUnavailable, "INTERNAL bug"},
		{fmt.Errorf("reply: %w", line.ErrBadReply), exitUnavailable, "malformed reply"},
		{errors.New("connection reset by peer"), exitUnavailable, "connection reset"},
	}
	for _, tt := range tests {
		if got := clientExitCode(tt.err); got != tt.code {
			t.Errorf("clientExitCode(%v) = %d, want %d", tt.err, got, tt.code)
		}
		ve := &verbError{what: "get k", err: tt.err}
		if !strings.Contains(ve.Error(), tt.msg) {
			t.Errorf("verbError(%v) = %q, want it to contain %q", tt.err, ve.Error(), tt.msg)
		}
		if !errors.Is(ve, tt.err) {
			t.Errorf("verbError does not unwrap to %v", tt.err)
		}
	}
}

func TestReadLimited(t *testing.T) {
	for _, tt := range []struct {
		in    string
		limit int64
		ok    bool
	}{
		{"", 0, true},
		{"abc", 3, true},
		{"abcd", 3, false},
		{strings.Repeat("x", 1<<16), 1 << 16, true},
	} {
		got, err := readLimited(strings.NewReader(tt.in), tt.limit, "stdin")
		if tt.ok != (err == nil) {
			t.Fatalf("readLimited(%d bytes, %d): err = %v", len(tt.in), tt.limit, err)
		}
		if err == nil && string(got) != tt.in {
			t.Fatalf("readLimited returned %d bytes, want %d", len(got), len(tt.in))
		}
		if err != nil && exitCode(err) != exitUsage {
			t.Fatalf("too large: exit %d, want %d", exitCode(err), exitUsage)
		}
	}
}

func TestWriteLocal(t *testing.T) {
	dir := t.TempDir()
	data := []byte("some\x00bytes")

	// A new file.
	p, err := writeLocal(filepath.Join(dir, "out.bin"), "k", data)
	if err != nil || p != filepath.Join(dir, "out.bin") {
		t.Fatalf("writeLocal = %q, %v", p, err)
	}
	checkFile(t, p, data, 0o644)

	// Into a directory: the key's last path element names the file, and
	// an existing file keeps its mode.
	if err := os.WriteFile(filepath.Join(dir, "c.txt"), []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err = writeLocal(dir, "a/b/c.txt", data)
	if err != nil || p != filepath.Join(dir, "c.txt") {
		t.Fatalf("writeLocal into dir = %q, %v", p, err)
	}
	checkFile(t, p, data, 0o600)

	// A missing directory fails and leaves nothing behind.
	if _, err := writeLocal(filepath.Join(dir, "no", "such"), "k", data); err == nil {
		t.Fatal("writeLocal into a missing directory succeeded")
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 2 {
		t.Fatalf("dir holds %d entries, want 2 (no temporary files left)", len(ents))
	}
}

func checkFile(t *testing.T, p string, want []byte, mode os.FileMode) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s holds %q, %v; want %q", p, got, err, want)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != mode {
		t.Fatalf("%s mode %v, %v; want %v", p, fi.Mode().Perm(), err, mode)
	}
}

func TestStatusRows(t *testing.T) {
	tests := []struct {
		name  string
		nodes []line.NodeStatus
		lags  []string // "-" for nil
		roles []string // if not nil
	}{
		{
			name: "master and two followers",
			nodes: []line.NodeStatus{
				{ID: 1, Role: "master", Commit: 10, Applied: 10},
				{ID: 2, Role: "follower", Commit: 10, Applied: 8},
				{ID: 3, Role: "follower", Commit: 9, Applied: 9},
			},
			lags: []string{"0", "2", "1"},
		},
		{
			name: "a follower ahead of a stale master report",
			nodes: []line.NodeStatus{
				{ID: 1, Role: "master", Commit: 5, Applied: 5},
				{ID: 2, Role: "follower", Commit: 6, Applied: 6},
			},
			lags: []string{"0", "0"},
		},
		{
			name: "no master: the highest commit is the reference",
			nodes: []line.NodeStatus{
				{ID: 1, Role: "follower", Commit: 7, Applied: 3},
				{ID: 2, Role: "down", Commit: 100, Applied: 100},
				{ID: 3, Role: "follower", Commit: 4, Applied: 4},
			},
			lags: []string{"4", "-", "3"},
		},
		{
			name: "a learner catching up",
			nodes: []line.NodeStatus{
				{ID: 1, Role: "master", Commit: 900, Applied: 900},
				{ID: 4, Role: "follower", Commit: 900, Applied: 120, Extra: map[string]string{"member": "learner"}},
				{ID: 5, Role: "down", Extra: map[string]string{"member": "learner"}},
			},
			lags:  []string{"0", "780", "-"},
			roles: []string{"master", "learner", "down"},
		},
		{name: "empty", nodes: nil, lags: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows := statusRows(tt.nodes)
			if len(rows) != len(tt.lags) {
				t.Fatalf("%d rows, want %d", len(rows), len(tt.lags))
			}
			for i, r := range rows {
				got := "-"
				if r.Lag != nil {
					got = fmt.Sprint(*r.Lag)
				}
				if got != tt.lags[i] {
					t.Errorf("row %d lag %s, want %s", i, got, tt.lags[i])
				}
				if tt.roles != nil && r.Role != tt.roles[i] {
					t.Errorf("row %d role %s, want %s", i, r.Role, tt.roles[i])
				}
			}
		})
	}
}

func TestFormatStatus(t *testing.T) {
	lag := uint64(0)
	got := formatStatus([]statusRow{
		{ID: 1, Addr: "127.0.0.1:7101", Role: "master", Ballot: "2.1", Commit: 12, Applied: 12, Lag: &lag},
		{ID: 2, Addr: "127.0.0.1:7102", Role: "down"},
	})
	want := "ID  ADDRESS         ROLE    BALLOT  COMMIT  APPLIED  LAG\n" +
		"1   127.0.0.1:7101  master  2.1     12      12       0\n" +
		"2   127.0.0.1:7102  down    -       0       0        -\n"
	if got != want {
		t.Fatalf("formatStatus =\n%s\nwant\n%s", got, want)
	}
}

func TestUpConfig(t *testing.T) {
	good := upConfig{Nodes: 3, Dir: "d", Listen: "127.0.0.1:7000", BasePort: 7100, Cluster: "synod", Grace: time.Second, LogLevel: "info", LogFormat: "console"}
	tests := []struct {
		name string
		mod  func(*upConfig)
		err  string
	}{
		{"defaults", func(*upConfig) {}, ""},
		{"one node", func(u *upConfig) { u.Nodes = 1 }, ""},
		{"max nodes", func(u *upConfig) { u.Nodes = maxUpNodes }, ""},
		{"no nodes", func(u *upConfig) { u.Nodes = 0 }, "--nodes 0"},
		{"too many nodes", func(u *upConfig) { u.Nodes = maxUpNodes + 1 }, "--nodes"},
		{"port overflow", func(u *upConfig) { u.BasePort = 65533 }, "--base-port"},
		{"port zero", func(u *upConfig) { u.BasePort = 0 }, "--base-port"},
		{"empty dir", func(u *upConfig) { u.Dir = "" }, "--dir"},
		{"bad listen", func(u *upConfig) { u.Listen = "7000" }, "--listen"},
		{"listen on a replica", func(u *upConfig) { u.Listen = "127.0.0.1:7102" }, "replica 2"},
		{"cluster with space", func(u *upConfig) { u.Cluster = "a b" }, "--cluster"},
		{"no grace", func(u *upConfig) { u.Grace = 0 }, "--grace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := good
			tt.mod(&u)
			err := u.validate()
			if tt.err == "" {
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) || exitCode(err) != exitUsage {
				t.Fatalf("validate = %v, want a usage error containing %q", err, tt.err)
			}
		})
	}
}

func TestUpChildren(t *testing.T) {
	u := upConfig{Nodes: 3, Dir: "data", Listen: "127.0.0.1:7000", BasePort: 7100, Cluster: "c1", LogLevel: "debug", LogFormat: "json"}
	peers := "1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103"
	global := []string{"--log-level", "debug", "--log-format", "json"}
	node := func(id int, rest ...string) childSpec {
		args := append(slices.Clone(global), "node", "--id", strconv.Itoa(id), "--listen", fmt.Sprintf("127.0.0.1:%d", 7100+id))
		args = append(args, rest...)
		args = append(args, "--dir", filepath.Join("data", fmt.Sprintf("n%d", id)), "--cluster", "c1")
		return childSpec{fmt.Sprintf("node%d", id), id, args}
	}
	want := []childSpec{
		node(1, "--peers", peers), node(2, "--peers", peers), node(3, "--peers", peers),
		{"proxy", 0, append(slices.Clone(global), "proxy", "--listen", "127.0.0.1:7000", "--nodes", peers, "--cluster", "c1")},
	}
	if got := u.children(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("children =\n%v\nwant\n%v", got, want)
	}
	// The peer list must parse the way `synod node` parses it.
	m, err := parsePeers(u.peers())
	if err != nil || len(m) != 3 || m[2] != "127.0.0.1:7102" {
		t.Fatalf("parsePeers(%q) = %v, %v", u.peers(), m, err)
	}

	// Members added while an earlier up ran join through replica 1, and
	// the proxy starts from every replica.
	u.Joined = []int{5, 7}
	all := peers + ",5=127.0.0.1:7105,7=127.0.0.1:7107"
	want = []childSpec{
		node(1, "--peers", peers), node(2, "--peers", peers), node(3, "--peers", peers),
		node(5, "--join", "127.0.0.1:7101"), node(7, "--join", "127.0.0.1:7101"),
		{"proxy", 0, append(slices.Clone(global), "proxy", "--listen", "127.0.0.1:7000", "--nodes", all, "--cluster", "c1")},
	}
	if got := u.children(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("children with joined members =\n%v\nwant\n%v", got, want)
	}
	if got := u.nodeSpec(4, "127.0.0.1:7102"); fmt.Sprint(got) != fmt.Sprint(node(4, "--join", "127.0.0.1:7102")) {
		t.Fatalf("nodeSpec(4) = %v", got)
	}
}

func TestJoinedDirs(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"n1", "n2", "n3", "n4", "n12", "n05", "nx", "n", "m6", "n9x", "n65436"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "n7"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := joinedDirs(dir, 3, 100)
	if err != nil || fmt.Sprint(got) != "[4 12]" {
		t.Fatalf("joinedDirs = %v, %v; want [4 12]", got, err)
	}
	if got, err := joinedDirs(filepath.Join(dir, "missing"), 3, 100); err != nil || got != nil {
		t.Fatalf("joinedDirs of a missing dir = %v, %v", got, err)
	}
}

func TestBanner(t *testing.T) {
	u := upConfig{Nodes: 3, Dir: "./synod-data", Listen: "127.0.0.1:7000", BasePort: 7100}
	b := banner(u, 2, "./bin/synod")
	for _, want := range []string{
		"proxy on 127.0.0.1:7000, 3 replicas (master: 2), data in ./synod-data",
		"| nc 127.0.0.1 7000",
		"./bin/synod put hello world && ./bin/synod get hello",
		"redis-cli -h 127.0.0.1 -p 7000",
	} {
		if !strings.Contains(b, want) {
			t.Errorf("banner lacks %q:\n%s", want, b)
		}
	}
	u.Listen = "0.0.0.0:7500"
	b = banner(u, 1, "synod")
	if !strings.Contains(b, "nc 127.0.0.1 7500") || !strings.Contains(b, "synod put --addr 127.0.0.1:7500 hello world") ||
		!strings.Contains(b, "redis-cli -h 127.0.0.1 -p 7500") {
		t.Errorf("banner for 0.0.0.0 should point clients at loopback:\n%s", b)
	}
}

func TestParseMemberArgs(t *testing.T) {
	tests := []struct {
		sub  string
		args []string
		want memberArgs
		err  string // "" for success
	}{
		{"list", nil, memberArgs{}, ""},
		{"add", []string{"4", "127.0.0.1:7104"}, memberArgs{ID: 4, Addr: "127.0.0.1:7104"}, ""},
		{"add", []string{"18446744073709551615", "db.example.com:1"}, memberArgs{ID: 1<<64 - 1, Addr: "db.example.com:1"}, ""},
		{"remove", []string{"3"}, memberArgs{ID: 3}, ""},
		{"promote", []string{"07"}, memberArgs{ID: 7}, ""},
		{"list", []string{"x"}, memberArgs{}, "member list takes no arguments"},
		{"add", []string{"4"}, memberArgs{}, "member add takes ID ADDR, got 1 argument(s)"},
		{"add", []string{"4", "h:1", "x"}, memberArgs{}, "member add takes ID ADDR, got 3 argument(s)"},
		{"add", []string{"x", "h:1"}, memberArgs{}, `member id "x": want a positive number`},
		{"add", []string{"-1", "h:1"}, memberArgs{}, `member id "-1": want a positive number`},
		{"add", []string{"4", "h"}, memberArgs{}, `member address "h": want host:port`},
		{"add", []string{"4", "h:0"}, memberArgs{}, `member address "h:0": want host:port`},
		{"add", []string{"4", ":7104"}, memberArgs{}, `member address ":7104": want host:port`},
		{"remove", []string{"0"}, memberArgs{}, `member id "0": want a positive number`},
		{"remove", nil, memberArgs{}, "member remove takes ID, got 0 argument(s)"},
		{"promote", []string{"4", "--json"}, memberArgs{}, `"--json" looks like a flag`},
		{"join", nil, memberArgs{}, `member "join": want list, add, remove or promote`},
	}
	for _, tt := range tests {
		got, err := parseMemberArgs(tt.sub, tt.args)
		if tt.err == "" {
			if err != nil || got != tt.want {
				t.Errorf("%s %q = %+v, %v; want %+v", tt.sub, tt.args, got, err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.err) || exitCode(err) != exitUsage {
			t.Errorf("%s %q: error %v, want a usage error containing %q", tt.sub, tt.args, err, tt.err)
		}
	}
}

func TestParseProxyNodes(t *testing.T) {
	tests := []struct {
		in    string
		nodes map[uint64]string
		seeds []string
		err   string
	}{
		{"1=127.0.0.1:7101,2=127.0.0.1:7102", map[uint64]string{1: "127.0.0.1:7101", 2: "127.0.0.1:7102"}, nil, ""},
		{"127.0.0.1:7101", map[uint64]string{}, []string{"127.0.0.1:7101"}, ""},
		{" 1=h:1 , h:2,[::1]:3,", map[uint64]string{1: "h:1"}, []string{"h:2", "[::1]:3"}, ""},
		{"", nil, nil, "no replicas"},
		{" , ", nil, nil, "no replicas"},
		{"0=h:1", nil, nil, "bad entry"},
		{"x=h:1", nil, nil, "bad entry"},
		{"1=", nil, nil, "bad entry"},
		{"1=h", nil, nil, "bad entry"},
		{"h", nil, nil, "bad entry"},
		{":1", nil, nil, "bad entry"},
		{"1=h:1,1=h:2", nil, nil, "replica 1 listed twice"},
		{"1=h:1,h:1", nil, nil, "address h:1 listed twice"},
		{"h:1,h:1", nil, nil, "address h:1 listed twice"},
	}
	for _, tt := range tests {
		nodes, seeds, err := parseProxyNodes(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: %v, %v, %v; want an error containing %q", tt.in, nodes, seeds, err, tt.err)
			}
			continue
		}
		if err != nil || fmt.Sprint(nodes) != fmt.Sprint(tt.nodes) || fmt.Sprint(seeds) != fmt.Sprint(tt.seeds) {
			t.Errorf("%q = %v, %v, %v; want %v, %v", tt.in, nodes, seeds, err, tt.nodes, tt.seeds)
		}
	}
	// What up gives its proxy parses the same way.
	u := upConfig{Nodes: 3, BasePort: 7100}
	if nodes, seeds, err := parseProxyNodes(u.peers()); err != nil || len(nodes) != 3 || len(seeds) != 0 {
		t.Fatalf("parseProxyNodes(%q) = %v, %v, %v", u.peers(), nodes, seeds, err)
	}
}
