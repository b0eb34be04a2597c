package proxy

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestBetter: which of two candidates takes a read (balance.go's rules).
func TestBetter(t *testing.T) {
	tests := []struct {
		name string
		a, b choice
		want bool // b takes it
	}{
		{"equal: the first draw keeps it", choice{latMs: 1}, choice{latMs: 1}, false},
		{"no samples anywhere: fewer in flight wins", choice{inflight: 3}, choice{inflight: 1}, true},
		{"one more in flight is a tie", choice{inflight: 2}, choice{inflight: 1}, false},
		{"latencies within the band are equal: in flight decides", choice{latMs: 0.4, inflight: 2}, choice{latMs: 0.75}, true},
		{"within the band, equal in flight: a tie", choice{latMs: 0.4}, choice{latMs: 0.75}, false},
		{"within the band the lower latency does not win", choice{latMs: 0.75}, choice{latMs: 0.4}, false},
		{"beyond the band the lower latency wins", choice{latMs: 5}, choice{latMs: 0.5}, true},
		{"beyond the band, the fast one keeps it with a queue", choice{latMs: 5.5}, choice{latMs: 0.5, inflight: 5}, true},
		{"beyond the band, a long enough queue sends it to the slow one", choice{latMs: 0.5, inflight: 150}, choice{latMs: 5.5}, true},
		{"at the band's edge, in flight decides", choice{latMs: 10, inflight: 2}, choice{latMs: 19.9}, true},
		{"just beyond it, latency does", choice{latMs: 10, inflight: 1}, choice{latMs: 21}, false},
		{"within 3 ms, in flight decides", choice{latMs: 0.3, inflight: 2}, choice{latMs: 2.2}, true},
		{"a probe due wins over a faster one", choice{latMs: 0.5}, choice{latMs: 5, due: true}, true},
		{"both due: the other rules decide", choice{latMs: 5, due: true}, choice{latMs: 0.5, due: true}, true},
		{"the first draw due keeps it", choice{latMs: 5, due: true}, choice{latMs: 0.5}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := better(tt.a, tt.b); got != tt.want {
				t.Errorf("better(%+v, %+v) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

func TestPickTwo(t *testing.T) {
	tests := []struct {
		name    string
		choices []choice
		never   []int // indexes that must never be picked
	}{
		{"none", nil, nil},
		{"one", []choice{{latMs: 5}}, nil},
		{"two, the much faster always wins", []choice{{latMs: 6}, {latMs: 1}}, []int{0}},
		{"the slowest of three never wins", []choice{{latMs: 1}, {latMs: 9}, {latMs: 2.5}}, []int{1}},
		{"the busiest of three never wins", []choice{{latMs: 1, inflight: 5}, {latMs: 1}, {latMs: 1, inflight: 1}}, []int{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(1, 2))
			counts := make([]int, len(tt.choices))
			for range 2000 {
				i := pickTwo(len(tt.choices), func(i int) choice { return tt.choices[i] }, rnd)
				if len(tt.choices) == 0 {
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
		})
	}
}

// TestPickTwoShares: equal candidates, and candidates whose latencies
// differ by less than the band, split the picks evenly; the fastest of n
// wins every pair it is drawn into, 2/n of them.
func TestPickTwoShares(t *testing.T) {
	tests := []struct {
		name  string
		lat   []float64
		index int     // whose share is checked
		want  float64 // its expected share
	}{
		{"four equal", []float64{1, 1, 1, 1}, 2, 0.25},
		{"two within the band", []float64{1, 1.9}, 1, 0.5},
		{"the fastest of four, by more than the band", []float64{4, 10, 10, 10}, 0, 0.5},
		{"sub-millisecond differences are noise", []float64{0.2, 0.5}, 0, 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(7, 7))
			const draws = 40000
			got := 0
			for range draws {
				if pickTwo(len(tt.lat), func(i int) choice { return choice{latMs: tt.lat[i]} }, rnd) == tt.index {
					got++
				}
			}
			if share := float64(got) / draws; share < tt.want-0.03 || share > tt.want+0.03 {
				t.Errorf("index %d got %.3f of the picks, want about %.2f", tt.index, share, tt.want)
			}
		})
	}
}

// TestReplyLatency: the estimate is the median of the last replies, and
// drifts toward the other followers' mean while no reply comes.
func TestReplyLatency(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	tests := []struct {
		name    string
		samples []float64 // ms, one a millisecond apart
		want    float64
	}{
		{"one", []float64{8}, 8},
		{"the median of three", []float64{8, 1, 2}, 2},
		{"a stall or two among normal replies is ignored", []float64{0.3, 0.3, 30, 0.3, 40, 0.3, 0.3}, 0.3},
		{"three slow of the last five show", []float64{0.3, 0.3, 5, 5, 5}, 5},
		{"only the last five count", []float64{9, 9, 9, 9, 9, 1, 1, 1}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l replyLatency
			now := t0
			for _, v := range tt.samples {
				now = now.Add(time.Millisecond)
				l.observe(ms(v), now)
			}
			if got := l.value(now, 0); got != tt.want {
				t.Fatalf("estimate %v, want %v", got, tt.want)
			}
		})
	}
	var l replyLatency
	if v := l.value(t0, 0); v != 0 {
		t.Fatalf("before any sample, no mean: %v, want 0", v)
	}
	if v := l.value(t0, 3); v != 3 {
		t.Fatalf("before any sample, mean 3: %v, want 3 (as good as the others)", v)
	}
	for range latencyWindow {
		l.observe(ms(9), t0)
	}
	l.observe(ms(1), t0.Add(latencyMemory+time.Millisecond))
	if v := l.value(t0.Add(latencyMemory+time.Millisecond), 0); v != 1 {
		t.Fatalf("a reply after more than %v: %v, want 1 (the old ones forgotten)", latencyMemory, v)
	}
	drift := []struct {
		name   string
		idle   time.Duration
		mean   float64
		lo, hi float64
	}{
		{"no time: as sampled", 0, 1, 10, 10},
		{"one half-life toward a lower mean", idleHalfLife, 2, 5.999, 6.001},
		{"one half-life toward a higher mean", idleHalfLife, 20, 14.999, 15.001},
		{"long idle: the mean", 60 * idleHalfLife, 2, 1.999, 2.001},
		{"no mean known: kept", 60 * idleHalfLife, 0, 10, 10},
		{"a clock before the sample: kept", -time.Second, 2, 10, 10},
	}
	for _, tt := range drift {
		t.Run(tt.name, func(t *testing.T) {
			var l replyLatency
			l.observe(10*time.Millisecond, t0)
			if v := l.value(t0.Add(tt.idle), tt.mean); v < tt.lo || v > tt.hi {
				t.Fatalf("value = %v, want %v-%v", v, tt.lo, tt.hi)
			}
		})
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
