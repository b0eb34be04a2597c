package node

// This file owns the persister goroutine: it makes the engine's Readies
// durable through storage (group commit: everything queued behind the
// previous fsync in one batch), then sends the votes that waited for the
// disk, hands the chosen entries to the applier and tells the engine to
// Advance. While an engine runs it alone writes the log and the acceptor
// file, truncations of the log behind a snapshot included (New and Run
// open and probe the storage only while none does).

import (
	"context"
	"sync"

	"synod/paxos"
)

// truncation is the newest log truncation asked for: the snapshotter posts
// it, the persister carries it out between two batches.
type truncation struct {
	mu     sync.Mutex
	before uint64 // delete the segments wholly below this slot; 0: none asked
	sig    chan struct{}
}

func (t *truncation) ask(before uint64) {
	t.mu.Lock()
	t.before = max(t.before, before)
	t.mu.Unlock()
	signal(t.sig)
}

func (t *truncation) take() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.before
	t.before = 0
	return b
}

// persister is the persister's goroutine for one engine run.
func (n *Node) persister(ctx context.Context) {
	var batch []paxos.Ready
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return
		case <-n.trunc.sig:
			n.truncate()
			continue
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
		// The chunk collector must see these entries' files before
		// they can be chosen or applied (chunkgc.go).
		for i := range batch {
			n.refs.pinEntries(batch[i].Accepted)
			n.refs.pinEntries(batch[i].Chosen)
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
			batch[i].MessagesAfterPersist = nil
			if len(batch[i].Chosen) > 0 {
				select {
				case n.applyQ <- applyWork{chosen: batch[i].Chosen}:
				case <-ctx.Done():
					return
				}
			}
		}
		// The engine keeps the Readies it gets back: a fresh slice each
		// time, never this goroutine's reused one.
		done := append([]paxos.Ready(nil), batch...)
		n.mail.post(func(m *notices) { m.advances = append(m.advances, done...) })
	}
}

// truncate deletes the log segments behind the newest snapshot's window.
func (n *Node) truncate() {
	if before := n.trunc.take(); before > 0 {
		if err := n.store.truncateBefore(before); err != nil {
			n.log.Warn().Err(err).Msg("truncating the log")
		}
	}
}
