package bench

// This file owns the workload's data: the key names and the value, the
// same for every system under test. Pure: called by Run on its caller's
// goroutine before the clients start.

import (
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
