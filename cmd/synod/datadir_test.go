package main

// This file builds the replica data directories the offline commands'
// tests look at, with the real code paths (the wal log, the acceptor and
// IDENTITY writers, filestore.SaveSnapshot), and pins `synod check` on
// them: healthy, damaged one byte at a time in every file, and missing
// pieces. Everything runs on the test's goroutine.

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"synod/filestore"
	"synod/filestore/wal"
	"synod/paxos"
	"synod/wire"
)

// testConf is the configuration of the test directories' cluster.
var testConf = paxos.NewConfiguration([]paxos.NodeID{1, 2, 3}, map[paxos.NodeID]string{
	1: "127.0.0.1:7101", 2: "127.0.0.1:7102", 3: "127.0.0.1:7103"})

// testCommands are the commands of slots 3 to 10, two a slot.
func testCommands() [][]byte {
	var cmds [][]byte
	stamp := int64(1732000000000)
	add := func(c filestore.Command) {
		stamp += 100
		c.Stamp = stamp
		cmds = append(cmds, filestore.EncodeCommand(nil, c))
	}
	for i := range 6 {
		add(filestore.Command{Op: wire.OpPut, ClientID: 17, Seq: uint64(i + 1), Ack: uint64(i + 1), Key: fmt.Sprintf("docs/%d", i), Value: []byte(fmt.Sprintf("hello world %d", i))})
	}
	add(filestore.Command{Op: wire.OpAppend, ClientID: 17, Seq: 7, Ack: 7, Key: "docs/0", Value: []byte("!")})
	add(filestore.Command{Op: wire.OpCAS, ClientID: 17, Seq: 8, Ack: 8, Retry: true, Key: "docs/1", Version: 2, Value: []byte("swapped")})
	add(filestore.Command{Op: wire.OpDel, ClientID: 17, Seq: 9, Ack: 9, Key: "docs/2"})
	add(filestore.Command{Op: wire.OpPut, Key: "bin", Value: []byte{0, 1, 0xff, '\n', ' ', '\\'}})
	add(filestore.Command{Op: wire.OpPut, ClientID: 23, Seq: 1, Ack: 1, Key: "big", Value: bytes.Repeat([]byte("x"), 100)})
	add(filestore.Command{Op: wire.OpPut, ClientID: 23, Seq: 2, Ack: 2, Key: "empty"})
	add(filestore.Command{Op: wire.OpPut, ClientID: 23, Seq: 3, Ack: 3, Key: "docs/a", Value: []byte("a")})
	add(filestore.Command{Op: wire.OpPut, ClientID: 23, Seq: 4, Ack: 4, Key: "docs/b", Value: []byte("b")})
	add(filestore.Command{Op: wire.OpPut, ClientID: 23, Seq: 5, Ack: 5, Key: "docs/c", Value: []byte("c")})
	add(filestore.Command{Op: wire.OpPut, ClientID: 23, Seq: 6, Ack: 6, Key: "docs/d", Value: []byte("d")})
	return cmds
}

// buildDataDir writes the directory of replica 1: IDENTITY, acceptor,
// JOIN, a log of several segments (slot 1 the configuration, slot 2 a
// no-op, slots 3 to 10 two commands each, commit records), snapshots of
// slots 6 and 10, and the log truncated behind slot 2. It returns the
// directory and the state machine at slot 10.
func buildDataDir(t testing.TB) (string, *filestore.Machine) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "n1")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// The acceptor file first, as openStorage writes a new directory.
	must(os.MkdirAll(dir, 0o755))
	must(wal.WriteAcceptor(dir, wal.AcceptorState{Promise: wal.Ballot{Round: 2, Node: 1}, Membership: wal.MemberVoter}))
	must(wal.CreateIdentity(dir, "synod", 1))
	must(wal.WriteJoin(dir, 1, testConf.Value().Cmds))
	snapDir := filepath.Join(dir, "snap")
	must(os.MkdirAll(snapDir, 0o755))
	l, _, err := wal.Open(filepath.Join(dir, "log"), wal.Options{SegmentBytes: 500}, nil)
	must(err)
	m := filestore.New(filestore.Options{})
	must(l.Append([]wal.Record{
		{Kind: wal.KindAccept, Slot: 1, Ballot: wal.Ballot{Round: 1, Node: 1}, Value: paxos.ValueConfig, Cmds: testConf.Value().Cmds},
		{Kind: wal.KindAccept, Slot: 2, Ballot: wal.Ballot{Round: 1, Node: 1}, Value: paxos.ValueNoop},
	}))
	cmds := testCommands()
	for slot := uint64(3); slot <= 10; slot++ {
		pair := cmds[2*(slot-3) : 2*(slot-2)]
		must(l.Append([]wal.Record{
			{Kind: wal.KindAccept, Slot: slot, Ballot: wal.Ballot{Round: 2, Node: 1}, Value: paxos.ValueCmds, Cmds: pair},
			{Kind: wal.KindCommit, Slot: slot - 1},
		}))
		for _, c := range pair {
			m.Apply(m.Applied()+1, c)
		}
		if slot == 6 || slot == 10 {
			_, err := filestore.SaveSnapshot(snapDir, m, filestore.SnapshotMeta{Slot: slot, Members: []uint64{1, 2, 3}, Config: testConf.Value().Cmds, ConfigSlot: 1})
			must(err)
		}
	}
	must(l.TruncateBefore(2))
	must(l.Close())
	return dir, m
}

// dataFiles lists every regular file under dir, relative to it.
func dataFiles(t testing.TB, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		files = append(files, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// treeHash hashes every file under dir with its name, size, mode and
// modification time, to show a command left it alone.
func treeHash(t testing.TB, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d %v %d\n", path, fi.Size(), fi.Mode(), fi.ModTime().UnixNano())
		if !d.IsDir() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			h.Write(data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// copyTree copies the files of src into a new directory.
func copyTree(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	for _, f := range dataFiles(t, src) {
		data, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dst, f)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestCheckHealthyDir pins what `synod check` says about a healthy
// directory, and that it does not touch it.
func TestCheckHealthyDir(t *testing.T) {
	dir, _ := buildDataDir(t)
	before := treeHash(t, dir)
	out, errText, code := runVerb(t, "", "", "check", dir)
	if code != 0 || errText != "" {
		t.Fatalf("check: exit %d, %q\n%s", code, errText, out)
	}
	want := `ok      IDENTITY: cluster "synod", node 1
ok      acceptor: promise 2.1, voter
ok      JOIN: joined the configuration chosen at slot 1: 1=127.0.0.1:7101 2=127.0.0.1:7102 3=127.0.0.1:7103
ok      snap/00000000000000000006.snap: slot 6, index 8, 6 files (73 bytes), 1 session, configuration of slot 1: 1=127.0.0.1:7101 2=127.0.0.1:7102 3=127.0.0.1:7103
ok      snap/00000000000000000010.snap: slot 10, index 16, 12 files (170 bytes), 2 sessions, configuration of slot 1: 1=127.0.0.1:7101 2=127.0.0.1:7102 3=127.0.0.1:7103
ok      log/SEGMENTS: 3 segments listed, floor 2
ok      log/00000000000000000001.log: 4 batches, 8 records, slots 1 to 5
ok      log/00000000000000000006.log: 3 batches, 6 records, slots 5 to 8
ok      log/00000000000000000009.log: 2 batches, 4 records, slots 8 to 10
ok      (all): the node would start from the snapshot of slot 10 (index 16) and a log of 10 accepted values for slots 1 to 10, chosen up to slot 9
DIR: all is well
`
	if got := strings.ReplaceAll(out, dir, "DIR"); got != want {
		t.Fatalf("check printed\n%s\nwant\n%s", got, want)
	}
	out, _, code = runVerb(t, "", "", "check", "--json", dir)
	var rep checkReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 || !rep.OK || rep.Errors != 0 || len(rep.Findings) != 10 {
		t.Fatalf("check --json: exit %d, %v: %s", code, err, out)
	}
	if treeHash(t, dir) != before {
		t.Fatal("check changed the directory")
	}
}

// TestCheckFindsEveryFlippedByte flips each byte of each file of a data
// directory, one at a time (two ways: a low bit, and into a newline): the
// check reports an error naming that file and the line that holds the
// byte, and exits 1.
func TestCheckFindsEveryFlippedByte(t *testing.T) {
	src, _ := buildDataDir(t)
	files := dataFiles(t, src)
	if len(files) < 9 {
		t.Fatalf("want every kind of file, got %v", files)
	}
	dir := copyTree(t, src)
	checked := 0
	for _, f := range files {
		path := filepath.Join(dir, f)
		orig, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for off := range orig {
			line := 1 + bytes.Count(orig[:off], []byte("\n"))
			for _, flip := range []func(byte) byte{
				func(b byte) byte { return b ^ 0x01 },
				func(byte) byte { return '\n' },
			} {
				bad := bytes.Clone(orig)
				if bad[off] = flip(bad[off]); bad[off] == orig[off] {
					continue
				}
				if err := os.WriteFile(path, bad, 0o644); err != nil {
					t.Fatal(err)
				}
				findings, err := checkDataDir(dir, checkOptions{maxValue: filestore.DefaultMaxValue})
				if err != nil {
					t.Fatal(err)
				}
				if !hasFinding(findings, levelError, f, line) {
					t.Fatalf("%s byte %d (%q → %q): no error at line %d; found:\n%s", f, off, orig[off], bad[off], line, findingsText(findings))
				}
				checked++
			}
		}
		if err := os.WriteFile(path, orig, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d damaged copies, each found", checked)
	// And through the command: exit 1, the place named.
	seg := filepath.Join(dir, "log", "00000000000000000006.log")
	data, _ := os.ReadFile(seg)
	data[40] ^= 1
	os.WriteFile(seg, data, 0o644)
	out, errText, code := runVerb(t, "", "", "check", dir)
	if code != 1 || !strings.Contains(out, "error   log/00000000000000000006.log:3: line checksum mismatch") || errText != "check "+dir+": 1 error" {
		t.Fatalf("check: exit %d, %q\n%s", code, errText, out)
	}
}

func hasFinding(fs []finding, level, file string, line int) bool {
	for _, f := range fs {
		if f.Level == level && f.File == file && f.Line == line {
			return true
		}
	}
	return false
}

func findingsText(fs []finding) string {
	var b strings.Builder
	writeFindings(&b, checkReport{Dir: "DIR", Findings: fs})
	return b.String()
}

// TestCheckMissingAndLeftover removes or adds one piece at a time: lost
// state and refused directories are errors (exit 1), what the node
// repairs by itself at start is a warning (exit 0).
func TestCheckMissingAndLeftover(t *testing.T) {
	src, _ := buildDataDir(t)
	tests := []struct {
		name   string
		change func(dir string)
		level  string
		file   string
		line   int
		has    string // in the finding's message
		code   int
		flags  []string
	}{
		{"no acceptor", rm("acceptor"), levelError, "acceptor", 0, "forgotten its promise", 1, nil},
		{"no IDENTITY", rm("IDENTITY"), levelError, "IDENTITY", 0, "holds other files", 1, nil},
		{"no log", rm("log"), levelError, "log", 0, "lost its log", 1, nil},
		{"a listed segment gone", rm("log/00000000000000000006.log"), levelError, "log/00000000000000000006.log", 0, "lists it", 1, nil},
		{"no manifest", rm("log/SEGMENTS"), levelError, "log/SEGMENTS", 0, "missing", 1, nil},
		{"every snapshot gone", rm("snap/00000000000000000006.snap", "snap/00000000000000000010.snap"), levelError, "log/SEGMENTS", 1, "truncated behind slot 2, but there is no snapshot", 1, nil},
		{"wrong node", nil, levelError, "IDENTITY", 1, "not the cluster \"synod\" node 2", 1, []string{"--id", "2"}},
		{"removed from the configuration", func(dir string) {
			conf := paxos.NewConfiguration([]paxos.NodeID{2, 3, 4}, nil)
			m, meta, err := filestore.LoadSnapshot(filestore.SnapshotPath(filepath.Join(dir, "snap"), 10), filestore.Options{})
			if err != nil {
				panic(err)
			}
			meta.Config, meta.ConfigSlot = conf.Value().Cmds, 9
			if _, err := filestore.SaveSnapshot(filepath.Join(dir, "snap"), m, meta); err != nil {
				panic(err)
			}
		}, levelError, "snap/00000000000000000010.snap", 0, "does not include replica 1", 1, nil},
		{"torn last batch", func(dir string) {
			seg := filepath.Join(dir, "log", "00000000000000000009.log")
			data, _ := os.ReadFile(seg)
			os.WriteFile(seg, data[:len(data)-5], 0o644)
		}, levelWarning, "log/00000000000000000009.log", 5, "never acknowledged", 0, nil},
		{"an interrupted snapshot save", touch("snap/.snap-123.tmp"), levelWarning, "snap/.snap-123.tmp", 0, "interrupted", 0, nil},
		{"an interrupted acceptor write", touch("acceptor.tmp"), levelWarning, "acceptor.tmp", 0, "interrupted", 0, nil},
		{"a stale segment", func(dir string) {
			os.WriteFile(filepath.Join(dir, "log", "00000000000000000000.log"), []byte("synod-wal 1\n"), 0o644)
		}, levelWarning, "log/00000000000000000000.log", 0, "interrupted", 0, nil},
		{"a learner", func(dir string) {
			wal.WriteAcceptor(dir, wal.AcceptorState{Promise: wal.Ballot{Round: 2, Node: 1}, Membership: wal.MemberLearner})
		}, levelWarning, "acceptor", 0, "learner", 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyTree(t, src)
			if tc.change != nil {
				tc.change(dir)
			}
			out, _, code := runVerb(t, "", "", append(append([]string{"check"}, tc.flags...), dir)...)
			var rep checkReport
			jout, _, _ := runVerb(t, "", "", append(append([]string{"check", "--json"}, tc.flags...), dir)...)
			if err := json.Unmarshal([]byte(jout), &rep); err != nil {
				t.Fatal(err)
			}
			found := false
			for _, f := range rep.Findings {
				found = found || f.Level == tc.level && f.File == tc.file && f.Line == tc.line && strings.Contains(f.Message, tc.has)
			}
			if !found || code != tc.code {
				t.Fatalf("exit %d (want %d), want a %s at %s:%d saying %q:\n%s", code, tc.code, tc.level, tc.file, tc.line, tc.has, out)
			}
		})
	}
}

func rm(names ...string) func(string) {
	return func(dir string) {
		for _, n := range names {
			os.RemoveAll(filepath.Join(dir, n))
		}
	}
}

func touch(name string) func(string) {
	return func(dir string) { os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644) }
}

func TestCheckUsage(t *testing.T) {
	for _, args := range [][]string{{"check"}, {"check", "a", "b"}, {"check", filepath.Join(t.TempDir(), "none")}, {"check", "--bogus", "x"}} {
		if _, _, code := runVerb(t, "", "", args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
	// Flags may follow the directory.
	dir, _ := buildDataDir(t)
	if out, _, code := runVerb(t, "", "", "check", dir, "--json"); code != 0 || !strings.HasPrefix(out, "{") {
		t.Fatalf("check DIR --json: exit %d\n%s", code, out)
	}
	empty := t.TempDir()
	if out, _, code := runVerb(t, "", "", "check", empty); code != 1 || !strings.Contains(out, "the directory is empty") {
		t.Fatalf("check of an empty dir: exit %d\n%s", code, out)
	}
}
