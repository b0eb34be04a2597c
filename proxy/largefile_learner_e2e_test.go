package proxy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"synod/internal/cluster"
)

// TestWipedLearnerWaitsForChunks: a replica that lost its disk votes again
// only once it holds every chunk of every large file its state refers to,
// and it keeps looking for chunks no peer could give it. Otherwise a
// second lost disk could take the last copy of a chunk (the simulator's
// planted bug "a learner that votes before it holds its files' chunks").
// The file's chunks are moved off every other replica while the wiped one
// catches up: it stays a learner well past the time it would otherwise
// vote again, and once one peer has them back it fetches them and votes.
func TestWipedLearnerWaitsForChunks(t *testing.T) {
	c, _, master, cl, ctx := largeFileCluster(t, 2*time.Minute, "--chunk-size=65536")
	data := make([]byte, 3*65536-100)
	rand.NewChaCha8([32]byte{7}).Read(data)
	sum := sha256.Sum256(data)
	idx, err := cl.PutFile(ctx, "learner/file", uint64(len(data)), hex.EncodeToString(sum[:]), bytes.NewReader(data))
	if err != nil {
		t.Fatalf("PUTFILE: %v", err)
	}
	if _, err := c.WaitConverged(ctx, idx); err != nil {
		t.Fatal(err)
	}
	victim := master%3 + 1
	keeper := victim%3 + 1
	if keeper == master {
		keeper = keeper%3 + 1
	}
	// Hide the file's chunks from both peers.
	hidden := t.TempDir()
	for _, id := range []uint64{master, keeper} {
		hideChunks(t, filepath.Join(c.NodeDir(id), "chunks"), filepath.Join(hidden, string(rune('0'+id))))
	}
	v := c.Nodes[victim]
	v.Kill()
	if err := os.RemoveAll(c.NodeDir(victim)); err != nil {
		t.Fatal(err)
	}
	votes := strings.Count(v.Output(), "this replica votes")
	v.Start()
	// Two scans that found the chunks missing are at least chunkRetry (5 s)
	// apart: about ten times as long as a learner takes to vote again with
	// these timeouts (TestWipedFollowerRejoins).
	const missing = "chunks of large files missing here"
	waitOutput(t, v, 30*time.Second, func(out string) bool { return strings.Count(out, missing) >= 2 })
	out := v.Output()
	if !strings.Contains(out, "rejoining as a learner") {
		t.Fatalf("replica %d did not rejoin as a learner", victim)
	}
	if n := strings.Count(out, "this replica votes"); n != votes {
		t.Fatalf("replica %d votes again though it lacks the file's chunks", victim)
	}
	// One peer has them back: the wiped replica fetches them and votes.
	hideChunks(t, filepath.Join(hidden, string(rune('0'+keeper))), filepath.Join(c.NodeDir(keeper), "chunks"))
	waitOutput(t, v, 30*time.Second, func(out string) bool { return strings.Count(out, "this replica votes") > votes })
	if got := readAll(ctx, t, c, victim, "learner/file", idx); !bytes.Equal(got, data) {
		t.Fatalf("replica %d: the file read back differs", victim)
	}
	// And with the master's copies still gone, the file survives the
	// keeper's loss: the promoted replica holds every chunk.
	hideChunks(t, filepath.Join(c.NodeDir(keeper), "chunks"), filepath.Join(hidden, "again"))
	if got := readAll(ctx, t, c, victim, "learner/file", idx); !bytes.Equal(got, data) {
		t.Fatalf("replica %d: the file read back after the keeper lost it differs", victim)
	}
}

// hideChunks moves every chunk file from one directory to another.
func hideChunks(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if err := os.Rename(filepath.Join(from, e.Name()), filepath.Join(to, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
}

// waitOutput waits until a replica's output satisfies ok.
func waitOutput(t *testing.T, p *cluster.Proc, limit time.Duration, ok func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok(p.Output()) {
		if time.Now().After(deadline) {
			t.Fatalf("replica's output never showed what the test waits for; its output:\n%s", p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
