package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"synod/internal/cluster"
	"synod/wire/line"
)

// TestPutFileAcknowledgedOnMajority: the proxy acknowledges a large file
// only once a majority of the voters holds every chunk on disk, not as
// soon as its manifest is chosen. Two of the three replicas acknowledge
// the chunks the proxy puts and keep none (a disk that loses them right
// after: the test hook --test-drop-chunk-puts), and fetch the chunks they
// lack only 2 s after they apply the manifest (--test-fetch-delay): the
// manifest is chosen at once, on one copy. Without the proxy's check the
// OK came then, with a single replica holding the file (the simulator's
// planted bug "a proxy that acknowledges a file once its manifest is
// chosen" loses such a file to one more lost disk).
func TestPutFileAcknowledgedOnMajority(t *testing.T) {
	c := cluster.New(t, cluster.Options{NodeFlags: fastFlags, NodeFlagsFor: func(id uint64) []string {
		if id == 1 {
			return nil
		}
		return []string{"--test-drop-chunk-puts", "--test-fetch-delay=2s"}
	}})
	p := c.StartProxy(t, "--poll=50ms", "--chunk-size=65536")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.WaitMaster(ctx); err != nil {
		t.Fatal(err)
	}
	cl, err := line.Dial(ctx, p.Addr, line.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	data := make([]byte, 3*65536+17)
	rand.NewChaCha8([32]byte{9}).Read(data)
	sum := sha256.Sum256(data)
	idx, err := cl.PutFile(ctx, "confirm/file", uint64(len(data)), hex.EncodeToString(sum[:]), bytes.NewReader(data))
	if err != nil {
		t.Fatalf("PUTFILE: %v", err)
	}
	// Right at the OK: every chunk on at least two replicas' disks.
	holders := 0
	for id := range uint64(3) {
		if chunkFileCount(t, c, id+1) >= 4 {
			holders++
		}
	}
	if holders < 2 {
		t.Fatalf("PUTFILE acknowledged at index %d with every chunk on %d of 3 replicas; want a majority", idx, holders)
	}
	// And the file reads back from every replica.
	for id := range uint64(3) {
		if got := readAll(ctx, t, c, id+1, "confirm/file", idx); !bytes.Equal(got, data) {
			t.Fatalf("replica %d: the file read back differs", id+1)
		}
	}
}

// chunkFileCount counts the chunk files in replica id's data directory.
func chunkFileCount(t *testing.T, c *cluster.Cluster, id uint64) int {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(c.NodeDir(id), "chunks"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if e.Type().IsRegular() && len(e.Name()) == 64 {
			n++
		}
	}
	return n
}
