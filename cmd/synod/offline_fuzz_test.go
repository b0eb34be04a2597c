package main

// This file holds the fuzz targets of the offline commands' parsers: the
// late flags, the dump's record lines, a backup file as snapshot status and
// restore read it, and every file of a data directory as check reads it.
// Each runs on the fuzzer's goroutine.

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"synod/filestore"
	"synod/filestore/wal"
	"synod/node"
	"synod/paxos"
	"synod/wire"
)

// fuzzTemp is a directory for one fuzz run, on tmpfs where there is one.
func fuzzTemp(t testing.TB) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "synodfuzz"); err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}

// FuzzLateFlags runs arbitrary argument lists through withLateFlags: it
// either gives the action the arguments that are not flags, with every
// required flag set, or a usage error; never a panic.
func FuzzLateFlags(f *testing.F) {
	f.Add("FILE\x00--dir\x00d\x00--id\x001\x00--peers\x001=a:1")
	f.Add("--dir\x00d\x00FILE\x00--id=1\x00--force\x00--peers\x001=a:1")
	f.Add("FILE\x00--\x00--dir")
	f.Add("FILE\x00--id\x00x")
	f.Add("")
	f.Fuzz(func(t *testing.T, joined string) {
		var args []string
		if joined != "" {
			args = strings.Split(joined, "\x00")
		}
		if slicesContain(args, "h", "help", "-h", "--h", "-help", "--help") {
			return // urfave/cli's own help command, not the flags' parser
		}
		var got []string
		ran := false
		app := &cli.App{
			Name:           "synod",
			Writer:         &bytes.Buffer{},
			ErrWriter:      &bytes.Buffer{},
			ExitErrHandler: func(*cli.Context, error) {},
			OnUsageError:   func(c *cli.Context, err error, _ bool) error { return usageError("%v", err) },
			Commands: []*cli.Command{{
				Name: "restore",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "dir"},
					&cli.Uint64Flag{Name: "id"},
					&cli.StringFlag{Name: "peers"},
					&cli.BoolFlag{Name: "force"},
				},
				OnUsageError: onUsageError,
				Action: withLateFlags([]string{"dir", "id", "peers"}, func(c *cli.Context, a []string) error {
					ran, got = true, a
					for _, name := range []string{"dir", "id", "peers"} {
						if !c.IsSet(name) {
							t.Fatalf("action ran without --%s", name)
						}
					}
					return nil
				}),
			}},
		}
		err := app.Run(append([]string{"synod", "restore"}, args...))
		switch {
		case err != nil && exitCode(err) != exitUsage:
			t.Fatalf("%q: error %v with exit %d, want a usage error", args, err, exitCode(err))
		case err == nil && !ran:
			t.Fatalf("%q: no error and no action", args)
		}
		for _, a := range got {
			if strings.HasPrefix(a, "--dir") || strings.HasPrefix(a, "--id") || strings.HasPrefix(a, "--peers") {
				if !slicesContain(args, "--") {
					t.Fatalf("%q: flag %q left among the arguments %q", args, a, got)
				}
			}
		}
	})
}

func slicesContain(s []string, any ...string) bool {
	for _, a := range s {
		for _, b := range any {
			if a == b {
				return true
			}
		}
	}
	return false
}

// FuzzDumpLine renders arbitrary records: one line each, with every byte
// of a command accounted for readably (no raw control bytes), and JSON that
// encodes.
func FuzzDumpLine(f *testing.F) {
	f.Add(uint64(3), uint64(2), uint64(1), uint8(1), "put 17.1.1 1732000000000 docs/a hello world\x00del 0 0 5 k")
	f.Add(uint64(1), uint64(1), uint64(1), uint8(3), "c1\x00v 1 127.0.0.1:7101\x00l 2 x:1")
	f.Add(uint64(2), uint64(1), uint64(1), uint8(2), "")
	f.Add(uint64(9), uint64(0), uint64(0), uint8(0), "")
	f.Add(uint64(4), uint64(1), uint64(1), uint8(1), "cas 3.2.1.r 0 k 7 \xff\xfe\n\r\t")
	f.Fuzz(func(t *testing.T, slot, round, node uint64, kind uint8, joined string) {
		r := wal.Record{Kind: wal.KindAccept, Slot: slot, Ballot: wal.Ballot{Round: round, Node: node}, Value: paxos.ValueKind((kind%4 + 2) % 3)}
		switch {
		case kind%4 == 0:
			r = wal.Record{Kind: wal.KindCommit, Slot: slot}
		case r.Value != paxos.ValueNoop && joined != "":
			for _, c := range strings.Split(joined, "\x00") {
				r.Cmds = append(r.Cmds, []byte(c))
			}
		}
		if _, err := wal.AppendRecord(nil, r); err != nil {
			return // not a record the log can hold
		}
		line := appendDumpLine(nil, r)
		if bytes.IndexByte(line, '\n') != len(line)-1 {
			t.Fatalf("%+v: dump line %q is not one line", r, line)
		}
		if !utf8.Valid(line) {
			t.Fatalf("%+v: dump line %q is not UTF-8", r, line)
		}
		for _, c := range string(line[:len(line)-1]) {
			if c < ' ' || c == 0x7f {
				t.Fatalf("%+v: dump line %q holds a raw control byte", r, line)
			}
		}
		if _, err := json.Marshal(dumpJSON("log/x.log", 2, r)); err != nil {
			t.Fatalf("%+v: JSON: %v", r, err)
		}
	})
}

// fuzzArchive is a backup of a store holding a large file of two chunks,
// as node/backup.go writes one: a tar of the snapshot and the chunks.
func fuzzArchive(f *testing.F) []byte {
	parts := [][]byte{bytes.Repeat([]byte("a"), 4096), []byte("tail")}
	mf := wire.Manifest{Size: 4100, ChunkSize: 4096, Sum: wire.SumOf(bytes.Join(parts, nil))}
	for _, p := range parts {
		mf.Chunks = append(mf.Chunks, wire.SumOf(p))
	}
	m := filestore.New(filestore.Options{})
	m.Apply(1, filestore.EncodeCommand(nil, filestore.Command{Op: wire.OpPutFile, ClientID: 1, Seq: 1, Stamp: 1, Key: "big", Value: mf.Append(nil)}))
	var snap, out bytes.Buffer
	if err := m.WriteSnapshot(&snap, filestore.SnapshotMeta{Slot: 1}); err != nil {
		f.Fatal(err)
	}
	tw := tar.NewWriter(&out)
	add := func(name string, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(data)), Mode: 0o644, Format: tar.FormatUSTAR}); err != nil {
			f.Fatal(err)
		}
		tw.Write(data)
	}
	add(node.BackupSnapshotMember, snap.Bytes())
	for _, p := range parts {
		add(node.BackupChunksDir+wire.SumOf(p).String(), p)
	}
	if err := tw.Close(); err != nil {
		f.Fatal(err)
	}
	path := filepath.Join(f.TempDir(), "archive.snap")
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		f.Fatal(err)
	}
	if bf, err := loadBackup(path, 1<<10); err != nil || !bf.archive || bf.held != 2 {
		f.Fatalf("the seed archive does not load: %v", err)
	}
	return out.Bytes()
}

// FuzzBackup reads arbitrary bytes as a backup: snapshot status either
// refuses them (errBadBackup) or describes them, and then a restore of them
// writes a directory that checks out and holds the same state.
func FuzzBackup(f *testing.F) {
	dir, _ := buildDataDir(f)
	good, err := os.ReadFile(filestore.SnapshotPath(filepath.Join(dir, "snap"), 10))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte("SNAP 3 0 0 0 - 1b0ba8d2\nEND 0 0 5d8e8e95 00000000\n"))
	small := filestore.New(filestore.Options{})
	var buf bytes.Buffer
	small.WriteSnapshot(&buf, filestore.SnapshotMeta{Slot: 0})
	f.Add(buf.Bytes())
	archive := fuzzArchive(f)
	f.Add(archive)
	f.Add(archive[:len(archive)-1024]) // no end blocks: still whole
	f.Add(archive[:len(archive)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		tmp := fuzzTemp(t)
		path := filepath.Join(tmp, "backup.snap")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		bf, err := loadBackup(path, 1<<10)
		if err != nil {
			if !errors.Is(err, errBadBackup) {
				t.Fatalf("loadBackup: %v, want errBadBackup", err)
			}
			return
		}
		m, meta := bf.m, bf.meta
		info := describeBackup(bf)
		if info.Index != m.Applied() || info.Keys != m.Len() {
			t.Fatalf("status %+v of a machine at %d with %d keys", info, m.Applied(), m.Len())
		}
		conf := paxos.NewConfiguration([]paxos.NodeID{1, 2, 3}, map[paxos.NodeID]string{1: "a:1", 2: "b:2", 3: "c:3"})
		res, err := restoreDir(filepath.Join(tmp, "n2"), 2, "", conf, bf, "", false)
		if errors.Is(err, errBadBackup) && (meta.Slot == math.MaxUint64 || errors.Is(err, errMissingChunks)) {
			return
		}
		if err != nil {
			t.Fatalf("restore of a good backup: %v", err)
		}
		got, _, err := filestore.LoadLatestSnapshot(filepath.Join(tmp, "n2", "snap"), filestore.Options{MaxValue: 1 << 10})
		if err != nil || got.Digest() != m.Digest() || res.Digest != m.Digest() {
			t.Fatalf("restored state: %v", err)
		}
	})
}

// FuzzCheckDir replaces one file of a data directory with arbitrary bytes:
// check never panics, never writes, and reports an error unless the bytes
// are a file the node would take.
func FuzzCheckDir(f *testing.F) {
	src, _ := buildDataDir(f)
	files := dataFiles(f, src)
	for i, name := range files {
		data, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), data)
		if len(data) > 10 {
			f.Add(uint8(i), data[:len(data)-10])
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		dir := filepath.Join(fuzzTemp(t), "n1")
		for _, name := range files {
			b, err := os.ReadFile(filepath.Join(src, name))
			if err != nil {
				t.Fatal(err)
			}
			os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
			os.WriteFile(filepath.Join(dir, name), b, 0o644)
		}
		name := files[int(which)%len(files)]
		os.WriteFile(filepath.Join(dir, name), data, 0o644)
		before := treeHash(t, dir)
		findings, err := checkDataDir(dir, checkOptions{maxValue: 1 << 10})
		if err != nil {
			t.Fatal(err)
		}
		if treeHash(t, dir) != before {
			t.Fatal("check changed the directory")
		}
		for _, fd := range findings {
			if fd.Level != levelOK && fd.Level != levelWarning && fd.Level != levelError {
				t.Fatalf("finding of level %q", fd.Level)
			}
		}
	})
}
