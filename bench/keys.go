package bench

// This file owns the workload's data: the key names, the value and the
// files' stamps, the same for every system under test. Pure: called by Run
// on its caller's goroutine before the clients start, and StampFile by each
// client on its own goroutine, on its own file.

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strconv"
)

// KeyNames returns the workload's n keys, "key-000000" upwards: the same
// names for every system, zero-padded so they sort in order.
func KeyNames(n int) []string {
	width := keyWidth(n)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%0*d", width, i)
	}
	return keys
}

// keyWidth is the number of digits in key names: six, or more for more keys.
func keyWidth(n int) int { return max(6, len(strconv.Itoa(n-1))) }

// Value returns size bytes of lower-case letters drawn from seed. Letters,
// not random bytes, so no system pays for escaping what it stores as text.
func Value(size int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 0x76616c7565))
	v := make([]byte, size)
	for i := range v {
		v[i] = 'a' + byte(rng.IntN(26))
	}
	return v
}

// StampBlock is the span of a file that StampFile makes unique.
const StampBlock = 4 << 10

// StampFile writes client, seq and the block's number over the first 48
// bytes of every StampBlock of file, as lower-case letters (a nibble
// each), so a file written by one operation shares no block with any
// other, or with another block of its own, and stays text: a store that
// keeps chunks by checksum cannot keep one by reference to another,
// whatever its chunk size (a multiple of 4 KiB).
func StampFile(file []byte, client, seq uint64) {
	var raw [24]byte
	binary.BigEndian.PutUint64(raw[:8], client)
	binary.BigEndian.PutUint64(raw[8:16], seq)
	for off, block := 0, uint64(0); off < len(file); off, block = off+StampBlock, block+1 {
		binary.BigEndian.PutUint64(raw[16:], block)
		stamp := file[off:min(off+2*len(raw), len(file))]
		for i := range stamp {
			stamp[i] = 'a' + (raw[i/2]>>(4*(i%2)))&0xf
		}
	}
}
