package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"testing"
)

// TestReadStdin: a stream of up to the limit stays in memory; one byte
// more and the whole stream is spooled to a file that has no name, with
// its size and SHA-256.
func TestReadStdin(t *testing.T) {
	const limit = 1000
	for _, n := range []int{0, 1, limit - 1, limit, limit + 1, 3*limit + 7} {
		in := bytes.Repeat([]byte{byte(n)}, n)
		for i := range in {
			in[i] ^= byte(i * 7)
		}
		data, sp, err := readStdin(bytes.NewReader(in), limit)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if n <= limit {
			if sp != nil || !bytes.Equal(data, in) {
				t.Fatalf("%d bytes: spooled %v, %d in memory; want them in memory", n, sp != nil, len(data))
			}
			continue
		}
		if sp == nil || data != nil {
			t.Fatalf("%d bytes: not spooled", n)
		}
		got, err := io.ReadAll(sp.f)
		sp.f.Close()
		sum := sha256.Sum256(in)
		if err != nil || !bytes.Equal(got, in) || sp.size != int64(n) || sp.sum != hex.EncodeToString(sum[:]) {
			t.Fatalf("%d bytes: spool of %d bytes (size %d, sum %s), %v", n, len(got), sp.size, sp.sum, err)
		}
		if _, err := os.Stat(sp.f.Name()); !os.IsNotExist(err) {
			t.Fatalf("the spool file %s still has a name: %v", sp.f.Name(), err)
		}
	}
}
