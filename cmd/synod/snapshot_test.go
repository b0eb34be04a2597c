package main

// This file pins `synod snapshot status` and `synod snapshot restore` in
// process: what they print, what restore writes, and that a damaged or
// truncated backup is refused by both with the reason. It runs on the
// test's goroutine.

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"synod/filestore"
	"synod/filestore/wal"
	"synod/paxos"
)

// testBackup returns the newest snapshot of a built data directory, as a
// backup file outside it, and the state it holds.
func testBackup(t *testing.T) (string, *filestore.Machine) {
	t.Helper()
	dir, m := buildDataDir(t)
	data, err := os.ReadFile(filestore.SnapshotPath(filepath.Join(dir, "snap"), 10))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "backup.snap")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, m
}

func TestSnapshotStatus(t *testing.T) {
	path, m := testBackup(t)
	out, errText, code := runVerb(t, "", "", "snapshot", "status", path)
	want := `file      BACKUP (668 bytes, format 3)
slot      10
index     16
log time  2024-11-19T07:06:41.600Z (1732000001600)
members   1,2,3
config    1=127.0.0.1:7101 2=127.0.0.1:7102 3=127.0.0.1:7103 (chosen at slot 1)
keys      12
bytes     170
sessions  2
checksum  crc32c 55d84504 (every line, the trailer and the counts check out)
digest    ` + m.Digest() + "\n"
	if got := strings.ReplaceAll(out, path, "BACKUP"); code != 0 || errText != "" || got != want {
		t.Fatalf("snapshot status: exit %d, %q\n%s\nwant\n%s", code, errText, got, want)
	}
	out, _, code = runVerb(t, "", "", "snapshot", "status", path, "--json")
	var info snapshotInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil || code != 0 {
		t.Fatalf("snapshot status --json: exit %d, %v\n%s", code, err, out)
	}
	if info.Slot != 10 || info.Index != 16 || info.Keys != 12 || info.Bytes != 170 || info.Sessions != 2 || info.Digest != m.Digest() ||
		info.Config == nil || info.Config.Slot != 1 || len(info.Config.Members) != 3 || info.Checksum != "55d84504" {
		t.Fatalf("snapshot status --json: %+v", info)
	}
}

// TestDamagedBackupRefused cuts the backup at every length and flips every
// byte of it: snapshot status and snapshot restore both refuse it (exit 1)
// with the line, and restore writes nothing.
func TestDamagedBackupRefused(t *testing.T) {
	path, _ := testBackup(t)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.snap")
	target := filepath.Join(t.TempDir(), "n1")
	try := func(what string, data []byte, line int) {
		t.Helper()
		if err := os.WriteFile(bad, data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, errText, code := runVerb(t, "", "", "snapshot", "status", bad)
		if code != 1 || !strings.Contains(errText, "not a usable backup") || (line > 0 && !strings.Contains(errText, bad+" line "+strconv.Itoa(line)+": ")) {
			t.Fatalf("%s: snapshot status: exit %d, %q (want line %d)", what, code, errText, line)
		}
		_, errText2, code := runVerb(t, "", "", "snapshot", "restore", bad, "--dir", target, "--id", "1", "--peers", "1=a:1,2=b:2,3=c:3")
		if code != 1 || !strings.Contains(errText2, "not a usable backup") {
			t.Fatalf("%s: snapshot restore: exit %d, %q", what, code, errText2)
		}
		if _, err := os.Stat(target); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s: restore of a bad backup created %s", what, target)
		}
	}
	for n := range len(orig) {
		try("cut at "+strconv.Itoa(n), orig[:n], 0)
	}
	for off := range orig {
		data := bytes.Clone(orig)
		data[off] ^= 0x01
		try("flip byte "+strconv.Itoa(off), data, 1+bytes.Count(orig[:off], []byte("\n")))
	}
	try("a byte more", append(bytes.Clone(orig), 'x'), 0)
}

// TestRestore restores one backup into the directories of a new 3-replica
// cluster: every directory checks out, holds the same snapshot (the
// backup's state, the new configuration) and the same new cluster id, and
// is a voter with an empty log whose floor is past the snapshot.
func TestRestore(t *testing.T) {
	path, m := testBackup(t)
	peers := "1=127.0.0.1:7201,2=127.0.0.1:7202,3=127.0.0.1:7203"
	root := t.TempDir()
	var snaps [][]byte
	var clusters []string
	for _, id := range []string{"1", "2", "3"} {
		dir := filepath.Join(root, "n"+id)
		out, errText, code := runVerb(t, "", "", "snapshot", "restore", path, "--dir", dir, "--id", id, "--peers", peers)
		if code != 0 || errText != "" {
			t.Fatalf("restore %s: exit %d, %q\n%s", id, code, errText, out)
		}
		cluster, node, err := wal.ReadIdentity(dir)
		if err != nil || node != uint64(id[0]-'0') {
			t.Fatalf("IDENTITY of %s: %q %d %v", dir, cluster, node, err)
		}
		clusters = append(clusters, cluster)
		wantOut := "restored " + path + " into " + dir + ": slot 10, index 16, 12 keys, 2 sessions\n" +
			"  replica " + id + " of cluster " + cluster + "; members 1=127.0.0.1:7201 2=127.0.0.1:7202 3=127.0.0.1:7203\n" +
			"  digest  " + m.Digest() + "\n" +
			"  start:  synod node --id " + id + " --cluster " + cluster + " --listen 127.0.0.1:720" + id + " --peers " + peers + " --dir " + dir + "\n"
		if out != wantOut {
			t.Fatalf("restore printed\n%s\nwant\n%s", out, wantOut)
		}
		if out, _, code := runVerb(t, "", "", "check", "--cluster", cluster, "--id", id, dir); code != 0 {
			t.Fatalf("check of the restored %s: exit %d\n%s", dir, code, out)
		}
		acc, err := wal.ReadAcceptor(dir)
		if err != nil || acc != (wal.AcceptorState{Membership: wal.MemberVoter}) {
			t.Fatalf("acceptor of %s: %+v %v", dir, acc, err)
		}
		rep, err := wal.Verify(filepath.Join(dir, "log"), wal.Options{}, nil)
		if err != nil || !rep.Manifest || rep.Floor != 11 || len(rep.Segments) != 0 {
			t.Fatalf("log of %s: %+v %v", dir, rep, err)
		}
		snap, err := os.ReadFile(filestore.SnapshotPath(filepath.Join(dir, "snap"), 10))
		if err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, snap)
		got, meta, err := filestore.LoadSnapshot(filestore.SnapshotPath(filepath.Join(dir, "snap"), 10), filestore.Options{})
		if err != nil || got.Digest() != m.Digest() || meta.ConfigSlot != 10 || meta.Slot != 10 {
			t.Fatalf("restored snapshot: %+v %v", meta, err)
		}
		conf, err := paxos.ParseConfiguration(paxos.Value{Kind: paxos.ValueConfig, Cmds: meta.Config})
		if err != nil || membersText(conf) != "1=127.0.0.1:7201 2=127.0.0.1:7202 3=127.0.0.1:7203" {
			t.Fatalf("restored configuration %v %v", conf, err)
		}
	}
	if !bytes.Equal(snaps[0], snaps[1]) || !bytes.Equal(snaps[0], snaps[2]) || clusters[0] != clusters[1] || clusters[0] != clusters[2] {
		t.Fatalf("the replicas disagree: clusters %v", clusters)
	}
	if !strings.HasPrefix(clusters[0], "restored-") {
		t.Fatalf("cluster id %q", clusters[0])
	}

	// Other peers, another cluster; --cluster names it.
	other := filepath.Join(root, "other")
	runVerb(t, "", "", "snapshot", "restore", path, "--dir", other, "--id", "1", "--peers", "1=127.0.0.1:9,2=127.0.0.1:8,3=127.0.0.1:7")
	if c, _, _ := wal.ReadIdentity(other); c == clusters[0] || !strings.HasPrefix(c, "restored-") {
		t.Fatalf("other peers gave cluster id %q (first %q)", c, clusters[0])
	}
	named := filepath.Join(root, "named")
	runVerb(t, "", "", "snapshot", "restore", path, "--dir", named, "--id", "2", "--peers", peers, "--cluster", "prod")
	if c, n, _ := wal.ReadIdentity(named); c != "prod" || n != 2 {
		t.Fatalf("--cluster prod gave %q %d", c, n)
	}
}

// TestRestoreRefusesANonEmptyDir: a directory with files is refused and
// left alone; --force replaces a replica's files and keeps others.
func TestRestoreRefusesANonEmptyDir(t *testing.T) {
	path, m := testBackup(t)
	dir, _ := buildDataDir(t)
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := treeHash(t, dir)
	args := []string{"snapshot", "restore", path, "--dir", dir, "--id", "1", "--peers", "1=127.0.0.1:7201,2=127.0.0.1:7202,3=127.0.0.1:7203"}
	_, errText, code := runVerb(t, "", "", args...)
	if code != 1 || !strings.Contains(errText, "the directory is not empty") || !strings.Contains(errText, "--force") {
		t.Fatalf("restore into a replica's directory: exit %d, %q", code, errText)
	}
	if treeHash(t, dir) != before {
		t.Fatal("a refused restore changed the directory")
	}
	if _, errText, code := runVerb(t, "", "", append(args, "--force")...); code != 0 {
		t.Fatalf("restore --force: exit %d, %q", code, errText)
	}
	if c, _, _ := wal.ReadIdentity(dir); !strings.HasPrefix(c, "restored-") {
		t.Fatalf("after restore --force IDENTITY names %q", c)
	}
	if _, err := os.Stat(filepath.Join(dir, "JOIN")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("restore --force kept the old JOIN file")
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "notes.txt")); string(data) != "mine" {
		t.Fatal("restore --force removed a file that is not a replica's")
	}
	slots, _ := filestore.ListSnapshots(filepath.Join(dir, "snap"))
	if len(slots) != 1 {
		t.Fatalf("snapshots after restore --force: %v", slots)
	}
	if out, _, code := runVerb(t, "", "", "check", dir); code != 0 {
		t.Fatalf("check after restore --force: exit %d\n%s", code, out)
	}
	got, _, err := filestore.LoadLatestSnapshot(filepath.Join(dir, "snap"), filestore.Options{})
	if err != nil || got.Digest() != m.Digest() {
		t.Fatalf("restored state: %v", err)
	}
}

func TestRestoreUsage(t *testing.T) {
	path, _ := testBackup(t)
	dir := filepath.Join(t.TempDir(), "n1")
	for _, args := range [][]string{
		{"snapshot", "restore", path, "--id", "1", "--peers", "1=a:1"},
		{"snapshot", "restore", path, "--dir", dir, "--peers", "1=a:1"},
		{"snapshot", "restore", path, "--dir", dir, "--id", "1"},
		{"snapshot", "restore", path, "--dir", dir, "--id", "4", "--peers", "1=a:1,2=b:2,3=c:3"},
		{"snapshot", "restore", path, "--dir", dir, "--id", "1", "--peers", "1=a:1,1=b:2"},
		{"snapshot", "restore", path, "--dir", dir, "--id", "1", "--peers", "1=a b:1"},
		{"snapshot", "restore", "--dir", dir, "--id", "1", "--peers", "1=a:1"},
		{"snapshot", "restore", path, path, "--dir", dir, "--id", "1", "--peers", "1=a:1"},
		{"snapshot", "restore", path, "--dir", dir, "--id", "1", "--peers", "1=a:1", "--cluster", ""},
		{"snapshot", "status"},
	} {
		if _, errText, code := runVerb(t, "", "", args...); code != exitUsage {
			t.Errorf("%v: exit %d (%q), want %d", args, code, errText, exitUsage)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("a usage error created the directory")
	}
	if _, errText, code := runVerb(t, "", "", "snapshot", "status", filepath.Join(t.TempDir(), "none.snap")); code != 1 || !strings.Contains(errText, "no such file") {
		t.Fatalf("status of a missing file: exit %d, %q", code, errText)
	}
}
