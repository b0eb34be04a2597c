package node

import (
	"fmt"
	"slices"
	"testing"
	"time"

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
