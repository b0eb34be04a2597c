package node

import (
	"crypto/sha256"
	"encoding/binary"
	"path/filepath"
	"testing"

	"synod/filestore/chunks"
	"synod/wire"
)

// BenchmarkServePutChunk is a replica's side of storing one 4 MiB chunk of
// an upload, from the frame's body as Recv hands it over: decode, SHA-256
// check, write, fsync, rename. Each iteration stores a chunk not seen
// before (its first bytes count the iterations), prepared with the timer
// stopped.
func BenchmarkServePutChunk(b *testing.B) {
	cs, err := chunks.Open(filepath.Join(b.TempDir(), "chunks"))
	if err != nil {
		b.Fatal(err)
	}
	n := &Node{chunks: cs}
	data := make([]byte, wire.DefaultChunkSize)
	for i := range data {
		data[i] = byte(i * 31)
	}
	body, err := wire.Marshal(&wire.ChunkPut{Sum: make([]byte, sha256.Size), Data: data})
	if err != nil {
		b.Fatal(err)
	}
	sumAt, dataAt := 3, len(body)-len(data) // after the array's and the bin's headers
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	i := uint64(0)
	for b.Loop() {
		b.StopTimer()
		i++
		binary.LittleEndian.PutUint64(body[dataAt:], i)
		sum := sha256.Sum256(body[dataAt:])
		copy(body[sumAt:], sum[:])
		b.StartTimer()
		if ack := n.servePutChunk(body); ack.Code != wire.CodeOK {
			b.Fatalf("chunk %d: %v %s", i, ack.Code, ack.Msg)
		}
	}
}
