package node

import (
	"fmt"

	"synod/filestore"
	"synod/paxos"
)

// This file owns the node's side of membership (paxos/RECONFIG.md): the
// configuration its state machine applied, which snapshots carry. It runs
// on the persister goroutine (apply) and the snapshot goroutines, under
// n.mu.

// restore is a snapshot install the loop hands to the core.
type restore struct {
	slot     uint64
	conf     paxos.Configuration
	confSlot uint64
}

// applyConfigLocked records the configuration chosen at slot. n.mu is held.
func (n *Node) applyConfigLocked(slot uint64, v paxos.Value) {
	c, err := paxos.ParseConfiguration(v)
	if err != nil || slot <= n.confSlot {
		return // the core ignores a value that does not decode, alike
	}
	n.conf, n.confSlot = c, slot
}

// snapshotMetaLocked describes a snapshot of slot: the configuration in
// force there. n.mu is held.
func (n *Node) snapshotMetaLocked(slot uint64) filestore.SnapshotMeta {
	meta := filestore.SnapshotMeta{Slot: slot, ConfigSlot: n.confSlot, Config: n.conf.Value().Cmds}
	for _, id := range n.conf.Voters() {
		meta.Members = append(meta.Members, uint64(id))
	}
	return meta
}

// configFromMeta returns the configuration a snapshot carries, the zero one
// for a snapshot of an older format.
func configFromMeta(meta filestore.SnapshotMeta) (paxos.Configuration, uint64, error) {
	if len(meta.Config) == 0 {
		return paxos.Configuration{}, 0, nil
	}
	c, err := paxos.ParseConfiguration(paxos.Value{Kind: paxos.ValueConfig, Cmds: meta.Config})
	if err != nil {
		return c, 0, fmt.Errorf("node: snapshot of slot %d: %w", meta.Slot, err)
	}
	return c, meta.ConfigSlot, nil
}
