package node

// This file owns a node's life: New recovers it and binds its address, Run
// starts the goroutines (package comment), takes a replica whose disk fails
// out of consensus and back, and stops everything. New runs on the caller's
// goroutine; Run on its own, and it alone starts and stops the engine and
// the persister, replacing the core and the storage between two engine runs.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"synod/filestore"
	"synod/filestore/chunks"
	"synod/filestore/wal"
	"synod/paxos"
	"synod/wire"
)

// ErrRemoved is returned by New and Run for a replica the configuration in
// force does not include: it was removed from the cluster, and it never
// votes or serves again on its data directory.
var ErrRemoved = errors.New("node: this replica was removed from the cluster")

// ErrStorage wraps a failure to persist. After a full disk (a write refused
// for space) the replica stops voting until its disk works again; after any
// other failure, a failed fsync above all, Run returns it and the process
// must end: what reached the disk is unknown, and the page cache may show
// writes the disk never got (DESIGN.md, trap 10). Restarted, the replica
// recovers from its files.
var ErrStorage = errors.New("node: storage failed")

// Node is one running replica. Its fields are grouped by the goroutine that
// owns them; what several goroutines share is atomic or behind its own lock.
type Node struct {
	// Set by New, read-only after.
	cfg  Config
	log  zerolog.Logger
	pcfg paxos.Config
	ln   net.Listener

	// The engine's (engine.go), and the queues into it. Run replaces
	// eng.r and store while no engine runs.
	eng      engine
	inbox    chan paxos.Message // from peer connections
	props    chan *proposal     // writes, from the server
	reads    chan *readReq      // linearizable reads, from the server
	calls    chan func()        // membership changes and handovers, run on the loop
	mail     mailbox            // notices from goroutines that must never wait for the loop
	persistQ chan paxos.Ready   // the engine's Readies, to the persister

	// The persister's (persister.go).
	store *storage
	trunc truncation // log truncations the snapshotter asks for

	// The applier's (applier.go), and the queue into it.
	app     applier
	applyQ  chan applyWork // from the persister and the snapshot fetcher
	pending pendingWrites  // writes proposed: the engine adds, the applier answers

	// Published for every goroutine.
	soft        atomic.Pointer[paxos.SoftState] // the core's, after every Ready
	commitIndex atomicMax                       // the highest command index known chosen
	view        atomic.Pointer[memberView]      // the configuration (membership.go)
	peers       atomic.Pointer[map[uint64]*peer]
	inbound     sync.Map        // *wire.Conn -> replica id: peers' connections to us (closeStrangers)
	guestAddrs  sync.Map        // replica id -> address, of replicas of a newer configuration (checkHello)
	membership  atomic.Int32    // paxos.Membership: a replica that lost state does not vote yet
	degraded    atomic.Bool     // storage failed: no voting, no writes, reads go on
	runCtx      context.Context // set by Run before the peers start

	bk backups // online backups being streamed (backup.go)

	chunks   *chunks.Store      // large files' chunks, <dir>/chunks (chunks.go)
	rangeSem chan struct{}      // range reads being served (chunks.go)
	fetchQ   chan wire.Manifest // large files applied, whose chunks the fetcher checks (chunks.go)
	scanQ    chan struct{}      // asks the fetcher to check every large file (chunks.go)
	debt     chunkDebt          // chunks this replica may lack (chunkdebt.go)
	durable  atomic.Uint64      // the chosen prefix the disk knows (the engine's; told in handshake refusals)
	refs     chunkRefs          // chunks of log entries not applied and of backups (chunkgc.go)

	snapshotting atomic.Bool // a snapshot is being written
	fetching     atomic.Bool // a snapshot is being fetched
	cutOnce      atomic.Bool // test knob: cut the first snapshot transfer served

	stats struct {
		dropped, proposed, applied, reads, fsyncs atomic.Uint64
	}
	met        *metrics // Prometheus figures (metrics.go)
	storageErr chan error
	removedCh  chan struct{} // this replica was found removed
	departing  atomic.Bool   // found removed by a refused handshake: handing its chunks off (handoff.go)
	refusedBy  sync.Map      // peer id -> what its disk knows of the chosen slots, from its refusal naming a newer configuration
	tlsLog     logLimiter    // refused TLS handshakes logged (tls.go)
	wg         sync.WaitGroup

	hist       *history     // the changes watches read (watch.go)
	watchPolls atomic.Int64 // watch polls parked now
}

// atomicMax is a counter that only goes up.
type atomicMax struct{ v atomic.Uint64 }

func (a *atomicMax) load() uint64 { return a.v.Load() }

// raise sets the counter to x if x is higher.
func (a *atomicMax) raise(x uint64) {
	for {
		cur := a.v.Load()
		if x <= cur || a.v.CompareAndSwap(cur, x) {
			return
		}
	}
}

// New opens cfg.Dir, recovers the replica's state (the newest snapshot, then
// the log) and binds the listen address; Run starts it. Corruption of
// acknowledged log data is an error naming file and line (errors.Is
// wal.ErrCorrupt), unless cfg.Repair.
func New(cfg Config) (*Node, error) { return NewContext(context.Background(), cfg) }

// NewContext is New whose start-up ends early when ctx does: a replica
// asking to join stops asking, and NewContext returns ctx's error.
func NewContext(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	lg := cfg.Logger.With().Uint64("node", cfg.ID).Logger()
	if hooks := cfg.testHooks(); len(hooks) > 0 {
		lg.Warn().Strs("hooks", hooks).Msg("!!! TEST HOOKS ARE ON: this replica injects faults or runs planted bugs; never run it in production")
	}
	var join *joinInfo
	if cfg.Join != "" && errors.Is(wal.CheckIdentity(cfg.Dir, cfg.ClusterID, cfg.ID), wal.ErrNoIdentity) {
		var err error
		if join, err = askToJoin(ctx, cfg); err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("node: stopped while joining: %w", ctx.Err())
			}
			return nil, err
		}
		lg.Info().Str("from", cfg.Join).Uint64("slot", join.slot).Str("members", join.conf.String()).Msg("joining a running cluster")
	}
	met := newMetrics()
	cfg.onSync = met.onSync
	store, hs, fsm, err := openStorage(cfg.Dir, cfg.ClusterID, cfg.ID, join, cfg.walOptions(cfg.Repair), filestore.Options{MaxValue: cfg.MaxValue}, lg)
	if err != nil {
		return nil, err
	}
	pc := coreConfig(cfg, hs)
	r, err := paxos.New(pc, hs)
	if err != nil {
		store.close()
		return nil, err
	}
	cs, err := chunks.Open(filepath.Join(cfg.Dir, "chunks"))
	if err != nil {
		store.close()
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		store.close()
		return nil, fmt.Errorf("node: listen: %w", err)
	}
	n := &Node{
		cfg:        cfg,
		log:        lg,
		pcfg:       pc,
		ln:         ln,
		inbox:      make(chan paxos.Message, 4096),
		props:      make(chan *proposal, 4096),
		reads:      make(chan *readReq, 4096),
		calls:      make(chan func(), 16),
		mail:       mailbox{sig: make(chan struct{}, 1)},
		store:      store,
		applyQ:     make(chan applyWork, 256),
		storageErr: make(chan error, 1),
		removedCh:  make(chan struct{}, 1),
		met:        met,
		chunks:     cs,
		rangeSem:   make(chan struct{}, rangeSlots),
		fetchQ:     make(chan wire.Manifest, 256),
		scanQ:      make(chan struct{}, 1),
	}
	n.trunc.sig = make(chan struct{}, 1)
	n.eng = newEngine(r, newClock(cfg.TestClockRate), hs.Applied, fsm.Applied())
	met.register(n)
	n.membership.Store(int32(hs.Membership))
	if hs.Membership == paxos.Learner {
		met.learnerRejoins.Inc()
	}
	conf, confSlot := hs.Config, hs.ConfigSlot
	if len(conf.Members) == 0 {
		conf = paxos.NewConfiguration(pc.Members, pc.Addrs)
	}
	n.app = applier{fsm: fsm, slot: hs.Applied, snapIndex: fsm.Applied(), conf: conf, confSlot: confSlot}
	// The log's entries the snapshot does not cover may still be applied.
	n.refs.pinEntries(hs.Entries)
	n.refs.releaseThrough(hs.Applied)
	n.hist = newHistory(fsm.Applied(), cfg.WatchHistory, cfg.WatchHistoryBytes)
	n.commitIndex.raise(fsm.Applied())
	n.peers.Store(&map[uint64]*peer{})
	n.noteConfig()
	if v := n.members(); v.slot > 0 {
		if _, ok := v.conf.Member(pc.ID); !ok {
			ln.Close()
			store.close()
			return nil, fmt.Errorf("%w: the configuration chosen at slot %d (%v) does not include replica %d; it does not start again on %s",
				ErrRemoved, v.slot, v.conf, cfg.ID, cfg.Dir)
		}
	}
	n.cutOnce.Store(cfg.TestCutSnapshotOnce)
	n.soft.Store(&paxos.SoftState{Role: paxos.Follower})
	lg.Info().Str("listen", ln.Addr().String()).Int("entries", len(hs.Entries)).
		Uint64("snapshot_slot", hs.Applied).Uint64("committed", hs.Committed).
		Str("membership", hs.Membership.String()).Msg("replica recovered")
	return n, nil
}

// coreConfig is the paxos core's configuration for cfg: the members the
// disk holds (a snapshot's configuration, or the one joined), else those of
// --peers, which only seeds a new cluster.
func coreConfig(cfg Config, hs paxos.HardState) paxos.Config {
	pc := paxos.DefaultConfig()
	pc.ID = paxos.NodeID(cfg.ID)
	pc.SideState = true // large files' chunks (chunkdebt.go)
	for pc.Incarnation == 0 {
		pc.Incarnation = rand.Uint64() // this run's probes: a late answer to an earlier run's is ignored
	}
	pc.Addrs = map[paxos.NodeID]string{}
	for id, addr := range cfg.Peers {
		pc.Members = append(pc.Members, paxos.NodeID(id))
		pc.Addrs[paxos.NodeID(id)] = addr
	}
	sort.Slice(pc.Members, func(i, j int) bool { return pc.Members[i] < pc.Members[j] })
	if len(hs.Config.Members) > 0 {
		pc.Members, pc.Learners, pc.Addrs = hs.Config.Voters(), nil, map[paxos.NodeID]string{}
		for _, m := range hs.Config.Members {
			pc.Addrs[m.ID] = m.Addr
			if !m.Voter {
				pc.Learners = append(pc.Learners, m.ID)
			}
		}
	}
	pc.HeartbeatTicks = cfg.ticks(cfg.Heartbeat)
	pc.ElectionTicks = cfg.ticks(cfg.ElectionTimeout)
	// Round the lease down: never longer than asked.
	pc.LeaseTicks = int(cfg.Lease / cfg.TickInterval)
	pc.MaxEntriesPerMsg = 16
	pc.Rand = rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), cfg.ID))
	return pc
}

// Addr returns the address the node listens on.
func (n *Node) Addr() net.Addr { return n.ln.Addr() }

// Run serves until ctx ends. When the disk is full, the replica stops its
// consensus engine, so it neither votes nor leads, and keeps serving reads;
// it retries its disk every second and, once the disk takes writes again,
// restarts the engine from what the disk holds. Any other storage failure,
// a failed fsync above all, ends Run with ErrStorage (the process must end:
// see ErrStorage).
// When ctx ends on a master, it first hands mastership over (see Handover).
func (n *Node) Run(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n.startPeers(runCtx)
	n.wg.Add(5)
	go func() { defer n.wg.Done(); n.serve(runCtx, n.ln) }()
	go func() { defer n.wg.Done(); n.runApplier(runCtx) }()
	n.scanChunks() // before the engine runs: a learner holds its vote until the scan is done
	go func() { defer n.wg.Done(); n.runChunkFetcher(runCtx) }()
	go func() { defer n.wg.Done(); n.runChunkGC(runCtx) }()
	go func() { defer n.wg.Done(); n.runHandoff(runCtx) }()
	// shutdown stops everything Run started and returns err, or the log's
	// close error.
	shutdown := func(err error) error {
		cancel()
		n.ln.Close()
		n.wg.Wait()
		n.pending.failAll(wire.CodeUnavailable)
		n.failWaiting(wire.CodeUnavailable)
		if cerr := n.store.close(); err == nil && cerr != nil && !errors.Is(cerr, wal.ErrClosed) {
			err = cerr
		}
		return err
	}
	for {
		engCtx, stopEngine := context.WithCancel(runCtx)
		done := n.startEngine(engCtx)
		var err error
		removed := false
		select {
		case <-ctx.Done():
			n.Handover(2 * n.cfg.ElectionTimeout)
		case err = <-n.storageErr:
		case <-n.removedCh:
			removed = true
		}
		stopEngine()
		<-done
		switch {
		case removed:
			v := n.members()
			err := fmt.Errorf("%w: the configuration chosen at slot %d (%v) does not include replica %d", ErrRemoved, v.slot, v.conf, n.cfg.ID)
			n.log.Error().Err(err).Msg("this replica was removed from the cluster: it stops, and does not start again on this data directory")
			return shutdown(err)
		case ctx.Err() != nil:
			return shutdown(nil)
		case !diskFull(err):
			n.log.Error().Err(err).Msg("storage failed: what reached the disk is unknown, so this replica stops; restarted, it recovers from its files")
			return shutdown(err)
		}
		n.degrade(err)
		if !n.recoverStorage(ctx) {
			return shutdown(nil)
		}
	}
}

// startEngine runs the loop and the persister until ctx ends; the returned
// channel closes when both have stopped.
func (n *Node) startEngine(ctx context.Context) <-chan struct{} {
	n.persistQ = make(chan paxos.Ready, 256)
	n.mail.dropAdvances() // a rebuilt core has no Ready out
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); n.persister(ctx) }()
	go func() { defer wg.Done(); n.loop(ctx) }()
	go func() { wg.Wait(); close(done) }()
	return done
}

// degrade takes the replica out of consensus after a storage failure. The
// engine is stopped: Run owns its state.
func (n *Node) degrade(err error) {
	n.degraded.Store(true)
	n.log.Error().Err(err).Msg("storage failed: this replica stops voting and leading; reads go on; retrying the disk every second")
	n.soft.Store(&paxos.SoftState{Role: paxos.Follower})
	n.pending.failAll(wire.CodeUnavailable)
	n.eng.failReads(n)
}

// recoverStorage retries the disk until it takes a write, then rebuilds the
// core from it. It returns false if ctx ended first.
func (n *Node) recoverStorage(ctx context.Context) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Second):
		}
		n.store.close()
		store, hs, fsm, err := openStorage(n.cfg.Dir, n.cfg.ClusterID, n.cfg.ID, nil, n.cfg.walOptions(false), filestore.Options{MaxValue: n.cfg.MaxValue}, n.log)
		if err == nil {
			err = store.probe()
			if err != nil {
				store.close()
			}
		}
		if err != nil {
			n.log.Debug().Err(err).Msg("disk still failing")
			continue
		}
		r, err := paxos.New(n.pcfg, hs)
		if err != nil {
			store.close()
			n.log.Error().Err(err).Msg("cannot rebuild the consensus core")
			continue
		}
		// The state machine stays: it is at or ahead of the disk, and the
		// core hands chosen slots out again from the snapshot on, which
		// the applier skips up to what it applied already. The engine
		// counts commands chosen from the snapshot's index again.
		n.store = store
		n.eng = newEngine(r, n.eng.clock, hs.Applied, fsm.Applied())
		n.degraded.Store(false)
		n.log.Info().Msg("disk works again: rejoining consensus")
		return true
	}
}

// diskFull reports whether a storage failure was a write refused for space
// (nothing was fsynced wrong: the page cache is what the disk will hold),
// the one failure a replica survives in place.
func diskFull(err error) bool {
	return !errors.Is(err, wal.ErrSync) && (errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT))
}

// failStorage reports a storage failure to Run, from the persister.
func (n *Node) failStorage(err error) {
	select {
	case n.storageErr <- fmt.Errorf("%w: %w", ErrStorage, err):
	default:
	}
}

// Handover asks a master to hand mastership to its most caught-up follower
// and waits up to d for another replica to take over. It is a no-op on a
// follower. Proxies learn of it at once: writes get not-master with the
// target as hint, and STATUS shows the transfer.
func (n *Node) Handover(d time.Duration) {
	if n.soft.Load().Role != paxos.Master {
		return
	}
	reply := make(chan paxos.NodeID, 1)
	call := func() {
		target, err := n.eng.r.TransferMastership()
		if err != nil {
			n.log.Warn().Err(err).Msg("no handover")
		}
		reply <- target
	}
	select {
	case n.calls <- call:
	default:
		return
	}
	var target paxos.NodeID
	select {
	case target = <-reply:
	case <-time.After(d):
		return
	}
	if target == paxos.None {
		return
	}
	n.met.handovers.Inc()
	n.log.Info().Uint64("target", uint64(target)).Msg("handing mastership over")
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && n.soft.Load().Role == paxos.Master {
		time.Sleep(5 * time.Millisecond)
	}
	// Linger a moment so the new master's first heartbeat reaches us and the
	// proxies see us follow it, rather than a replica that vanished.
	time.Sleep(2 * n.cfg.Heartbeat)
}
