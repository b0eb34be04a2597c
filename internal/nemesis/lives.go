package nemesis

// This file owns the replicas' lives: each start's clock rate and disk
// delay, drawn from the seed and remembered for the report. The draws are
// safe for concurrent use under lives.mu: the cluster's first starts draw
// on Run's goroutine, restarts on the nemesis goroutine.

import (
	"fmt"
	"math"
	"math/rand"
	"sort"
	"strings"
	"sync"
	"time"
)

// Lives shapes every start of a replica, the first one included: the rate
// its clock runs at and how slow its disk is. Each start draws anew, so a
// replica's clock changes rate across restarts.
type Lives struct {
	// ClockSkew: a start draws its clock rate from [1-ClockSkew,
	// 1+ClockSkew], a third of them at one edge or the other and a third at
	// 1; 0 runs every clock at real time. The design tolerates 0.05
	// (paxos.MaxDriftPercent): every clock within 5% of real time.
	ClockSkew float64
	// SlowFsync is the share of starts whose log sleeps between a batch's
	// write and its fsync, for a delay drawn from [FsyncMin, FsyncMax).
	// With --test-lossy-fsync a kill -9 in that window loses the batch.
	SlowFsync          float64
	FsyncMin, FsyncMax time.Duration
}

// Life is what one start of a replica drew.
type Life struct {
	ID    uint64
	Rate  float64       // clock rate (1: real time)
	Fsync time.Duration // delay before each fsync (0: none)
}

// Flags returns the replica's test-hook flags for this life.
func (l Life) Flags() []string {
	var out []string
	if l.Rate != 1 {
		out = append(out, fmt.Sprintf("--test-clock-rate=%.3f", l.Rate))
	}
	if l.Fsync > 0 {
		out = append(out, fmt.Sprintf("--test-fsync-delay=%v", l.Fsync))
	}
	return out
}

// String describes the life for the run's log.
func (l Life) String() string {
	s := fmt.Sprintf("replica %d starts: clock ×%.3f", l.ID, l.Rate)
	if l.Fsync > 0 {
		s += fmt.Sprintf(", fsync +%v", l.Fsync)
	}
	return s
}

// lives draws lives from a seed and remembers every one.
type lives struct {
	cfg Lives
	mu  sync.Mutex
	rng *rand.Rand
	all []Life
}

func newLives(cfg Lives, seed int64) *lives {
	return &lives{cfg: cfg, rng: rand.New(rand.NewSource(seed))}
}

// draw draws replica id's next life; rate, if not 0, is its clock rate and
// fsync, if not negative, its fsync delay.
func (lv *lives) draw(id uint64, rate float64, fsync time.Duration) Life {
	lv.mu.Lock()
	defer lv.mu.Unlock()
	l := Life{ID: id, Rate: 1}
	if s := lv.cfg.ClockSkew; s > 0 {
		switch lv.rng.Intn(6) {
		case 0:
			l.Rate = 1 - s
		case 1:
			l.Rate = 1 + s
		case 2, 3:
			l.Rate = 1 - s + 2*s*lv.rng.Float64()
		}
		l.Rate = math.Round(l.Rate*1000) / 1000
	}
	if rate != 0 {
		l.Rate = rate
	}
	if lv.cfg.FsyncMax > 0 && lv.rng.Float64() < lv.cfg.SlowFsync {
		l.Fsync = lv.cfg.FsyncMin
		if span := lv.cfg.FsyncMax - lv.cfg.FsyncMin; span > 0 {
			l.Fsync += time.Duration(lv.rng.Int63n(int64(span)))
		}
		l.Fsync = l.Fsync.Round(100 * time.Microsecond)
	}
	if fsync >= 0 {
		l.Fsync = fsync
	}
	lv.all = append(lv.all, l)
	return l
}

// current returns replica id's latest life.
func (lv *lives) current(id uint64) Life {
	lv.mu.Lock()
	defer lv.mu.Unlock()
	for i := len(lv.all) - 1; i >= 0; i-- {
		if lv.all[i].ID == id {
			return lv.all[i]
		}
	}
	return Life{ID: id, Rate: 1}
}

// list returns every life drawn, in order.
func (lv *lives) list() []Life {
	lv.mu.Lock()
	defer lv.mu.Unlock()
	return append([]Life(nil), lv.all...)
}

// summarizeLives says how many starts ran at which clock rates and disks.
func summarizeLives(all []Life) string {
	if len(all) == 0 {
		return "no starts"
	}
	lo, hi := all[0].Rate, all[0].Rate
	skewed, slow := 0, 0
	rates := map[uint64][]string{}
	for _, l := range all {
		lo, hi = min(lo, l.Rate), max(hi, l.Rate)
		if l.Rate != 1 {
			skewed++
		}
		if l.Fsync > 0 {
			slow++
		}
		rates[l.ID] = append(rates[l.ID], fmt.Sprintf("%.2f", l.Rate))
	}
	ids := make([]uint64, 0, len(rates))
	for id := range rates {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var per []string
	for _, id := range ids {
		per = append(per, fmt.Sprintf("%d:%s", id, strings.Join(rates[id], ",")))
	}
	return fmt.Sprintf("%d starts, %d with a skewed clock (%.2f–%.2f), %d with a slow fsync; rates %s",
		len(all), skewed, lo, hi, slow, strings.Join(per, " "))
}
