package node

// This file owns the node's side of membership (paxos/RECONFIG.md). The
// engine publishes the core's configuration (noteConfig, first in New) and
// keeps one peer connection per member (syncPeers); any goroutine reads the
// published view (members, addrOf, isPeer). Changes run on the engine
// (changeMembers, answerMemberWaits, maybePromote). askToJoin runs in New,
// before any goroutine starts; noteRefusal on a peer connection's
// goroutine. The configuration the state machine applied, which snapshots
// carry, is the applier's (applier.go).

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"synod/paxos"
	"synod/wire"
)

// memberView is what other goroutines may know of the configuration: the
// one in force, the slot that chose it, and, on a master changing it, the
// next one.
type memberView struct {
	conf  paxos.Configuration
	slot  uint64
	next  *paxos.Configuration
	peers []paxos.NodeID // the replicas the core sends to
	// left: members that configurations this replica saw in force dropped,
	// the newest last (at most maxLeft). A removed replica stays until a
	// majority of the new configuration holds the chunks of every large
	// file chosen so far, and serves them meanwhile: the chunk fetcher asks
	// these too (fetchChunk).
	left []paxos.Member
}

// maxLeft bounds memberView.left.
const maxLeft = 8

// members returns the current view (an empty one before the node knows
// its configuration).
func (n *Node) members() *memberView {
	if v := n.view.Load(); v != nil {
		return v
	}
	return &memberView{}
}

// addrOf returns where replica id listens, "" if unknown.
func (n *Node) addrOf(id uint64) string {
	v := n.members()
	if m, ok := v.conf.Member(paxos.NodeID(id)); ok && m.Addr != "" {
		return m.Addr
	}
	if v.next != nil {
		if m, ok := v.next.Member(paxos.NodeID(id)); ok && m.Addr != "" {
			return m.Addr
		}
	}
	if a, ok := n.guestAddrs.Load(id); ok {
		return a.(string) // a replica of a newer configuration (checkHello)
	}
	return n.cfg.Peers[id]
}

// isPeer reports whether id is a member this replica talks to: of the
// configuration in force, or of the next one.
func (n *Node) isPeer(id uint64) bool {
	v := n.members()
	if _, ok := v.conf.Member(paxos.NodeID(id)); ok {
		return true
	}
	if v.next != nil {
		if _, ok := v.next.Member(paxos.NodeID(id)); ok {
			return true
		}
	}
	return false
}

// noteConfig publishes the core's configuration when it changed and starts
// or stops peer connections to match. The loop calls it after every Ready.
func (n *Node) noteConfig() {
	cur, slot, next := n.eng.r.Configuration()
	old := n.view.Load()
	peers := n.eng.r.Peers()
	if old != nil && old.slot == slot && old.conf.Equal(cur) && sameNext(old.next, next) && slices.Equal(old.peers, peers) {
		return
	}
	v := &memberView{conf: cur, slot: slot, next: next, peers: peers}
	if old != nil {
		v.left = leftOut(old, cur)
	}
	n.view.Store(v)
	if old != nil && (old.slot != slot || !old.conf.Equal(cur)) {
		n.log.Info().Uint64("slot", slot).Str("members", cur.String()).Msg("configuration in force")
	}
	n.syncPeers()
	n.closeStrangers()
}

// leftOut returns old's left members, with those of old's configuration
// that cur drops added and those cur has again taken out.
func leftOut(old *memberView, cur paxos.Configuration) []paxos.Member {
	left := slices.Clone(old.left)
	for _, m := range old.conf.Members {
		if _, still := cur.Member(m.ID); !still && m.Addr != "" && uint64(m.ID) != 0 {
			left = slices.DeleteFunc(left, func(l paxos.Member) bool { return l.ID == m.ID })
			left = append(left, m)
		}
	}
	left = slices.DeleteFunc(left, func(m paxos.Member) bool { _, back := cur.Member(m.ID); return back })
	if len(left) > maxLeft {
		left = left[len(left)-maxLeft:]
	}
	return left
}

func sameNext(a, b *paxos.Configuration) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// syncPeers keeps one outbound connection per member this replica talks
// to, no more.
func (n *Node) syncPeers() {
	if n.runCtx == nil {
		return // not running yet: Run starts them
	}
	v := n.members()
	old := *n.peers.Load()
	peers := make(map[uint64]*peer, len(v.peers))
	for _, pid := range v.peers {
		id := uint64(pid)
		addr := n.addrOf(id)
		if p := old[id]; p != nil && (p.addr == addr || addr == "") {
			peers[id] = p // a member just removed is no longer in the view
			continue
		}
		if addr == "" {
			continue
		}
		peers[id] = n.startPeer(id, addr)
	}
	for id, p := range old {
		if peers[id] != p {
			p.stop()
		}
	}
	n.peers.Store(&peers)
}

// memberReq is a membership operation on its way to the loop.
type memberReq struct {
	req   wire.Request
	reply replyFunc
}

// memberWait is a change proposed, waiting to be in force.
type memberWait struct {
	slot  uint64
	reply replyFunc
}

// memberReply answers with the configuration in force.
func (n *Node) memberReply(code wire.Code, msg string) wire.Reply {
	v := n.members()
	rep := wire.Reply{Code: code, Msg: msg, ConfigSlot: v.slot, NotApplied: code != wire.CodeOK}
	if si := n.soft.Load(); si != nil && si.Master != paxos.None {
		rep.MasterID, rep.MasterAddr = uint64(si.Master), n.addrOf(uint64(si.Master)) // who knows the newest
	}
	for _, m := range v.conf.Members {
		rep.Members = append(rep.Members, wire.Member{ID: uint64(m.ID), Addr: m.Addr, Voter: m.Voter})
	}
	return rep
}

// changeMembers runs a membership change on the loop: it computes the new
// configuration, answers at once a change already in force (so a retry is
// harmless) or one that makes no sense, hands mastership over first for the
// removal of the master, and otherwise proposes it and waits for it to be
// in force.
func (n *Node) changeMembers(mr *memberReq) {
	cur, _, _ := n.eng.r.Configuration()
	id, addr := paxos.NodeID(mr.req.MemberID), mr.req.MemberAddr
	next := paxos.Configuration{Members: append([]paxos.Member(nil), cur.Members...)}
	m, present := cur.Member(id)
	bad := func(format string, args ...any) {
		mr.reply(n.memberReply(wire.CodeBadRequest, fmt.Sprintf(format, args...)))
	}
	switch mr.req.Op {
	case wire.OpMemberAdd:
		switch {
		case id == 0 || addr == "":
			bad("add needs a member id and an address")
			return
		case present && m.Addr == addr:
			mr.reply(n.memberReply(wire.CodeOK, "already a member"))
			return
		case present:
			bad("replica %d is a member at %s already; remove it first, or add a new id", id, m.Addr)
			return
		}
		next.Members = append(next.Members, paxos.Member{ID: id, Addr: addr})
	case wire.OpMemberPromote:
		switch {
		case !present:
			bad("replica %d is not a member", id)
			return
		case m.Voter:
			mr.reply(n.memberReply(wire.CodeOK, "already a voter"))
			return
		}
		for i := range next.Members {
			if next.Members[i].ID == id {
				next.Members[i].Voter = true
			}
		}
	case wire.OpMemberRemove:
		switch {
		case !present:
			mr.reply(n.memberReply(wire.CodeOK, "not a member"))
			return
		case uint64(id) == n.cfg.ID:
			// The master removes itself only after handing over.
			target, err := n.eng.r.TransferMastership()
			if err != nil {
				mr.reply(n.memberReply(wire.CodeUnavailable, "the master cannot be removed: no follower can take over: "+err.Error()))
				return
			}
			mr.reply(wire.Reply{Code: wire.CodeNotMaster, Msg: "handing mastership over before removing this replica",
				MasterID: uint64(target), MasterAddr: n.addrOf(uint64(target))})
			return
		}
		next.Members = slices.DeleteFunc(next.Members, func(mm paxos.Member) bool { return mm.ID == id })
	default:
		bad("unknown membership operation")
		return
	}
	slot, err := n.eng.r.ProposeConfig(normalized(next))
	var notLive *paxos.NotLiveError
	switch {
	case err == nil:
		n.log.Info().Str("op", mr.req.Op.String()).Uint64("member", uint64(id)).Uint64("slot", slot).Msg("membership change proposed")
		n.eng.memberWaits = append(n.eng.memberWaits, memberWait{slot: slot, reply: mr.reply})
	case errors.As(err, &notLive):
		mr.reply(n.memberReply(wire.CodeUnavailable, fmt.Sprintf("refused: the new configuration's majority is not live: %d of its voters answer, it needs %d; not reachable: %v",
			notLive.Have, notLive.Need, notLive.Unreachable)))
	case errors.Is(err, paxos.ErrConfigInFlight), errors.Is(err, paxos.ErrBusy):
		mr.reply(n.memberReply(wire.CodeBusy, "another membership change is under way; retry"))
	case errors.Is(err, paxos.ErrNotMaster):
		n.notMaster(mr.reply)
	default:
		bad("%v", err)
	}
}

func normalized(c paxos.Configuration) paxos.Configuration {
	slices.SortFunc(c.Members, func(a, b paxos.Member) int { return cmp.Compare(a.ID, b.ID) })
	return c
}

// answerMemberWaits answers the changes that are in force, and fails the
// ones a master that stepped down cannot finish (the proxy retries them: a
// change already in force answers OK).
func (n *Node) answerMemberWaits() {
	if len(n.eng.memberWaits) == 0 {
		return
	}
	ss, _ := n.eng.r.Status()
	_, slot, _ := n.eng.r.Configuration()
	kept := n.eng.memberWaits[:0]
	for _, w := range n.eng.memberWaits {
		switch {
		case ss.Role != paxos.Master:
			n.notMaster(w.reply)
		case slot >= w.slot && !n.eng.r.InFlight():
			w.reply(n.memberReply(wire.CodeOK, ""))
		default:
			kept = append(kept, w)
		}
	}
	n.eng.memberWaits = kept
}

// maxPromoteLag is how far behind the chosen prefix a learner may be and
// still be promoted to voter automatically.
const maxPromoteLag = 64

// maybePromote, on a master, promotes one learner that caught up, when no
// change is under way (Config.AutoPromote).
func (n *Node) maybePromote() {
	if !n.cfg.AutoPromote || n.eng.r.InFlight() {
		return
	}
	ids := n.eng.r.CaughtUpLearners(maxPromoteLag)
	if len(ids) == 0 {
		return
	}
	n.changeMembers(&memberReq{req: wire.Request{Op: wire.OpMemberPromote, MemberID: uint64(ids[0])}, reply: func(rep wire.Reply) {
		if rep.Code == wire.CodeOK {
			n.log.Info().Uint64("member", uint64(ids[0])).Msg("promoted a learner that caught up")
		}
	}})
}

// joinInfo is the configuration a replica joining a running cluster got
// from a member, and the slot that chose it.
type joinInfo struct {
	conf paxos.Configuration
	slot uint64
}

// joinWait is how long a joining replica keeps asking for a configuration
// that includes it: the member it asks may not have applied the MEMBER ADD
// yet, though it is in force on the master.
const joinWait = 10 * time.Second

// askToJoin asks the member at cfg.Join for the configuration in force, in
// which replica id must be a member already. A member that answers with a
// configuration without it may be behind: askToJoin then asks the master
// that member names, and both again until joinWait has passed.
func askToJoin(ctx context.Context, cfg Config) (*joinInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, joinWait)
	defer cancel()
	var last error
	for backoff := 50 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
		info, master, err := askMembers(ctx, cfg, cfg.Join)
		if errors.Is(err, ErrNotMember) && master != "" && master != cfg.Join {
			info, _, err = askMembers(ctx, cfg, master)
		}
		if err == nil {
			return info, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, last
		case <-time.After(backoff):
		}
	}
}

// askMembers asks the replica at addr for its configuration, and returns
// it with the master's address that replica knows.
func askMembers(ctx context.Context, cfg Config, addr string) (*joinInfo, string, error) {
	c, rep, err := askConfiguration(ctx, cfg, addr)
	if err != nil {
		return nil, rep.MasterAddr, fmt.Errorf("node: join %s: %w", addr, err)
	}
	if _, ok := c.Member(paxos.NodeID(cfg.ID)); !ok {
		return nil, rep.MasterAddr, fmt.Errorf("%w: replica %d is not a member of the cluster (configuration of slot %d at %s: %v); add it first: synod member add %d %s",
			ErrNotMember, cfg.ID, rep.ConfigSlot, addr, c, cfg.ID, cfg.Listen)
	}
	return &joinInfo{conf: c, slot: rep.ConfigSlot}, rep.MasterAddr, nil
}

// askConfiguration asks the replica at addr for its configuration in force;
// the reply carries its slot and the master's address.
func askConfiguration(ctx context.Context, cfg Config, addr string) (paxos.Configuration, wire.Reply, error) {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	cl, err := wire.DialClient(cctx, addr, wire.Hello{ClusterID: cfg.ClusterID, NodeID: cfg.ID, Role: wire.RoleClient},
		wire.Options{MaxFrame: cfg.MaxFrame, TLS: cfg.clientTLS()})
	if err != nil {
		return paxos.Configuration{}, wire.Reply{}, err
	}
	defer cl.Close()
	rep, err := cl.Do(cctx, &wire.Request{Op: wire.OpMembers})
	if err != nil {
		return paxos.Configuration{}, wire.Reply{}, err
	}
	if rep.Code != wire.CodeOK || len(rep.Members) == 0 {
		return paxos.Configuration{}, rep, fmt.Errorf("%v %s", rep.Code, rep.Msg)
	}
	var c paxos.Configuration
	for _, m := range rep.Members {
		c.Members = append(c.Members, paxos.Member{ID: paxos.NodeID(m.ID), Addr: m.Addr, Voter: m.Voter})
	}
	c = normalized(c)
	if err := c.Validate(); err != nil {
		return paxos.Configuration{}, rep, err
	}
	return c, rep, nil
}

// ErrNotMember is returned by New for a replica asked to join a cluster
// whose configuration does not include it.
var ErrNotMember = errors.New("node: not a member")

// configSlotMark precedes, in a handshake refusal for not being a member,
// the slot of the refusing replica's configuration (the refusal's last
// word); durableMark the chosen prefix its disk knows; settledMark the slot
// up to which it holds every chunk of its large files.
const (
	configSlotMark = "config-slot="
	durableMark    = "durable="
	settledMark    = "settled="
)

// peerSlot is what a refusal says of the refusing replica: what its disk
// knows of the chosen slots and how far it holds its large files' chunks.
type peerSlot struct{ durable, settled uint64 }

// refusalSlot parses the number after mark in a refusal's reason, up to
// the next space.
func refusalSlot(reason, mark string) (uint64, bool) {
	i := strings.LastIndex(reason, mark)
	if i < 0 {
		return 0, false
	}
	num, _, _ := strings.Cut(reason[i+len(mark):], " ")
	v, err := strconv.ParseUint(num, 10, 64)
	return v, err == nil
}

// noteRefusal handles a peer that refused this replica's handshake. A peer
// whose configuration is newer than this replica's and does not include
// it means this replica was removed while it was cut off, and never learned
// it: it stops, like a removed replica that did.
func (n *Node) noteRefusal(peer uint64, err error) {
	var re *wire.RefusedError
	if !errors.As(err, &re) {
		return
	}
	slot, ok := refusalSlot(re.Reason, configSlotMark)
	if !ok {
		return
	}
	v := n.members()
	if _, member := v.conf.Member(paxos.NodeID(n.cfg.ID)); !member {
		// This replica knows it was removed and lingers until a majority
		// of the configuration that removed it durably knows it: a peer
		// that refuses it names how far its disk knows the chosen slots
		// (a replica of an older version names nothing: it never counts).
		// And how far it holds the chunks of the large files (0 from an
		// older version: with large files it never counts).
		durable, _ := refusalSlot(re.Reason, durableMark)
		settled, _ := refusalSlot(re.Reason, settledMark)
		n.mail.post(func(m *notices) {
			if m.peerSlots == nil {
				m.peerSlots = map[paxos.NodeID]peerSlot{}
			}
			ps := m.peerSlots[paxos.NodeID(peer)]
			m.peerSlots[paxos.NodeID(peer)] = peerSlot{durable: max(ps.durable, durable), settled: max(ps.settled, settled)}
		})
		return
	}
	if slot <= v.slot {
		return // a peer behind this replica: it will learn
	}
	n.log.Error().Uint64("peer", peer).Uint64("its_config_slot", slot).Str("reason", re.Reason).
		Msg("a member with a newer configuration does not know this replica: it was removed")
	durable, _ := refusalSlot(re.Reason, durableMark)
	n.refusedBy.Store(peer, durable)
	if n.departing.CompareAndSwap(false, true) {
		go n.handOffAndStop(n.addrOf(peer)) // handoff.go
	}
}
