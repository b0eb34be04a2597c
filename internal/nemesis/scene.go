package nemesis

// This file owns the nemesis: its scenarios, one fault or several
// overlapping, admitting a fault only while a connected majority stays
// voting, healing, and waiting for the cluster to settle. It runs on the
// nemesis goroutine Run starts; nemesis.mu guards the counts Run reads at
// the end, and statuses polls the replicas on a goroutine each.

import (
	"context"
	"fmt"
	"io"
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

// active is one fault while it lasts.
type active struct {
	kind FaultKind
	what string
	// hold is how long the fault lasts when it runs alone.
	hold time.Duration
	// procs are the replicas whose processes the fault holds (killed,
	// paused, restarting): they do not vote while it lasts, and no other
	// fault touches them.
	procs []uint64
	// learners come back from the fault having lost durable state: they
	// do not vote until their log says they do again.
	learners []uint64
	// links and delays are what it does to the relay's links.
	links  map[Link]Fault
	delays map[Link]time.Duration
	// exclusive faults (a power cut) run alone.
	exclusive bool
	// step marks a later step of a fault begun and counted already (the
	// removal that ends a grow-shrink): begin admits it, does not count it.
	step bool
	// apply injects the fault, heal undoes what it did to processes; the
	// links are restored by nemesis.end.
	apply, heal func()
	start       int64 // on the recorder's clock
}

// nemesis injects faults into a cluster whose links go through relay.
//
// It runs one scenario at a time: a single fault, or a combined one in
// which several overlap. Every fault is admitted only if, with it and
// every fault still live, a majority of the replicas remains running,
// unpaused, voting (not a learner that lost state) and connected to each
// other both ways (admit): that is how the nemesis never takes more than a
// minority, so the cluster stays live. A power cut is the one exception: it
// kills every replica at once, runs alone and lasts under a second. After a
// scenario every fault is healed and the nemesis waits for the cluster to
// settle before the next.
type nemesis struct {
	c       *cluster.Cluster
	relay   *Relay
	rec     *Recorder
	rng     *rand.Rand
	kinds   []FaultKind
	first   []FaultKind // injected before the deck, in this order
	timing  Timing
	logf    func(format string, args ...any)
	lives   *lives
	proxies int // proxies whose links go through the relay

	deck     []FaultKind
	baseArgs map[uint64][]string // each replica's arguments without its life's flags
	live     []*active
	learning map[uint64]int64 // replica -> its log's length when it restarted without some state
	started  map[uint64]int64 // replica -> its log's length when it last started
	// mustLearn: replica -> the file it lost that it cannot do without; it
	// must come back as a learner.
	mustLearn map[uint64]string
	lostTurn  int

	mu        sync.Mutex
	counts    map[FaultKind]int
	details   map[string]int
	skipped   int
	kills     int
	clashes   int      // restarts that found their port taken
	unnoticed []string // lost state a replica did not notice
	unsettled int
	exited    []string // replicas that exited by themselves

	// Membership (members.go): the proxies' line-protocol addresses for
	// the changes, the next new replica id, the replicas removed (gone,
	// not dead: out of c.Nodes), the ids whose proxy links go through
	// listeners of their own, and the changes that went wrong.
	proxyAddrs []string
	nextID     uint64
	gone       map[uint64]*cluster.Proc
	joining    map[uint64]bool // added, not promoted yet: members that do not vote
	proxied    map[uint64]bool
	memberErrs []string
}

func newNemesis(c *cluster.Cluster, relay *Relay, rec *Recorder, lv *lives, cfg Config, proxies int, logf func(string, ...any)) *nemesis {
	n := &nemesis{c: c, relay: relay, rec: rec, rng: rand.New(rand.NewSource(cfg.Seed)), kinds: cfg.Faults,
		first: cfg.FirstFaults, timing: cfg.Timing, logf: logf, lives: lv, proxies: proxies,
		baseArgs: map[uint64][]string{}, learning: map[uint64]int64{}, started: map[uint64]int64{},
		mustLearn: map[uint64]string{},
		counts:    map[FaultKind]int{}, details: map[string]int{},
		gone: map[uint64]*cluster.Proc{}, proxied: map[uint64]bool{}, joining: map[uint64]bool{}}
	for id, p := range c.Nodes {
		args := p.Args[:len(p.Args)-len(lv.current(id).Flags())]
		n.baseArgs[id] = append([]string(nil), args...)
		n.nextID = max(n.nextID, id+1)
		n.proxied[id] = proxies > 0
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
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// next draws the next scenario: the first ones in order, then every kind
// once in random order, then again.
func (n *nemesis) next() FaultKind {
	if len(n.first) > 0 {
		f := n.first[0]
		n.first = n.first[1:]
		return f
	}
	if len(n.deck) == 0 {
		n.deck = append([]FaultKind(nil), n.kinds...)
		n.rng.Shuffle(len(n.deck), func(i, j int) { n.deck[i], n.deck[j] = n.deck[j], n.deck[i] })
	}
	f := n.deck[0]
	n.deck = n.deck[1:]
	return f
}

// run injects scenarios until ctx ends, then heals everything.
func (n *nemesis) run(ctx context.Context) {
	defer n.healAll()
	if len(n.kinds) == 0 && len(n.first) == 0 {
		<-ctx.Done()
		return
	}
	for sleep(ctx, n.between(n.timing.GapMin, n.timing.GapMax)) {
		n.scenario(ctx, n.next())
		n.endAll()
		n.settle()
	}
}

// scenario runs one fault, single or combined, until it has healed (or
// ctx ends; the caller heals what is left).
func (n *nemesis) scenario(ctx context.Context, kind FaultKind) {
	switch kind {
	case PauseInPartition, KillInPartition:
		n.count(kind)
		n.faultInPartition(ctx, kind)
	case PartitionWhilePaused:
		n.count(kind)
		n.partitionWhilePaused(ctx)
	case Mixed:
		n.count(kind)
		n.mixed(ctx)
	case PowerCutLagging:
		n.count(kind)
		n.powerCutLagging(ctx)
	case ReplaceMember:
		n.replaceMember(ctx)
	case GrowShrink:
		n.growShrink(ctx)
	default:
		if a := n.begin(n.build(kind)...); a != nil {
			sleep(ctx, a.hold)
			n.end(a)
		}
	}
}

// faultInPartition cuts a minority off (the master alone, the master and
// one more, or one or two others), then pauses or kills one replica of it
// or, if that leaves a connected majority, of the rest, and heals the two
// in either order.
func (n *nemesis) faultInPartition(ctx context.Context, kind FaultKind) {
	m, _ := n.master()
	var group []uint64
	switch n.rng.Intn(3) {
	case 0:
		group = []uint64{m}
	case 1:
		group = append([]uint64{m}, n.pick(1, n.others(m))...)
	default:
		group = n.pick(1+n.rng.Intn(2), n.others(m))
	}
	pkind := PartitionHalves
	if len(group) == 1 && group[0] == m {
		pkind = IsolateMaster
	}
	oneway := pkind == PartitionHalves && n.rng.Intn(4) == 0
	if oneway {
		pkind = PartitionOneWay
	}
	hold := n.between(n.timing.HoldMin, n.timing.HoldMax)
	p := n.begin(n.partition(pkind, group, oneway, n.linkFault(), hold))
	if p == nil || !sleep(ctx, n.between(100*time.Millisecond, 400*time.Millisecond)) {
		return
	}
	inside := n.pick(len(group), group)
	if contains(group, m) {
		inside = append([]uint64{m}, n.pick(len(group), n.without(group, m))...)
	}
	outside := n.pick(len(n.c.Nodes), n.rest(group))
	order := append(inside, outside...)
	if n.rng.Intn(3) == 0 {
		order = append(outside, inside...)
	}
	var cands []*active
	for _, v := range order {
		switch {
		case kind == PauseInPartition && v == m:
			cands = append(cands, n.pause(PauseMaster, []uint64{v}, hold))
		case kind == PauseInPartition:
			cands = append(cands, n.pause(PauseFollowers, []uint64{v}, hold))
		case v == m:
			cands = append(cands, n.kill(KillMaster, []uint64{v}, hold))
		default:
			cands = append(cands, n.kill(KillFollowers, []uint64{v}, hold))
		}
	}
	q := n.begin(cands...)
	if q == nil || !sleep(ctx, q.hold) {
		return
	}
	if n.rng.Intn(2) == 0 {
		// It wakes (or restarts) while the partition still stands: a
		// paused master finds itself cut off from its peers.
		n.end(q)
		sleep(ctx, n.between(300*time.Millisecond, 1200*time.Millisecond))
		n.end(p)
		return
	}
	n.end(p)
	sleep(ctx, n.between(100*time.Millisecond, 500*time.Millisecond))
	n.end(q)
}

// partitionWhilePaused pauses a replica (the master half the time), then
// partitions it together with another one, or another one alone, and
// heals the two in either order.
func (n *nemesis) partitionWhilePaused(ctx context.Context) {
	m, _ := n.master()
	v := m
	if n.rng.Intn(2) == 0 {
		v = n.pick(1, n.others(m))[0]
	}
	pk := PauseFollowers
	if v == m {
		pk = PauseMaster
	}
	hold := n.between(n.timing.HoldMin, n.timing.HoldMax)
	q := n.begin(n.pause(pk, []uint64{v}, hold+n.timing.PauseMin))
	if q == nil || !sleep(ctx, n.between(100*time.Millisecond, 300*time.Millisecond)) {
		return
	}
	others := n.pick(2, n.others(v))
	with := n.partition(PartitionHalves, []uint64{v, others[0]}, false, n.linkFault(), hold)
	alone := n.partition(PartitionHalves, []uint64{others[1]}, n.rng.Intn(3) == 0, n.linkFault(), hold)
	cands := []*active{with, alone}
	if n.rng.Intn(2) == 0 {
		cands = []*active{alone, with}
	}
	p := n.begin(cands...)
	if p == nil || !sleep(ctx, hold) {
		return
	}
	if n.rng.Intn(2) == 0 {
		n.end(q)
		sleep(ctx, n.between(200*time.Millisecond, 800*time.Millisecond))
		n.end(p)
		return
	}
	n.end(p)
	sleep(ctx, n.between(100*time.Millisecond, 400*time.Millisecond))
	n.end(q)
}

// powerCutLagging puts every follower on a slow disk, one at a time, lets
// the clients write for a while, then cuts the power and restarts the old
// master last.
func (n *nemesis) powerCutLagging(ctx context.Context) {
	m, _ := n.master()
	d := n.between(150*time.Millisecond, 300*time.Millisecond).Round(time.Millisecond)
	for _, f := range n.others(m) {
		a := n.begin(&active{kind: SlowDisk, procs: []uint64{f}, what: fmt.Sprintf("%s %d fsync +%v (the master's is faster)", SlowDisk, f, d),
			apply: func() { n.sigkill(f); n.start(f, 0, d) }})
		n.end(a)
		if !sleep(ctx, n.between(200*time.Millisecond, 500*time.Millisecond)) {
			return
		}
	}
	if !sleep(ctx, n.between(500*time.Millisecond, 1500*time.Millisecond)) {
		return
	}
	if a := n.begin(n.powerCut(m, true)); a != nil {
		sleep(ctx, a.hold)
		n.end(a)
	}
}

// mixed runs two or three single faults of random kinds, each starting
// while the one before it still lasts; a fault not admitted is replaced
// by another kind, up to three tries.
func (n *nemesis) mixed(ctx context.Context) {
	pool := n.overlapping()
	k := 2 + n.rng.Intn(2)
	starts := []time.Duration{0}
	for len(starts) < k {
		starts = append(starts, starts[len(starts)-1]+n.between(100*time.Millisecond, n.timing.HoldMin))
	}
	type running struct {
		a     *active
		until time.Duration
	}
	var live []running
	began := time.Now()
	for len(starts) > 0 || len(live) > 0 {
		at, start := time.Duration(1<<62), false
		if len(starts) > 0 {
			at, start = starts[0], true
		}
		first := -1
		for i, r := range live {
			if r.until < at {
				at, start, first = r.until, false, i
			}
		}
		if !sleep(ctx, time.Until(began.Add(at))) {
			return
		}
		if !start {
			n.end(live[first].a)
			live = append(live[:first], live[first+1:]...)
			continue
		}
		starts = starts[1:]
		for try := 0; try < 3; try++ {
			if a := n.begin(n.build(pool[n.rng.Intn(len(pool))])...); a != nil {
				live = append(live, running{a, at + a.hold})
				break
			}
		}
	}
}

// overlapping returns the single faults that may overlap others: those
// of the run's kinds but a power cut, or every one if it has none.
func (n *nemesis) overlapping() []FaultKind {
	single := map[FaultKind]bool{}
	for _, k := range Singles {
		single[k] = true
	}
	var pool []FaultKind
	for _, k := range n.kinds {
		if k != PowerCut && single[k] {
			pool = append(pool, k)
		}
	}
	if len(pool) == 0 {
		for _, k := range Singles {
			if k != PowerCut && (n.proxies > 0 || !proxyFaults[k]) {
				pool = append(pool, k)
			}
		}
	}
	return pool
}

// begin starts the first of cands that admit accepts and returns it, or
// nil (and counts a skip) if none is admitted.
func (n *nemesis) begin(cands ...*active) *active {
	var why []string
	for _, a := range cands {
		if a == nil {
			continue
		}
		if err := n.admit(a); err != nil {
			why = append(why, fmt.Sprintf("%s: %v", a.what, err))
			continue
		}
		a.start = n.rec.Now()
		n.live = append(n.live, a)
		for l := range a.links {
			n.relay.Set(l, n.faultOf(l))
		}
		for l := range a.delays {
			n.relay.SetDelay(l, n.delayOf(l))
		}
		if !a.step {
			n.count(a.kind)
		}
		n.logf("nemesis: + %s", a.what)
		if a.apply != nil {
			a.apply()
		}
		return a
	}
	n.mu.Lock()
	n.skipped++
	n.mu.Unlock()
	if len(why) > 0 {
		n.logf("nemesis: skipped (not admitted): %s", strings.Join(why, "; "))
	}
	return nil
}

// end heals a: its processes come back, its links pass again (or carry
// what another live fault does to them).
func (n *nemesis) end(a *active) {
	if a == nil {
		return
	}
	i := -1
	for j, b := range n.live {
		if b == a {
			i = j
		}
	}
	if i < 0 {
		return
	}
	n.live = append(n.live[:i], n.live[i+1:]...)
	for _, id := range a.learners {
		n.learning[id] = logSize(n.c.Nodes[id].Log)
	}
	if a.heal != nil {
		a.heal()
	}
	for l := range a.links {
		n.relay.Set(l, n.faultOf(l))
	}
	for l := range a.delays {
		n.relay.SetDelay(l, n.delayOf(l))
	}
	n.rec.Mark(a.start, a.what)
	n.logf("nemesis: - %s (%v)", a.what, time.Duration(n.rec.Now()-a.start).Round(time.Millisecond))
}

// endAll heals every live fault, the latest first.
func (n *nemesis) endAll() {
	for len(n.live) > 0 {
		n.end(n.live[len(n.live)-1])
	}
}

// faultOf is what the live faults do to link l: the latest one's fault.
func (n *nemesis) faultOf(l Link) Fault {
	f := Pass
	for _, a := range n.live {
		if g, ok := a.links[l]; ok {
			f = g
		}
	}
	return f
}

// delayOf is the longest delay the live faults put on link l.
func (n *nemesis) delayOf(l Link) time.Duration {
	var d time.Duration
	for _, a := range n.live {
		d = max(d, a.delays[l])
	}
	return d
}

// admit decides whether a may start now: no live fault holds its
// processes, and with it and every live fault a majority of the replicas
// stays running, unpaused, voting and connected to each other both ways.
// Proxy links and delays never stop a replica voting.
func (n *nemesis) admit(a *active) error {
	for _, b := range n.live {
		if b.exclusive || a.exclusive {
			return fmt.Errorf("%s runs alone", map[bool]FaultKind{true: b.kind, false: a.kind}[b.exclusive])
		}
	}
	out := map[uint64]bool{}
	for _, b := range n.live {
		for _, id := range b.procs {
			out[id] = true
		}
	}
	for _, id := range a.procs {
		if out[id] {
			return fmt.Errorf("replica %d is held by another fault", id)
		}
	}
	if a.exclusive {
		return nil // a power cut takes every replica, alone
	}
	for _, id := range a.procs {
		out[id] = true
	}
	for id, p := range n.c.Nodes {
		if !p.Running() || n.stillLearning(id) || n.joining[id] {
			out[id] = true
		}
	}
	var up []uint64
	for _, id := range n.ids() {
		if !out[id] {
			up = append(up, id)
		}
	}
	// A member added and not yet promoted does not vote: a majority of
	// the voters must stay.
	voters := len(n.c.Nodes)
	for id := range n.joining {
		if n.c.Nodes[id] != nil {
			voters--
		}
	}
	cut := func(x, y uint64) bool {
		l := Link{x, y}
		if f, ok := a.links[l]; ok && f != Pass {
			return true
		}
		return n.faultOf(l) != Pass
	}
	if !connectedMajority(up, voters, cut) {
		return fmt.Errorf("no majority would stay running, voting and connected (up: %v)", up)
	}
	return nil
}

// connectedMajority reports whether some majority of total replicas can be
// found among up whose every pair reaches each other both ways.
func connectedMajority(up []uint64, total int, cut func(x, y uint64) bool) bool {
	need := total/2 + 1
	if len(up) < need {
		return false
	}
	for mask := 0; mask < 1<<len(up); mask++ {
		var set []uint64
		for i, id := range up {
			if mask&(1<<i) != 0 {
				set = append(set, id)
			}
		}
		if len(set) < need {
			continue
		}
		ok := true
		for _, x := range set {
			for _, y := range set {
				if x != y && cut(x, y) {
					ok = false
				}
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// stillLearning reports whether replica id, restarted after losing state,
// has not yet said that it votes again.
func (n *nemesis) stillLearning(id uint64) bool {
	off, ok := n.learning[id]
	if !ok {
		return false
	}
	tail := logFrom(n.c.Nodes[id].Log, off)
	i := strings.Index(tail, `"replica recovered"`)
	if i < 0 {
		return true // not started yet
	}
	lineStart := strings.LastIndexByte(tail[:i], '\n') + 1
	lineEnd := strings.IndexByte(tail[i:], '\n')
	if lineEnd < 0 {
		lineEnd = len(tail) - i
	}
	voter := strings.Contains(tail[lineStart:i+lineEnd], `"membership":"voter"`)
	if lost, ok := n.mustLearn[id]; ok {
		delete(n.mustLearn, id)
		if voter {
			n.mu.Lock()
			n.unnoticed = append(n.unnoticed, fmt.Sprintf("replica %d lost %s but came back a voter: %s", id, lost, tail[lineStart:i+lineEnd]))
			n.mu.Unlock()
		}
	}
	if voter || strings.Contains(tail[i:], `"this replica votes"`) {
		delete(n.learning, id)
		return false
	}
	return true
}

func logSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logFrom returns the file at path from offset off on.
func logFrom(path string, off int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

func (n *nemesis) count(kind FaultKind) {
	n.mu.Lock()
	n.counts[kind]++
	n.mu.Unlock()
}

func (n *nemesis) detail(what string) {
	n.mu.Lock()
	n.details[what]++
	n.mu.Unlock()
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

// busy reports whether a live fault holds replica id's process.
func (n *nemesis) busy(id uint64) bool {
	for _, a := range n.live {
		if contains(a.procs, id) {
			return true
		}
	}
	return false
}

// free returns the replicas no live fault holds, other than except.
func (n *nemesis) free(except uint64) []uint64 {
	var out []uint64
	for _, id := range n.ids() {
		if id != except && !n.busy(id) {
			out = append(out, id)
		}
	}
	return out
}

// others returns every replica but id.
func (n *nemesis) others(id uint64) []uint64 { return n.without(n.ids(), id) }

func (n *nemesis) without(ids []uint64, id uint64) []uint64 {
	var out []uint64
	for _, x := range ids {
		if x != id {
			out = append(out, x)
		}
	}
	return out
}

// pick returns up to k distinct replicas of pool in random order.
func (n *nemesis) pick(k int, pool []uint64) []uint64 {
	p := append([]uint64(nil), pool...)
	n.rng.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
	return p[:min(k, len(p))]
}

// rest returns the replicas not in group.
func (n *nemesis) rest(group []uint64) []uint64 {
	var out []uint64
	for _, id := range n.ids() {
		if !contains(group, id) {
			out = append(out, id)
		}
	}
	return out
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
		if st.Role == wire.NodeMaster && st.Round >= round {
			best, round = id, st.Round
		}
	}
	if best != 0 {
		return best, true
	}
	ids := n.ids()
	return ids[n.rng.Intn(len(ids))], false
}

// sigkill kills replica id with SIGKILL: with --test-lossy-fsync its log
// loses every write not yet fsynced.
func (n *nemesis) sigkill(id uint64) {
	n.mu.Lock()
	n.kills++
	n.mu.Unlock()
	n.c.Nodes[id].Kill()
}

// start starts replica id, if it is not running, for a new life: its
// clock rate (rate, or drawn if 0) and fsync delay (fsync, or drawn if
// negative) are written to the run's log and history.
func (n *nemesis) start(id uint64, rate float64, fsync time.Duration) {
	p := n.c.Nodes[id]
	if p.Running() {
		return
	}
	l := n.lives.draw(id, rate, fsync)
	p.Args = append(append([]string(nil), n.baseArgs[id]...), l.Flags()...)
	for i, a := range p.Args {
		// A replica that joined during the run joins again (on a wiped
		// directory) through a member still running: the one it first
		// joined through may be gone.
		if strings.HasPrefix(a, "--join=") {
			for _, o := range n.others(id) {
				if n.c.Nodes[o].Running() {
					p.Args[i] = "--join=" + n.c.Addrs[o]
					break
				}
			}
		}
	}
	n.started[id] = logSize(p.Log)
	p.Start()
	n.rec.Note(l.String())
	n.logf("nemesis: %s", l)
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

// checkAlive notes replicas that should run but exited by themselves, and
// starts them again.
func (n *nemesis) checkAlive() {
	for _, id := range n.ids() {
		p := n.c.Nodes[id]
		if p.Running() {
			continue
		}
		err, _ := p.Wait(time.Second)
		if strings.Contains(logFrom(p.Log, n.started[id]), "address already in use") {
			// Its port, free while it was down, was taken by some other
			// socket of this machine: a clash of the test's port choice,
			// not of synod. Try again.
			n.mu.Lock()
			n.clashes++
			n.mu.Unlock()
			n.logf("nemesis: replica %d could not listen on its port again (taken meanwhile); restarting it", id)
			time.Sleep(200 * time.Millisecond)
			n.start(id, 0, -1)
			continue
		}
		n.noteExit(id, fmt.Sprintf("replica %d exited by itself: %v", id, err))
		n.start(id, 0, -1)
	}
}

// settle waits until every replica runs, answers, votes again (a learner
// has said so), and has applied close to the master's commit index, for at
// most Timing.Settle: the next fault starts from a healthy cluster.
func (n *nemesis) settle() {
	deadline := time.Now().Add(n.timing.Settle)
	for {
		n.checkAlive()
		sts := n.statuses()
		var commit uint64
		masters := 0
		for _, st := range sts {
			if st.Role == wire.NodeMaster {
				masters++
				commit = st.Commit
			}
		}
		ok := len(sts) == len(n.c.Nodes) && masters == 1
		for _, st := range sts {
			ok = ok && (st.Role == wire.NodeMaster || st.Role == wire.NodeFollower) && st.Applied+200 >= commit
		}
		var learning []uint64
		for _, id := range n.ids() {
			if n.stillLearning(id) {
				learning = append(learning, id)
			}
		}
		if ok && len(learning) == 0 {
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
			n.logf("nemesis: cluster not settled after %v: %s; learners %v", n.timing.Settle, strings.Join(desc, " "), learning)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// healAll undoes every fault: live ones heal, every link passes, paused
// replicas continue, every replica runs.
func (n *nemesis) healAll() {
	n.endAll()
	n.relay.Heal()
	for _, id := range n.ids() {
		n.c.Nodes[id].Signal(syscall.SIGCONT)
	}
	n.checkAlive()
}
