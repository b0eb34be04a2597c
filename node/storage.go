package node

// This file owns the replica's data directory: IDENTITY, the acceptor file
// (promise and membership), the log and the snapshots. It converts between
// paxos and wal types and decides, at start, whether durable state was lost.
// openStorage and probe run in New, and in Run while no engine runs;
// persist and truncateBefore on the persister goroutine (persister.go);
// nothing else in the node writes the log or the acceptor file. Snapshot
// files are written by snapshot.go's goroutines, each to a file of its own.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/rs/zerolog"

	"synod/filestore"
	"synod/filestore/wal"
	"synod/paxos"
)

type storage struct {
	dir           string
	snapDir       string
	log           *wal.Log
	recs          []wal.Record // reused between batches
	lastCommitted uint64       // the last commit hint written
	acceptor      wal.AcceptorState
}

// openStorage opens (or creates) dir for replica id of cluster and recovers
// the acceptor's hard state and the state machine (newest snapshot) from it.
// A directory without IDENTITY is new or wiped: it is marked fresh before
// anything else is written, so the replica does not vote until it knows
// which (DESIGN.md, "Files on disk"). A directory that has an IDENTITY but
// lacks any other piece of durable state (the acceptor file, the log or a
// segment of it, the snapshot the log's truncation relied on) has lost
// state: the replica rejoins as a learner (trap 11), and the log says what
// was missing.
//
// join, for a replica joining a running cluster on a new directory, is the
// configuration it joins: it is kept in the JOIN file, and a replica that
// joins as a learner starts as a voter locally (it never voted, so it has
// nothing to forget), while one the configuration names a voter must have
// lost its directory and asks its peers like any new directory.
func openStorage(dir, cluster string, id uint64, join *joinInfo, opts wal.Options, fsmOpts filestore.Options, lg zerolog.Logger) (*storage, paxos.HardState, *filestore.Machine, error) {
	var hs paxos.HardState
	fail := func(err error) (*storage, paxos.HardState, *filestore.Machine, error) {
		return nil, hs, nil, err
	}
	snapDir := filepath.Join(dir, "snap")
	if err := os.MkdirAll(snapDir, 0o755); err != nil {
		return fail(fmt.Errorf("node: create data dir: %w", err))
	}
	newDir := false
	switch err := wal.CheckIdentity(dir, cluster, id); {
	case errors.Is(err, wal.ErrNoIdentity):
		membership := wal.MemberFresh
		if join != nil {
			if err := wal.WriteJoin(dir, join.slot, join.conf.Value().Cmds); err != nil {
				return fail(err)
			}
			if !join.conf.IsVoter(paxos.NodeID(id)) {
				membership = wal.MemberVoter
			}
		}
		// The acceptor file comes first: a directory with an IDENTITY
		// always has one, so a missing one is lost state.
		if err := wal.WriteAcceptor(dir, wal.AcceptorState{Membership: membership}); err != nil {
			return fail(err)
		}
		if err := wal.CreateIdentity(dir, cluster, id); err != nil {
			return fail(err)
		}
		newDir = true
	case err != nil:
		return fail(err)
	}
	var lost []string
	acc, err := wal.ReadAcceptor(dir)
	read := acc
	switch {
	case errors.Is(err, fs.ErrNotExist):
		lost = append(lost, "the acceptor file (the promise)")
	case err != nil:
		return fail(err)
	case acc.Membership == "":
		// Format 1: the membership was the LEARNER marker.
		marker, err := wal.ReadLearner(dir)
		if err != nil {
			return fail(err)
		}
		acc.Membership = map[string]string{"": wal.MemberVoter, wal.LearnerFresh: wal.MemberFresh, wal.LearnerWiped: wal.MemberLearner}[marker]
	}
	hs.Promise = paxos.Ballot{Round: acc.Promise.Round, Node: paxos.NodeID(acc.Promise.Node)}
	fsm, meta, err := filestore.LoadLatestSnapshot(snapDir, fsmOpts)
	switch {
	case errors.Is(err, filestore.ErrNoSnapshot):
		fsm = filestore.New(fsmOpts)
	case err != nil:
		return fail(err)
	default:
		hs.Applied = meta.Slot
		if hs.Config, hs.ConfigSlot, err = configFromMeta(meta); err != nil {
			return fail(err)
		}
	}
	// A replica that joined knows the configuration it joined until a
	// snapshot carries a newer one.
	switch slot, cmds, err := wal.ReadJoin(dir); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fail(err)
	case slot >= hs.ConfigSlot || len(hs.Config.Members) == 0:
		c, err := paxos.ParseConfiguration(paxos.Value{Kind: paxos.ValueConfig, Cmds: cmds})
		if err != nil {
			return fail(fmt.Errorf("node: %s/JOIN: %w", dir, err))
		}
		hs.Config, hs.ConfigSlot = c, slot
	}
	l, rec, err := wal.Open(filepath.Join(dir, "log"), opts, func(r wal.Record) error {
		switch r.Kind {
		case wal.KindAccept:
			hs.Entries = append(hs.Entries, paxos.Entry{
				Slot:   r.Slot,
				Ballot: paxos.Ballot{Round: r.Ballot.Round, Node: paxos.NodeID(r.Ballot.Node)},
				Value:  paxos.Value{Kind: r.Value, Cmds: r.Cmds},
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
	if rec.Created && !newDir {
		lost = append(lost, "the log")
	}
	lost = append(lost, rec.Missing...)
	if rec.Floor > 1 && hs.Applied+1 < rec.Floor {
		lost = append(lost, fmt.Sprintf("the snapshot of slots below %d, which the log was truncated behind", rec.Floor))
		// The state machine cannot be rebuilt from a log with a hole:
		// start empty, and let catch-up bring a snapshot.
		fsm, hs.Applied, hs.Entries, hs.Committed = filestore.New(fsmOpts), 0, nil, 0
	}
	st := &storage{dir: dir, snapDir: snapDir, log: l, lastCommitted: hs.Committed, acceptor: read}
	switch {
	case rec.Repaired:
		// The cut log may have held votes this replica gave: it must not
		// vote until a phase 1 without it has run (DESIGN.md, trap 7).
		lg.Warn().Str("damage", rec.Damage.Error()).Int64("dropped_bytes", rec.DroppedBytes).Msg("repaired a corrupt log: rejoining as a learner")
		acc.Membership = wal.MemberLearner
	case len(lost) > 0:
		lg.Error().Strs("missing", lost).Msg("durable state is missing: this replica may have forgotten votes and promises, so it rejoins as a learner")
		acc.Membership = wal.MemberLearner
	case acc.Membership == "":
		acc.Membership = wal.MemberVoter
	}
	if acc != read {
		if err := st.writeAcceptor(acc); err != nil {
			l.Close()
			return fail(err)
		}
	}
	wal.RemoveLearner(dir) // format 1's marker, migrated above
	switch acc.Membership {
	case wal.MemberFresh:
		hs.Membership = paxos.Fresh
	case wal.MemberLearner:
		hs.Membership = paxos.Learner
	}
	return st, hs, fsm, nil
}

func (s *storage) writeAcceptor(acc wal.AcceptorState) error {
	if err := wal.WriteAcceptor(s.dir, acc); err != nil {
		return err
	}
	s.acceptor = acc
	return nil
}

// persist makes the durable parts of a group of Readies durable: the newest
// promise and membership (one atomic file replace), then every accepted
// entry and the commit hint as one log batch with one fsync. It returns how
// many fsyncs that took.
func (s *storage) persist(rds []paxos.Ready) (int, error) {
	acc := s.acceptor
	s.recs = s.recs[:0]
	committed := s.lastCommitted
	alone := false // a commit hint to write even without entries (Ready.PersistCommit)
	for i := range rds {
		rd := &rds[i]
		alone = alone || rd.PersistCommit
		if rd.PromiseChanged {
			acc.Promise = wal.Ballot{Round: rd.Promise.Round, Node: uint64(rd.Promise.Node)}
		}
		if rd.MembershipChanged {
			acc.Membership = membershipToWAL(rd.Membership)
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
				Value:  e.Value.Kind,
				Cmds:   cmds,
			})
		}
		if rd.Committed > committed {
			committed = rd.Committed
		}
	}
	synced := 0
	if acc != s.acceptor {
		if err := s.writeAcceptor(acc); err != nil {
			return synced, err
		}
		synced++
	}
	// The commit hint rides along with entries; alone it is not worth an fsync.
	if (len(s.recs) > 0 || alone) && committed > s.lastCommitted {
		s.recs = append(s.recs, wal.Record{Kind: wal.KindCommit, Slot: committed})
	}
	if len(s.recs) > 0 {
		if err := s.log.Append(s.recs); err != nil {
			return synced, err
		}
		s.lastCommitted = max(s.lastCommitted, committed)
		synced++
	}
	return synced, nil
}

func membershipToWAL(m paxos.Membership) string {
	switch m {
	case paxos.Fresh:
		return wal.MemberFresh
	case paxos.Learner:
		return wal.MemberLearner
	}
	return wal.MemberVoter
}

// truncateBefore deletes log segments wholly below slot.
func (s *storage) truncateBefore(slot uint64) error {
	return s.log.TruncateBefore(slot)
}

// probe checks the disk takes a durable write again.
func (s *storage) probe() error { return s.writeAcceptor(s.acceptor) }

// close closes the log; closing twice returns the log's ErrClosed.
func (s *storage) close() error { return s.log.Close() }
