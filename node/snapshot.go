package node

// This file owns snapshots: the applier decides one is due and clones the
// state machine (maybeSnapshot), a snapshot goroutine writes and fsyncs it,
// then asks the engine to compact the core and the persister to truncate
// the log; the server serves snapshot chunks to peers; a fetch goroutine
// copies a peer's snapshot, validates it and hands it to the applier to
// install. Only the applier changes the state machine.

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"synod/filestore"
	"synod/filestore/wal"
	"synod/paxos"
	"synod/wire"
)

// keepSnapshots is how many snapshot files a replica keeps: the newest, and
// one more so a transfer in progress does not lose its file to pruning.
const keepSnapshots = 2

// maybeSnapshot, on the applier, starts a snapshot every SnapshotEvery
// applied commands. The applier is the state machine's one writer, so it
// clones it without the lock; writing and fsyncing happen on a goroutine
// of their own, after which the core compacts its log and the persister
// truncates the log files, both but for SnapshotWindow slots.
func (n *Node) maybeSnapshot(ctx context.Context) {
	a := &n.app
	if a.fsm.Applied() < a.snapIndex+n.cfg.SnapshotEvery || !n.snapshotting.CompareAndSwap(false, true) {
		return
	}
	clone := a.fsm.Clone()
	slot := a.slot
	meta := a.snapshotMeta(slot)
	a.snapIndex = clone.Applied()
	snapDir := filepath.Join(n.cfg.Dir, "snap")
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer n.snapshotting.Store(false)
		start := time.Now()
		path, err := filestore.SaveSnapshot(snapDir, clone, meta)
		if err != nil {
			n.met.snapSaveFailed.Inc()
			n.log.Warn().Err(err).Msg("snapshot failed; the log keeps growing until one succeeds")
			return
		}
		n.met.snapSave.Observe(time.Since(start).Seconds())
		if err := filestore.PruneSnapshots(snapDir, keepSnapshots); err != nil {
			n.log.Warn().Err(err).Msg("pruning snapshots")
		}
		n.log.Info().Str("file", filepath.Base(path)).Uint64("slot", slot).Uint64("index", clone.Applied()).
			Dur("took", time.Since(start)).Msg("snapshot written")
		if slot <= n.cfg.SnapshotWindow || ctx.Err() != nil {
			return
		}
		upTo := slot - n.cfg.SnapshotWindow
		n.mail.post(func(m *notices) { m.compact = max(m.compact, upTo) })
		n.trunc.ask(upTo + 1)
	}()
}

// snapshotMeta describes a snapshot of slot: the configuration in force
// there. The applier calls it.
func (a *applier) snapshotMeta(slot uint64) filestore.SnapshotMeta {
	meta := filestore.SnapshotMeta{Slot: slot, ConfigSlot: a.confSlot, Config: a.conf.Value().Cmds}
	for _, id := range a.conf.Voters() {
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

// serveSnapshotChunk answers a peer's request for a piece of a snapshot.
func (n *Node) serveSnapshotChunk(req wire.SnapshotAck) wire.SnapshotChunk {
	dir := filepath.Join(n.cfg.Dir, "snap")
	slot := req.Slot
	if slot == 0 {
		slots, err := filestore.ListSnapshots(dir)
		if err != nil || len(slots) == 0 {
			return wire.SnapshotChunk{Err: "no snapshot"}
		}
		slot = slots[len(slots)-1]
	}
	f, err := os.Open(filestore.SnapshotPath(dir, slot))
	if err != nil {
		return wire.SnapshotChunk{Err: "snapshot gone"}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || req.Offset > uint64(st.Size()) {
		return wire.SnapshotChunk{Err: "bad offset"}
	}
	buf := make([]byte, min(uint64(n.cfg.SnapshotChunk), uint64(st.Size())-req.Offset))
	if _, err := f.ReadAt(buf, int64(req.Offset)); err != nil && err != io.EOF {
		return wire.SnapshotChunk{Err: "read failed"}
	}
	return wire.SnapshotChunk{Slot: slot, Offset: req.Offset, Total: uint64(st.Size()), Data: buf,
		CRC: wal.Checksum(buf)}
}

// fetchSnapshot copies a peer's newest snapshot in checksummed chunks into
// a part file, resuming from where it got after a broken connection, then
// installs it unless this replica already applied past it.
func (n *Node) fetchSnapshot(ctx context.Context, from uint64) {
	start := time.Now()
	defer func() { n.met.snapFetch.Observe(time.Since(start).Seconds()) }()
	dir := filepath.Join(n.cfg.Dir, "snap")
	part := filepath.Join(dir, "incoming.part")
	f, err := os.OpenFile(part, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		n.log.Warn().Err(err).Msg("cannot fetch a snapshot")
		return
	}
	defer os.Remove(part)
	defer f.Close()
	var slot, offset uint64
	reset := func() {
		slot, offset = 0, 0
		f.Truncate(0)
	}
	backoff := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
		}
		if attempt > 50 {
			n.log.Warn().Uint64("from", from).Msg("giving up on a snapshot transfer; the next fetch retries")
			return
		}
		cl, err := wire.DialClient(ctx, n.addrOf(from),
			wire.Hello{ClusterID: n.cfg.ClusterID, NodeID: n.cfg.ID, Role: wire.RoleClient},
			wire.Options{MaxFrame: n.cfg.MaxFrame, TLS: n.cfg.clientTLS()})
		if err != nil {
			continue
		}
		done, err := n.fetchChunks(ctx, cl, f, &slot, &offset, reset)
		cl.Close()
		if err != nil {
			n.log.Info().Err(err).Uint64("from", from).Uint64("slot", slot).Uint64("offset", offset).
				Msg("snapshot transfer interrupted; resuming")
			continue
		}
		if done {
			break
		}
	}
	if err := f.Sync(); err != nil {
		n.log.Warn().Err(err).Msg("snapshot transfer: sync")
		return
	}
	n.installSnapshot(ctx, part)
}

// fetchChunks requests chunks until the file is complete (true) or the
// connection fails.
func (n *Node) fetchChunks(ctx context.Context, cl *wire.Client, f *os.File, slot, offset *uint64, reset func()) (bool, error) {
	for {
		var ch wire.SnapshotChunk
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := cl.Call(cctx, wire.KindSnapshotAck, &wire.SnapshotAck{Slot: *slot, Offset: *offset}, &ch)
		cancel()
		if err != nil {
			return false, err
		}
		switch {
		case ch.Err != "" && *slot != 0:
			reset() // that snapshot was pruned: start over with the newest
			continue
		case ch.Err != "":
			return false, fmt.Errorf("peer has no snapshot: %s", ch.Err)
		case *slot == 0:
			*slot = ch.Slot
		}
		if ch.Slot != *slot || ch.Offset != *offset || wal.Checksum(ch.Data) != ch.CRC {
			reset()
			return false, fmt.Errorf("bad chunk at %d of snapshot %d", ch.Offset, ch.Slot)
		}
		if _, err := f.WriteAt(ch.Data, int64(*offset)); err != nil {
			return false, err
		}
		*offset += uint64(len(ch.Data))
		if *offset >= ch.Total {
			return true, nil
		}
		if len(ch.Data) == 0 {
			return false, fmt.Errorf("empty chunk")
		}
	}
}

// installSnapshot validates a received snapshot file, keeps it, and hands
// it to the applier, which installs it if it is ahead.
func (n *Node) installSnapshot(ctx context.Context, part string) {
	fsm, meta, err := filestore.LoadSnapshot(part, filestore.Options{MaxValue: n.cfg.MaxValue})
	if err != nil {
		n.log.Warn().Err(err).Msg("received snapshot is damaged; the next fetch retries")
		return
	}
	conf, confSlot, err := configFromMeta(meta)
	if err != nil {
		n.log.Warn().Err(err).Msg("received snapshot has a bad configuration; the next fetch retries")
		return
	}
	dir := filepath.Dir(part)
	if err := os.Rename(part, filestore.SnapshotPath(dir, meta.Slot)); err != nil {
		n.log.Warn().Err(err).Msg("keeping the received snapshot")
		return
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	select {
	case n.applyQ <- applyWork{install: &fetched{fsm: fsm, meta: meta, conf: conf, confSlot: confSlot}}:
	case <-ctx.Done():
	}
}
