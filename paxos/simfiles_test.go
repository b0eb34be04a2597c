package paxos

// This file owns the simulator's model of large files, which live beside
// the log: the node stores a file's chunks as files of their own, and the
// replicated command carries only the file's manifest. The model stands in
// for the proxy (it stores every chunk on a majority of the voters it
// knows, durably, before it proposes the manifest) and for the node (a
// replica that applied a manifest, installed a snapshot or restarted
// fetches the chunks it lacks from the members of its configuration, and
// a learner that lacks any does not vote: SettledUpTo). It checks that
// no acknowledged file ever loses its last copy of a chunk, and that once
// the faults stop every member holds every chunk of every file it applied.
// Run by the simulator's single goroutine, like the rest of it.

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// invFileLost: an acknowledged file still needs a chunk no replica holds.
// invChunkVote: a replica that lost state votes again while it lacks a
// chunk of a file chosen before the phase 1 its promotion waited for.
const (
	invFileLost  = "file lost"
	invChunkVote = "votes without its chunks"
)

// fileOptions draws, from a stream of its own so the seeds that write no
// large files keep their schedules, whether a seed's clients write large
// files and how often.
func fileOptions(seed uint64, o *simOptions) {
	rng := rand.New(rand.NewPCG(seed, 0xf11e5))
	if rng.IntN(2) == 0 {
		o.fileRate = 0.1 + rng.Float64()*0.4
	}
}

// simUpload is a client's large file on its way: the chunks it names, the
// voters it counts a majority of (the proxy's view when the upload began)
// and who stored each chunk.
type simUpload struct {
	chunks []string
	voters []NodeID
	stored map[string]map[NodeID]bool
	done   bool // every chunk reached a majority: the manifest is proposed
}

// newUpload starts a large file of one to three chunks; the proxy knows the
// newest configuration chosen.
func (s *sim) newUpload(cmd string) *simUpload {
	conf := s.initial
	if k := len(s.confs); k > 0 {
		conf = s.confs[k-1].conf
	}
	u := &simUpload{voters: conf.Voters(), stored: map[string]map[NodeID]bool{}}
	for i := 0; i < 1+s.rng.IntN(3); i++ {
		u.chunks = append(u.chunks, fmt.Sprintf("%s#%d", cmd, i))
	}
	s.fileChunks[cmd] = u.chunks
	return u
}

// upload stores, this step, the chunks of u on the replicas the proxy
// reaches (every member it knows, voters and learners alike; a chunk put is
// fsynced before it is acknowledged), and reports whether every chunk is on
// a majority of u's voters.
func (s *sim) upload(u *simUpload) bool {
	done := true
	for _, ch := range u.chunks {
		if u.stored[ch] == nil {
			u.stored[ch] = map[NodeID]bool{}
		}
		for _, n := range s.nodes {
			if n.dormant || !n.up(s.now) || u.stored[ch][n.id] || s.rng.Float64() < 0.5 {
				continue
			}
			n.disk.hold(ch)
			u.stored[ch][n.id] = true
			s.logf("node %d: stores chunk %s (upload)", n.id, ch)
			s.mix(30, uint64(n.id))
		}
		have := 0
		for _, id := range u.voters {
			if u.stored[ch][id] {
				have++
			}
		}
		if have <= len(u.voters)/2 {
			done = false
		}
	}
	return done
}

func (d *simDisk) hold(ch string) {
	if d.chunks == nil {
		d.chunks = map[string]bool{}
	}
	d.chunks[ch] = true
}

// fileCmds returns the large files among a slot's commands.
func fileCmds(v Value) []string {
	var out []string
	if v.Kind != ValueCmds {
		return nil
	}
	for _, c := range v.Cmds {
		if strings.HasPrefix(string(c), "f") {
			out = append(out, string(c))
		}
	}
	return out
}

// appliedFile records, as n applies a slot, the large files it writes: n
// now needs their chunks.
func (s *sim) appliedFile(n *simNode, slot uint64, v Value) {
	for _, cmd := range fileCmds(v) {
		if _, ok := s.fileSlot[cmd]; !ok {
			s.fileSlot[cmd] = slot
		}
		s.wantFile(n, cmd)
	}
}

// wantFile adds the chunks of cmd that n lacks to what its fetcher looks
// for, at once (the node queues a check as it applies a file).
func (s *sim) wantFile(n *simNode, cmd string) {
	for _, ch := range s.fileChunks[cmd] {
		if !n.disk.chunks[ch] {
			if n.missing == nil {
				n.missing = map[string]bool{}
			}
			n.missing[ch] = true
			n.fetchAt = s.now
		}
	}
}

// scanFiles is the node's check of every large file of its state, at
// start and after installing a snapshot: every file chosen at or below
// the slot it has applied.
func (s *sim) scanFiles(n *simNode) {
	n.missing = nil
	if s.o.fileRate == 0 {
		return
	}
	for _, cmd := range slices.Sorted(mapKeys(s.fileSlot)) {
		if s.fileSlot[cmd] <= n.applied {
			s.wantFile(n, cmd)
		}
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// fetchChunks runs n's chunk fetcher for a step: it asks the members of
// its configuration, in order, for each chunk it lacks, and stores the
// first copy it gets. Without the fetchOnce bug it tries again until it
// has them all, ten election timeouts apart (the node's 5 s against its
// 500 ms); a learner lacking any does not vote.
func (s *sim) fetchChunks(n *simNode) {
	if s.o.fileRate == 0 || !n.up(s.now) {
		return
	}
	if len(n.missing) == 0 {
		n.r.SettledUpTo(n.applied)
	}
	if len(n.missing) == 0 || s.now < n.fetchAt {
		return
	}
	n.fetchAt = s.now + s.steps(10*n.r.cfg.ElectionTicks)
	cur, _, _ := n.r.Configuration()
	for _, ch := range slices.Sorted(mapKeys(n.missing)) {
		for _, m := range cur.Members {
			p := s.node(m.ID)
			if p == n || !p.up(s.now) || s.cut[[2]NodeID{n.id, p.id}] || s.cut[[2]NodeID{p.id, n.id}] || !p.disk.chunks[ch] {
				continue
			}
			n.disk.hold(ch)
			delete(n.missing, ch)
			s.stats.fetches++
			s.logf("node %d: fetched chunk %s from %d", n.id, ch, p.id)
			s.mix(31, uint64(n.id), uint64(p.id))
			break
		}
		if s.o.node.fetchOnce {
			delete(n.missing, ch) // given up on: a read of it would try again
		}
	}
	if len(n.missing) == 0 {
		n.r.SettledUpTo(n.applied)
	}
}

// recovering reports whether n lost chunks that no learner's wait covers
// and does not hold them again yet: a chunk file gone while it votes on,
// or the chunks of an upload in flight when its disk was lost. The fault
// model: no second replica loses state while one is recovering from a
// loss, as for the log (allVoters), and what recovering means is what the
// node shows: a replica that lost its disk is a learner until it holds
// every chunk of every file its state names (SettledUpTo), but the chunks
// of an upload in flight are in no state yet, so it cannot know it lacks
// them until the manifest is chosen and it fetches them; a lost chunk
// file shows in its log and metrics only. The README states both limits.
func (s *sim) recovering(n *simNode) bool {
	for ch := range n.lost {
		cmd, _, _ := strings.Cut(ch, "#")
		if at := s.fileSlot[cmd]; n.disk.chunks[ch] || (at != 0 && at <= n.applied && !n.missing[ch]) {
			// Held again, or the node believes it is: it applied the file
			// and its fetcher no longer looks for the chunk (the fetchOnce
			// bug gives up).
			delete(n.lost, ch)
		}
	}
	return len(n.lost) > 0
}

// forget records the chunks n just lost that recovering counts: every
// one of a lost chunk file, only those of uploads in flight (no file
// applied anywhere names them yet) of a lost disk.
func (s *sim) forget(n *simNode, chunks map[string]bool, inFlightOnly bool) {
	for ch := range chunks {
		if cmd, _, _ := strings.Cut(ch, "#"); inFlightOnly && s.fileSlot[cmd] != 0 {
			continue
		}
		if n.lost == nil {
			n.lost = map[string]bool{}
		}
		n.lost[ch] = true
	}
}

// checkPromotedChunks fails the run if n, promoted from learner just now,
// lacks a chunk of a file chosen at or before the slot its master's phase
// 1 started from: those it must hold before it votes (SettledUpTo), or a
// second loss could take their last copy (the README's promise).
func (s *sim) checkPromotedChunks(n *simNode) {
	start := n.r.fol.masterStart
	for _, cmd := range slices.Sorted(mapKeys(s.fileSlot)) {
		if s.fileSlot[cmd] > start {
			continue
		}
		for _, ch := range s.fileChunks[cmd] {
			if !n.disk.chunks[ch] {
				s.fail(invChunkVote, "node %d votes again lacking chunk %s of file %s (slot %d; its promotion waited for slot %d)",
					n.id, ch, cmd, s.fileSlot[cmd], start)
				return
			}
		}
	}
}

// filesSettled reports whether no upload is in flight and every replica
// holds every chunk of the files it applied and of those it lost: the
// simulator removes a replica only then. A removed replica leaves once a
// majority of the new configuration applied its removal, whether or not
// they hold the chunks it held; removing the last holder of a chunk
// loses it (seed 52 of the departEarly sweep's options found it). The
// README states the limit; the fix is for the removed replica to wait
// until a majority of the new configuration holds every chunk.
func (s *sim) filesSettled() bool {
	if s.o.fileRate == 0 {
		return true
	}
	for _, c := range s.clients {
		if c.upload != nil {
			return false
		}
	}
	for _, n := range s.nodes {
		if !n.dormant && (len(n.missing) > 0 || s.recovering(n)) {
			return false
		}
	}
	return true
}

// loseChunk removes one of n's chunk files, as a disk losing a file: the
// node finds it missing when it starts.
func (s *sim) loseChunk(n *simNode) bool {
	held := slices.Sorted(mapKeys(n.disk.chunks))
	if len(held) == 0 {
		return false
	}
	ch := held[s.rng.IntN(len(held))]
	delete(n.disk.chunks, ch)
	s.forget(n, map[string]bool{ch: true}, false)
	s.logf("node %d: lost chunk %s", n.id, ch)
	s.checkFiles()
	return true
}

// checkFiles fails the run if an acknowledged large file needs a chunk
// that no replica's disk holds any more (a replica that left the cluster
// for good does not count: its host may be gone).
func (s *sim) checkFiles() {
	for _, cmd := range slices.Sorted(mapKeys(s.fileChunks)) {
		if _, ok := s.acked[cmd]; !ok {
			continue
		}
		for _, ch := range s.fileChunks[cmd] {
			held := false
			for _, n := range s.nodes {
				if n.disk.chunks[ch] && !(n.dormant && n.r == nil && n.departed) {
					held = true
					break
				}
			}
			if !held {
				s.fail(invFileLost, "acknowledged file %s (slot %d): no replica holds chunk %s any more", cmd, s.fileSlot[cmd], ch)
				return
			}
		}
	}
}

// chunksBehind lists the members that still lack chunks of files they
// applied, for the liveness check.
func (s *sim) chunksBehind(n *simNode) string {
	if len(n.missing) == 0 {
		return ""
	}
	return fmt.Sprintf("%d (lacks %d chunks: %v)", n.id, len(n.missing), slices.Sorted(mapKeys(n.missing)))
}
