package node

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"synod/filestore"
	"synod/filestore/wal"
	"synod/paxos"
)

// storage is a replica's data directory: IDENTITY, the acceptor file, the
// learner marker, the log and the snapshots. It converts between paxos and
// wal types; nothing else in the node writes the disk.
type storage struct {
	fsyncDelay    time.Duration // test knob: a slow disk
	dir           string
	snapDir       string
	log           *wal.Log
	recs          []wal.Record // reused between batches
	lastCommitted uint64       // the last commit hint written
}

// openStorage opens (or creates) dir for replica id of cluster and recovers
// the acceptor's hard state and the state machine (newest snapshot) from it.
// A directory without IDENTITY is new or wiped: it is marked fresh before
// anything else is written, so the replica does not vote until it knows
// which (DESIGN.md, "Files on disk").
func openStorage(dir, cluster string, id uint64, repair bool, segmentBytes int64, fsmOpts filestore.Options, lg zerolog.Logger) (*storage, paxos.HardState, *filestore.Machine, error) {
	var hs paxos.HardState
	fail := func(err error) (*storage, paxos.HardState, *filestore.Machine, error) {
		return nil, hs, nil, err
	}
	snapDir := filepath.Join(dir, "snap")
	if err := os.MkdirAll(snapDir, 0o755); err != nil {
		return fail(fmt.Errorf("node: create data dir: %w", err))
	}
	switch err := wal.CheckIdentity(dir, cluster, id); {
	case errors.Is(err, wal.ErrNoIdentity):
		if err := wal.WriteLearner(dir, wal.LearnerFresh); err != nil {
			return fail(err)
		}
		if err := wal.CreateIdentity(dir, cluster, id); err != nil {
			return fail(err)
		}
	case err != nil:
		return fail(err)
	}
	promise, err := wal.ReadAcceptor(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fail(err)
	}
	hs.Promise = paxos.Ballot{Round: promise.Round, Node: paxos.NodeID(promise.Node)}
	fsm, meta, err := filestore.LoadLatestSnapshot(snapDir, fsmOpts)
	switch {
	case errors.Is(err, filestore.ErrNoSnapshot):
		fsm = filestore.New(fsmOpts)
	case err != nil:
		return fail(err)
	default:
		hs.Applied = meta.Slot
	}
	opts := wal.DefaultOptions()
	opts.Repair = repair
	opts.SegmentBytes = segmentBytes
	l, rec, err := wal.Open(filepath.Join(dir, "log"), opts, func(r wal.Record) error {
		switch r.Kind {
		case wal.KindAccept:
			hs.Entries = append(hs.Entries, paxos.Entry{
				Slot:   r.Slot,
				Ballot: paxos.Ballot{Round: r.Ballot.Round, Node: paxos.NodeID(r.Ballot.Node)},
				Value:  paxos.Value{Kind: valueKindFromWAL(r.Value), Cmds: r.Cmds},
			})
		case wal.KindCommit:
			if r.Slot > hs.Committed {
				hs.Committed = r.Slot
			}
		}
		return nil
	})
	if err != nil {
		return fail(err)
	}
	if rec.TornFile != "" {
		lg.Warn().Str("file", rec.TornFile).Int64("bytes", rec.TornBytes).Msg("cut an unacknowledged torn batch off the log")
	}
	if rec.Repaired {
		// The cut log may have held votes this replica gave: it must not
		// vote until a phase 1 without it has run (DESIGN.md, trap 7).
		lg.Warn().Str("damage", rec.Damage.Error()).Int64("dropped_bytes", rec.DroppedBytes).Msg("repaired a corrupt log: rejoining as a learner")
		if err := wal.WriteLearner(dir, wal.LearnerWiped); err != nil {
			l.Close()
			return fail(err)
		}
	}
	marker, err := wal.ReadLearner(dir)
	if err != nil {
		l.Close()
		return fail(err)
	}
	switch marker {
	case wal.LearnerFresh:
		hs.Membership = paxos.Fresh
	case wal.LearnerWiped:
		hs.Membership = paxos.Learner
	}
	return &storage{dir: dir, snapDir: snapDir, log: l, lastCommitted: hs.Committed}, hs, fsm, nil
}

func valueKindFromWAL(k wal.ValueKind) paxos.ValueKind {
	switch k {
	case wal.ValueNoop:
		return paxos.ValueNoop
	case wal.ValueConfig:
		return paxos.ValueConfig
	}
	return paxos.ValueCmds
}

func valueKindToWAL(k paxos.ValueKind) wal.ValueKind {
	switch k {
	case paxos.ValueNoop:
		return wal.ValueNoop
	case paxos.ValueConfig:
		return wal.ValueConfig
	}
	return wal.ValueCmds
}

// persist makes the durable parts of a group of Readies durable: the newest
// promise (one atomic file replace), then every accepted entry and the
// commit hint as one log batch with one fsync, then the learner marker. It
// returns how many fsyncs that took.
func (s *storage) persist(rds []paxos.Ready) (int, error) {
	var promise *paxos.Ballot
	var membership *paxos.Membership
	s.recs = s.recs[:0]
	committed := s.lastCommitted
	for i := range rds {
		rd := &rds[i]
		if rd.PromiseChanged {
			promise = &rd.Promise
		}
		if rd.MembershipChanged {
			membership = &rd.Membership
		}
		for _, e := range rd.Accepted {
			cmds := e.Value.Cmds
			if e.Value.Kind == paxos.ValueNoop {
				cmds = nil
			}
			s.recs = append(s.recs, wal.Record{
				Kind:   wal.KindAccept,
				Slot:   e.Slot,
				Ballot: wal.Ballot{Round: e.Ballot.Round, Node: uint64(e.Ballot.Node)},
				Value:  valueKindToWAL(e.Value.Kind),
				Cmds:   cmds,
			})
		}
		if rd.Committed > committed {
			committed = rd.Committed
		}
	}
	synced := 0
	if promise != nil {
		if err := wal.WriteAcceptor(s.dir, wal.Ballot{Round: promise.Round, Node: uint64(promise.Node)}); err != nil {
			return synced, err
		}
		synced++
	}
	// The commit hint rides along with entries; alone it is not worth an fsync.
	if len(s.recs) > 0 && committed > s.lastCommitted {
		s.recs = append(s.recs, wal.Record{Kind: wal.KindCommit, Slot: committed})
	}
	if len(s.recs) > 0 {
		if s.fsyncDelay > 0 {
			time.Sleep(s.fsyncDelay)
		}
		if err := s.log.Append(s.recs); err != nil {
			return synced, err
		}
		s.lastCommitted = max(s.lastCommitted, committed)
		synced++
	}
	if membership != nil {
		var err error
		switch *membership {
		case paxos.Voter:
			err = wal.RemoveLearner(s.dir)
		case paxos.Learner:
			err = wal.WriteLearner(s.dir, wal.LearnerWiped)
		case paxos.Fresh:
			err = wal.WriteLearner(s.dir, wal.LearnerFresh)
		}
		if err != nil {
			return synced, err
		}
		synced++
	}
	return synced, nil
}

// truncateBefore deletes log segments wholly below slot.
func (s *storage) truncateBefore(slot uint64) error {
	return s.log.TruncateBefore(slot)
}

// probe checks the disk takes a durable write again.
func (s *storage) probe(promise paxos.Ballot) error {
	return wal.WriteAcceptor(s.dir, wal.Ballot{Round: promise.Round, Node: uint64(promise.Node)})
}

// close closes the log; closing twice returns the log's ErrClosed.
func (s *storage) close() error { return s.log.Close() }
