package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"synod/filestore"
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

// Node is one running replica.
type Node struct {
	cfg   Config
	log   zerolog.Logger
	pcfg  paxos.Config
	store *storage
	r     *paxos.Replica // owned by the loop

	inbox chan paxos.Message
	props chan *proposal
	reads chan *readReq
	// The persister hands Readies back to the loop through advQ, never a
	// blocking channel, so the two can never wait on each other.
	persistQ chan paxos.Ready
	advMu    sync.Mutex
	advQ     []paxos.Ready
	advSig   chan struct{}
	// Work for the loop from other goroutines: compactions after a
	// snapshot, installs of a fetched snapshot, a handover request.
	compactQ  chan uint64
	restoreQ  chan restore
	peerLostQ chan paxos.NodeID
	handoverQ chan chan paxos.NodeID

	// Loop-owned.
	readBatches map[uint64][]*readReq
	nextCtx     uint64
	chosenCmds  uint64 // commands in slots handed out as chosen
	tickCount   uint64
	clock       *clock
	ticked      int64 // ticks handed to the core

	// Shared with client goroutines.
	soft    atomic.Pointer[softInfo]
	view    atomic.Pointer[memberView]       // the configuration, for other goroutines
	peers   atomic.Pointer[map[uint64]*peer] // replaced by the loop, read by senders
	runCtx  context.Context                  // set by Run before the peers start
	memberQ chan *memberReq
	// Loop-owned: membership changes waiting to be in force.
	memberWaits []memberWait
	pending     pendingWrites
	degraded    atomic.Bool // storage failed: no voting, no writes, reads go on

	// Applier state, under mu.
	mu          sync.RWMutex
	fsm         *filestore.Machine
	appliedSlot uint64
	snapIndex   uint64              // Applied() of the newest snapshot taken or installed
	conf        paxos.Configuration // the configuration applied last, and the slot that chose it
	confSlot    uint64
	waiting     []*readReq // reads waiting to reach their slot or index

	snapshotting atomic.Bool // a snapshot is being written
	fetching     atomic.Bool // a snapshot is being fetched
	cutOnce      atomic.Bool // test knob: cut the first snapshot transfer served

	stats struct {
		dropped, proposed, applied, reads, fsyncs atomic.Uint64
	}
	storageErr chan error
	removedCh  chan struct{} // the loop found this replica removed
	wg         sync.WaitGroup
	ln         net.Listener
}

// softInfo is what client goroutines may know of the core's state.
type softInfo struct {
	paxos.SoftState
	commit uint64 // commands known chosen
}

// New opens cfg.Dir, recovers the replica's state (the newest snapshot, then
// the log) and binds the listen address; Run starts it. Corruption of
// acknowledged log data is an error naming file and line (errors.Is
// wal.ErrCorrupt), unless cfg.Repair.
func New(cfg Config) (*Node, error) {
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
		if join, err = askToJoin(context.Background(), cfg); err != nil {
			return nil, err
		}
		lg.Info().Str("from", cfg.Join).Uint64("slot", join.slot).Str("members", join.conf.String()).Msg("joining a running cluster")
	}
	store, hs, fsm, err := openStorage(cfg.Dir, cfg.ClusterID, cfg.ID, join, cfg.walOptions(cfg.Repair), filestore.Options{MaxValue: cfg.MaxValue}, lg)
	if err != nil {
		return nil, err
	}
	pc := paxos.DefaultConfig()
	pc.ID = paxos.NodeID(cfg.ID)
	pc.Addrs = map[paxos.NodeID]string{}
	for id, addr := range cfg.Peers {
		pc.Members = append(pc.Members, paxos.NodeID(id))
		pc.Addrs[paxos.NodeID(id)] = addr
	}
	sort.Slice(pc.Members, func(i, j int) bool { return pc.Members[i] < pc.Members[j] })
	if len(hs.Config.Members) > 0 {
		// The configuration the disk holds (a snapshot's, or the one
		// joined) is the one the core starts with; --peers only seeds a
		// new cluster.
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
	r, err := paxos.New(pc, hs)
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
		cfg:         cfg,
		log:         lg,
		pcfg:        pc,
		store:       store,
		r:           r,
		memberQ:     make(chan *memberReq, 16),
		removedCh:   make(chan struct{}, 1),
		inbox:       make(chan paxos.Message, 4096),
		props:       make(chan *proposal, 4096),
		reads:       make(chan *readReq, 4096),
		advSig:      make(chan struct{}, 1),
		compactQ:    make(chan uint64, 16),
		restoreQ:    make(chan restore, 16),
		peerLostQ:   make(chan paxos.NodeID, 16),
		handoverQ:   make(chan chan paxos.NodeID, 1),
		readBatches: map[uint64][]*readReq{},
		fsm:         fsm,
		appliedSlot: hs.Applied,
		snapIndex:   fsm.Applied(),
		storageErr:  make(chan error, 1),
		ln:          ln,
		clock:       newClock(cfg.TestClockRate),
		conf:        hs.Config,
		confSlot:    hs.ConfigSlot,
	}
	if len(n.conf.Members) == 0 {
		n.conf = paxos.NewConfiguration(pc.Members, pc.Addrs)
	}
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
	n.soft.Store(&softInfo{SoftState: paxos.SoftState{Role: paxos.Follower}})
	lg.Info().Str("listen", ln.Addr().String()).Int("entries", len(hs.Entries)).
		Uint64("snapshot_slot", hs.Applied).Uint64("committed", hs.Committed).
		Str("membership", hs.Membership.String()).Msg("replica recovered")
	return n, nil
}

// Addr returns the address the node listens on.
func (n *Node) Addr() net.Addr { return n.ln.Addr() }

// Run serves until ctx ends. When the disk fails (full, or an fsync error),
// the replica stops its consensus engine, so it neither votes nor leads, and
// keeps serving reads; it retries its disk every second and, once the disk
// takes writes again, restarts the engine from what the disk holds.
// When ctx ends on a master, it first hands mastership over (see Handover).
func (n *Node) Run(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n.startPeers(runCtx)
	n.wg.Add(1)
	go func() { defer n.wg.Done(); n.serve(runCtx, n.ln) }()
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
	n.advMu.Lock()
	n.advQ = nil
	n.advMu.Unlock()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); n.persister(ctx) }()
	go func() { defer wg.Done(); n.loop(ctx) }()
	go func() { wg.Wait(); close(done) }()
	return done
}

// degrade takes the replica out of consensus after a storage failure.
func (n *Node) degrade(err error) {
	n.degraded.Store(true)
	n.log.Error().Err(err).Msg("storage failed: this replica stops voting and leading; reads go on; retrying the disk every second")
	n.soft.Store(&softInfo{SoftState: paxos.SoftState{Role: paxos.Follower}, commit: n.soft.Load().commit})
	n.pending.failAll(wire.CodeUnavailable)
	for ctx, batch := range n.readBatches {
		for _, rq := range batch {
			n.notMaster(rq.reply)
		}
		delete(n.readBatches, ctx)
	}
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
		store, hs, _, err := openStorage(n.cfg.Dir, n.cfg.ClusterID, n.cfg.ID, nil, n.cfg.walOptions(false), filestore.Options{MaxValue: n.cfg.MaxValue}, n.log)
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
		// apply skips up to what is already applied.
		n.store, n.r = store, r
		n.chosenCmds = 0
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
	select {
	case n.handoverQ <- reply:
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
	n.log.Info().Uint64("target", uint64(target)).Msg("handing mastership over")
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && n.soft.Load().Role == paxos.Master {
		time.Sleep(5 * time.Millisecond)
	}
	// Linger a moment so the new master's first heartbeat reaches us and the
	// proxies see us follow it, rather than a replica that vanished.
	time.Sleep(2 * n.cfg.Heartbeat)
}

// catchUp hands the core every tick that elapsed on the node's clock since
// the last call, however long the process was stopped: the loop calls it
// before it handles anything, so no decision rests on a stale clock
// (DESIGN.md, trap 8).
func (n *Node) catchUp() {
	now := int64(n.clock.elapsed() / n.cfg.TickInterval)
	if d := now - n.ticked; d > 0 {
		n.ticked = now
		n.r.Elapse(int(d))
	}
}

// loop is the only goroutine that touches the paxos core.
func (n *Node) loop(ctx context.Context) {
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	n.ticked = int64(n.clock.elapsed() / n.cfg.TickInterval) // a rebuilt core starts its own count
	// Every event first brings the core's clock up to date (catchUp), so a
	// loop that was stopped handles nothing on stale time.
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-ticker.C:
			n.catchUp()
			if n.tickCount++; n.tickCount%10 == 0 {
				n.expireReads(now)
			}
			if n.tickCount%100 == 0 {
				n.maybePromote()
			}
		case mr := <-n.memberQ:
			n.catchUp()
			n.changeMembers(mr)
		case m := <-n.inbox:
			n.catchUp()
			n.r.Step(m)
			for i := 0; i < 256; i++ { // drain what is queued: one Ready for all of it
				select {
				case m = <-n.inbox:
					n.r.Step(m)
					continue
				default:
				}
				break
			}
		case p := <-n.props:
			n.catchUp()
			n.propose(p)
		case rq := <-n.reads:
			n.catchUp()
			n.readIndex(rq)
		case <-n.advSig:
			n.catchUp()
			n.advMu.Lock()
			q := n.advQ
			n.advQ = nil
			n.advMu.Unlock()
			for _, rd := range q {
				n.r.Advance(rd)
			}
		case slot := <-n.compactQ:
			n.r.Compact(slot)
		case rs := <-n.restoreQ:
			n.r.RestoreSnapshot(rs.slot, rs.conf, rs.confSlot)
		case id := <-n.peerLostQ:
			n.catchUp()
			n.r.PeerLost(id)
		case reply := <-n.handoverQ:
			n.catchUp()
			target, err := n.r.TransferMastership()
			if err != nil {
				n.log.Warn().Err(err).Msg("no handover")
			}
			reply <- target
		}
		if !n.r.HasReady() {
			continue
		}
		rd := n.r.Ready()
		n.sendTo(rd.Messages)
		rd.Messages = nil
		if rd.SoftState != nil {
			n.onSoftState(*rd.SoftState)
		}
		if rd.MembershipChanged {
			n.log.Info().Str("membership", rd.Membership.String()).Msg(membershipNews[rd.Membership])
		}
		for _, e := range rd.Chosen {
			if e.Value.Kind == paxos.ValueCmds {
				n.chosenCmds += uint64(len(e.Value.Cmds))
			}
		}
		ss, _ := n.r.Status()
		n.soft.Store(&softInfo{SoftState: ss, commit: n.chosenCmds})
		n.noteConfig()
		n.answerMemberWaits()
		if ss.Removed {
			select {
			case n.removedCh <- struct{}{}:
			default:
			}
		}
		n.attachReads(&rd)
		if rd.NeedSnapshot != paxos.None && n.fetching.CompareAndSwap(false, true) {
			n.wg.Add(1)
			go func(from uint64) {
				defer n.wg.Done()
				defer n.fetching.Store(false)
				n.fetchSnapshot(ctx, from)
			}(uint64(rd.NeedSnapshot))
		}
		select {
		case n.persistQ <- rd:
		case <-ctx.Done():
			return
		}
	}
}

var membershipNews = map[paxos.Membership]string{
	paxos.Voter:   "this replica votes",
	paxos.Learner: "rejoining as a learner: this replica may have forgotten votes, so it votes again only after a phase 1 without it",
	paxos.Fresh:   "new data directory: asking the peers whether the cluster is new",
}

func (n *Node) onSoftState(ss paxos.SoftState) {
	prev := n.soft.Load().SoftState
	if ss.Role != prev.Role || ss.Master != prev.Master || ss.Ballot != prev.Ballot {
		n.log.Info().Str("role", ss.Role.String()).Uint64("master", uint64(ss.Master)).
			Str("ballot", ss.Ballot.String()).Msg("role changed")
	}
	if prev.Role == paxos.Master && ss.Role != paxos.Master {
		// Writes in flight may or may not be chosen by the next master;
		// the proxy retries them under their ids and the session table
		// applies each once.
		n.pending.failAll(wire.CodeNotMaster)
	}
}

// persister makes Readies durable, group-committing everything queued behind
// the previous fsync, then sends votes, applies and answers.
func (n *Node) persister(ctx context.Context) {
	var batch []paxos.Ready
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return
		case rd := <-n.persistQ:
			batch = append(batch, rd)
		}
		for len(batch) < 256 {
			select {
			case rd := <-n.persistQ:
				batch = append(batch, rd)
				continue
			default:
			}
			break
		}
		if n.cfg.TestAckBeforeFsync {
			for i := range batch { // planted bug: votes before they are durable
				n.sendTo(batch[i].MessagesAfterPersist)
				batch[i].MessagesAfterPersist = nil
			}
		}
		synced, err := n.store.persist(batch)
		if err != nil {
			// Nothing of this batch may be sent or applied: the votes are
			// not durable. The engine stops and rebuilds from the disk.
			n.failStorage(err)
			return
		}
		n.stats.fsyncs.Add(uint64(synced))
		for i := range batch {
			n.sendTo(batch[i].MessagesAfterPersist)
			n.apply(batch[i].Chosen)
		}
		n.maybeSnapshot(ctx)
		n.advMu.Lock()
		n.advQ = append(n.advQ, batch...)
		n.advMu.Unlock()
		select {
		case n.advSig <- struct{}{}:
		default:
		}
	}
}

// Status describes this replica for proxies and operators.
func (n *Node) Status() wire.Status {
	si := n.soft.Load()
	st := wire.Status{
		ID:         n.cfg.ID,
		Addr:       n.addrOf(n.cfg.ID),
		Role:       si.Role.String(),
		Round:      si.Ballot.Round,
		BallotNode: uint64(si.Ballot.Node),
		MasterID:   uint64(si.Master),
		MasterAddr: n.addrOf(uint64(si.Master)),
		Commit:     si.commit,
		FreeDisk:   freeDisk(n.cfg.Dir),
		Transfer:   uint64(si.Transfer),
	}
	v := n.members()
	st.ConfigSlot = v.slot
	for _, m := range v.conf.Members {
		st.Members = append(st.Members, wire.Member{ID: uint64(m.ID), Addr: m.Addr, Voter: m.Voter})
	}
	switch {
	case n.degraded.Load():
		st.Role = "degraded" // disk failing: serves reads only
	case si.Role == paxos.Master && !si.Ready:
		st.Role = "candidate" // elected, but its no-op is not chosen yet
	case !v.conf.IsVoter(paxos.NodeID(n.cfg.ID)):
		st.Role = "learner" // a member that receives the log without voting
	}
	// A read lock: the digest is cached per applied index (computed at
	// most once per change, under its own lock), so a poll neither
	// blocks reads nor re-hashes files, ten times a second per proxy.
	n.mu.RLock()
	st.Applied = n.fsm.Applied()
	st.Digest = n.fsm.Digest()
	n.mu.RUnlock()
	if st.Commit < st.Applied {
		st.Commit = st.Applied
	}
	return st
}
