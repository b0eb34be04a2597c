package filestore

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// checkIndex verifies the block invariants and compares the index with a
// plain set.
func checkIndex(t *testing.T, x *keyIndex, ref map[string]bool) {
	t.Helper()
	var all []string
	for i, b := range x.blocks {
		if len(b) == 0 || len(b) > maxBlock {
			t.Fatalf("block %d has %d keys", i, len(b))
		}
		all = append(all, b...)
	}
	want := make([]string, 0, len(ref))
	for k := range ref {
		want = append(want, k)
	}
	slices.Sort(want)
	if !slices.Equal(all, want) {
		t.Fatalf("index holds %d keys, want %d (or order differs)", len(all), len(want))
	}
	if x.n != len(want) {
		t.Fatalf("n = %d, want %d", x.n, len(want))
	}
	for _, p := range []string{"", "1", "12", "3", "99", "5000"} {
		var wp []string
		for _, k := range want {
			if strings.HasPrefix(k, p) {
				wp = append(wp, k)
			}
		}
		if got := x.list(p, 0); !slices.Equal(got, wp) {
			t.Fatalf("list(%q) = %d keys, want %d", p, len(got), len(wp))
		}
		if len(wp) > 3 {
			if got := x.list(p, 3); !slices.Equal(got, wp[:3]) {
				t.Fatalf("list(%q, 3) = %q, want %q", p, got, wp[:3])
			}
		}
	}
}

func TestKeyIndexRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var x keyIndex
	ref := map[string]bool{}
	// Grow well past several splits, then shrink so blocks merge and
	// vanish, then grow again.
	phases := []struct{ ops, space, insertPct int }{
		{20000, 6000, 80},
		{20000, 6000, 20},
		{5000, 6000, 60},
	}
	for _, ph := range phases {
		for range ph.ops {
			k := fmt.Sprint(rng.IntN(ph.space))
			if rng.IntN(100) < ph.insertPct {
				if !ref[k] {
					x.insert(k)
					ref[k] = true
				}
			} else if got := x.remove(k); got != ref[k] {
				t.Fatalf("remove(%q) = %v, want %v", k, got, ref[k])
			} else {
				delete(ref, k)
			}
		}
		checkIndex(t, &x, ref)
	}
	c := x.clone()
	x.insert("zzz")
	if slices.Contains(c.list("zzz", 0), "zzz") {
		t.Fatal("clone shares blocks")
	}
}

func TestKeyIndexAppendMax(t *testing.T) {
	var x keyIndex
	ref := map[string]bool{}
	for i := range 3000 {
		k := fmt.Sprintf("%06d", i)
		x.appendMax(k)
		ref[k] = true
		if x.max() != k {
			t.Fatalf("max() = %q, want %q", x.max(), k)
		}
	}
	// Inserting in the middle of loaded blocks still works.
	for i := 0; i < 3000; i += 7 {
		k := fmt.Sprintf("%06d5", i)
		x.insert(k)
		ref[k] = true
	}
	checkIndex(t, &x, ref)
}
