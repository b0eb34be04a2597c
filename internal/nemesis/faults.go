package nemesis

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"synod/internal/cluster"
	"synod/wire"
)

// FaultKind names one kind of fault the nemesis injects.
type FaultKind string

// The faults. Each leaves a majority of voters healthy while it lasts and is
// healed before the next one starts.
const (
	KillMaster      FaultKind = "kill-master"      // SIGKILL the master, restart it later
	KillFollowers   FaultKind = "kill-followers"   // SIGKILL one or two followers
	PauseMaster     FaultKind = "pause-master"     // SIGSTOP the master past the election timeout, then SIGCONT
	PauseFollowers  FaultKind = "pause-followers"  // SIGSTOP one or two followers
	PartitionHalves FaultKind = "partition"        // a minority of one or two cut off both ways
	PartitionOneWay FaultKind = "partition-oneway" // a minority's messages to the rest lost, or the rest's to it
	IsolateMaster   FaultKind = "isolate-master"   // the master cut off from every peer (proxies still reach it)
	PartitionBridge FaultKind = "partition-bridge" // two halves joined through one replica only
	SlowDisk        FaultKind = "slow-disk"        // restart a replica with fsyncs delayed
	WipeDisk        FaultKind = "wipe-disk"        // SIGKILL a replica, delete its data directory, restart it
	RestartGraceful FaultKind = "restart"          // SIGTERM (a master hands over) and restart
)

// AllFaults lists every fault kind.
var AllFaults = []FaultKind{KillMaster, KillFollowers, PauseMaster, PauseFollowers, PartitionHalves,
	PartitionOneWay, IsolateMaster, PartitionBridge, SlowDisk, WipeDisk, RestartGraceful}

// ParseFaults parses a comma-separated list of fault kinds ("" or "all":
// every one).
func ParseFaults(s string) ([]FaultKind, error) {
	if s == "" || s == "all" {
		return AllFaults, nil
	}
	var out []FaultKind
	for _, name := range strings.Split(s, ",") {
		found := false
		for _, f := range AllFaults {
			if string(f) == strings.TrimSpace(name) {
				out = append(out, f)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("nemesis: unknown fault %q", name)
		}
	}
	return out, nil
}

// Timing bounds the nemesis's rhythm.
type Timing struct {
	// Hold is how long a fault lasts, drawn from [HoldMin, HoldMax).
	HoldMin, HoldMax time.Duration
	// Gap is the quiet time after a fault healed and the cluster settled,
	// drawn from [GapMin, GapMax).
	GapMin, GapMax time.Duration
	// PauseMin is the shortest SIGSTOP: it must exceed the election
	// timeout for a paused master to be deposed.
	PauseMin time.Duration
	// Settle bounds the wait for every replica to be back and caught up.
	Settle time.Duration
}

// nemesis injects faults into a cluster whose peer links go through relay.
type nemesis struct {
	c      *cluster.Cluster
	relay  *Relay
	rec    *Recorder
	rng    *rand.Rand
	kinds  []FaultKind
	timing Timing
	logf   func(format string, args ...any)

	deck     []FaultKind
	baseArgs map[uint64][]string // each replica's arguments without fault flags

	mu        sync.Mutex
	counts    map[FaultKind]int
	unsettled int
	exited    []string // replicas that exited by themselves
}

func newNemesis(c *cluster.Cluster, relay *Relay, rec *Recorder, seed int64, kinds []FaultKind, timing Timing, logf func(string, ...any)) *nemesis {
	n := &nemesis{c: c, relay: relay, rec: rec, rng: rand.New(rand.NewSource(seed)), kinds: kinds,
		timing: timing, logf: logf, baseArgs: map[uint64][]string{}, counts: map[FaultKind]int{}}
	for id, p := range c.Nodes {
		n.baseArgs[id] = append([]string(nil), p.Args...)
	}
	return n
}

func (n *nemesis) between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(n.rng.Int63n(int64(hi-lo)))
}

// sleep waits d or until ctx ends, and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// next draws the next fault: every kind once, in random order, then again.
func (n *nemesis) next() FaultKind {
	if len(n.deck) == 0 {
		n.deck = append([]FaultKind(nil), n.kinds...)
		n.rng.Shuffle(len(n.deck), func(i, j int) { n.deck[i], n.deck[j] = n.deck[j], n.deck[i] })
	}
	f := n.deck[0]
	n.deck = n.deck[1:]
	return f
}

// run injects faults until ctx ends, then heals everything.
func (n *nemesis) run(ctx context.Context) {
	defer n.healAll()
	if len(n.kinds) == 0 {
		<-ctx.Done()
		return
	}
	for sleep(ctx, n.between(n.timing.GapMin, n.timing.GapMax)) {
		n.inject(ctx, n.next())
		n.settle()
	}
}

// ids returns the replica ids in order.
func (n *nemesis) ids() []uint64 {
	ids := make([]uint64, 0, len(n.c.Nodes))
	for id := range n.c.Nodes {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// statuses asks every running replica for its status in parallel, each
// within a short deadline, so a paused one costs no more than that.
func (n *nemesis) statuses() map[uint64]wire.Status {
	var mu sync.Mutex
	var wg sync.WaitGroup
	out := map[uint64]wire.Status{}
	for id, p := range n.c.Nodes {
		if !p.Running() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			cl, err := n.c.Dial(ctx, id)
			if err != nil {
				return
			}
			defer cl.Close()
			if st, err := cl.Status(ctx); err == nil {
				mu.Lock()
				out[id] = st
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// master returns the replica that says it is a ready master, or a random
// one if none does (the fault then hits whoever it hits).
func (n *nemesis) master() (uint64, bool) {
	var best uint64
	var round uint64
	for id, st := range n.statuses() {
		if st.Role == "master" && st.Round >= round {
			best, round = id, st.Round
		}
	}
	if best != 0 {
		return best, true
	}
	ids := n.ids()
	return ids[n.rng.Intn(len(ids))], false
}

// pick returns k distinct replicas other than except (0: none).
func (n *nemesis) pick(k int, except uint64) []uint64 {
	var pool []uint64
	for _, id := range n.ids() {
		if id != except {
			pool = append(pool, id)
		}
	}
	n.rng.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
	return pool[:min(k, len(pool))]
}

// rest returns the replicas not in group.
func (n *nemesis) rest(group []uint64) []uint64 {
	in := map[uint64]bool{}
	for _, id := range group {
		in[id] = true
	}
	var out []uint64
	for _, id := range n.ids() {
		if !in[id] {
			out = append(out, id)
		}
	}
	return out
}

func (n *nemesis) linkFault() Fault {
	if n.rng.Intn(2) == 0 {
		return Drop
	}
	return Refuse
}

// inject applies one fault, holds it, heals it and records it.
func (n *nemesis) inject(ctx context.Context, kind FaultKind) {
	start := n.rec.Now()
	hold := n.between(n.timing.HoldMin, n.timing.HoldMax)
	var what string
	switch kind {
	case KillMaster, KillFollowers:
		var victims []uint64
		if kind == KillMaster {
			m, _ := n.master()
			victims = []uint64{m}
		} else {
			m, _ := n.master()
			victims = n.pick(1+n.rng.Intn(2), m)
		}
		what = fmt.Sprintf("%s %v", kind, victims)
		for _, id := range victims {
			n.c.Nodes[id].Kill()
		}
		sleep(ctx, hold)
		for _, id := range victims {
			n.start(id)
		}
	case PauseMaster, PauseFollowers:
		var victims []uint64
		m, _ := n.master()
		if kind == PauseMaster {
			victims = []uint64{m}
		} else {
			victims = n.pick(1+n.rng.Intn(2), m)
		}
		hold = max(hold, n.timing.PauseMin)
		what = fmt.Sprintf("%s %v for %v", kind, victims, hold.Round(time.Millisecond))
		for _, id := range victims {
			n.c.Nodes[id].Signal(syscall.SIGSTOP)
		}
		sleep(ctx, hold)
		for _, id := range victims {
			n.c.Nodes[id].Signal(syscall.SIGCONT)
		}
	case PartitionHalves, PartitionOneWay, IsolateMaster:
		var minority []uint64
		if kind == IsolateMaster {
			m, _ := n.master()
			minority = []uint64{m}
		} else {
			minority = n.pick(1+n.rng.Intn(2), 0)
		}
		majority := n.rest(minority)
		f := n.linkFault()
		switch {
		case kind != PartitionOneWay:
			n.relay.Cut(minority, majority, f)
			n.relay.Cut(majority, minority, f)
			what = fmt.Sprintf("%s %v | %v (%v)", kind, minority, majority, f)
		case n.rng.Intn(2) == 0:
			n.relay.Cut(minority, majority, f)
			what = fmt.Sprintf("%s %v -/-> %v (%v)", kind, minority, majority, f)
		default:
			n.relay.Cut(majority, minority, f)
			what = fmt.Sprintf("%s %v -/-> %v (%v)", kind, majority, minority, f)
		}
		sleep(ctx, hold)
		n.relay.Heal()
	case PartitionBridge:
		// a b | c | d e: c hears everyone, the halves only each other and c.
		ids := n.pick(len(n.c.Nodes), 0)
		half := len(ids) / 2
		left, bridge, right := ids[:half], ids[half], ids[half+1:]
		f := n.linkFault()
		n.relay.Cut(left, right, f)
		n.relay.Cut(right, left, f)
		what = fmt.Sprintf("%s %v | %d | %v (%v)", kind, left, bridge, right, f)
		sleep(ctx, hold)
		n.relay.Heal()
	case SlowDisk:
		id := n.pick(1, 0)[0]
		if n.rng.Intn(3) == 0 {
			id, _ = n.master()
		}
		delay := time.Duration(10+n.rng.Intn(90)) * time.Millisecond
		what = fmt.Sprintf("%s %d fsync +%v", kind, id, delay)
		p := n.c.Nodes[id]
		p.Kill()
		p.Args = append(append([]string(nil), n.baseArgs[id]...), fmt.Sprintf("--test-fsync-delay=%v", delay))
		n.start(id)
		sleep(ctx, 2*hold)
		p.Kill()
		p.Args = append([]string(nil), n.baseArgs[id]...)
		n.start(id)
	case WipeDisk:
		id, _ := n.master()
		if n.rng.Intn(2) == 0 {
			id = n.pick(1, id)[0]
		}
		what = fmt.Sprintf("%s %d", kind, id)
		n.c.Nodes[id].Kill()
		if err := os.RemoveAll(n.c.NodeDir(id)); err != nil {
			n.logf("nemesis: wipe %d: %v", id, err)
		}
		sleep(ctx, hold/2)
		n.start(id)
	case RestartGraceful:
		id, _ := n.master()
		if n.rng.Intn(2) == 0 {
			id = n.pick(1, id)[0]
		}
		what = fmt.Sprintf("%s %d", kind, id)
		if err := n.c.Nodes[id].Stop(); err != nil {
			n.noteExit(id, fmt.Sprintf("replica %d did not stop cleanly on SIGTERM: %v", id, err))
		}
		sleep(ctx, hold/2)
		n.start(id)
	}
	n.rec.Mark(start, what)
	n.mu.Lock()
	n.counts[kind]++
	n.mu.Unlock()
	n.logf("nemesis: %s (%v)", what, time.Duration(n.rec.Now()-start).Round(time.Millisecond))
}

// start restarts replica id, first noting if it exited by itself.
func (n *nemesis) start(id uint64) {
	p := n.c.Nodes[id]
	if p.Running() {
		return
	}
	p.Start()
}

func (n *nemesis) noteExit(id uint64, msg string) {
	out := n.c.Nodes[id].Output()
	if len(out) > 4000 {
		out = out[len(out)-4000:]
	}
	n.mu.Lock()
	n.exited = append(n.exited, msg+"\n"+out)
	n.mu.Unlock()
}

// checkAlive notes replicas that should run but exited by themselves.
func (n *nemesis) checkAlive() {
	for _, id := range n.ids() {
		p := n.c.Nodes[id]
		if p.Running() {
			continue
		}
		err, _ := p.Wait(time.Second)
		n.noteExit(id, fmt.Sprintf("replica %d exited by itself: %v", id, err))
		p.Start()
	}
}

// settle waits until every replica runs, answers, is a voter again and has
// applied close to the master's commit index, for at most Timing.Settle:
// the next fault starts from a healthy cluster.
func (n *nemesis) settle() {
	deadline := time.Now().Add(n.timing.Settle)
	for {
		n.checkAlive()
		sts := n.statuses()
		var commit uint64
		masters := 0
		for _, st := range sts {
			if st.Role == "master" {
				masters++
				commit = st.Commit
			}
		}
		ok := len(sts) == len(n.c.Nodes) && masters == 1
		for _, st := range sts {
			ok = ok && (st.Role == "master" || st.Role == "follower") && st.Applied+200 >= commit
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			n.mu.Lock()
			n.unsettled++
			n.mu.Unlock()
			var desc []string
			for _, id := range n.ids() {
				st, ok := sts[id]
				if !ok {
					desc = append(desc, fmt.Sprintf("%d:silent", id))
					continue
				}
				desc = append(desc, fmt.Sprintf("%d:%s@%d/%d", id, st.Role, st.Applied, st.Commit))
			}
			n.logf("nemesis: cluster not settled after %v: %s", n.timing.Settle, strings.Join(desc, " "))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// healAll undoes every fault: links pass, paused replicas continue, every
// replica runs without test flags.
func (n *nemesis) healAll() {
	n.relay.Heal()
	for _, id := range n.ids() {
		p := n.c.Nodes[id]
		p.Signal(syscall.SIGCONT)
		if len(p.Args) != len(n.baseArgs[id]) {
			p.Kill()
			p.Args = append([]string(nil), n.baseArgs[id]...)
			p.Start()
		}
	}
	n.checkAlive()
}
