package proxy

// This file runs the replicas' chunk collector end to end, against real
// replica and proxy processes (internal/cluster) on loopback ports chosen
// at run time, with a one-second grace. The test goroutine drives; the
// processes' output is collected by the cluster's own goroutines.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"synod/internal/cluster"
	"synod/wire"
	"synod/wire/line"
)

// TestChunkGCEndToEnd runs real replica and proxy processes with a short
// chunk collection grace: two large files share their first chunk; once
// one is overwritten by a small file, its own chunk goes from every
// replica while the shared one stays (the other file still reads back
// whole); once the other is deleted too, every chunk goes.
func TestChunkGCEndToEnd(t *testing.T) {
	const grace = time.Second
	c := cluster.New(t, cluster.Options{NodeFlags: append([]string{"--chunk-gc-grace=" + grace.String(), "--chunk-gc-interval=100ms"}, fastFlags...)})
	p := c.StartProxy(t, "--poll=50ms", "--chunk-size=4096")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := c.WaitMaster(ctx); err != nil {
		t.Fatal(err)
	}
	cl, err := line.Dial(ctx, p.Addr, line.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	blocks := make([][]byte, 3) // shared, a's own, b's own
	rng := rand.NewChaCha8([32]byte{22, 'g', 'c'})
	for i := range blocks {
		blocks[i] = make([]byte, 4096)
		rng.Read(blocks[i])
	}
	shared, ownA, ownB := wire.SumOf(blocks[0]), wire.SumOf(blocks[1]), wire.SumOf(blocks[2])
	put := func(key string, data []byte) uint64 {
		t.Helper()
		sum := sha256.Sum256(data)
		idx, err := cl.PutFile(ctx, key, uint64(len(data)), hex.EncodeToString(sum[:]), bytes.NewReader(data))
		if err != nil {
			t.Fatalf("PUTFILE %s: %v", key, err)
		}
		return idx
	}
	fileB := append(bytes.Clone(blocks[0]), blocks[2]...)
	put("gc/a", append(bytes.Clone(blocks[0]), blocks[1]...))
	idx := put("gc/b", fileB)
	if _, err := c.WaitConverged(ctx, idx); err != nil {
		t.Fatal(err)
	}
	// has reports, per replica, whether it holds chunk s.
	has := func(s wire.ChunkSum) []bool {
		var out []bool
		for id := uint64(1); id <= 3; id++ {
			out = append(out, fileExists(filepath.Join(c.NodeDir(id), "chunks", s.String())))
		}
		return out
	}
	all := func(v []bool, want bool) bool {
		for _, b := range v {
			if b != want {
				return false
			}
		}
		return true
	}
	// waitGone waits until no replica holds s.
	waitGone := func(what string, s wire.ChunkSum) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !all(has(s), false) {
			if time.Now().After(deadline) {
				t.Fatalf("%s chunk still stored (%v) long after the grace", what, has(s))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Referenced chunks outlive several graces.
	time.Sleep(3 * grace)
	for what, s := range map[string]wire.ChunkSum{"shared": shared, "a's": ownA, "b's": ownB} {
		if !all(has(s), true) {
			t.Fatalf("%s chunk, referenced, missing: %v", what, has(s))
		}
	}

	overwritten := time.Now()
	idx, err = cl.Put(ctx, "gc/a", []byte("small now"))
	if err != nil {
		t.Fatal(err)
	}
	waitGone("a's own", ownA)
	if took := time.Since(overwritten); took < grace {
		t.Fatalf("a's chunk went %v after the file was overwritten, before the grace of %v", took, grace)
	}
	time.Sleep(2 * grace)
	if !all(has(shared), true) || !all(has(ownB), true) {
		t.Fatalf("b's chunks, still referenced, were removed: shared %v, own %v", has(shared), has(ownB))
	}
	for id := uint64(1); id <= 3; id++ {
		if got := readAll(ctx, t, c, id, "gc/b", idx); !bytes.Equal(got, fileB) {
			t.Fatalf("replica %d: gc/b read back differs", id)
		}
	}

	if _, err := cl.Del(ctx, "gc/b"); err != nil {
		t.Fatal(err)
	}
	waitGone("shared", shared)
	waitGone("b's own", ownB)
	for id := uint64(1); id <= 3; id++ {
		if out := c.Nodes[id].Output(); !strings.Contains(out, "removed chunks no file") {
			t.Fatalf("replica %d logged no removal:\n%s", id, out)
		}
	}
}
