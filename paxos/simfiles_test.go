package paxos

// This file owns the simulator's model of large files, which live beside
// the log: the node stores a file's chunks as files of their own, and the
// replicated command carries only the file's manifest. The model stands in
// for the proxy (it stores every chunk on a majority of the voters it
// knows, durably, before it proposes the manifest, and acknowledges the
// file only once a majority of the voters holds every chunk) and for the
// node (a replica that applied a manifest, installed a snapshot or
// restarted fetches the chunks it lacks from the members of its
// configuration, and a learner that lacks any does not vote: SettledUpTo;
// a chunk no member holds any more stops counting). It checks that
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

// fileWait is a large file chosen and not acknowledged yet: the slot that
// chose it and the step its client learned so.
type fileWait struct {
	slot uint64
	at   int
}

// confirmTicks is how long the proxy looks for a majority holding a
// chosen file's chunks before it answers TIMEOUT: its write timeout, 30 s
// against a 500 ms election timeout.
const confirmTicks = 60

// confirmFile stands in for the proxy once c's large file is chosen: it
// acknowledges the file when a majority of the voters of the newest
// configuration holds every chunk on disk (proxy.confirmChunks asks them
// all), and gives up after confirmTicks election timeouts (the client hears
// TIMEOUT: written, not acknowledged). It reports whether c's file was
// chosen, so the client sends nothing more for it.
func (s *sim) confirmFile(c *simClient) bool {
	w, ok := s.fileChosen[c.pending]
	if !ok {
		return false
	}
	if s.heldByMajority(c.pending) {
		s.ack(c.pending, w.slot)
		c.pending, c.upload = "", nil
		return true
	}
	if s.now-w.at > s.steps(confirmTicks*s.o.config(1, s.initial, nil).ElectionTicks) {
		s.stats.unconfirmed++
		s.gaveUp[c.pending] = true
		s.logf("client %d: file %s written at slot %d, not confirmed: TIMEOUT", c.id, c.pending, w.slot)
		c.pending, c.upload = "", nil
	}
	return true
}

// heldByMajority reports whether a majority of the newest configuration's
// voters that answer now holds every chunk of cmd on disk.
func (s *sim) heldByMajority(cmd string) bool {
	conf := s.initial
	if k := len(s.confs); k > 0 {
		conf = s.confs[k-1].conf
	}
	voters := conf.Voters()
	got := 0
	for _, id := range voters {
		n := s.node(id)
		if n.dormant || !n.up(s.now) {
			continue
		}
		all := true
		for _, ch := range s.fileChunks[cmd] {
			all = all && n.disk.chunks[ch]
		}
		if all {
			got++
		}
	}
	return got > len(voters)/2
}

// chunkGone reports whether no replica holds ch any more (one that left for
// good does not count).
func (s *sim) chunkGone(ch string) bool {
	for _, n := range s.nodes {
		if n.disk.chunks[ch] && !(n.dormant && n.r == nil && n.departed) {
			return false
		}
	}
	return true
}

// heldByMember reports whether another member of n's configuration holds
// ch: a chunk n's fetcher could have had. One held only by replicas that
// left is theirs to hand off before they go (handOff); what counts then
// is that no acknowledged file loses it (checkFiles).
func (s *sim) heldByMember(n *simNode, ch string) bool {
	cur, _, _ := n.r.Configuration()
	for _, m := range cur.Members {
		if p := s.node(m.ID); p != n && p.disk.chunks[ch] {
			return true
		}
	}
	return false
}

// anyFileGone reports whether a chunk of some file chosen is held nowhere.
func (s *sim) anyFileGone() bool {
	for _, cmd := range slices.Sorted(mapKeys(s.fileSlot)) {
		if s.fileGone(cmd) {
			return true
		}
	}
	return false
}

// fileGone reports whether a chunk of cmd is held nowhere: a file chosen
// but never acknowledged whose chunks were lost with the disks that held
// them (a second loss within one upload).
func (s *sim) fileGone(cmd string) bool {
	for _, ch := range s.fileChunks[cmd] {
		if s.chunkGone(ch) {
			return true
		}
	}
	return false
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
	s.fetchesArrive(n)
	if len(n.missing) == 0 || s.now < n.fetchAt {
		return
	}
	n.fetchAt = s.now + s.steps(10*n.r.cfg.ElectionTicks)
	cur, _, _ := n.r.Configuration()
	// Then the replicas removed that still linger: one stays until a
	// majority of the new configuration holds its chunks, and serves them
	// (the node: memberView.left). Only their answers count toward
	// allLack, not their silence: they may be gone for good.
	sources := slices.Clone(cur.Members)
	for _, id := range n.left {
		sources = append(sources, Member{ID: id})
	}
	for _, ch := range slices.Sorted(mapKeys(n.missing)) {
		if _, ok := n.fetching[ch]; ok {
			continue
		}
		allLack := true // every other member answered it lacks ch
		for i, m := range sources {
			p := s.node(m.ID)
			if p == n {
				continue
			}
			if p.dormant || !p.up(s.now) || s.cut[[2]NodeID{n.id, p.id}] || s.cut[[2]NodeID{p.id, n.id}] {
				allLack = allLack && i >= len(cur.Members)
				continue
			}
			if !p.disk.chunks[ch] {
				continue
			}
			// A chunk takes a while to come (up to two election
			// timeouts): its source may crash, or lose it, meanwhile.
			allLack = false
			if n.fetching == nil {
				n.fetching = map[string]simFetch{}
			}
			n.fetching[ch] = simFetch{from: p.id, at: s.now + 1 + s.rng.IntN(s.steps(2*n.r.cfg.ElectionTicks))}
			s.mix(31, uint64(n.id), uint64(p.id))
			break
		}
		// Held by no member, lostAfter tries in a row: no longer owed
		// (node.noteFetch), or a wiped replica would never vote again.
		if n.lostSeen == nil {
			n.lostSeen = map[string]int{}
		}
		if !allLack {
			delete(n.lostSeen, ch)
		} else if n.lostSeen[ch]++; n.lostSeen[ch] >= simLostAfter {
			delete(n.missing, ch)
			s.logf("node %d: chunk %s held by no member: no longer waited for", n.id, ch)
		}
		if s.o.node.fetchOnce {
			delete(n.missing, ch) // given up on: a read of it would try again
		}
	}
	if len(n.missing) == 0 {
		n.r.SettledUpTo(n.applied)
	}
}

// handOff stands in for the node's handoff (node/handoff.go) on a removed
// replica that lingers: every round (two election timeouts, the node's
// second), it puts each chunk it holds of the files it applied on the
// voters of its configuration that answer and lack it, and once a
// majority of them that answer holds every one it tells the core
// (SideStateHandedOff). It may hold a chunk's last copy, and the new
// members' fetchers need not know it (one that restarted, or joined
// after the removal, does not).
func (s *sim) handOff(n *simNode) {
	if s.o.fileRate == 0 || !n.up(s.now) || !n.r.conf.removed || s.now < n.handoffAt || s.o.bugs.departSansChunks {
		return // (bug n: no handoff, as before there was one)
	}
	n.handoffAt = s.now + s.steps(2*n.r.cfg.ElectionTicks)
	cur, slot, _ := n.r.Configuration()
	if s.handOffTo(n, cur) {
		n.r.SideStateHandedOff(slot)
	}
}

// handOffTo puts the chunks n holds of the files it applied on the voters
// of conf that answer and lack them, and reports whether a majority of
// conf's voters that answer holds every one.
func (s *sim) handOffTo(n *simNode, conf Configuration) bool {
	voters := conf.Voters()
	done := true
	for _, cmd := range slices.Sorted(mapKeys(s.fileSlot)) {
		if s.fileSlot[cmd] > n.applied {
			continue
		}
		for _, ch := range s.fileChunks[cmd] {
			if !n.disk.chunks[ch] {
				continue
			}
			have := 0
			for _, id := range voters {
				p := s.node(id)
				if p.dormant || !p.up(s.now) || s.cut[[2]NodeID{n.id, p.id}] || s.cut[[2]NodeID{p.id, n.id}] {
					continue
				}
				if !p.disk.chunks[ch] {
					p.disk.hold(ch)
					s.logf("node %d: hands chunk %s to %d", n.id, ch, p.id)
					s.mix(32, uint64(n.id), uint64(p.id))
				}
				have++
			}
			if have <= len(voters)/2 {
				done = false
			}
		}
	}
	return done
}

// refusedRemoval stands in for the node's handshake refusal (node
// noteRefusal, handOffAndStop): a replica whose core does not know it was
// removed, cut off while the change was made, dials the members of its
// configuration, and those that hold a newer one without it refuse it,
// naming how far their disk knows the chosen slots. It asks one of them
// for its configuration, and stops once a majority of that
// configuration's voters refused it knowing it on disk and it handed its
// chunks off to them. Only with large files, where the handoff matters
// (without them the seeds keep their schedules).
func (s *sim) refusedRemoval(n *simNode) {
	if s.o.fileRate == 0 || n.dormant || !n.up(s.now) || n.r.conf.removed || s.now < n.handoffAt {
		return
	}
	mine, mySlot, _ := n.r.Configuration()
	reach := func(p *simNode) bool {
		return p != n && !p.dormant && p.up(s.now) && !s.cut[[2]NodeID{n.id, p.id}] && !s.cut[[2]NodeID{p.id, n.id}]
	}
	for _, m := range mine.Members {
		p := s.node(m.ID)
		if !reach(p) {
			continue
		}
		theirs, slot, _ := p.r.Configuration()
		if _, member := theirs.Member(n.id); member || slot <= mySlot {
			continue
		}
		n.handoffAt = s.now + s.steps(2*n.r.cfg.ElectionTicks)
		knows := 0 // voters of theirs that refused n knowing slot on disk
		for _, id := range theirs.Voters() {
			q := s.node(id)
			if _, dialed := mine.Member(id); !dialed || !reach(q) {
				continue
			}
			if c, qs, _ := q.r.Configuration(); qs >= slot && q.r.durable >= slot {
				if _, member := c.Member(n.id); !member {
					knows++
				}
			}
		}
		if knows <= len(theirs.Voters())/2 {
			return
		}
		if !s.o.bugs.departSansChunks && !s.handOffTo(n, theirs) {
			return
		}
		s.crash(n)
		n.dormant, n.departed = true, true
		s.logf("node %d: refused by %d, whose configuration of slot %d does not include it; it stops", n.id, p.id, slot)
		s.checkFiles()
		return
	}
}

// simFetch is a chunk on its way to a replica that lacked it.
type simFetch struct {
	from NodeID
	at   int // the step it arrives, if its source still serves it then
}

// fetchesArrive stores the chunks whose fetch ends this step, if their
// source is still up, reachable and holding them; a fetch that failed is
// tried again at the next round.
func (s *sim) fetchesArrive(n *simNode) {
	for _, ch := range slices.Sorted(mapKeys(n.fetching)) {
		f := n.fetching[ch]
		if s.now < f.at {
			continue
		}
		delete(n.fetching, ch)
		p := s.node(f.from)
		if !p.up(s.now) || s.cut[[2]NodeID{n.id, p.id}] || s.cut[[2]NodeID{p.id, n.id}] || !p.disk.chunks[ch] {
			s.logf("node %d: fetching chunk %s from %d failed", n.id, ch, p.id)
			continue
		}
		n.disk.hold(ch)
		delete(n.missing, ch)
		s.stats.fetches++
		s.logf("node %d: fetched chunk %s from %d", n.id, ch, p.id)
	}
}

// noteLeft does what the node's noteConfig does with the members a new
// configuration in force drops: it remembers them (in memory: a restart
// forgets them), so the chunk fetcher asks them too.
func (s *sim) noteLeft(n *simNode) {
	cur, _, _ := n.r.Configuration()
	if cur.Equal(n.viewConf) {
		return
	}
	if len(n.viewConf.Members) > 0 {
		for _, m := range n.viewConf.Members {
			if _, still := cur.Member(m.ID); !still {
				n.left = slices.DeleteFunc(n.left, func(id NodeID) bool { return id == m.ID })
				n.left = append(n.left, m.ID)
			}
		}
		n.left = slices.DeleteFunc(n.left, func(id NodeID) bool { _, back := cur.Member(id); return back })
		if len(n.left) > 8 {
			n.left = n.left[len(n.left)-8:]
		}
	}
	n.viewConf = cur
}

// simLostAfter stands for node.lostAfter (120 rounds, 10 minutes): what
// the decision risks does not depend on how many rounds it waits (it is
// taken only when every member lacks the chunk), so the simulator waits
// three, not to spend its runs on heartbeats.
const simLostAfter = 3

// recovering reports whether n lost a chunk file while it votes on and
// does not hold it again yet. The fault model: no second replica loses
// state while one is recovering from a loss, as for the log (allVoters),
// and what recovering means is what the node shows: a replica that lost
// its disk is a learner until it holds every chunk of every file its state
// names (SettledUpTo), but a lost chunk file shows in its log and metrics
// only. A disk lost during an upload needs nothing here: the proxy
// acknowledges a file only once a majority holds its chunks
// (confirmFile), whatever was lost before. The README states the limit.
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

// forget records a chunk file n just lost, which recovering counts.
func (s *sim) forget(n *simNode, ch string) {
	if n.lost == nil {
		n.lost = map[string]bool{}
	}
	n.lost[ch] = true
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
			if !n.disk.chunks[ch] && s.heldByMember(n, ch) {
				s.fail(invChunkVote, "node %d votes again lacking chunk %s of file %s (slot %d; its promotion waited for slot %d)",
					n.id, ch, cmd, s.fileSlot[cmd], start)
				return
			}
		}
	}
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
	s.forget(n, ch)
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
			if s.chunkGone(ch) {
				s.fail(invFileLost, "acknowledged file %s (slot %d): no replica holds chunk %s any more", cmd, s.fileSlot[cmd], ch)
				return
			}
		}
	}
}

// chunksBehind lists the members that still lack chunks of files they
// applied, for the liveness check.
func (s *sim) chunksBehind(n *simNode) string {
	var lacks []string
	for _, ch := range slices.Sorted(mapKeys(n.missing)) {
		if !s.chunkGone(ch) { // a lost chunk of an unacknowledged file (checkFiles)
			lacks = append(lacks, ch)
		}
	}
	if len(lacks) == 0 {
		return ""
	}
	return fmt.Sprintf("%d (lacks %d chunks: %v)", n.id, len(lacks), lacks)
}
