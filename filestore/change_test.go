package filestore

import (
	"bytes"
	"testing"

	"synod/wire"
)

// TestApplyChange checks what ApplyChange reports for each kind of write,
// including the ones that change nothing, and that a reported slice stays
// as it was once later writes change the file.
func TestApplyChange(t *testing.T) {
	mf1, mf2 := string(testManifest(10<<10, 4<<10).Append(nil)), string(testManifest(20<<10, 4<<10).Append(nil))
	file := func(op wire.Op, key string, version uint64, manifest string) []byte {
		return EncodeCommand(nil, Command{Op: op, Stamp: 1, Key: key, Version: version, Value: []byte(manifest)})
	}
	type want struct {
		op      wire.Op
		key     string
		value   string
		prev    string
		hadPrev bool
	}
	tests := []struct {
		name string
		cmd  []byte
		want want
	}{
		{"put new", put("a", "one"), want{wire.OpPut, "a", "one", "", false}},
		{"put over", put("a", "two"), want{wire.OpPut, "a", "two", "one", true}},
		{"append", app("a", "+x"), want{wire.OpAppend, "a", "+x", "two", true}},
		{"append new", app("b", "bee"), want{wire.OpAppend, "b", "bee", "", false}},
		{"cas swaps", cas("b", 4, "B"), want{wire.OpPut, "b", "B", "bee", true}},
		{"cas conflicts", cas("b", 1, "no"), want{}},
		{"del", del("a"), want{wire.OpDel, "a", "", "two+x", true}},
		{"del missing", del("a"), want{}},
		{"undecodable", []byte("garbage"), want{}},
		// A large file's change is a PUT of its manifest: a watch has
		// only PUT, APPEND and DEL to tell, and the manifest names the
		// file's size and SHA-256 (its bytes are read with GET RANGE).
		{"putfile new", file(wire.OpPutFile, "f", 0, mf1), want{wire.OpPut, "f", mf1, "", false}},
		{"casfile swaps", file(wire.OpCASFile, "f", 10, mf2), want{wire.OpPut, "f", mf2, mf1, true}},
		{"casfile conflicts", file(wire.OpCASFile, "f", 10, mf1), want{}},
		{"putfile over a value", file(wire.OpPutFile, "b", 0, mf1), want{wire.OpPut, "b", mf1, "B", true}},
	}
	m := New(Options{})
	var kept []Change
	for i, tt := range tests {
		r, ch := m.ApplyChange(uint64(i+1), tt.cmd)
		if (ch.Op != 0) != (r.Code == wire.CodeOK) {
			t.Fatalf("%s: change %v with code %v", tt.name, ch.Op, r.Code)
		}
		got := want{ch.Op, ch.Key, string(ch.Value), string(ch.Prev), ch.HadPrev}
		if got != tt.want {
			t.Fatalf("%s: change %+v, want %+v", tt.name, got, tt.want)
		}
		kept = append(kept, ch)
	}
	// Later writes never reach into what was reported.
	for i, tt := range tests {
		if !bytes.Equal(kept[i].Value, []byte(tt.want.value)) || !bytes.Equal(kept[i].Prev, []byte(tt.want.prev)) {
			t.Fatalf("%s: reported bytes changed to %q/%q", tt.name, kept[i].Value, kept[i].Prev)
		}
	}
}
