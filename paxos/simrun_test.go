package paxos

import (
	"flag"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

var (
	flagSeed  = flag.Uint64("sim.seed", 0, "replay one simulator seed")
	flagSeeds = flag.Int("sim.seeds", 0, "number of simulator seeds to run (default: 2000, 300 under -race or -short)")
	flagFirst = flag.Uint64("sim.first", 1, "first seed of a sweep")
)

// simResult is what one seeded run ends with.
type simResult struct {
	seed  uint64
	err   error
	trace uint64
	stats simStats
	opts  simOptions
}

func runSeed(seed uint64, tweak func(*simOptions)) simResult {
	o := simOptionsFor(seed)
	if tweak != nil {
		tweak(&o)
	}
	s := newSim(seed, o)
	err := s.run()
	return simResult{seed: seed, err: err, trace: s.trace, stats: s.stats, opts: o}
}

// sweep runs seeds first..first+n-1 on every core and returns the failures,
// stopping early (stop) once one is found if stopAtFirst.
func sweep(first uint64, n int, stopAtFirst bool, tweak func(*simOptions)) (fails []simResult, ran int64, total simStats) {
	var (
		next  atomic.Uint64
		count atomic.Int64
		mu    sync.Mutex
		wg    sync.WaitGroup
		stop  atomic.Bool
	)
	next.Store(first)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				seed := next.Add(1) - 1
				if seed >= first+uint64(n) {
					return
				}
				res := runSeed(seed, tweak)
				count.Add(1)
				mu.Lock()
				total.chosen += res.stats.chosen
				total.reads += res.stats.reads
				total.elections += res.stats.elections
				total.crashes += res.stats.crashes
				total.snapshots += res.stats.snapshots
				total.wipes += res.stats.wipes
				total.handovers += res.stats.handovers
				if res.err != nil {
					fails = append(fails, res)
					if stopAtFirst {
						stop.Store(true)
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return fails, count.Load(), total
}

func defaultSeeds() int {
	if *flagSeeds > 0 {
		return *flagSeeds
	}
	if testing.Short() || raceEnabled {
		return 300
	}
	return 2000
}

// TestSimulation sweeps seeds with every fault on and checks safety after
// every event and liveness once the faults stop. `make sim SEEDS=n` sets the
// count; `make sim SEED=n` replays one seed with its trace hash.
func TestSimulation(t *testing.T) {
	if *flagSeed != 0 {
		a, b := runSeed(*flagSeed, nil), runSeed(*flagSeed, nil)
		t.Logf("seed %d: options %+v", a.seed, a.opts)
		t.Logf("seed %d: trace %016x (replayed: %016x), %d writes chosen, %d reads, %d elections, %d crashes",
			a.seed, a.trace, b.trace, a.stats.chosen, a.stats.reads, a.stats.elections, a.stats.crashes)
		if a.trace != b.trace {
			t.Errorf("seed %d is not deterministic: trace %016x then %016x", a.seed, a.trace, b.trace)
		}
		if a.err != nil {
			t.Fatalf("seed %d: %v", a.seed, a.err)
		}
		return
	}
	n := defaultSeeds()
	fails, ran, total := sweep(*flagFirst, n, false, nil)
	for i, f := range fails {
		if i < 10 {
			t.Errorf("seed %d failed (replay: make sim SEED=%d): %v", f.seed, f.seed, f.err)
		}
	}
	t.Logf("simulation: %d of %d seeds passed; %d writes chosen, %d linearizable reads checked, %d elections, %d crashes, %d wipes, %d handovers, %d snapshots installed",
		ran-int64(len(fails)), ran, total.chosen, total.reads, total.elections, total.crashes, total.wipes, total.handovers, total.snapshots)
	fmt.Printf("sim: %d passed, %d failed\n", ran-int64(len(fails)), len(fails))
}

// TestSimulationDeterministic runs a few seeds twice and compares traces.
func TestSimulationDeterministic(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		a, b := runSeed(seed, nil), runSeed(seed, nil)
		if a.trace != b.trace {
			t.Fatalf("seed %d: trace %016x then %016x", seed, a.trace, b.trace)
		}
	}
}

// The planted-bug tests prove the simulator bites: each switches on one
// known mistake and expects a violation within 10,000 seeds.
func plantedCaught(t *testing.T, name string, tweak func(*simOptions)) {
	t.Helper()
	if raceEnabled {
		t.Skip("planted-bug sweeps run without -race (make test runs them in sim-ci)")
	}
	// Only safety counts here: a liveness failure is not the bug.
	fails, ran, _ := sweep(1, 10000, true, func(o *simOptions) { tweak(o); o.liveness = false })
	if len(fails) == 0 {
		t.Fatalf("planted bug %s: no violation in %d seeds", name, ran)
	}
	t.Logf("planted bug %s caught at seed %d after %d seeds: %v", name, fails[0].seed, ran, fails[0].err)
}

func TestPlantedAnswerBeforePersist(t *testing.T) {
	plantedCaught(t, "(a) answer before persisting", func(o *simOptions) { o.sendEarly = true })
}

func TestPlantedServeBeforeNoop(t *testing.T) {
	plantedCaught(t, "(b) serve before the no-op is chosen", func(o *simOptions) { o.bugs.serveBeforeNoop = true })
}

func TestPlantedForgetPromise(t *testing.T) {
	plantedCaught(t, "(c) forget the promise on restart", func(o *simOptions) {
		// Forgetting a promise only matters across a crash: crash often.
		o.bugs.skipPromiseOnCrash = true
		o.crashRate = max(o.crashRate, 0.02)
	})
}

func TestPlantedReadWithoutQuorum(t *testing.T) {
	plantedCaught(t, "(d) read index without quorum confirmation", func(o *simOptions) { o.bugs.readWithoutQuorum = true })
}

func TestPlantedApplyOlderBallot(t *testing.T) {
	plantedCaught(t, "(e) apply a value accepted under an older ballot", func(o *simOptions) { o.bugs.applyOlderBallot = true })
}

func TestPlantedLeaseFromAcks(t *testing.T) {
	plantedCaught(t, "(f) a lease counted from when the acks arrived", func(o *simOptions) {
		// Slow links into the master stretch the gap between sending a
		// heartbeat and hearing its acks, which is what this bug gets wrong.
		o.bugs.leaseFromAcks = true
		o.slowRate = max(o.slowRate, 0.02)
		o.partRate = max(o.partRate, 0.02)
		o.healRate = max(o.healRate, 0.03)
	})
}

func TestPlantedWipedVotes(t *testing.T) {
	plantedCaught(t, "(g) a wiped replica that votes at once", func(o *simOptions) {
		o.bugs.wipedVotes = true
		o.wipeRate = max(o.wipeRate, 0.01)
	})
}
