package filestore

// This file owns the key index, the ordered keys behind List and
// snapshots. Part of the Machine: changed only by Apply (on the node's
// applier goroutine), read by List, Clone and WriteSnapshot, which may run
// on other goroutines under the node's read lock.

import (
	"slices"
	"sort"
	"strings"
)

// keyIndex keeps the keys in order for List and snapshots, next to the map
// that serves point lookups. It is a sorted list of sorted blocks: inserting
// or deleting moves at most one block's worth of string headers, and the
// block list itself only changes when a block splits, merges or empties, so
// it stays small (n/maxBlock entries). It changes only when a key is
// created or deleted, never on an overwrite.
type keyIndex struct {
	blocks [][]string // each non-empty, sorted, capacity maxBlock+1
	n      int
}

const (
	maxBlock = 512
	minBlock = maxBlock / 4 // below this a block merges with a neighbour
	// loadFill is how full snapshot loading packs blocks, leaving room
	// for inserts before the first split.
	loadFill = maxBlock * 3 / 4
)

func newBlock() []string { return make([]string, 0, maxBlock+1) }

// findBlock returns the first block whose last key is >= k, or
// len(x.blocks) if k is above every key.
func (x *keyIndex) findBlock(k string) int {
	return sort.Search(len(x.blocks), func(i int) bool {
		b := x.blocks[i]
		return b[len(b)-1] >= k
	})
}

// insert adds k, which must not be present.
func (x *keyIndex) insert(k string) {
	x.n++
	if len(x.blocks) == 0 {
		x.blocks = append(x.blocks, append(newBlock(), k))
		return
	}
	bi := x.findBlock(k)
	if bi == len(x.blocks) {
		bi--
	}
	b := x.blocks[bi]
	i, _ := slices.BinarySearch(b, k)
	b = slices.Insert(b, i, k)
	if len(b) <= maxBlock {
		x.blocks[bi] = b
		return
	}
	half := len(b) / 2
	right := append(newBlock(), b[half:]...)
	clear(b[half:])
	x.blocks[bi] = b[:half]
	x.blocks = slices.Insert(x.blocks, bi+1, right)
}

// remove deletes k and reports whether it was present.
func (x *keyIndex) remove(k string) bool {
	bi := x.findBlock(k)
	if bi == len(x.blocks) {
		return false
	}
	b := x.blocks[bi]
	i, found := slices.BinarySearch(b, k)
	if !found {
		return false
	}
	x.n--
	b = slices.Delete(b, i, i+1)
	x.blocks[bi] = b
	switch {
	case len(b) == 0:
		x.blocks = slices.Delete(x.blocks, bi, bi+1)
	case len(b) < minBlock && bi+1 < len(x.blocks) && len(b)+len(x.blocks[bi+1]) <= maxBlock:
		x.blocks[bi] = append(b, x.blocks[bi+1]...)
		x.blocks = slices.Delete(x.blocks, bi+1, bi+2)
	case len(b) < minBlock && bi > 0 && len(x.blocks[bi-1])+len(b) <= maxBlock:
		x.blocks[bi-1] = append(x.blocks[bi-1], b...)
		x.blocks = slices.Delete(x.blocks, bi, bi+1)
	}
	return true
}

// appendMax adds k, which must be above every key present: the fast path
// for loading a snapshot, whose keys come sorted.
func (x *keyIndex) appendMax(k string) {
	x.n++
	if last := len(x.blocks) - 1; last >= 0 && len(x.blocks[last]) < loadFill {
		x.blocks[last] = append(x.blocks[last], k)
		return
	}
	x.blocks = append(x.blocks, append(newBlock(), k))
}

// max returns the largest key, or "" when empty.
func (x *keyIndex) max() string {
	if len(x.blocks) == 0 {
		return ""
	}
	b := x.blocks[len(x.blocks)-1]
	return b[len(b)-1]
}

// list returns up to limit keys (all if limit <= 0) that start with
// prefix, in order.
func (x *keyIndex) list(prefix string, limit int) []string {
	var out []string
	bi := x.findBlock(prefix)
	if bi == len(x.blocks) {
		return out
	}
	i, _ := slices.BinarySearch(x.blocks[bi], prefix)
	for ; bi < len(x.blocks); bi, i = bi+1, 0 {
		for _, k := range x.blocks[bi][i:] {
			if !strings.HasPrefix(k, prefix) {
				return out
			}
			out = append(out, k)
			if limit > 0 && len(out) == limit {
				return out
			}
		}
	}
	return out
}

// each calls fn on every key in order until fn returns false.
func (x *keyIndex) each(fn func(string) bool) {
	for _, b := range x.blocks {
		for _, k := range b {
			if !fn(k) {
				return
			}
		}
	}
}

// clone returns an independent copy (the strings are shared, they are
// immutable).
func (x *keyIndex) clone() keyIndex {
	c := keyIndex{blocks: make([][]string, len(x.blocks)), n: x.n}
	for i, b := range x.blocks {
		c.blocks[i] = append(newBlock(), b...)
	}
	return c
}
