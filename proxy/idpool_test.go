package proxy

import (
	"math"
	"testing"
)

func TestIDPool(t *testing.T) {
	p := newIDPool(1000)
	a, sa := p.get()
	b, sb := p.get()
	if a == b || sa != 1 || sb != 1 {
		t.Fatalf("two held ids: (%d,%d) (%d,%d), want distinct ids at seq 1", a, sa, b, sb)
	}
	p.put(a, sa)
	c, sc := p.get()
	if c != a || sc != 2 {
		t.Fatalf("reuse = (%d,%d), want (%d,2): the id comes back with the next sequence", c, sc, a)
	}
	p.retire() // b's write fate unknown: b is never handed out again
	for range 100 {
		if id, _ := p.get(); id == b {
			t.Fatalf("retired id %d handed out again", b)
		}
	}
	inUse, idle, retired := p.counts()
	if inUse != 101 || idle != 0 || retired != 1 {
		t.Fatalf("counts = %d in use, %d idle, %d retired; want 101, 0, 1", inUse, idle, retired)
	}
}

func TestIDPoolNeverZero(t *testing.T) {
	p := newIDPool(math.MaxUint64 - 2)
	for range 5 {
		if id, _ := p.get(); id == 0 {
			t.Fatal("id 0 handed out: the state machine reads it as no session")
		}
	}
}

// TestIDPoolConcurrentHoldersDistinct: ids held at the same time never
// collide, and an id's sequence only grows.
func TestIDPoolConcurrentHoldersDistinct(t *testing.T) {
	p := newIDPool(42)
	held := map[uint64]uint64{}
	last := map[uint64]uint64{}
	for round := range 50 {
		for range round%7 + 1 {
			id, seq := p.get()
			if _, dup := held[id]; dup {
				t.Fatalf("id %d handed out twice", id)
			}
			if seq <= last[id] {
				t.Fatalf("id %d: seq %d after %d", id, seq, last[id])
			}
			held[id], last[id] = seq, seq
		}
		for id, seq := range held {
			if (id+uint64(round))%2 == 0 {
				p.put(id, seq)
				delete(held, id)
			}
		}
	}
}
