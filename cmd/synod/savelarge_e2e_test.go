package main

// This file runs a backup of large files end to end, against real replica
// and proxy processes (internal/cluster) on loopback ports chosen at run
// time: `synod snapshot save` of a store holding two multi-chunk files
// that share a chunk writes a tar archive of the snapshot and every chunk;
// `snapshot status` and `snapshot restore` refuse the archive with a chunk
// taken out or damaged, and a plain snapshot file without --chunks; a new
// cluster restored from the archive reads both files back byte for byte
// with `synod cp` and from every replica with GET RANGE. The CLI runs in
// process (runVerb) on the test goroutine.

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"synod/internal/cluster"
	"synod/wire"
	"synod/wire/line"
)

// rewriteArchive copies the tar archive src to dst through fn, which gets
// each member's header and bytes and returns what to write (nil: leave
// the member out).
func rewriteArchive(t *testing.T, src, dst string, fn func(h *tar.Header, data []byte) []byte) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var out bytes.Buffer
	tr, tw := tar.NewReader(in), tar.NewWriter(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if data = fn(h, data); data == nil && h.Typeflag == tar.TypeReg {
			continue
		}
		h.Size = int64(len(data))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotSaveLargeFilesRestores(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two clusters")
	}
	t.Cleanup(func() { goleak.VerifyNone(t) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	src := cluster.New(t, cluster.Options{})
	if _, err := src.WaitMaster(ctx); err != nil {
		t.Fatal(err)
	}
	const chunk = 4096
	px := src.StartProxy(t, "--chunk-size="+strconv.Itoa(chunk))
	cl, err := line.Dial(ctx, px.Addr, line.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rng := rand.NewChaCha8([32]byte{22, 'b', 'k'})
	fileA := make([]byte, 5*chunk+100) // 6 chunks
	rng.Read(fileA)
	fileB := append(bytes.Clone(fileA[:chunk]), make([]byte, 2*chunk)...) // shares A's first chunk
	rng.Read(fileB[chunk:])
	files := map[string][]byte{"big/a": fileA, "big/b": fileB}
	for _, key := range []string{"big/a", "big/b"} {
		sum := sha256.Sum256(files[key])
		if _, err := cl.PutFile(ctx, key, uint64(len(files[key])), hex.EncodeToString(sum[:]), bytes.NewReader(files[key])); err != nil {
			t.Fatalf("PUTFILE %s: %v", key, err)
		}
	}
	if _, err := cl.Put(ctx, "small", []byte("a small file")); err != nil {
		t.Fatal(err)
	}
	const distinct = 6 + 2

	file := filepath.Join(t.TempDir(), "backup.snap")
	out, errText, code := runVerb(t, px.Addr, "", "snapshot", "save", "--json", "--chunk", "4096", file)
	if code != 0 {
		t.Fatalf("snapshot save: exit %d: %s\n%s", code, errText, out)
	}
	var res saveResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("snapshot save --json: %v\n%s", err, out)
	}
	if res.Chunks != distinct || res.ChunkBytes != int64(len(fileA)+2*chunk) || res.Keys != 3 {
		t.Fatalf("saved %+v; want %d chunks of %d bytes and 3 keys", res, distinct, len(fileA)+2*chunk)
	}
	// It is a plain tar: the snapshot, then chunks/<sha256> for each chunk,
	// which hashes to its name.
	var names []string
	rewriteArchive(t, file, filepath.Join(t.TempDir(), "copy"), func(h *tar.Header, data []byte) []byte {
		names = append(names, h.Name)
		if hexSum, ok := strings.CutPrefix(h.Name, "chunks/"); ok && hexSum != "" {
			if s := sha256.Sum256(data); hex.EncodeToString(s[:]) != hexSum {
				t.Errorf("member %s does not hash to its name", h.Name)
			}
		}
		return data
	})
	if len(names) != 2+distinct || names[0] != "snapshot" || names[1] != "chunks/" {
		t.Fatalf("archive members %q", names)
	}
	out, errText, code = runVerb(t, "", "", "snapshot", "status", file)
	if code != 0 || !strings.Contains(out, "tar archive") || !strings.Contains(out, "chunks    8, ") {
		t.Fatalf("snapshot status: exit %d: %s\n%s", code, errText, out)
	}

	// An archive with a chunk left out or damaged is refused by status and
	// restore alike, naming the chunk; so is a plain snapshot file (its
	// manifests only) by restore without --chunks.
	dropped := names[len(names)-1]
	broken := map[string]func(h *tar.Header, data []byte) []byte{
		"lacks": func(h *tar.Header, data []byte) []byte {
			if h.Name == dropped {
				return nil
			}
			return data
		},
		"is damaged": func(h *tar.Header, data []byte) []byte {
			if h.Name == dropped {
				data[0] ^= 1
			}
			return data
		},
	}
	for want, fn := range broken {
		path := filepath.Join(t.TempDir(), "broken.snap")
		rewriteArchive(t, file, path, fn)
		for _, args := range [][]string{{"snapshot", "status", path},
			{"snapshot", "restore", path, "--dir", filepath.Join(t.TempDir(), "n1"), "--id", "1", "--peers", "1=127.0.0.1:1"}} {
			if _, errText, code := runVerb(t, "", "", args...); code != 1 || !strings.Contains(errText, want) || !strings.Contains(errText, strings.TrimPrefix(dropped, "chunks/")[:16]) {
				t.Fatalf("an archive that %s a chunk: %s: exit %d, %q", want, args[1], code, errText)
			}
		}
	}
	plain := filepath.Join(t.TempDir(), "plain.snap")
	rewriteArchive(t, file, filepath.Join(t.TempDir(), "copy"), func(h *tar.Header, data []byte) []byte {
		if h.Name == "snapshot" {
			if err := os.WriteFile(plain, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return data
	})
	out, errText, code = runVerb(t, "", "", "snapshot", "status", plain)
	if code != 0 || !strings.Contains(out, "restore needs --chunks") {
		t.Fatalf("snapshot status of the plain snapshot: exit %d: %s\n%s", code, errText, out)
	}
	empty := filepath.Join(t.TempDir(), "n1")
	if _, errText, code := runVerb(t, "", "", "snapshot", "restore", plain, "--dir", empty, "--id", "1", "--peers", "1=127.0.0.1:1"); code != 1 || !strings.Contains(errText, "--chunks") {
		t.Fatalf("restore of a plain snapshot with large files: exit %d, %q", code, errText)
	}
	if _, err := os.Stat(empty); err == nil {
		t.Fatal("a refused restore wrote its directory")
	}
	// With --chunks naming a replica's chunks directory, it restores.
	if out, errText, code := runVerb(t, "", "", "snapshot", "restore", plain, "--dir", empty, "--id", "1", "--peers", "1=127.0.0.1:1",
		"--chunks", filepath.Join(src.NodeDir(1), "chunks")); code != 0 {
		t.Fatalf("restore of a plain snapshot with --chunks: exit %d: %s\n%s", code, errText, out)
	}
	if ents, err := os.ReadDir(filepath.Join(empty, "chunks")); err != nil || len(ents) != distinct {
		t.Fatalf("restore with --chunks stored %d chunks (%v), want %d", len(ents), err, distinct)
	}
	// synod check names a chunk the directory lacks.
	if out, errText, code := runVerb(t, "", "", "check", empty); code != 0 || !strings.Contains(out, "every one of the 8 chunks") {
		t.Fatalf("check of the restored directory: exit %d: %s\n%s", code, errText, out)
	}
	if err := os.Remove(filepath.Join(empty, dropped)); err != nil {
		t.Fatal(err)
	}
	if out, errText, code := runVerb(t, "", "", "check", empty); code != 0 || !strings.Contains(out, "1 of the 8 chunks") {
		t.Fatalf("check of a directory lacking a chunk: exit %d: %s\n%s", code, errText, out)
	}

	// A chunk no replica holds any more: the backup cannot be whole, and
	// save says which chunk and leaves nothing.
	for id := uint64(1); id <= 3; id++ {
		if err := os.Remove(filepath.Join(src.NodeDir(id), "chunks", strings.TrimPrefix(dropped, "chunks/"))); err != nil {
			t.Fatal(err)
		}
	}
	lost := filepath.Join(t.TempDir(), "lost.snap")
	if _, errText, code := runVerb(t, px.Addr, "", "snapshot", "save", "--retries", "0", lost); code != exitUnavailable || !strings.Contains(errText, "is on no reachable replica") {
		t.Fatalf("save with a chunk lost everywhere: exit %d, %q", code, errText)
	}
	if ents, _ := os.ReadDir(filepath.Dir(lost)); len(ents) != 0 {
		t.Fatalf("a failed save left %d files", len(ents))
	}

	// A new cluster from the archive: every replica holds every chunk
	// before it starts.
	dst := cluster.New(t, cluster.Options{ID: "restored", Prepare: restoreEach(t, file, func(c *cluster.Cluster, id uint64) {
		ents, err := os.ReadDir(filepath.Join(c.NodeDir(id), "chunks"))
		if err != nil || len(ents) != distinct {
			t.Fatalf("restored replica %d holds %d chunk files (%v), want %d", id, len(ents), err, distinct)
		}
	})})
	digest, err := dst.WaitConverged(ctx, res.Index)
	if err != nil {
		t.Fatal(err)
	}
	if digest != res.Digest {
		t.Fatalf("the restored cluster's digest is %s, the backup's %s", digest, res.Digest)
	}
	dpx := dst.StartProxy(t)
	for key, data := range files {
		back := filepath.Join(t.TempDir(), "back")
		if out, errText, code := runVerb(t, dpx.Addr, "", "cp", ":"+key, back); code != 0 {
			t.Fatalf("cp :%s: exit %d: %s\n%s", key, code, errText, out)
		}
		if got, err := os.ReadFile(back); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("cp :%s: the file read back differs (%v)", key, err)
		}
		for id := uint64(1); id <= 3; id++ {
			wc, err := dst.Dial(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			for uint64(len(got)) < uint64(len(data)) {
				rep, err := wc.Do(ctx, &wire.Request{Op: wire.OpGetRange, Key: key, Offset: uint64(len(got)), Length: 5000,
					Consistency: wire.Stale})
				if err != nil || rep.Code != wire.CodeOK || len(rep.Value) == 0 {
					t.Fatalf("replica %d: GET %s RANGE %d: %v %s %s", id, key, len(got), err, rep.Code, rep.Msg)
				}
				got = append(got, rep.Value...)
			}
			wc.Close()
			if !bytes.Equal(got, data) {
				t.Fatalf("replica %d: %s read back differs", id, key)
			}
		}
	}
}
