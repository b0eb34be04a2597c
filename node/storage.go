package node

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"synod/filestore/wal"
	"synod/paxos"
)

// storage is a replica's data directory: IDENTITY, the acceptor file and the
// log. It converts between paxos and wal types; nothing else in the node
// touches the disk.
type storage struct {
	dir           string
	log           *wal.Log
	recs          []wal.Record // reused between batches
	lastCommitted uint64       // the last commit hint written
}

// openStorage opens (or creates) dir for replica id of cluster and recovers
// the acceptor's hard state from it.
func openStorage(dir, cluster string, id uint64, repair bool) (*storage, paxos.HardState, wal.Recovery, error) {
	var hs paxos.HardState
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, hs, wal.Recovery{}, fmt.Errorf("node: create data dir: %w", err)
	}
	switch err := wal.CheckIdentity(dir, cluster, id); {
	case errors.Is(err, wal.ErrNoIdentity):
		if err := wal.CreateIdentity(dir, cluster, id); err != nil {
			return nil, hs, wal.Recovery{}, err
		}
	case err != nil:
		return nil, hs, wal.Recovery{}, err
	}
	promise, err := wal.ReadAcceptor(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, hs, wal.Recovery{}, err
	}
	hs.Promise = paxos.Ballot{Round: promise.Round, Node: paxos.NodeID(promise.Node)}
	opts := wal.DefaultOptions()
	opts.Repair = repair
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
		return nil, hs, rec, err
	}
	return &storage{dir: dir, log: l, lastCommitted: hs.Committed}, hs, rec, nil
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
// commit hint as one log batch with one fsync. It returns how many fsyncs
// that took.
func (s *storage) persist(rds []paxos.Ready) (int, error) {
	var promise *paxos.Ballot
	s.recs = s.recs[:0]
	committed := s.lastCommitted
	for i := range rds {
		rd := &rds[i]
		if rd.PromiseChanged {
			promise = &rd.Promise
		}
		for _, e := range rd.Accepted {
			cmds := e.Value.Cmds
			if e.Value.Kind != paxos.ValueCmds {
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
	if promise != nil {
		if err := wal.WriteAcceptor(s.dir, wal.Ballot{Round: promise.Round, Node: uint64(promise.Node)}); err != nil {
			return 0, err
		}
	}
	// The commit hint rides along with entries; alone it is not worth an fsync.
	if len(s.recs) > 0 && committed > s.lastCommitted {
		s.recs = append(s.recs, wal.Record{Kind: wal.KindCommit, Slot: committed})
		s.lastCommitted = committed
	}
	synced := 0
	if promise != nil {
		synced++
	}
	if len(s.recs) == 0 {
		return synced, nil
	}
	return synced + 1, s.log.Append(s.recs)
}

func (s *storage) close() error { return s.log.Close() }
