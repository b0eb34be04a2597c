package node

// This file owns a removed replica's handoff of its large files' chunks.
// A replica that learns it was removed lingers, answering as an acceptor,
// until a majority of the configuration that removed it knows the removal;
// with large files it may also hold the last copy of a chunk (the others
// were lost, and the new members' fetchers need not know it: one that
// restarted or joined after the removal asks only its own members). So
// while it lingers its handoff goroutine (runHandoff, started by Run) makes
// sure that a majority of the new configuration's voters holds every chunk
// it holds of the large files its state refers to, putting on each voter
// what it lacks, and then tells the core (paxos SideStateHandedOff,
// through the engine's mail), which lets it leave only after that. A
// replica that learns of its removal only from a refused handshake (its
// core never saw the change) hands off the same way before it stops
// (handOffAndStop, on a goroutine of its own).

import (
	"context"
	"fmt"
	"time"

	"synod/filestore/chunks"
	"synod/paxos"
	"synod/wire"
)

// handoffEvery is how often a removed replica tries its handoff.
const handoffEvery = time.Second

// handoffBatch bounds the chunks one KindChunkHas asks about.
const handoffBatch = 4096

// runHandoff is the handoff's goroutine, until ctx ends.
func (n *Node) runHandoff(ctx context.Context) {
	t := time.NewTicker(handoffEvery)
	defer t.Stop()
	var done uint64 // the configuration slot handed off for
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		v := n.members()
		if _, member := v.conf.Member(paxos.NodeID(n.cfg.ID)); member || v.slot == 0 || v.slot <= done {
			continue
		}
		if err := n.handOff(ctx, v.conf); err != nil {
			n.log.Warn().Err(err).Msg("removed: handing this replica's chunks off to the new configuration; it stays until they are")
			continue
		}
		done = v.slot
		slot := v.slot
		n.log.Info().Uint64("config_slot", slot).Msg("removed: a majority of the new configuration holds every chunk this replica holds")
		n.mail.post(func(m *notices) { m.handedOff = max(m.handedOff, slot) })
	}
}

// handOffAndStop runs on a goroutine of its own on a replica that learned
// of its removal only from a peer refusing its handshake (it was cut off
// while the change was made, and its core does not know it): it asks that
// peer for the configuration in force, and stops the node only once, as a
// lingering removed replica does, a majority of that configuration's
// voters has refused it naming a disk that knows the slots up to that
// configuration (before that, members that have not learned the change
// may still need its vote for the slots before it: planted bug (m)) and
// it has handed its chunks off to them. It tries every handoffEvery until
// then or until the node stops.
func (n *Node) handOffAndStop(addr string) {
	ctx := n.runCtx
	if ctx == nil {
		ctx = context.Background()
	}
	t := time.NewTicker(handoffEvery)
	defer t.Stop()
	for {
		conf, rep, err := askConfiguration(ctx, n.cfg, addr)
		if err == nil {
			if _, member := conf.Member(paxos.NodeID(n.cfg.ID)); member {
				n.departing.Store(false) // back in: nothing to do
				return
			}
			err = n.refusedByMajority(conf, rep.ConfigSlot)
		}
		if err == nil {
			err = n.handOff(ctx, conf)
		}
		if err == nil {
			n.log.Info().Str("configuration", conf.String()).Msg("removed: a majority of the new configuration holds every chunk this replica holds")
			signal(n.removedCh)
			return
		}
		n.log.Warn().Err(err).Msg("removed while cut off: handing this replica's chunks off to the configuration in force before it stops")
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// refusedByMajority returns nil once a majority of conf's voters refused
// this replica naming a disk that knows the slots up to slot.
func (n *Node) refusedByMajority(conf paxos.Configuration, slot uint64) error {
	voters := conf.Voters()
	knows := 0
	for _, id := range voters {
		if d, ok := n.refusedBy.Load(uint64(id)); ok && d.(uint64) >= slot {
			knows++
		}
	}
	if knows <= len(voters)/2 {
		return fmt.Errorf("node: %d of %d voters of the configuration of slot %d are known to hold it on disk, %d needed", knows, len(voters), slot, len(voters)/2+1)
	}
	return nil
}

// handOff returns nil once a majority of conf's voters holds every chunk
// this replica holds of its state's large files, after putting on each
// voter that answers what it lacks.
func (n *Node) handOff(ctx context.Context, conf paxos.Configuration) error {
	sizes := map[chunks.Sum]int{}
	var sums []chunks.Sum
	for _, m := range n.largeManifests() {
		for i, s := range m.Chunks {
			sum := chunks.Sum(s)
			if _, seen := sizes[sum]; !seen && n.chunks.Has(sum) {
				sizes[sum] = m.ChunkLen(i)
				sums = append(sums, sum)
			}
		}
	}
	voters := conf.Voters()
	holders := 0
	var why error
	for _, id := range voters {
		m, _ := conf.Member(id)
		if m.Addr == "" {
			continue
		}
		if err := n.handTo(ctx, m.Addr, sums, sizes); err != nil {
			why = fmt.Errorf("replica %d: %w", id, err)
			continue
		}
		holders++
	}
	if holders <= len(voters)/2 {
		return fmt.Errorf("node: %d chunks on %d of %d voters, %d needed: %w", len(sums), holders, len(voters), len(voters)/2+1, why)
	}
	return nil
}

// handTo makes sure the replica at addr holds every chunk of sums: it asks
// which it holds and puts the rest.
func (n *Node) handTo(ctx context.Context, addr string, sums []chunks.Sum, sizes map[chunks.Sum]int) error {
	if len(sums) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, chunkFetchTimeout)
	defer cancel()
	cl, err := wire.DialClient(ctx, addr,
		wire.Hello{ClusterID: n.cfg.ClusterID, NodeID: n.cfg.ID, Role: wire.RoleClient},
		wire.Options{MaxFrame: n.cfg.MaxFrame, TLS: n.cfg.clientTLS()})
	if err != nil {
		return err
	}
	defer cl.Close()
	for start := 0; start < len(sums); start += handoffBatch {
		batch := sums[start:min(start+handoffBatch, len(sums))]
		ask := wire.ChunkHas{Sums: make([][]byte, len(batch))}
		for i := range batch {
			ask.Sums[i] = batch[i][:]
		}
		var held wire.ChunkHeld
		if err := cl.Call(ctx, wire.KindChunkHas, &ask, &held); err != nil {
			return err
		}
		if held.Code != wire.CodeOK || len(held.Held) != len(batch) {
			return fmt.Errorf("chunk question: %s %s", held.Code, held.Msg)
		}
		for i, sum := range batch {
			if held.Held[i] {
				continue
			}
			data, err := n.chunks.Read(sum, sizes[sum])
			if err != nil {
				return fmt.Errorf("reading chunk %s to hand it off: %w", sum, err)
			}
			var ack wire.ChunkAck
			if err := cl.Call(ctx, wire.KindChunkPut, &wire.ChunkPut{Sum: sum[:], Data: data}, &ack); err != nil {
				return err
			}
			if ack.Code != wire.CodeOK {
				return fmt.Errorf("chunk put: %s %s", ack.Code, ack.Msg)
			}
		}
	}
	return nil
}
