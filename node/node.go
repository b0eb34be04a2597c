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
	"time"

	"github.com/rs/zerolog"

	"synod/filestore"
	"synod/paxos"
	"synod/wire"
)

// ErrStorage wraps a failure to persist: the node stops rather than vote on
// state it could not make durable.
var ErrStorage = errors.New("node: storage failed")

// Node is one running replica.
type Node struct {
	cfg   Config
	log   zerolog.Logger
	store *storage
	r     *paxos.Replica // owned by the loop

	peers map[uint64]*peer
	inbox chan paxos.Message
	props chan *proposal
	reads chan *readReq
	// The persister hands Readies back to the loop through advQ, never a
	// blocking channel, so the two can never wait on each other.
	persistQ chan paxos.Ready
	advMu    sync.Mutex
	advQ     []paxos.Ready
	advSig   chan struct{}

	// Loop-owned.
	readBatches map[uint64][]*readReq
	nextCtx     uint64
	chosenCmds  uint64 // commands in slots handed out as chosen
	tickCount   uint64

	// Shared with client goroutines.
	soft    atomic.Pointer[softInfo]
	pending pendingWrites

	// Applier state, under mu.
	mu          sync.RWMutex
	fsm         *filestore.Machine
	appliedSlot uint64
	waiting     []*readReq // reads waiting to reach their slot or index

	stats struct {
		dropped, proposed, applied, reads, fsyncs atomic.Uint64
	}
	fatal chan error
	wg    sync.WaitGroup
	ln    net.Listener
}

// softInfo is what client goroutines may know of the core's state.
type softInfo struct {
	paxos.SoftState
	commit uint64 // commands known chosen
}

// New opens cfg.Dir, recovers the replica's state and binds the listen
// address; Run starts it. Corruption of acknowledged log data is an error
// naming file and line (errors.Is wal.ErrCorrupt), unless cfg.Repair.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	store, hs, rec, err := openStorage(cfg.Dir, cfg.ClusterID, cfg.ID, cfg.Repair)
	if err != nil {
		return nil, err
	}
	lg := cfg.Logger.With().Uint64("node", cfg.ID).Logger()
	if rec.TornFile != "" {
		lg.Warn().Str("file", rec.TornFile).Int64("bytes", rec.TornBytes).Msg("cut an unacknowledged torn batch off the log")
	}
	if rec.Repaired {
		lg.Warn().Str("damage", rec.Damage.Error()).Int64("dropped_bytes", rec.DroppedBytes).Msg("repaired a corrupt log")
	}
	pc := paxos.DefaultConfig()
	pc.ID = paxos.NodeID(cfg.ID)
	for id := range cfg.Peers {
		pc.Members = append(pc.Members, paxos.NodeID(id))
	}
	sort.Slice(pc.Members, func(i, j int) bool { return pc.Members[i] < pc.Members[j] })
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
		store:       store,
		r:           r,
		peers:       map[uint64]*peer{},
		inbox:       make(chan paxos.Message, 4096),
		props:       make(chan *proposal, 4096),
		reads:       make(chan *readReq, 4096),
		persistQ:    make(chan paxos.Ready, 256),
		advSig:      make(chan struct{}, 1),
		readBatches: map[uint64][]*readReq{},
		fsm:         filestore.New(filestore.Options{MaxValue: cfg.MaxValue}),
		fatal:       make(chan error, 1),
		ln:          ln,
	}
	n.soft.Store(&softInfo{})
	lg.Info().Str("listen", ln.Addr().String()).Int("entries", len(hs.Entries)).
		Uint64("committed", hs.Committed).Msg("replica recovered")
	return n, nil
}

// Addr returns the address the node listens on.
func (n *Node) Addr() net.Addr { return n.ln.Addr() }

// Run serves until ctx ends (nil error) or storage fails (ErrStorage).
func (n *Node) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n.startPeers(ctx)
	n.wg.Add(3)
	go func() { defer n.wg.Done(); n.serve(ctx, n.ln) }()
	go func() { defer n.wg.Done(); n.persister(ctx) }()
	loopErr := make(chan error, 1)
	go func() { defer n.wg.Done(); loopErr <- n.loop(ctx) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-n.fatal:
	}
	cancel()
	n.ln.Close()
	n.wg.Wait()
	n.pending.failAll(wire.CodeUnavailable)
	n.failWaiting(wire.CodeUnavailable)
	if cerr := n.store.close(); err == nil && cerr != nil {
		err = cerr
	}
	return err
}

func (n *Node) die(err error) {
	select {
	case n.fatal <- err:
	default:
	}
}

// loop is the only goroutine that touches the paxos core.
func (n *Node) loop(ctx context.Context) error {
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-ticker.C:
			n.r.Tick()
			if n.tickCount++; n.tickCount%10 == 0 {
				n.expireReads(now)
			}
		case m := <-n.inbox:
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
			n.propose(p)
		case rq := <-n.reads:
			n.readIndex(rq)
		case <-n.advSig:
			n.advMu.Lock()
			q := n.advQ
			n.advQ = nil
			n.advMu.Unlock()
			for _, rd := range q {
				n.r.Advance(rd)
			}
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
		for _, e := range rd.Chosen {
			n.chosenCmds += uint64(len(e.Value.Cmds))
		}
		si := &softInfo{SoftState: n.prevSoft(), commit: n.chosenCmds}
		n.soft.Store(si)
		n.attachReads(&rd)
		select {
		case n.persistQ <- rd:
		case <-ctx.Done():
			return nil
		}
	}
}

func (n *Node) prevSoft() paxos.SoftState {
	ss, _ := n.r.Status()
	return ss
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
		if synced, err := n.store.persist(batch); err != nil {
			n.log.Error().Err(err).Msg("cannot persist; stopping")
			n.die(fmt.Errorf("%w: %w", ErrStorage, err))
			return
		} else {
			n.stats.fsyncs.Add(uint64(synced))
		}
		for i := range batch {
			n.sendTo(batch[i].MessagesAfterPersist)
			n.apply(batch[i].Chosen)
		}
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
		Addr:       n.cfg.Peers[n.cfg.ID],
		Role:       si.Role.String(),
		Round:      si.Ballot.Round,
		BallotNode: uint64(si.Ballot.Node),
		MasterID:   uint64(si.Master),
		MasterAddr: n.cfg.Peers[uint64(si.Master)],
		Commit:     si.commit,
		FreeDisk:   freeDisk(n.cfg.Dir),
	}
	if si.Role == paxos.Master && !si.Ready {
		st.Role = "candidate" // elected, but its no-op is not chosen yet
	}
	n.mu.Lock()
	st.Applied = n.fsm.Applied()
	st.Digest = n.fsm.Digest()
	n.mu.Unlock()
	if st.Commit < st.Applied {
		st.Commit = st.Applied
	}
	return st
}
