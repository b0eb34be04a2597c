package proxy

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestPickTwo(t *testing.T) {
	tests := []struct {
		name  string
		costs []float64
		never []int // indexes that must never be picked
		only  int   // if >= 0, the only index ever picked
	}{
		{"none", nil, nil, -1},
		{"one", []float64{5}, nil, 0},
		{"two, the cheaper always wins", []float64{3, 1}, []int{0}, 1},
		{"the dearest of three never wins", []float64{1, 9, 2}, []int{1}, -1},
		{"the cheapest of four can lose only to nobody", []float64{4, 4, 0.5, 4}, nil, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(1, 2))
			counts := make([]int, len(tt.costs))
			for range 2000 {
				i := pickTwo(len(tt.costs), func(i int) float64 { return tt.costs[i] }, rnd)
				if len(tt.costs) == 0 {
					if i != -1 {
						t.Fatalf("pickTwo of none = %d", i)
					}
					continue
				}
				counts[i]++
			}
			for _, n := range tt.never {
				if counts[n] != 0 {
					t.Errorf("index %d picked %d times: %v", n, counts[n], counts)
				}
			}
			if tt.only >= 0 && len(tt.costs) > 0 && counts[tt.only] != 2000 {
				t.Errorf("counts %v, want all on %d", counts, tt.only)
			}
		})
	}
}

// TestPickTwoShares: with equal costs the picks spread evenly, and the
// cheapest of n candidates wins every pair it is drawn into, 2/n of them.
func TestPickTwoShares(t *testing.T) {
	rnd := rand.New(rand.NewPCG(7, 7))
	const draws = 40000
	equal := make([]int, 4)
	for range draws {
		equal[pickTwo(4, func(int) float64 { return 1 }, rnd)]++
	}
	for i, c := range equal {
		if share := float64(c) / draws; share < 0.23 || share > 0.27 {
			t.Errorf("equal costs: index %d got %.3f of picks, want about 0.25 (%v)", i, share, equal)
		}
	}
	cheap := 0
	for range draws {
		if pickTwo(4, func(i int) float64 { return float64(i + 1) }, rnd) == 0 {
			cheap++
		}
	}
	// Index 0 is in half of the 6 distinct pairs.
	if share := float64(cheap) / draws; share < 0.47 || share > 0.53 {
		t.Errorf("cheapest of 4 got %.3f of picks, want about 0.5", share)
	}
	// Costs within the tie band (noise between equal replicas) split
	// evenly; outside it the cheaper one always wins.
	near := 0
	for range draws {
		if pickTwo(2, func(i int) float64 { return []float64{1, 0.85}[i] }, rnd) == 1 {
			near++
		}
	}
	if share := float64(near) / draws; share < 0.47 || share > 0.53 {
		t.Errorf("costs 1 and 0.85: the cheaper got %.3f of picks, want about 0.5 (a tie)", share)
	}
}

func TestEWMA(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var e ewma
	if v := e.value(t0); v != 0 {
		t.Fatalf("value before any sample = %v, want 0", v)
	}
	e.observe(8*time.Millisecond, t0)
	if v := e.value(t0); v != 8 {
		t.Fatalf("after first sample = %v, want 8", v)
	}
	e.observe(4*time.Millisecond, t0)
	if v, want := e.value(t0), 8+ewmaAlpha*(4-8); v != want {
		t.Fatalf("after second sample = %v, want %v", v, want)
	}
	e = ewma{}
	e.observe(10*time.Millisecond, t0)
	if v := e.value(t0.Add(ewmaHalfLife)); v < 4.999 || v > 5.001 {
		t.Fatalf("after one half-life = %v, want 5", v)
	}
	if v := e.value(t0.Add(-time.Second)); v != 10 {
		t.Fatalf("value before the sample's time = %v, want 10 (no growth)", v)
	}
}

func TestCost(t *testing.T) {
	tests := []struct {
		ms       float64
		inflight int
		want     float64
	}{
		{0, 0, costFloorMs},
		{0, 9, 10 * costFloorMs},
		{2, 0, 2 + costFloorMs},
		{2, 3, 4 * (2 + costFloorMs)},
	}
	for _, tt := range tests {
		if got := cost(tt.ms, tt.inflight); got != tt.want {
			t.Errorf("cost(%v, %d) = %v, want %v", tt.ms, tt.inflight, got, tt.want)
		}
	}
}

func TestRetryBackoff(t *testing.T) {
	tests := []struct {
		tries int
		ceil  time.Duration
		want  time.Duration
	}{
		{0, time.Second, 5 * time.Millisecond},
		{1, time.Second, 5 * time.Millisecond},
		{2, time.Second, 10 * time.Millisecond},
		{4, time.Second, 40 * time.Millisecond},
		{50, 100 * time.Millisecond, 100 * time.Millisecond},
		{1, time.Millisecond, time.Millisecond},
	}
	for _, tt := range tests {
		if got := retryBackoff(tt.tries, tt.ceil); got != tt.want {
			t.Errorf("retryBackoff(%d, %v) = %v, want %v", tt.tries, tt.ceil, got, tt.want)
		}
	}
}

// TestEWMAOutlier: one stalled reply (a GC pause, a scheduling hiccup)
// must not make a replica look several times slower, or power of two
// choices starves it until the average decays, seconds later; a replica
// that really is slow still shows it within a few samples.
func TestEWMAOutlier(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var e ewma
	for range 20 {
		e.observe(300*time.Microsecond, t0)
	}
	e.observe(30*time.Millisecond, t0)
	if v := e.value(t0); v > 0.6 {
		t.Fatalf("one 30 ms outlier over 0.3 ms replies: average %.2f ms", v)
	}
	for i := range 6 {
		e.observe(5*time.Millisecond, t0)
		t.Logf("slow sample %d: %.2f ms", i+1, e.value(t0))
	}
	if v := e.value(t0); v < 3.5 {
		t.Fatalf("a replica answering in 5 ms averages %.2f ms after 6 replies", v)
	}
}
