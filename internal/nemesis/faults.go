package nemesis

// This file owns the fault kinds, their parsing (-nemesis.faults) and how
// each is built: which replicas or links it takes, what apply does and
// what heal undoes. It runs on the nemesis goroutine (scene.go); a power
// cut kills every replica at once, each from a goroutine of its own.

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// FaultKind names one kind of fault the nemesis injects.
type FaultKind string

// The single faults. Each is admitted only if, with it and every fault
// still live, a majority of the replicas stays running, unpaused, voting and
// connected to each other both ways (nemesis.admit); PowerCut is the one
// exception and runs alone.
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
	PowerCut        FaultKind = "power-cut"        // SIGKILL every replica at once, restart them all: each loses its unsynced log writes
	LoseFile        FaultKind = "lose-file"        // stop a replica, delete one of its files (acceptor, a segment, log/SEGMENTS, a snapshot, the log), restart it
	ClockSkew       FaultKind = "clock-skew"       // restart a replica with its clock at an edge of the drift bound, 0.95 or 1.05
	SlowNet         FaultKind = "slow-net"         // delay every peer link of one or two replicas
	ProxyCut        FaultKind = "proxy-cut"        // one proxy loses one replica, both ways
	ProxyMaster     FaultKind = "proxy-master"     // one proxy loses the master (the replicas still reach it)
	ProxyOneWay     FaultKind = "proxy-oneway"     // one proxy's requests to a replica lost, or the replies to them
	ProxySlow       FaultKind = "proxy-slow"       // one proxy's links to one or every replica delayed
)

// The combined faults: several of the single ones live at once.
const (
	// PauseInPartition cuts a minority off, then pauses one of it (the
	// master if it is there) or of the rest, and heals them in either
	// order: a paused master may wake still cut off from its peers.
	PauseInPartition FaultKind = "pause-in-partition"
	// KillInPartition cuts a minority off, then kills one of it or of
	// the rest, restarting it inside the partition or after.
	KillInPartition FaultKind = "kill-in-partition"
	// PartitionWhilePaused pauses a replica, then partitions it with
	// another, or another one alone, and heals them in either order.
	PartitionWhilePaused FaultKind = "partition-while-paused"
	// Mixed runs two or three single faults drawn at random (not a power
	// cut), each starting while the one before still lasts.
	Mixed FaultKind = "mixed"
	// PowerCutLagging restarts every follower on a slow disk (150–300 ms
	// before each fsync) while the master keeps its own, so the followers'
	// votes reach the disk well after the master's; then cuts the power of
	// every replica and restarts the followers first, the old master only
	// once they have elected a new one. Every write acknowledged must
	// survive: it was on a majority of disks before its answer.
	PowerCutLagging FaultKind = "power-cut-lagging"
)

// Singles lists every single fault kind; Combined every combined one.
var (
	Singles = []FaultKind{KillMaster, KillFollowers, PauseMaster, PauseFollowers, PartitionHalves,
		PartitionOneWay, IsolateMaster, PartitionBridge, SlowDisk, WipeDisk, RestartGraceful,
		PowerCut, LoseFile, ClockSkew, SlowNet, ProxyCut, ProxyMaster, ProxyOneWay, ProxySlow}
	Combined = []FaultKind{PauseInPartition, KillInPartition, PartitionWhilePaused, Mixed, PowerCutLagging}
)

// AllFaults lists every fault kind.
var AllFaults = append(append(append([]FaultKind(nil), Singles...), Combined...), Membership...)

// proxyFaults are the kinds that need the proxies' links to go through
// the relay.
var proxyFaults = map[FaultKind]bool{ProxyCut: true, ProxyMaster: true, ProxyOneWay: true, ProxySlow: true}

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

// The single faults' builders. Each picks its targets among the replicas
// no live fault holds, and returns the fault for begin, or nil if it has
// no target now. A kind with several shapes returns them in order of
// preference: begin takes the first one admitted.

// build returns kind's candidate faults.
func (n *nemesis) build(kind FaultKind) []*active {
	hold := n.between(n.timing.HoldMin, n.timing.HoldMax)
	m, _ := n.master()
	switch kind {
	case KillMaster:
		return []*active{n.kill(kind, []uint64{m}, hold)}
	case KillFollowers:
		vs := n.pick(2, n.free(m))
		if n.rng.Intn(2) == 0 {
			vs = vs[:min(1, len(vs))]
		}
		return n.shrinking(vs, func(vs []uint64) *active { return n.kill(kind, vs, hold) })
	case PauseMaster:
		return []*active{n.pause(kind, []uint64{m}, hold)}
	case PauseFollowers:
		vs := n.pick(2, n.free(m))
		if n.rng.Intn(2) == 0 {
			vs = vs[:min(1, len(vs))]
		}
		return n.shrinking(vs, func(vs []uint64) *active { return n.pause(kind, vs, hold) })
	case PartitionHalves, PartitionOneWay:
		minority := n.pick(1+n.rng.Intn(2), n.ids())
		return n.shrinking(minority, func(g []uint64) *active {
			return n.partition(kind, g, kind == PartitionOneWay, n.linkFault(), hold)
		})
	case IsolateMaster:
		return []*active{n.partition(kind, []uint64{m}, false, n.linkFault(), hold)}
	case PartitionBridge:
		// a b | c | d e: c hears everyone, the halves only each other and c.
		ids := n.pick(len(n.c.Nodes), n.ids())
		half := len(ids) / 2
		left, bridge, right := ids[:half], ids[half], ids[half+1:]
		f := n.linkFault()
		a := &active{kind: kind, hold: hold, links: map[Link]Fault{},
			what: fmt.Sprintf("%s %v | %d | %v (%v)", kind, left, bridge, right, f)}
		n.cutLinks(a, left, right, f)
		n.cutLinks(a, right, left, f)
		return []*active{a}
	case SlowDisk:
		id := n.target(m, 3)
		if id == 0 {
			return nil
		}
		delay := time.Duration(10+n.rng.Intn(90)) * time.Millisecond
		return []*active{{kind: kind, hold: 2 * hold, procs: []uint64{id},
			what:  fmt.Sprintf("%s %d fsync +%v", kind, id, delay),
			apply: func() { n.sigkill(id); n.start(id, 0, delay) },
			heal:  func() { n.sigkill(id); n.start(id, 0, -1) }}}
	case WipeDisk:
		id := n.target(m, 2)
		if id == 0 {
			return nil
		}
		return []*active{{kind: kind, hold: hold / 2, procs: []uint64{id}, learners: []uint64{id},
			what: fmt.Sprintf("%s %d", kind, id),
			apply: func() {
				n.sigkill(id)
				if err := os.RemoveAll(n.c.NodeDir(id)); err != nil {
					n.logf("nemesis: wipe %d: %v", id, err)
				}
			},
			heal: func() { n.start(id, 0, -1) }}}
	case RestartGraceful:
		id := n.target(m, 2)
		if id == 0 {
			return nil
		}
		return []*active{n.restart(kind, id, true, 0, hold/2)}
	case PowerCut:
		return []*active{n.powerCut(m, n.rng.Intn(2) == 0)}
	case LoseFile:
		id := n.target(m, 3)
		if id == 0 {
			return nil
		}
		return []*active{n.loseFile(id, hold/2)}
	case ClockSkew:
		id := n.target(m, 2)
		if id == 0 {
			return nil
		}
		rate := 1 - n.lives.cfg.ClockSkew
		if n.lives.current(id).Rate <= 1 {
			rate = 1 + n.lives.cfg.ClockSkew
		}
		if n.lives.cfg.ClockSkew == 0 {
			rate = 0.95 + 0.1*float64(n.rng.Intn(2))
		}
		return []*active{n.restart(kind, id, n.rng.Intn(2) == 0, rate, n.between(100*time.Millisecond, 500*time.Millisecond))}
	case SlowNet:
		g := n.pick(1+n.rng.Intn(2), n.ids())
		if n.rng.Intn(2) == 0 && !contains(g, m) {
			g[0] = m
		}
		d := time.Duration(10+n.rng.Intn(140)) * time.Millisecond
		a := &active{kind: kind, hold: hold, delays: map[Link]time.Duration{},
			what: fmt.Sprintf("%s %v +%v", kind, g, d)}
		rest := n.rest(g)
		for _, x := range g {
			for _, y := range rest {
				a.delays[Link{x, y}] = d
				a.delays[Link{y, x}] = d
			}
		}
		return []*active{a}
	case ProxyCut, ProxyMaster, ProxyOneWay, ProxySlow:
		return []*active{n.proxyFault(kind, m, hold)}
	}
	return nil
}

// powerCut kills every replica at once and restarts them all, or, if
// lastMaster, every one but m first and m once they have elected a master
// (or 3 s passed): then no write that only m held survives unless it was
// on a majority of disks.
func (n *nemesis) powerCut(m uint64, lastMaster bool) *active {
	ids := n.ids()
	a := &active{kind: PowerCut, hold: n.between(200*time.Millisecond, time.Second), procs: ids, exclusive: true,
		what: fmt.Sprintf("%s %v", PowerCut, ids),
		apply: func() {
			var wg sync.WaitGroup
			for _, id := range ids {
				wg.Add(1)
				go func() { defer wg.Done(); n.sigkill(id) }()
			}
			wg.Wait()
		},
		heal: func() {
			for _, id := range ids {
				if !lastMaster || id != m {
					n.start(id, 0, -1)
				}
			}
			if !lastMaster {
				return
			}
			for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				if _, ok := n.master(); ok {
					break
				}
			}
			n.start(m, 0, -1)
		}}
	if lastMaster {
		a.what += fmt.Sprintf(", old master %d restarted last", m)
	}
	return a
}

// shrinking returns mk(vs), mk(vs[:len-1]), ..., down to one target: a
// fault on fewer replicas is admitted where one on more is not.
func (n *nemesis) shrinking(vs []uint64, mk func([]uint64) *active) []*active {
	var out []*active
	for k := len(vs); k > 0; k-- {
		out = append(out, mk(vs[:k]))
	}
	return out
}

// target returns the master one time in oneIn, else a free follower (the
// master if none is free; 0 if it is not free either).
func (n *nemesis) target(m uint64, oneIn int) uint64 {
	free := n.free(m)
	if n.rng.Intn(oneIn) == 0 || len(free) == 0 {
		if n.busy(m) {
			return 0
		}
		return m
	}
	return free[n.rng.Intn(len(free))]
}

func (n *nemesis) kill(kind FaultKind, ids []uint64, hold time.Duration) *active {
	return &active{kind: kind, hold: hold, procs: ids, what: fmt.Sprintf("%s %v", kind, ids),
		apply: func() {
			for _, id := range ids {
				n.sigkill(id)
			}
		},
		heal: func() {
			for _, id := range ids {
				n.start(id, 0, -1)
			}
		}}
}

func (n *nemesis) pause(kind FaultKind, ids []uint64, hold time.Duration) *active {
	hold = max(hold, n.timing.PauseMin)
	return &active{kind: kind, hold: hold, procs: ids, what: fmt.Sprintf("%s %v for %v", kind, ids, hold.Round(time.Millisecond)),
		apply: func() {
			for _, id := range ids {
				n.c.Nodes[id].Signal(syscall.SIGSTOP)
			}
		},
		heal: func() {
			for _, id := range ids {
				n.c.Nodes[id].Signal(syscall.SIGCONT)
			}
		}}
}

// partition cuts group off from the other replicas, both ways or, oneway,
// in one direction drawn at random.
func (n *nemesis) partition(kind FaultKind, group []uint64, oneway bool, f Fault, hold time.Duration) *active {
	rest := n.rest(group)
	a := &active{kind: kind, hold: hold, links: map[Link]Fault{}}
	switch {
	case !oneway:
		n.cutLinks(a, group, rest, f)
		n.cutLinks(a, rest, group, f)
		a.what = fmt.Sprintf("%s %v | %v (%v)", kind, group, rest, f)
	case n.rng.Intn(2) == 0:
		n.cutLinks(a, group, rest, f)
		a.what = fmt.Sprintf("%s %v -/-> %v (%v)", kind, group, rest, f)
	default:
		n.cutLinks(a, rest, group, f)
		a.what = fmt.Sprintf("%s %v -/-> %v (%v)", kind, rest, group, f)
	}
	return a
}

func (n *nemesis) cutLinks(a *active, from, to []uint64, f Fault) {
	for _, x := range from {
		for _, y := range to {
			if x != y {
				a.links[Link{x, y}] = f
			}
		}
	}
}

// restart stops replica id (SIGTERM if graceful, else SIGKILL) and starts
// it again after hold, with clock rate rate (0: drawn).
func (n *nemesis) restart(kind FaultKind, id uint64, graceful bool, rate float64, hold time.Duration) *active {
	how := "kill -9"
	if graceful {
		how = "SIGTERM"
	}
	what := fmt.Sprintf("%s %d (%s)", kind, id, how)
	if rate != 0 {
		what += fmt.Sprintf(" clock ×%.3f", rate)
	}
	return &active{kind: kind, hold: hold, procs: []uint64{id}, what: what,
		apply: func() {
			if !graceful {
				n.sigkill(id)
				return
			}
			if err := n.c.Nodes[id].Stop(); err != nil {
				n.noteExit(id, fmt.Sprintf("replica %d did not stop cleanly on SIGTERM: %v", id, err))
			}
		},
		heal: func() { n.start(id, rate, -1) }}
}

// The files LoseFile deletes, in turn.
const (
	fileAcceptor = "acceptor"
	fileSegment  = "segment"
	fileManifest = "manifest"
	fileSnapshot = "snapshot"
	fileLog      = "log"
)

var lostFiles = []string{fileAcceptor, fileSegment, fileManifest, fileSnapshot, fileLog}

// loseFile stops replica id (SIGKILL or SIGTERM), deletes one piece of its
// durable state, the next of lostFiles it has, and restarts it after hold:
// it must notice the loss and rejoin as a learner.
func (n *nemesis) loseFile(id uint64, hold time.Duration) *active {
	graceful := n.rng.Intn(2) == 0
	want := lostFiles[n.lostTurn%len(lostFiles)]
	n.lostTurn++
	a := &active{kind: LoseFile, hold: hold, procs: []uint64{id}, learners: []uint64{id}}
	a.what = fmt.Sprintf("%s %d (%s)", LoseFile, id, want)
	a.apply = func() {
		if graceful {
			n.c.Nodes[id].Stop()
		} else {
			n.sigkill(id)
		}
		dir := n.c.NodeDir(id)
		var victim string
		pickOne := func(pattern string) string {
			files, _ := filepath.Glob(filepath.Join(dir, pattern))
			sort.Strings(files)
			if len(files) == 0 {
				return ""
			}
			return files[n.rng.Intn(len(files))]
		}
		switch want {
		case fileAcceptor:
			victim = filepath.Join(dir, "acceptor")
		case fileSegment:
			victim = pickOne("log/*.log")
		case fileManifest:
			victim = filepath.Join(dir, "log", "SEGMENTS")
		case fileSnapshot:
			victim = pickOne("snap/*.snap")
		case fileLog:
			victim = filepath.Join(dir, "log")
		}
		if victim == "" {
			n.logf("nemesis: %s: replica %d has no %s file to lose", LoseFile, id, want)
			return
		}
		// Every piece but a snapshot is state the replica cannot do
		// without (a segment only if the manifest lists it): it must see
		// the loss and rejoin as a learner.
		must := want != fileSnapshot
		if want == fileSegment {
			must = listedSegment(filepath.Join(dir, "log", "SEGMENTS"), filepath.Base(victim))
		}
		if _, err := os.Stat(victim); err != nil {
			n.logf("nemesis: %s: replica %d has no %s: %v", LoseFile, id, want, err)
			return
		}
		if _, err := os.Stat(filepath.Join(dir, "IDENTITY")); err != nil {
			// A directory without its IDENTITY is a new one (a replica
			// killed while it joined): the replica starts afresh.
			must = false
		}
		if err := os.RemoveAll(victim); err != nil {
			n.logf("nemesis: %s %s: %v", LoseFile, victim, err)
			return
		}
		rel, _ := filepath.Rel(dir, victim)
		if must {
			n.mustLearn[id] = rel
		}
		n.detail(fmt.Sprintf("%s(%s)", LoseFile, want))
		n.logf("nemesis: replica %d lost %s", id, rel)
	}
	a.heal = func() { n.start(id, 0, -1) }
	return a
}

// listedSegment reports whether the log manifest at path lists the
// segment file name ("<first slot>.log"): "synod-segments 1 <floor>
// <names…> <crc>".
func listedSegment(path, name string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	num, err := strconv.ParseUint(strings.TrimSuffix(name, ".log"), 10, 64)
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	for i := 3; i < len(f)-1; i++ {
		if f[i] == strconv.FormatUint(num, 10) {
			return true
		}
	}
	return false
}

// proxyFault cuts or slows one proxy's links to the replicas.
func (n *nemesis) proxyFault(kind FaultKind, m uint64, hold time.Duration) *active {
	if n.proxies == 0 {
		return nil
	}
	p := n.rng.Intn(n.proxies)
	// Only the replicas the proxies were started with have a link of
	// each proxy's own; those added later share AnyProxy.
	var linked []uint64
	for _, id := range n.ids() {
		if n.proxied[id] {
			linked = append(linked, id)
		}
	}
	if len(linked) == 0 || (kind == ProxyMaster && !n.proxied[m]) {
		return nil
	}
	r := linked[n.rng.Intn(len(linked))]
	a := &active{kind: kind, hold: hold, links: map[Link]Fault{}, delays: map[Link]time.Duration{}}
	switch kind {
	case ProxyCut:
		f := n.linkFault()
		a.links[ProxyLink(p, r)] = f
		a.what = fmt.Sprintf("%s proxy %d -/- replica %d (%v)", kind, p, r, f)
	case ProxyMaster:
		f := n.linkFault()
		a.links[ProxyLink(p, m)] = f
		a.what = fmt.Sprintf("%s proxy %d -/- master %d (%v)", kind, p, m, f)
	case ProxyOneWay:
		if n.rng.Intn(2) == 0 && n.proxied[m] {
			r = m
		}
		f := DropForward
		if n.rng.Intn(2) == 0 {
			f = DropBackward
		}
		a.links[ProxyLink(p, r)] = f
		a.what = fmt.Sprintf("%s proxy %d -> replica %d (%v)", kind, p, r, f)
	case ProxySlow:
		d := time.Duration(20+n.rng.Intn(280)) * time.Millisecond
		targets := []uint64{r}
		if n.rng.Intn(2) == 0 {
			targets = linked
		}
		for _, id := range targets {
			a.delays[ProxyLink(p, id)] = d
		}
		a.what = fmt.Sprintf("%s proxy %d -> replicas %v +%v", kind, p, targets, d)
	}
	return a
}

func (n *nemesis) linkFault() Fault {
	if n.rng.Intn(2) == 0 {
		return Drop
	}
	return Refuse
}

func contains(ids []uint64, id uint64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}
