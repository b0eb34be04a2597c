package node

import (
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"time"

	"synod/filestore"
	"synod/wire"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// keepSnapshots is how many snapshot files a replica keeps: the newest, and
// one more so a transfer in progress does not lose its file to pruning.
const keepSnapshots = 2

// maybeSnapshot writes a snapshot every SnapshotEvery applied commands, in
// the background, then compacts the log behind it but for SnapshotWindow
// slots. The state is cloned under the lock; writing and fsyncing happen
// without it.
func (n *Node) maybeSnapshot(ctx context.Context) {
	n.mu.RLock()
	due := n.fsm.Applied() >= n.snapIndex+n.cfg.SnapshotEvery
	n.mu.RUnlock()
	if !due || !n.snapshotting.CompareAndSwap(false, true) {
		return
	}
	n.mu.Lock()
	clone := n.fsm.Clone()
	slot := n.appliedSlot
	meta := n.snapshotMetaLocked(slot)
	n.snapIndex = clone.Applied()
	n.mu.Unlock()
	store := n.store
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer n.snapshotting.Store(false)
		start := time.Now()
		path, err := filestore.SaveSnapshot(store.snapDir, clone, meta)
		if err != nil {
			n.log.Warn().Err(err).Msg("snapshot failed; the log keeps growing until one succeeds")
			return
		}
		if err := filestore.PruneSnapshots(store.snapDir, keepSnapshots); err != nil {
			n.log.Warn().Err(err).Msg("pruning snapshots")
		}
		n.log.Info().Str("file", filepath.Base(path)).Uint64("slot", slot).Uint64("index", clone.Applied()).
			Dur("took", time.Since(start)).Msg("snapshot written")
		if slot <= n.cfg.SnapshotWindow {
			return
		}
		upTo := slot - n.cfg.SnapshotWindow
		select {
		case n.compactQ <- upTo:
		case <-ctx.Done():
			return
		}
		if err := store.truncateBefore(upTo + 1); err != nil {
			n.log.Warn().Err(err).Msg("truncating the log")
		}
	}()
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
		CRC: crc32.Checksum(buf, castagnoli)}
}

// fetchSnapshot copies a peer's newest snapshot in checksummed chunks into
// a part file, resuming from where it got after a broken connection, then
// installs it unless this replica already applied past it.
func (n *Node) fetchSnapshot(ctx context.Context, from uint64) {
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
			wire.Options{MaxFrame: n.cfg.MaxFrame})
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
	n.installSnapshot(part)
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
		if ch.Slot != *slot || ch.Offset != *offset || crc32.Checksum(ch.Data, castagnoli) != ch.CRC {
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

// installSnapshot validates a received snapshot file, keeps it, and swaps
// the state machine for it if it is ahead: a snapshot never rolls a replica
// back.
func (n *Node) installSnapshot(part string) {
	fsm, meta, err := filestore.LoadSnapshot(part, filestore.Options{MaxValue: n.cfg.MaxValue})
	if err != nil {
		n.log.Warn().Err(err).Msg("received snapshot is damaged; the next fetch retries")
		return
	}
	dir := filepath.Dir(part)
	final := filestore.SnapshotPath(dir, meta.Slot)
	if err := os.Rename(part, final); err != nil {
		n.log.Warn().Err(err).Msg("keeping the received snapshot")
		return
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	conf, confSlot, confErr := configFromMeta(meta)
	if confErr != nil {
		n.log.Warn().Err(confErr).Msg("received snapshot has a bad configuration; the next fetch retries")
		return
	}
	n.mu.Lock()
	installed := meta.Slot > n.appliedSlot
	if installed {
		n.fsm = fsm
		n.appliedSlot = meta.Slot
		n.snapIndex = fsm.Applied()
		if confSlot >= n.confSlot && len(conf.Members) > 0 {
			n.conf, n.confSlot = conf, confSlot
		}
		conf, confSlot = n.conf, n.confSlot
	}
	ready := n.readyReadsLocked()
	n.mu.Unlock()
	for _, rq := range ready {
		n.serveRead(rq)
	}
	if !installed {
		return
	}
	n.log.Info().Uint64("slot", meta.Slot).Uint64("index", fsm.Applied()).Msg("installed a snapshot from a peer")
	n.restoreQ <- restore{slot: meta.Slot, conf: conf, confSlot: confSlot}
}
