package proxy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

// TestLargeFileMasterKilled kills the master with SIGKILL in the middle of
// a 16 MiB upload: the chunks need a majority, not the master, and the
// file's write waits in the proxy for the next master, so the upload
// completes, once, and the file reads back whole from both surviving
// replicas.
func TestLargeFileMasterKilled(t *testing.T) {
	c, _, master, cl, ctx := largeFileCluster(t, 3*time.Minute)
	const size = 16 << 20
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{23}).Read(data)
	sum := sha256.Sum256(data)
	half := make(chan struct{})
	body := &signalReader{r: bytes.NewReader(data), at: size / 2, reached: half}
	type result struct {
		idx uint64
		err error
	}
	done := make(chan result, 1)
	go func() {
		idx, err := cl.PutFile(ctx, "big/killed", size, hex.EncodeToString(sum[:]), body)
		done <- result{idx, err}
	}()
	<-half
	c.Nodes[master].Kill()
	res := <-done
	if res.err != nil {
		t.Fatalf("PUTFILE across a master kill: %v", res.err)
	}
	if n, _, err := cl.Stat(ctx, "big/killed"); err != nil || n != size {
		t.Fatalf("STAT after the kill: %d, %v", n, err)
	}
	if _, err := c.WaitConverged(ctx, res.idx); err != nil {
		t.Fatal(err)
	}
	for id := range c.Addrs {
		if id == master {
			continue
		}
		if got := readAll(ctx, t, c, id, "big/killed", res.idx); !bytes.Equal(got, data) {
			t.Fatalf("replica %d: the file read back differs", id)
		}
	}
}

// signalReader closes reached once at bytes have been read from it.
type signalReader struct {
	r       io.Reader
	n, at   int
	reached chan struct{}
}

func (s *signalReader) Read(p []byte) (int, error) {
	k, err := s.r.Read(p)
	before := s.n
	s.n += k
	if before < s.at && s.n >= s.at {
		close(s.reached)
	}
	return k, err
}
