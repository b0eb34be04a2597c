// Package zipf draws skewed integers: rank 0 is the most popular, and rank k
// comes up in proportion to 1/(k+1)^theta. It is the generator YCSB uses (Gray
// et al., "Quickly generating billion-record synthetic databases", SIGMOD
// 1994), so a benchmark's "zipf" means what readers of other key-value
// benchmarks expect: theta 0.99 by default, which math/rand's Zipf (s > 1
// only) cannot produce.
package zipf

// This file owns all of it. A Generator is not safe for concurrent use:
// each bench client draws from its own Clone.

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// DefaultTheta is YCSB's default skew.
const DefaultTheta = 0.99

// MaxN bounds the number of ranks: the constructor sums n terms once.
const MaxN = 1 << 30

// ErrParam is returned by New for a theta outside (0, 1) or an n outside
// [1, MaxN].
var ErrParam = errors.New("zipf: bad parameter")

// Generator draws ranks in [0, n). It is not safe for concurrent use; give
// each goroutine its own (Clone shares the precomputed constants).
type Generator struct {
	rng   *rand.Rand
	n     uint64
	theta float64
	alpha float64
	zetan float64
	eta   float64
	half  float64 // 1 + 0.5^theta: below it, u*zetan picks rank 1
}

// New returns a generator of ranks in [0, n) with skew theta in (0, 1),
// drawing uniform numbers from rng.
func New(rng *rand.Rand, n uint64, theta float64) (*Generator, error) {
	if n < 1 || n > MaxN {
		return nil, fmt.Errorf("%w: n %d not in [1, %d]", ErrParam, n, MaxN)
	}
	if !(theta > 0 && theta < 1) {
		return nil, fmt.Errorf("%w: theta %v not in (0, 1)", ErrParam, theta)
	}
	g := &Generator{rng: rng, n: n, theta: theta}
	g.zetan = zeta(n, theta)
	g.alpha = 1 / (1 - theta)
	zeta2 := zeta(2, theta)
	g.eta = (1 - math.Pow(2/float64(n), 1-theta)) / (1 - zeta2/g.zetan)
	g.half = 1 + math.Pow(0.5, theta)
	return g, nil
}

// zeta is the generalised harmonic number: the sum of 1/i^theta for i in 1..n.
func zeta(n uint64, theta float64) float64 {
	sum := 0.0
	for i := uint64(1); i <= n; i++ {
		sum += 1 / math.Pow(float64(i), theta)
	}
	return sum
}

// Clone returns a generator with the same constants drawing from rng, without
// summing the n terms again.
func (g *Generator) Clone(rng *rand.Rand) *Generator {
	c := *g
	c.rng = rng
	return &c
}

// Next returns the next rank.
func (g *Generator) Next() uint64 {
	u := g.rng.Float64()
	uz := u * g.zetan
	if uz < 1 {
		return 0
	}
	if uz < g.half {
		return 1
	}
	k := uint64(float64(g.n) * math.Pow(g.eta*u-g.eta+1, g.alpha))
	if k >= g.n { // rounding at u close to 1
		k = g.n - 1
	}
	return k
}

// Prob returns the exact probability of rank k under the Zipf law the
// generator approximates: (1/(k+1)^theta) / zeta(n). Ranks 0 and 1 are drawn
// with exactly this probability; the others approximately.
func (g *Generator) Prob(k uint64) float64 {
	if k >= g.n {
		return 0
	}
	return 1 / math.Pow(float64(k+1), g.theta) / g.zetan
}
