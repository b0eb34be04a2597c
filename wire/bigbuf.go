package wire

// This file owns the pool of large frame buffers: the bodies of frames
// above keepBuf (a 1 MiB value's Accept, a 4 MiB chunk) that a Conn reads,
// kept between frames and between connections so that each one is not
// allocated, zeroed and grown anew. Safe for concurrent use from any
// goroutine.

import (
	"math/bits"
	"sync"
)

const (
	// minBigClass is the smallest pooled size, as a power of two: the
	// first above keepBuf, which a Conn keeps by itself.
	minBigClass = 21 // 2 MiB

	// maxBigClass is the largest pooled size: a rarer, larger frame is
	// allocated and dropped, so the pool never pins more than a few of
	// these per size.
	maxBigClass = 26 // 64 MiB
)

// bigPools holds, per class k, *[]byte buffers whose capacity is at least
// 1<<k. sync.Pool lets the collector drop what goes unused.
var bigPools [maxBigClass + 1]sync.Pool

// bigClass returns the class whose buffers hold n bytes: the least k with
// 1<<k >= n.
func bigClass(n int) int {
	if n <= 1 {
		return 0
	}
	return bits.Len(uint(n - 1))
}

// pooledCap returns the capacity to allocate for a body of n bytes so that
// the buffer can go back to the pool: n rounded up to its class, or n
// itself outside the pooled classes.
func pooledCap(n int) int {
	k := bigClass(n)
	if k < minBigClass || k > maxBigClass {
		return n
	}
	return 1 << k
}

// getBig returns a pooled buffer of length n, or nil if the pool has none
// (or n is not pooled): the caller then allocates, growing as bytes arrive.
func getBig(n int) []byte {
	k := bigClass(n)
	if k < minBigClass || k > maxBigClass {
		return nil
	}
	p, _ := bigPools[k].Get().(*[]byte)
	if p == nil {
		return nil
	}
	return (*p)[:n]
}

// putBig gives b back to the pool of the largest class its capacity
// fills. The caller must not touch b afterwards.
func putBig(b []byte) {
	k := bits.Len(uint(cap(b))) - 1 // 1<<k <= cap(b)
	if k < minBigClass || k > maxBigClass {
		return
	}
	b = b[:0]
	bigPools[k].Put(&b)
}
