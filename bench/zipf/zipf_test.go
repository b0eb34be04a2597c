package zipf

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func TestNewRejects(t *testing.T) {
	for _, tc := range []struct {
		n     uint64
		theta float64
	}{
		{0, 0.99}, {MaxN + 1, 0.99}, {10, 0}, {10, 1}, {10, 1.5}, {10, -0.1}, {10, math.NaN()},
	} {
		if _, err := New(rand.New(rand.NewPCG(1, 2)), tc.n, tc.theta); !errors.Is(err, ErrParam) {
			t.Errorf("New(%d, %v) = %v, want ErrParam", tc.n, tc.theta, err)
		}
	}
}

// TestDistribution draws from a fixed seed and compares the frequencies with
// the Zipf law: exactly for ranks 0 and 1, the share of the hottest tenth of
// the keys, and that every draw is in range.
func TestDistribution(t *testing.T) {
	for _, tc := range []struct {
		n     uint64
		theta float64
	}{
		{1000, 0.99}, {1000, 0.5}, {100000, 0.99}, {2, 0.9}, {1, 0.99},
	} {
		g, err := New(rand.New(rand.NewPCG(7, 11)), tc.n, tc.theta)
		if err != nil {
			t.Fatal(err)
		}
		const draws = 400000
		counts := make([]int, tc.n)
		for range draws {
			k := g.Next()
			if k >= tc.n {
				t.Fatalf("n=%d: drew %d", tc.n, k)
			}
			counts[k]++
		}
		for k := uint64(0); k < 2 && k < tc.n; k++ {
			got := float64(counts[k]) / draws
			if want := g.Prob(k); math.Abs(got-want) > 0.05*want+0.002 {
				t.Errorf("n=%d theta=%v: rank %d frequency %.4f, want %.4f", tc.n, tc.theta, k, got, want)
			}
		}
		top := tc.n / 10
		if top < 2 {
			continue
		}
		want, got := 0.0, 0
		for k := uint64(0); k < top; k++ {
			want += g.Prob(k)
			got += counts[k]
		}
		if share := float64(got) / draws; math.Abs(share-want) > 0.03 {
			t.Errorf("n=%d theta=%v: hottest tenth drew %.3f of the keys, want %.3f", tc.n, tc.theta, share, want)
		}
	}
}

func TestCloneSameSequence(t *testing.T) {
	g, err := New(rand.New(rand.NewPCG(1, 1)), 1000, DefaultTheta)
	if err != nil {
		t.Fatal(err)
	}
	a := g.Clone(rand.New(rand.NewPCG(3, 4)))
	b := g.Clone(rand.New(rand.NewPCG(3, 4)))
	for i := range 1000 {
		if x, y := a.Next(), b.Next(); x != y {
			t.Fatalf("draw %d: %d != %d", i, x, y)
		}
	}
}

func BenchmarkNext(b *testing.B) {
	g, err := New(rand.New(rand.NewPCG(1, 1)), 1000, DefaultTheta)
	if err != nil {
		b.Fatal(err)
	}
	var sink uint64
	for b.Loop() {
		sink += g.Next()
	}
	_ = sink
}
