package main

// This file pins `synod dump`: its lines, its JSON, the slot range, and
// how it goes on past damage. It runs on the test's goroutine.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDump(t *testing.T) {
	dir, _ := buildDataDir(t)
	before := treeHash(t, dir)
	out, errText, code := runVerb(t, "", "", "dump", dir)
	want := `1 1.1 config 1=127.0.0.1:7101 2=127.0.0.1:7102 3=127.0.0.1:7103
2 1.1 noop
3 2.1 cmds 2 | put docs/0 "hello world 0" s=17.1.1 | put docs/1 "hello world 1" s=17.2.2
2 - commit
4 2.1 cmds 2 | put docs/2 "hello world 2" s=17.3.3 | put docs/3 "hello world 3" s=17.4.4
3 - commit
5 2.1 cmds 2 | put docs/4 "hello world 4" s=17.5.5 | put docs/5 "hello world 5" s=17.6.6
4 - commit
6 2.1 cmds 2 | append docs/0 "!" s=17.7.7 | cas docs/1 if=2 "swapped" s=17.8.8.r
5 - commit
7 2.1 cmds 2 | del docs/2 s=17.9.9 | put bin "\x00\x01\xff\n \\" s=-
6 - commit
8 2.1 cmds 2 | put big "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"…(100B) s=23.1.1 | put empty "" s=23.2.2
7 - commit
9 2.1 cmds 2 | put docs/a "a" s=23.3.3 | put docs/b "b" s=23.4.4
8 - commit
10 2.1 cmds 2 | put docs/c "c" s=23.5.5 | put docs/d "d" s=23.6.6
9 - commit
`
	if code != 0 || errText != "" || out != want {
		t.Fatalf("dump: exit %d, %q\n%s\nwant\n%s", code, errText, out, want)
	}
	// The log directory itself works too, and so does a range.
	out, _, code = runVerb(t, "", "", "dump", "--from", "6", "--to", "7", filepath.Join(dir, "log"))
	if code != 0 || out != `6 2.1 cmds 2 | append docs/0 "!" s=17.7.7 | cas docs/1 if=2 "swapped" s=17.8.8.r
7 2.1 cmds 2 | del docs/2 s=17.9.9 | put bin "\x00\x01\xff\n \\" s=-
6 - commit
7 - commit
` {
		t.Fatalf("dump --from 6 --to 7: exit %d\n%s", code, out)
	}
	out, _, code = runVerb(t, "", "", "dump", dir, "--json", "--from", "7", "--to", "7")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 0 || len(lines) != 2 {
		t.Fatalf("dump --json: exit %d\n%s", code, out)
	}
	var rec dumpRecord
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.File != "log/00000000000000000006.log" || rec.Line != 6 || rec.Slot != 7 || rec.Kind != "accept" || len(rec.Cmds) != 2 ||
		rec.Cmds[0].Op != "del" || rec.Cmds[0].Key != "docs/2" || rec.Cmds[0].Client != 17 || rec.Cmds[0].Seq != 9 ||
		string(rec.Cmds[1].ValueBase64) != "\x00\x01\xff\n \\" || rec.Cmds[1].Size != 6 {
		t.Fatalf("dump --json record: %+v", rec)
	}
	out, _, _ = runVerb(t, "", "", "dump", dir, "--json", "--from", "1", "--to", "1")
	if !strings.Contains(out, `"members":[{"id":1,"addr":"127.0.0.1:7101","voter":true},`) {
		t.Fatalf("dump --json of the configuration: %s", out)
	}
	if treeHash(t, dir) != before {
		t.Fatal("dump changed the directory")
	}
}

// TestDumpDamage: damage is reported on stderr and in the error (exit 1),
// naming file and line, and the dump goes on with the batches after it.
func TestDumpDamage(t *testing.T) {
	dir, _ := buildDataDir(t)
	seg := filepath.Join(dir, "log", "00000000000000000006.log")
	data, _ := os.ReadFile(seg)
	data[40] ^= 1 // line 3: slot 6's accept
	os.WriteFile(seg, data, 0o644)
	out, errText, code := runVerb(t, "", "", "dump", dir)
	if code != 1 || !strings.Contains(errText, "log/00000000000000000006.log:3: line checksum mismatch") {
		t.Fatalf("dump: exit %d, %q", code, errText)
	}
	if strings.Contains(out, "\n6 2.1") || !strings.Contains(out, "\n7 2.1 cmds") || !strings.Contains(out, "\n10 2.1 cmds") {
		t.Fatalf("dump of a damaged log:\n%s", out)
	}
	// A torn tail is not damage.
	dir, _ = buildDataDir(t)
	seg = filepath.Join(dir, "log", "00000000000000000009.log")
	data, _ = os.ReadFile(seg)
	os.WriteFile(seg, data[:len(data)-3], 0o644)
	if _, errText, code := runVerb(t, "", "", "dump", dir); code != 0 || errText != "" {
		t.Fatalf("dump of a torn log: exit %d, %q", code, errText)
	}
}

func TestDumpUsage(t *testing.T) {
	for _, args := range [][]string{{"dump"}, {"dump", t.TempDir()}, {"dump", "--from", "5", "--to", "4", t.TempDir()}, {"dump", "--from", "x", t.TempDir()}} {
		if _, _, code := runVerb(t, "", "", args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
}
