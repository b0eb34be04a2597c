package node

// This file tests the chunk collector's reference logic (chunkgc.go): the
// decision of a pass, the pins of log entries and backups, and whole
// passes over a replica's pieces run on the test goroutine.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"synod/filestore"
	"synod/filestore/chunks"
	"synod/paxos"
	"synod/wire"
)

func sumOfName(name string) chunks.Sum { return chunks.Of([]byte(name)) }

// TestCollectable: a chunk goes only when it is unreferenced, was stored
// before the grace, and was seen unreferenced for the grace.
func TestCollectable(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	const grace = time.Hour
	old, young := now.Add(-2*grace), now.Add(-grace/2)
	a, b := sumOfName("a"), sumOfName("b")
	for _, tc := range []struct {
		name      string
		modTime   time.Time
		ref       bool
		seenSince *time.Time // first seen unreferenced; nil: never
		want      bool
		wantSince *time.Time // in unref after the pass; nil: absent
	}{
		{"referenced, old", old, true, nil, false, nil},
		{"referenced, was unreferenced: forgotten", old, true, &old, false, nil},
		{"unreferenced, old, first seen now", old, false, nil, false, &now},
		{"unreferenced, old, seen for the grace", old, false, &old, true, &old},
		{"unreferenced, old, seen for less", old, false, &young, false, &young},
		{"unreferenced, stored recently (an upload in flight)", young, false, &old, false, &old},
		{"unreferenced, stored exactly at the cutoff", now.Add(-grace), false, &old, false, &old},
		{"unreferenced, seen exactly since the cutoff", old, false, ptr(now.Add(-grace)), true, ptr(now.Add(-grace))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refs := map[chunks.Sum]struct{}{}
			if tc.ref {
				refs[a] = struct{}{}
			}
			unref := map[chunks.Sum]time.Time{b: old} // b is no longer stored
			if tc.seenSince != nil {
				unref[a] = *tc.seenSince
			}
			got := collectable([]chunks.Info{{Sum: a, Size: 3, ModTime: tc.modTime}}, refs, unref, now, grace)
			if (len(got) == 1) != tc.want {
				t.Fatalf("removed %v, want %v", got, tc.want)
			}
			since, ok := unref[a]
			switch {
			case tc.wantSince == nil && ok:
				t.Fatalf("unref holds %v for it, want nothing", since)
			case tc.wantSince != nil && (!ok || !since.Equal(*tc.wantSince)):
				t.Fatalf("unref holds %v (%v), want %v", since, ok, *tc.wantSince)
			}
			if _, ok := unref[b]; ok {
				t.Fatal("a chunk no longer stored stayed in unref")
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// testFileManifest is a manifest of a file whose chunks are named names.
func testFileManifest(names ...string) []byte {
	m := wire.Manifest{ChunkSize: 4096, Size: uint64(4096 * len(names)), Sum: wire.SumOf([]byte(fmt.Sprint(names)))}
	for _, nm := range names {
		m.Chunks = append(m.Chunks, wire.ChunkSum(sumOfName(nm)))
	}
	return m.Append(nil)
}

func putfileCmd(key string, names ...string) []byte {
	return filestore.EncodeCommand(nil, filestore.Command{Op: wire.OpPutFile, Stamp: 1, Key: key, Value: testFileManifest(names...)})
}

// TestChunkRefs: what log entries and backups pin, and when the applier
// releases it.
func TestChunkRefs(t *testing.T) {
	cmds := func(c ...[]byte) paxos.Value { return paxos.Value{Kind: paxos.ValueCmds, Cmds: c} }
	casfile := filestore.EncodeCommand(nil, filestore.Command{Op: wire.OpCASFile, Stamp: 1, Key: "k", Version: 3, Value: testFileManifest("c1")})
	put := filestore.EncodeCommand(nil, filestore.Command{Op: wire.OpPut, Stamp: 1, Key: "k", Value: testFileManifest("not-a-chunk")})
	var r chunkRefs
	r.pinEntries([]paxos.Entry{
		{Slot: 5, Value: cmds(putfileCmd("x", "a1", "shared"), put)},
		{Slot: 6, Value: paxos.Value{Kind: paxos.ValueNoop}},
		{Slot: 7, Value: cmds(casfile)},
		{Slot: 9, Value: cmds(putfileCmd("y", "shared", "b1"))},
	})
	// Another value accepted for slot 9 under a later ballot: both pinned
	// until the slot is applied.
	r.pinEntries([]paxos.Entry{{Slot: 9, Value: cmds(putfileCmd("z", "z1"))}})
	r.pinBackup(1, []chunks.Sum{sumOfName("backup")})
	names := func() []string {
		set := map[chunks.Sum]struct{}{}
		r.addTo(set)
		var out []string
		for _, nm := range []string{"a1", "shared", "c1", "b1", "z1", "backup", "not-a-chunk"} {
			if _, ok := set[sumOfName(nm)]; ok {
				out = append(out, nm)
			}
		}
		if len(set) != len(out) {
			t.Fatalf("%d chunks pinned, %d known", len(set), len(out))
		}
		return out
	}
	for _, tc := range []struct {
		step func()
		want []string
	}{
		{func() {}, []string{"a1", "shared", "c1", "b1", "z1", "backup"}},
		{func() { r.releaseThrough(4) }, []string{"a1", "shared", "c1", "b1", "z1", "backup"}},
		{func() { r.releaseThrough(7) }, []string{"shared", "b1", "z1", "backup"}},
		{func() { r.unpinBackup(1) }, []string{"shared", "b1", "z1"}},
		{func() { r.releaseThrough(100) }, nil},
	} {
		tc.step()
		if got := names(); !slices.Equal(got, tc.want) {
			t.Fatalf("pinned %q, want %q", got, tc.want)
		}
	}
}

// TestCollectChunksPass runs whole passes on a replica's pieces (no
// goroutines): a chunk referenced by the state, by a kept snapshot, by a
// log entry not applied or by a backup stays; an unreferenced one goes
// only once it is old and was seen unreferenced for the grace; one stored
// within the grace stays whatever.
func TestCollectChunksPass(t *testing.T) {
	dir := t.TempDir()
	store, err := chunks.Open(filepath.Join(dir, "chunks"))
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"state", "shared", "snap", "pin", "backup", "orphan", "young"}
	old := time.Now().Add(-2 * time.Hour)
	for _, nm := range names {
		if err := store.Put(sumOfName(nm), []byte(nm)); err != nil {
			t.Fatal(err)
		}
		if nm != "young" {
			if err := os.Chtimes(store.Path(sumOfName(nm)), old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	fsm := filestore.New(filestore.Options{})
	fsm.Apply(1, putfileCmd("f1", "state", "shared"))
	fsm.Apply(2, putfileCmd("f2", "shared", "shared"))
	kept := filestore.New(filestore.Options{})
	kept.Apply(1, putfileCmd("old", "snap"))
	snapDir := filepath.Join(dir, "snap")
	if err := os.MkdirAll(snapDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := filestore.SaveSnapshot(snapDir, kept, filestore.SnapshotMeta{Slot: 1}); err != nil {
		t.Fatal(err)
	}
	n := &Node{cfg: Config{Dir: dir, MaxValue: 1 << 20, ChunkGCGrace: time.Hour}, chunks: store, met: newMetrics(),
		log: zerolog.Nop(), app: applier{fsm: fsm, slot: 2}}
	n.refs.pinEntries([]paxos.Entry{{Slot: 3, Value: paxos.Value{Kind: paxos.ValueCmds, Cmds: [][]byte{putfileCmd("f3", "pin")}}}})
	n.refs.pinBackup(7, []chunks.Sum{sumOfName("backup")})

	gc := &chunkGC{unref: map[chunks.Sum]time.Time{}, snaps: map[string]snapRefs{}}
	present := func() []string {
		var out []string
		for _, nm := range names {
			if store.Has(sumOfName(nm)) {
				out = append(out, nm)
			}
		}
		return out
	}
	// pass runs one pass as if the grace had gone by since every chunk
	// unreferenced now was first seen so.
	pass := func(aged bool) {
		t.Helper()
		if aged {
			for s := range gc.unref {
				gc.unref[s] = old
			}
		}
		if err := n.collectChunks(context.Background(), gc); err != nil {
			t.Fatal(err)
		}
	}
	pass(false)
	if got := present(); len(got) != len(names) {
		t.Fatalf("the first pass removed chunks: %q left", got)
	}
	pass(true)
	if got, want := present(), []string{"state", "shared", "snap", "pin", "backup", "young"}; !slices.Equal(got, want) {
		t.Fatalf("after the grace: %q left, want %q", got, want)
	}
	// The entry is applied, the backup ends, the snapshot is pruned, the
	// files are deleted: each chunk waits a grace from then.
	n.refs.releaseThrough(3)
	n.refs.unpinBackup(7)
	if err := os.Remove(filestore.SnapshotPath(snapDir, 1)); err != nil {
		t.Fatal(err)
	}
	n.app.fsm = filestore.New(filestore.Options{})
	pass(false)
	if got := present(); len(got) != 6 {
		t.Fatalf("chunks unreferenced a moment ago were removed: %q left", got)
	}
	pass(true)
	if got, want := present(), []string{"young"}; !slices.Equal(got, want) {
		t.Fatalf("at the end: %q left, want %q", got, want)
	}
	if len(gc.snaps) != 0 {
		t.Fatalf("the pruned snapshot is still remembered: %v", gc.snaps)
	}
}
