package node

// This file owns the chunk collector: removing chunk files of large files
// that nothing can need any more. It runs on a goroutine of its own
// (runChunkGC, started by Run), never on the applier's; the reference
// book it reads (chunkRefs) is written by the persister goroutine (log
// entries as they are persisted), the applier goroutine (releasing them as
// their slots are applied) and the backup streams' goroutines (backup.go).
//
// A chunk may be removed only if no chosen or choosable write can need it.
// A pass first gathers every chunk that is referenced:
//
//  1. by a log entry this replica persisted (accepted, or learned chosen)
//     whose slot it has not applied yet: such an entry may be chosen, or
//     is, and its file must then be readable;
//  2. by a backup being streamed from this replica: its clone is an older
//     state, whose files the stream reads;
//  3. by the applied state: every large file's manifest (a chunk shared by
//     several files counts once);
//  4. by the snapshots kept in <dir>/snap: a peer may install one, and an
//     operator may restore one.
//
// Log entries and backups are read before the state, and the applier
// releases a slot's entries only after the state holds the slot, so an
// entry applied during a pass is seen in one or the other.
//
// Then a chunk is removed only if it is in none of those, its file was
// last stored (Put, which also refreshes a chunk already present) more
// than the grace ago, and this collector has seen it unreferenced, pass
// after pass, for the grace too. The first rule covers uploads in flight:
// the proxy stores every chunk before it proposes the manifest, so a
// chunk stored within the grace may still be named by a write not yet
// proposed (or held through a failover). The second covers what the four
// sources above can miss for a moment: a backup whose clone was taken just
// before its chunks were pinned, a range read that read its manifest just
// before the file was deleted, a snapshot being written from an older
// clone, a peer streaming a backup that fetches a chunk it lacks from
// here. Each of those must finish within the grace (default 1 h). The
// check of the file's age and its unlink are one step against Put
// (chunks.Store.RemoveIfOlder), so a chunk an upload was just told is
// stored is never removed under it. Removals are paced (gcPause apart), so
// a large deletion does not load the disk in one burst.

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"synod/filestore"
	"synod/filestore/chunks"
	"synod/paxos"
	"synod/wire"
)

// gcPause is the time between two removals of one pass: at most 100
// chunks a second.
const gcPause = 10 * time.Millisecond

// chunkRefs are the references the state does not hold yet or any more:
// log entries not yet applied, by slot, and backups being streamed, by
// stream.
type chunkRefs struct {
	mu      sync.Mutex
	bySlot  map[uint64][]chunks.Sum
	backups map[uint64][]chunks.Sum
}

// pinEntries records the chunks the large-file writes of entries name,
// under their slots. The persister calls it before the entries are
// persisted, so before they can be applied.
func (r *chunkRefs) pinEntries(entries []paxos.Entry) {
	for _, e := range entries {
		if e.Value.Kind != paxos.ValueCmds {
			continue
		}
		var sums []chunks.Sum
		for _, cmd := range e.Value.Cmds {
			sums = append(sums, commandChunks(cmd)...)
		}
		if len(sums) == 0 {
			continue
		}
		r.mu.Lock()
		if r.bySlot == nil {
			r.bySlot = map[uint64][]chunks.Sum{}
		}
		r.bySlot[e.Slot] = append(r.bySlot[e.Slot], sums...)
		r.mu.Unlock()
	}
}

// releaseThrough forgets the entries of every slot up to slot: the state
// holds them now (or a snapshot that covers them does), so whatever they
// wrote is referenced from there, and what another value of one of those
// slots would have written can never be chosen. The applier calls it once
// the state holds slot.
func (r *chunkRefs) releaseThrough(slot uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for s := range r.bySlot {
		if s <= slot {
			delete(r.bySlot, s)
		}
	}
}

// pinBackup records the chunks backup stream id reads, until unpinBackup.
func (r *chunkRefs) pinBackup(id uint64, sums []chunks.Sum) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.backups == nil {
		r.backups = map[uint64][]chunks.Sum{}
	}
	r.backups[id] = sums
}

func (r *chunkRefs) unpinBackup(id uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.backups, id)
}

// addTo adds every chunk r holds to set.
func (r *chunkRefs) addTo(set map[chunks.Sum]struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, sums := range r.bySlot {
		for _, s := range sums {
			set[s] = struct{}{}
		}
	}
	for _, sums := range r.backups {
		for _, s := range sums {
			set[s] = struct{}{}
		}
	}
}

// commandChunks returns the chunks a putfile or casfile command names,
// nothing for any other command (or one that does not decode: the state
// machine refuses it alike).
func commandChunks(cmd []byte) []chunks.Sum {
	if !bytes.HasPrefix(cmd, putfilePrefix) && !bytes.HasPrefix(cmd, casfilePrefix) {
		return nil
	}
	c, err := filestore.DecodeCommand(cmd)
	if err != nil {
		return nil
	}
	return manifestChunks(c.Value)
}

// manifestChunks returns the chunks a manifest's text names.
func manifestChunks(text []byte) []chunks.Sum {
	m, err := wire.ParseManifest(text)
	if err != nil {
		return nil
	}
	out := make([]chunks.Sum, len(m.Chunks))
	for i, s := range m.Chunks {
		out[i] = chunks.Sum(s)
	}
	return out
}

// collectable decides a pass: which of the stored chunks to remove, given
// the referenced set, the time each unreferenced chunk was first seen so
// (unref, updated in place: referenced and vanished chunks leave it,
// newly unreferenced ones enter it at now), now and the grace. A chunk
// goes only if it is unreferenced, was stored before now-grace, and was
// first seen unreferenced at or before now-grace.
func collectable(stored []chunks.Info, refs map[chunks.Sum]struct{}, unref map[chunks.Sum]time.Time, now time.Time, grace time.Duration) []chunks.Info {
	cutoff := now.Add(-grace)
	present := make(map[chunks.Sum]struct{}, len(stored))
	var out []chunks.Info
	for _, c := range stored {
		present[c.Sum] = struct{}{}
		if _, ok := refs[c.Sum]; ok {
			delete(unref, c.Sum)
			continue
		}
		since, ok := unref[c.Sum]
		if !ok {
			unref[c.Sum] = now
			since = now
		}
		if c.ModTime.Before(cutoff) && !since.After(cutoff) {
			out = append(out, c)
		}
	}
	for s := range unref {
		if _, ok := present[s]; !ok {
			delete(unref, s)
		}
	}
	return out
}

// snapRefs is what the collector remembers of one kept snapshot file (they
// are written once and never change, so each is read once).
type snapRefs struct {
	size    int64
	modTime time.Time
	sums    []chunks.Sum
}

// chunkGC is the collector's own state, owned by its goroutine.
type chunkGC struct {
	unref map[chunks.Sum]time.Time
	snaps map[string]snapRefs // by path
}

// runChunkGC is the collector's goroutine: a pass every ChunkGCInterval
// until ctx ends.
func (n *Node) runChunkGC(ctx context.Context) {
	gc := &chunkGC{unref: map[chunks.Sum]time.Time{}, snaps: map[string]snapRefs{}}
	t := time.NewTicker(n.cfg.ChunkGCInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n.degraded.Load() {
			continue // the disk is failing: leave it alone
		}
		if err := n.collectChunks(ctx, gc); err != nil && ctx.Err() == nil {
			n.log.Warn().Err(err).Msg("chunk collection pass stopped; nothing more is removed until the next")
		}
	}
}

// collectChunks runs one pass.
func (n *Node) collectChunks(ctx context.Context, gc *chunkGC) error {
	refs := map[chunks.Sum]struct{}{}
	// Log entries and backups first, then the state: see the file comment.
	n.refs.addTo(refs)
	a := &n.app
	a.mu.RLock()
	a.fsm.EachLarge(func(_ string, text []byte) bool {
		for _, s := range manifestChunks(text) {
			refs[s] = struct{}{}
		}
		return true
	})
	a.mu.RUnlock()
	if err := n.snapshotRefs(gc, refs); err != nil {
		return err
	}
	var stored []chunks.Info
	if err := n.chunks.Each(func(i chunks.Info) bool { stored = append(stored, i); return true }); err != nil {
		return err
	}
	now := time.Now()
	doomed := collectable(stored, refs, gc.unref, now, n.cfg.ChunkGCGrace)
	var removed, freed int64
	for i, c := range doomed {
		if i > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(gcPause):
			}
		}
		ok, err := n.chunks.RemoveIfOlder(c.Sum, now.Add(-n.cfg.ChunkGCGrace))
		if err != nil {
			return err
		}
		if ok {
			delete(gc.unref, c.Sum)
			removed++
			freed += c.Size
			n.met.gcChunks.Inc()
			n.met.gcBytes.Add(float64(c.Size))
		}
	}
	if removed > 0 {
		n.log.Info().Int64("chunks", removed).Int64("bytes", freed).Int("kept", len(stored)-int(removed)).
			Dur("grace", n.cfg.ChunkGCGrace).Msg("removed chunks no file, snapshot, log entry or backup refers to")
	}
	return nil
}

// snapshotRefs adds the chunks the kept snapshots refer to, reading each
// snapshot file once. A snapshot that cannot be read stops the pass:
// what it refers to is unknown.
func (n *Node) snapshotRefs(gc *chunkGC, refs map[chunks.Sum]struct{}) error {
	dir := filepath.Join(n.cfg.Dir, "snap") // n.store is the persister's, replaced after a full disk
	slots, err := filestore.ListSnapshots(dir)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, slot := range slots {
		path := filestore.SnapshotPath(dir, slot)
		fi, err := os.Stat(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // pruned meanwhile
		}
		if err != nil {
			return err
		}
		seen[path] = true
		sr, ok := gc.snaps[path]
		if !ok || sr.size != fi.Size() || !sr.modTime.Equal(fi.ModTime()) {
			sr = snapRefs{size: fi.Size(), modTime: fi.ModTime()}
			err := filestore.SnapshotFileManifests(path, filestore.Options{MaxValue: n.cfg.MaxValue}, func(text []byte) error {
				sr.sums = append(sr.sums, manifestChunks(text)...)
				return nil
			})
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return err
			}
			gc.snaps[path] = sr
		}
		for _, s := range sr.sums {
			refs[s] = struct{}{}
		}
	}
	for p := range gc.snaps {
		if !seen[p] {
			delete(gc.snaps, p)
		}
	}
	return nil
}
