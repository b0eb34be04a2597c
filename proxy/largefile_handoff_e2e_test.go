package proxy

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
	"synod/wire/line"
)

// TestRemovedReplicaHandsOffChunks: a removed replica that holds the last
// copy of a large file's chunks puts them on the new configuration's
// voters before it leaves. Four replicas hold a file; its chunk files are
// moved off all but one (lost files, which their running replicas do not
// notice), and that one is removed: it must not exit before a majority of
// the other three holds every chunk, and the file must read back from
// them. Without the handoff the removed replica left as soon as a
// majority knew its removal, and the file's last copy with it (the
// simulator's planted bug (n)).
func TestRemovedReplicaHandsOffChunks(t *testing.T) {
	skipWithoutMembership(t)
	c := cluster.New(t, cluster.Options{NodeFlags: fastFlags})
	p := c.StartProxy(t, "--poll=50ms", "--chunk-size=65536")
	rc := dialRaw(t, p.Addr)
	master := waitMaster(t, rc)
	mc := dialMembers(t, p.Addr)
	mc.add(4, c.ReserveAddr(t, 4))
	c.Join(t, 4, c.Addrs[master], fastFlags...)
	mc.voter(4)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := line.Dial(ctx, p.Addr, line.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	data := make([]byte, 3*65536+5)
	rand.NewChaCha8([32]byte{4}).Read(data)
	sum := sha256.Sum256(data)
	idx, err := cl.PutFile(ctx, "handoff/file", uint64(len(data)), hex.EncodeToString(sum[:]), bytes.NewReader(data))
	if err != nil {
		t.Fatalf("PUTFILE: %v", err)
	}
	if _, err := c.WaitConverged(ctx, idx); err != nil {
		t.Fatal(err)
	}
	// Every replica fetches what it lacks as it applies the file: wait
	// until all four hold it, then take it off all but the victim.
	ids := []uint64{1, 2, 3, 4}
	deadline := time.Now().Add(30 * time.Second)
	for _, id := range ids {
		for chunkFileCount(t, c, id) < 4 {
			if time.Now().After(deadline) {
				t.Fatalf("replica %d never held the file's 4 chunks", id)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	victim := master%4 + 1
	hidden := t.TempDir()
	for _, id := range ids {
		if id != victim {
			hideChunks(t, filepath.Join(c.NodeDir(id), "chunks"), filepath.Join(hidden, string(rune('0'+id))))
		}
	}
	mc.remove(victim)
	waitExit(t, c.Nodes[victim])
	const handed = "a majority of the new configuration holds every chunk this replica holds"
	if !strings.Contains(c.Nodes[victim].Output(), handed) {
		t.Fatalf("removed replica %d left without handing its chunks off; its output:\n%s", victim, c.Nodes[victim].Output())
	}
	holders := 0
	for _, id := range ids {
		if id != victim && chunkFileCount(t, c, id) >= 4 {
			holders++
		}
	}
	if holders < 2 {
		t.Fatalf("after replica %d left, %d of the other 3 hold the file's chunks; want a majority", victim, holders)
	}
	for _, id := range ids {
		if id == victim {
			continue
		}
		if got := readAll(ctx, t, c, id, "handoff/file", idx); !bytes.Equal(got, data) {
			t.Fatalf("replica %d: the file read back differs", id)
		}
	}
}
