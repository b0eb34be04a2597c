package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"synod/internal/cluster"
	"synod/wire"
	"synod/wire/line"
)

// TestLargeFileEndToEnd uploads a 16 MiB file (four chunks; 64 MiB took
// 27 s under -race) through a `synod proxy` process with PUTFILE, reads it
// back through the proxy in ranges, then from every replica directly, byte
// for byte, one of them after its chunk files were deleted (it fetches
// them from a peer). An upload whose checksum does not match, and one cut
// short, leave nothing visible.
func TestLargeFileEndToEnd(t *testing.T) {
	c, p, master, cl, ctx := largeFileCluster(t, 3*time.Minute, "--max-file-size=134217728")

	const size = 16 << 20
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{22}).Read(data)
	sum := sha256.Sum256(data)
	hexSum := hex.EncodeToString(sum[:])

	idx, err := cl.PutFile(ctx, "big/file", size, hexSum, bytes.NewReader(data))
	if err != nil {
		t.Fatalf("PUTFILE: %v", err)
	}
	if n, ver, err := cl.Stat(ctx, "big/file"); err != nil || n != size || ver != idx {
		t.Fatalf("STAT = %d, %d, %v; want %d, %d", n, ver, err, size, idx)
	}
	// A whole GET of a large file is refused, with the way to read it.
	if _, _, err := cl.Get(ctx, "big/file", 0); !errors.Is(err, line.ErrTooLarge) {
		t.Fatalf("GET of a large file: %v, want TOO_LARGE", err)
	}
	// Ranges through the proxy, across chunk boundaries.
	for _, r := range []struct{ off, n uint64 }{{0, 1}, {4<<20 - 3, 10}, {size - 5, 100}, {12345, line.MaxRange}} {
		rep, err := cl.GetRange(ctx, "big/file", r.off, r.n, idx)
		if err != nil {
			t.Fatalf("GET RANGE %d %d: %v", r.off, r.n, err)
		}
		want := data[r.off:min(size, r.off+r.n)]
		if !bytes.Equal(rep.Value, want) || rep.Len != size || rep.Sum != hexSum || rep.Version != idx {
			t.Fatalf("GET RANGE %d %d: %d bytes, size %d, sum %s, version %d", r.off, r.n, len(rep.Value), rep.Len, rep.Sum, rep.Version)
		}
	}

	if _, err := c.WaitConverged(ctx, idx); err != nil {
		t.Fatal(err)
	}
	// A follower that lost its chunk files gets them from a peer.
	wiped := master%3 + 1
	chunkDir := filepath.Join(c.NodeDir(wiped), "chunks")
	ents, err := os.ReadDir(chunkDir)
	if err != nil || len(ents) != size/wire.DefaultChunkSize {
		t.Fatalf("replica %d holds %d chunk files (%v), want %d", wiped, len(ents), err, size/wire.DefaultChunkSize)
	}
	for _, e := range ents {
		if err := os.Remove(filepath.Join(chunkDir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	for id := range c.Addrs {
		if got := readAll(ctx, t, c, id, "big/file", idx); !bytes.Equal(got, data) {
			t.Fatalf("replica %d: the file read back differs", id)
		}
	}
	if ents, _ := os.ReadDir(chunkDir); len(ents) != size/wire.DefaultChunkSize {
		t.Fatalf("replica %d stored %d fetched chunks, want %d", wiped, len(ents), size/wire.DefaultChunkSize)
	}

	// A follower down during an upload: a majority is enough, and once it
	// is back and applies the file it fetches the chunks it lacks, before
	// anyone reads them (and those of files it held already).
	down := c.Nodes[wiped]
	if err := down.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, ok := down.Wait(time.Minute); !ok {
		t.Fatal("replica did not stop")
	}
	second := data[:2*wire.DefaultChunkSize+1]
	sum2 := sha256.Sum256(second)
	idx2, err := cl.PutFile(ctx, "big/second", uint64(len(second)), hex.EncodeToString(sum2[:]), bytes.NewReader(second))
	if err != nil {
		t.Fatalf("PUTFILE with a replica down: %v", err)
	}
	// While it is down it also loses the first file's chunks again: at
	// start it checks every large file it holds.
	if err := os.RemoveAll(chunkDir); err != nil {
		t.Fatal(err)
	}
	down.Start()
	if _, err := c.WaitConverged(ctx, idx2); err != nil {
		t.Fatal(err)
	}
	last := wire.SumOf(second[2*wire.DefaultChunkSize:])
	lastOfFirst := wire.SumOf(data[size-wire.DefaultChunkSize:])
	for !fileExists(filepath.Join(chunkDir, last.String())) || !fileExists(filepath.Join(chunkDir, lastOfFirst.String())) {
		select {
		case <-ctx.Done():
			t.Fatalf("replica %d never fetched the chunks of a file applied while it lacked them", wiped)
		case <-time.After(50 * time.Millisecond):
		}
	}

	// A version check, as CAS: the wrong version is a conflict, the right
	// one replaces the file.
	if _, err := cl.PutFileCAS(ctx, "big/second", idx, uint64(len(second)), hex.EncodeToString(sum2[:]), bytes.NewReader(second)); !errors.Is(err, line.ErrConflict) {
		t.Fatalf("PUTFILE VERSION at a stale version: %v, want CONFLICT", err)
	}
	if _, err := cl.PutFileCAS(ctx, "big/second", idx2, uint64(len(second)), hex.EncodeToString(sum2[:]), bytes.NewReader(second)); err != nil {
		t.Fatalf("PUTFILE VERSION at the file's version: %v", err)
	}

	// A checksum that does not match: refused, nothing visible, and the
	// connection goes on.
	small := data[:5<<20]
	if _, err := cl.PutFile(ctx, "big/bad", uint64(len(small)), hexSum, bytes.NewReader(small)); !errors.Is(err, line.ErrBadRequest) {
		t.Fatalf("PUTFILE with a wrong checksum: %v, want BAD_REQUEST", err)
	}
	if _, _, err := cl.Stat(ctx, "big/bad"); !errors.Is(err, line.ErrNotFound) {
		t.Fatalf("a refused upload is visible: %v", err)
	}
	// Larger than --max-file-size: refused before a byte is read.
	raw, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(raw, "PUTFILE big/huge %d %s\r\n", 128<<20+1, hexSum)
	buf := make([]byte, 256)
	raw.SetReadDeadline(time.Now().Add(time.Minute))
	n, _ := raw.Read(buf)
	if !bytes.HasPrefix(buf[:n], []byte("ERR TOO_LARGE ")) {
		t.Fatalf("oversized PUTFILE answered %q", buf[:n])
	}
	raw.Close()
	// Cut short: the client goes away after 6 MiB of 10.
	raw, err = net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(raw, "PUTFILE big/short %d %s\r\n", 10<<20, hexSum)
	raw.Write(data[:6<<20])
	raw.Close()
	// A write after it on another connection is ordered after whatever the
	// short upload did; the short one must not exist.
	after, err := cl.Put(ctx, "after", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitConverged(ctx, after); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cl.Stat(ctx, "big/short"); !errors.Is(err, line.ErrNotFound) {
		t.Fatalf("a short upload is visible: %v", err)
	}
}

// largeFileCluster starts three replicas with fast timeouts and a proxy
// (polling every 50 ms, with extra flags), waits for a master and dials the
// proxy; the context ends after limit.
func largeFileCluster(t *testing.T, limit time.Duration, proxyFlags ...string) (*cluster.Cluster, *cluster.Proxy, uint64, *line.Client, context.Context) {
	t.Helper()
	c := cluster.New(t, cluster.Options{NodeFlags: fastFlags})
	p := c.StartProxy(t, append([]string{"--poll=50ms"}, proxyFlags...)...)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	t.Cleanup(cancel)
	master, err := c.WaitMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := line.Dial(ctx, p.Addr, line.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return c, p, master, cl, ctx
}

// readAll reads key from replica id alone, in ranges, at a session read
// of index idx.
func readAll(ctx context.Context, t *testing.T, c *cluster.Cluster, id uint64, key string, idx uint64) []byte {
	t.Helper()
	wc, err := c.Dial(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	var out []byte
	for {
		rep, err := wc.Do(ctx, &wire.Request{Op: wire.OpGetRange, Key: key, Offset: uint64(len(out)), Length: 4 << 20,
			Consistency: wire.Session, MinIndex: idx})
		if err != nil || rep.Code != wire.CodeOK {
			t.Fatalf("replica %d: GET RANGE at %d: %v %s %s", id, len(out), err, rep.Code, rep.Msg)
		}
		out = append(out, rep.Value...)
		if uint64(len(out)) >= rep.Size || len(rep.Value) == 0 {
			return out
		}
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
