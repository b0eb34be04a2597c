package paxos

import (
	"bytes"
	"cmp"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
)

// Transcript tests script a whole cluster by hand, step by step, in one
// goroutine: the scripted network delivers messages in the order they were
// sent, cuts links, drops or holds back the messages a filter picks, and
// crashes and restarts replicas, which keep only what they persisted. Every
// action, every message and a state table after each step go into a
// transcript, compared with testdata/<scenario>.txt; `go test ./paxos -run
// TestTranscript -update` rewrites the files when behaviour changes on
// purpose. The golden files are for reading: each scenario also checks, in
// code, the behaviour it shows, so a transcript regenerated from a broken
// core still fails.

var updateTranscripts = flag.Bool("update", false, "rewrite testdata/*.txt from the transcripts of this run")

// fixedRand is the election-timeout source of one scripted replica: it always
// draws the same offset, so the script decides who times out first.
type fixedRand struct{ off int }

// IntN returns the offset, capped to the range asked for.
func (f *fixedRand) IntN(n int) int { return min(f.off, n-1) }

// scriptConfig gives every scripted replica the same small timeouts: a
// heartbeat every 3 ticks, an election timeout of 10 ticks plus the offset.
func scriptConfig(id NodeID, members []NodeID, rnd Rand) Config {
	return Config{
		ID: id, Members: members,
		HeartbeatTicks: 3, ElectionTicks: 10,
		MaxEntriesPerMsg: 8, MaxInflight: 64, MaxUncommitted: 64,
		Rand: rnd,
	}
}

// tnode is one scripted replica, its disk and its application state.
type tnode struct {
	id   NodeID
	r    *Replica
	up   bool
	rand *fixedRand

	// The disk: what a crash keeps.
	promise    Ballot
	log        []Entry
	committed  uint64
	membership Membership

	// A paused process: no ticks, and messages to it wait, until resume.
	paused   bool
	pausedAt int
	inbox    []Message

	// The application: rebuilt from the log after a restart.
	applied []Entry
	reads   map[uint64]ReadState // read context -> answer
}

// filter picks messages in flight to drop, or to hold back until release.
type filter struct {
	desc  string
	match func(Message) bool
	hold  bool
}

// cluster is the scripted cluster. It writes the transcript to out, or
// nothing when out is nil (benchmarks).
type cluster struct {
	tb      testing.TB
	out     *strings.Builder
	members []NodeID
	nodes   []*tnode
	cut     map[[2]NodeID]bool // directed links that lose everything
	filters []filter
	queue   []Message // in flight, delivered in order from head
	head    int
	held    []Message         // held back by a filter
	now     int               // ticks since the start
	ticked  int               // the last tick whose marker is in the transcript
	table   string            // the last state table written
	masters map[Ballot]NodeID // who was master at each ballot: never two
	// delivered records every message a replica received, for the checks.
	delivered []Message
	// bench keeps no disk log, applied values or delivered messages, so a
	// benchmark measures the core and not the harness.
	bench  bool
	bugs   bugs
	config func(id NodeID, members []NodeID, rnd Rand) Config
	// oneTickOnResume is the node's old mistake: a resumed process gets one
	// tick, not the ticks it missed.
	oneTickOnResume bool
}

// clusterOptions say how to build a scripted cluster.
type clusterOptions struct {
	nodes int
	// offsets gives the election-timeout offset of some replicas; the others
	// get 2*(id-1), so node 1 times out first, then 2, two ticks apart.
	offsets    map[NodeID]int
	transcript bool
	bench      bool
	bugs       bugs // planted bugs, to prove the checks bite
	// config builds each replica's Config; scriptConfig if nil.
	config          func(id NodeID, members []NodeID, rnd Rand) Config
	oneTickOnResume bool
}

// newCluster starts fresh replicas.
func newCluster(tb testing.TB, o clusterOptions) *cluster {
	c := &cluster{tb: tb, cut: map[[2]NodeID]bool{}, masters: map[Ballot]NodeID{}, bench: o.bench, bugs: o.bugs, config: o.config,
		oneTickOnResume: o.oneTickOnResume}
	if c.config == nil {
		c.config = scriptConfig
	}
	if o.transcript {
		c.out = &strings.Builder{}
	}
	for i := 1; i <= o.nodes; i++ {
		c.members = append(c.members, NodeID(i))
	}
	for _, id := range c.members {
		off, ok := o.offsets[id]
		if !ok {
			off = 2 * (int(id) - 1)
		}
		nd := &tnode{id: id, rand: &fixedRand{off: off}}
		c.nodes = append(c.nodes, nd)
		c.boot(nd)
	}
	return c
}

func (c *cluster) node(id NodeID) *tnode { return c.nodes[id-1] }

// boot starts nd from its disk, the way a node process does after a crash.
func (c *cluster) boot(nd *tnode) {
	hs := HardState{Promise: nd.promise, Entries: slices.Clone(nd.log), Committed: nd.committed, Membership: nd.membership}
	cfg := c.config(nd.id, c.members, nd.rand)
	cfg.bugs = c.bugs
	r, err := New(cfg, hs)
	if err != nil {
		c.tb.Fatalf("node %d: New: %v", nd.id, err)
	}
	nd.r, nd.up, nd.applied = r, true, nil
	nd.reads = map[uint64]ReadState{}
}

func (c *cluster) printf(format string, args ...any) {
	if c.out != nil {
		fmt.Fprintf(c.out, format, args...)
	}
}

// action starts a step in the transcript.
func (c *cluster) action(format string, args ...any) {
	c.printf("\n> "+format+"\n", args...)
}

// event writes one line of what happened, after a marker of the tick it
// happened in when that is new.
func (c *cluster) event(format string, args ...any) {
	if c.out == nil {
		return
	}
	if c.ticked != c.now {
		c.ticked = c.now
		c.printf("  @%d\n", c.now)
	}
	c.printf("  "+format+"\n", args...)
}

// note writes a comment that explains the next steps.
func (c *cluster) note(format string, args ...any) {
	c.printf("\n# "+format+"\n", args...)
}

// ---- Actions ----

// setup runs steps without writing them, then writes desc and the state
// they led to: the scenarios after the first start from a settled cluster.
func (c *cluster) setup(desc string, steps func()) {
	out := c.out
	c.out = nil
	steps()
	c.out = out
	c.action("setup: %s", desc)
	c.table = ""
	c.endStep()
}

// electFirst lets node 1 win the first election and spreads the choice of
// its no-op (slot 1) with one heartbeat.
func (c *cluster) electFirst() {
	c.tb.Helper()
	c.tick(10)
	c.tick(3)
	c.expectMaster(1)
	for _, nd := range c.nodes {
		if nd.up && nd.r.Committed() != 1 {
			c.tb.Fatalf("setup: node %d has commit %d, want 1", nd.id, nd.r.Committed())
		}
	}
}

// tick advances the clock n times on the listed replicas (every live one if
// none is listed), letting the network run to quiet after each tick.
func (c *cluster) tick(n int, ids ...NodeID) {
	who := "all"
	if len(ids) > 0 {
		who = fmt.Sprint(ids)
	} else {
		ids = c.members
	}
	c.action("tick %d (%s)", n, who)
	for i := 0; i < n; i++ {
		c.now++
		for _, id := range ids {
			if nd := c.node(id); nd.up && !nd.paused {
				nd.r.Tick()
			}
		}
		c.run()
	}
	c.endStep()
}

// tickUntil ticks every live replica, one tick at a time, until done holds,
// failing the test after limit ticks.
func (c *cluster) tickUntil(limit int, done func() bool) {
	c.tb.Helper()
	for i := 0; !done(); i++ {
		if i == limit {
			c.tb.Fatalf("not reached after %d ticks", limit)
		}
		c.tick(1)
	}
}

// deliver lets the network run until no message is in flight.
func (c *cluster) deliver() {
	c.action("deliver")
	c.run()
	c.endStep()
}

// propose asks replica id to choose a batch of commands.
func (c *cluster) propose(id NodeID, cmds ...string) (uint64, error) {
	c.action("propose %d %s", id, strings.Join(cmds, ","))
	batch := make([][]byte, len(cmds))
	for i, s := range cmds {
		batch[i] = []byte(s)
	}
	slot, err := c.node(id).r.Propose(batch)
	if err != nil {
		c.printf("  error: %v\n", err)
	} else {
		c.printf("  slot %d\n", slot)
	}
	return slot, err
}

// proposeEach proposes each value in its own slot, as one step.
func (c *cluster) proposeEach(id NodeID, values ...string) {
	c.tb.Helper()
	c.action("propose %d %s, one slot each", id, abbreviate(values))
	var first, last uint64
	for _, v := range values {
		slot, err := c.node(id).r.Propose([][]byte{[]byte(v)})
		if err != nil {
			c.tb.Fatalf("propose %s at %d: %v", v, id, err)
		}
		if first == 0 {
			first = slot
		}
		last = slot
	}
	c.printf("  slots %d..%d\n", first, last)
}

// mustPropose proposes and fails the test if the replica refuses.
func (c *cluster) mustPropose(id NodeID, cmds ...string) uint64 {
	c.tb.Helper()
	slot, err := c.propose(id, cmds...)
	if err != nil {
		c.tb.Fatalf("propose %v at %d: %v", cmds, id, err)
	}
	return slot
}

// readIndex asks replica id for a read index under ctx.
func (c *cluster) readIndex(id NodeID, ctx uint64) {
	c.action("read-index %d ctx=%d", id, ctx)
	c.node(id).r.ReadIndex(ctx)
}

// crash stops replica id; only its disk survives.
func (c *cluster) crash(id NodeID) {
	nd := c.node(id)
	c.action("crash %d", id)
	nd.up, nd.r, nd.applied, nd.reads = false, nil, nil, nil
	c.endStep()
}

// restart boots replica id from its disk.
func (c *cluster) restart(id NodeID) {
	nd := c.node(id)
	c.action("restart %d (disk: promise=%s, %d log records, committed=%d)", id, fmtBallot(nd.promise), len(nd.log), nd.committed)
	c.boot(nd)
	c.endStep()
}

// wipe crashes replica id and empties its data directory; it comes back
// (restart) as a learner, as a node on a wiped directory finds it is once
// its peers answer that the cluster is not new.
func (c *cluster) wipe(id NodeID) {
	nd := c.node(id)
	c.action("wipe %d", id)
	nd.up, nd.r, nd.applied, nd.reads = false, nil, nil, nil
	nd.promise, nd.log, nd.committed, nd.membership = Ballot{}, nil, 0, Learner
	c.endStep()
}

// pause stops replica id's process (SIGSTOP): its clock runs on, but it
// handles no tick and no message until resume.
func (c *cluster) pause(id NodeID) {
	nd := c.node(id)
	c.action("pause %d", id)
	nd.paused, nd.pausedAt = true, c.now
}

// resume runs replica id again: it is handed every tick that passed while
// it was stopped, at once, before the messages that waited for it.
func (c *cluster) resume(id NodeID) {
	nd := c.node(id)
	missed := c.now - nd.pausedAt
	if c.oneTickOnResume {
		missed = min(missed, 1)
	}
	c.action("resume %d (%d ticks passed)", id, c.now-nd.pausedAt)
	nd.paused = false
	nd.r.Elapse(missed)
	c.queue = append(c.queue, nd.inbox...)
	nd.inbox = nil
	c.run()
	c.endStep()
}

// connLost tells replica to that its connection from replica from closed.
func (c *cluster) connLost(to, from NodeID) {
	c.action("connection %d->%d closes", from, to)
	c.node(to).r.PeerLost(from)
	c.run()
	c.endStep()
}

// isolate cuts every link to and from replica id.
func (c *cluster) isolate(id NodeID) {
	c.action("isolate %d", id)
	for _, o := range c.members {
		if o != id {
			c.cut[[2]NodeID{id, o}], c.cut[[2]NodeID{o, id}] = true, true
		}
	}
}

// partition cuts every link between the two groups, both ways.
func (c *cluster) partition(a, b []NodeID) {
	c.action("partition %v | %v", a, b)
	for _, x := range a {
		for _, y := range b {
			c.cut[[2]NodeID{x, y}], c.cut[[2]NodeID{y, x}] = true, true
		}
	}
}

// heal mends every link; filters stay until unfilter.
func (c *cluster) heal() {
	c.action("heal")
	clear(c.cut)
}

// drop loses every message in flight that f matches, until unfilter.
func (c *cluster) drop(desc string, f func(Message) bool) {
	c.action("drop %s", desc)
	c.filters = append(c.filters, filter{desc: desc, match: f})
}

// hold keeps back every message f matches, until release.
func (c *cluster) hold(desc string, f func(Message) bool) {
	c.action("hold %s", desc)
	c.filters = append(c.filters, filter{desc: desc, match: f, hold: true})
}

// unfilter removes every drop and hold filter.
func (c *cluster) unfilter() {
	c.action("unfilter")
	c.filters = nil
}

// release removes the hold filters and sends the held messages again, in
// order, delivering to quiet.
func (c *cluster) release() {
	c.action("release %d held", len(c.held))
	c.filters = slices.DeleteFunc(c.filters, func(f filter) bool { return f.hold })
	c.queue = append(c.queue, c.held...)
	c.held = nil
	c.run()
	c.endStep()
}

// inject delivers a message that was long delayed in the network.
func (c *cluster) inject(m Message) {
	c.action("inject %s", fmtMsg(m))
	c.queue = append(c.queue, m)
	c.run()
	c.endStep()
}

// ---- The network ----

// run handles every pending Ready and delivers messages until quiet.
func (c *cluster) run() {
	for steps := 0; ; steps++ {
		if steps > 100000 {
			c.tb.Fatalf("the network never went quiet")
		}
		if c.head == len(c.queue) {
			// Drained: reuse the array from its start.
			c.queue, c.head = c.queue[:0], 0
			busy := false
			for _, nd := range c.nodes {
				if nd.up && !nd.paused && nd.r.HasReady() {
					busy = true
					c.handleReady(nd)
				}
			}
			if !busy && len(c.queue) == 0 {
				return
			}
			continue
		}
		m := c.queue[c.head]
		c.queue[c.head] = Message{}
		c.head++
		c.deliverOne(m)
	}
}

func (c *cluster) deliverOne(m Message) {
	to := c.node(m.To)
	why := ""
	// Filters first: a held message is out of the network and meets the
	// links as they are when it is released.
	for _, f := range c.filters {
		if f.match(m) {
			if f.hold {
				why = "held: " + f.desc
				c.held = append(c.held, m)
			} else {
				why = "dropped: " + f.desc
			}
			break
		}
	}
	switch {
	case why != "":
	case c.cut[[2]NodeID{m.From, m.To}]:
		why = "dropped: cut"
	case !to.up:
		why = fmt.Sprintf("dropped: %d down", m.To)
	case to.paused:
		why = fmt.Sprintf("waits: %d paused", m.To)
		to.inbox = append(to.inbox, m)
	}
	if c.out != nil {
		if why != "" {
			c.event("%s  (%s)", fmtMsg(m), why)
		} else {
			c.event("%s", fmtMsg(m))
		}
	}
	if why != "" {
		return
	}
	if !c.bench {
		c.delivered = append(c.delivered, m)
	}
	to.r.Step(m)
	c.handleReady(to)
}

// handleReady does what a node does with a Ready: send, persist, send the
// votes, apply, advance.
func (c *cluster) handleReady(nd *tnode) {
	for nd.r.HasReady() {
		rd := nd.r.Ready()
		if ss := rd.SoftState; ss != nil {
			c.event("node %d: %s", nd.id, fmtSoft(*ss))
			if ss.Role == Master {
				if other, ok := c.masters[ss.Ballot]; ok && other != nd.id {
					c.tb.Fatalf("ballot %v has two masters, %d and %d", ss.Ballot, other, nd.id)
				}
				c.masters[ss.Ballot] = nd.id
			}
		}
		c.queue = append(c.queue, rd.Messages...)
		if rd.PromiseChanged {
			nd.promise = rd.Promise
		}
		if rd.MembershipChanged {
			nd.membership = rd.Membership
		}
		if !c.bench {
			nd.log = append(nd.log, rd.Accepted...)
			nd.committed = max(nd.committed, rd.Committed)
		}
		c.queue = append(c.queue, rd.MessagesAfterPersist...)
		for _, e := range rd.Chosen {
			if want := uint64(len(nd.applied)) + 1; e.Slot != want && !c.bench {
				c.tb.Fatalf("node %d: handed slot %d to apply, want slot %d", nd.id, e.Slot, want)
			}
			if !c.bench {
				nd.applied = append(nd.applied, e)
			}
		}
		for _, rs := range rd.ReadStates {
			if rs.Failed {
				c.event("node %d: read ctx=%d failed", nd.id, rs.Context)
			} else {
				c.event("node %d: read ctx=%d granted at index %d", nd.id, rs.Context, rs.Index)
			}
			nd.reads[rs.Context] = rs
		}
		nd.r.Advance(rd)
	}
}

// endStep checks safety across the cluster and writes the state table when
// it changed.
func (c *cluster) endStep() {
	c.tb.Helper()
	c.checkAgreement()
	if c.out == nil {
		return
	}
	t := c.stateTable()
	if t == c.table {
		return
	}
	c.table = t
	c.out.WriteString(t)
}

// checkAgreement fails the test if two replicas applied different values at
// one slot.
func (c *cluster) checkAgreement() {
	c.tb.Helper()
	for _, a := range c.nodes {
		for _, b := range c.nodes {
			for i := 0; i < min(len(a.applied), len(b.applied)); i++ {
				if va, vb := fmtValue(a.applied[i].Value), fmtValue(b.applied[i].Value); va != vb {
					c.tb.Fatalf("slot %d: node %d applied %s, node %d applied %s", i+1, a.id, va, b.id, vb)
				}
			}
		}
	}
}

// ---- Formatting ----

func (c *cluster) offsets() string {
	parts := make([]string, len(c.nodes))
	for i, nd := range c.nodes {
		parts[i] = fmt.Sprintf("%d:+%d", nd.id, nd.rand.off)
	}
	return strings.Join(parts, " ")
}

func fmtValue(v Value) string {
	switch v.Kind {
	case ValueNoop:
		return "noop"
	case ValueConfig:
		return "config"
	}
	parts := make([]string, len(v.Cmds))
	for i, c := range v.Cmds {
		s := string(c)
		if s == "" || strings.ContainsAny(s, " ,:@[]\"") || strconv.Quote(s) != `"`+s+`"` {
			s = strconv.Quote(s)
		}
		parts[i] = s
	}
	return strings.Join(parts, ",")
}

// entryList lists entries as slot:value@ballot.
func entryList(es []Entry) []string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = fmt.Sprintf("%d:%s@%v", e.Slot, fmtValue(e.Value), e.Ballot)
	}
	return parts
}

func fmtEntries(es []Entry) string {
	if len(es) == 0 {
		return "-"
	}
	return strings.Join(entryList(es), " ")
}

// fmtHeld is fmtEntries for a table cell: long lists are elided.
func fmtHeld(es []Entry) string {
	if len(es) == 0 {
		return "-"
	}
	return abbreviate(entryList(es))
}

func fmtMsg(m Message) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d->%d %v", m.From, m.To, m.Type)
	reject := func() {
		if m.Reject {
			fmt.Fprintf(&b, " REJECT hint=%v", m.Hint)
		}
	}
	switch m.Type {
	case MsgPrePrepare:
		fmt.Fprintf(&b, " b=%v", m.Ballot)
	case MsgPrePromise:
		fmt.Fprintf(&b, " b=%v", m.Ballot)
		reject()
	case MsgPrepare:
		fmt.Fprintf(&b, " b=%v from=%d", m.Ballot, m.Slot)
		if m.Token != 0 && !m.Force {
			b.WriteString(" token")
		}
	case MsgPromise:
		fmt.Fprintf(&b, " b=%v", m.Ballot)
		if m.Reject {
			reject()
			break
		}
		fmt.Fprintf(&b, " from=%d commit=%d accepted=[%s]", m.Slot, m.Commit, fmtEntries(m.Entries))
	case MsgAccept:
		fmt.Fprintf(&b, " b=%v", m.Ballot)
		if n := len(m.Entries); n > 0 {
			vals := make([]string, n)
			for i, e := range m.Entries {
				vals[i] = fmtValue(e.Value)
			}
			fmt.Fprintf(&b, " slots=[%d..%d] commit=%d values=[%s]", m.Entries[0].Slot, m.Entries[n-1].Slot, m.Commit, strings.Join(vals, " "))
		} else {
			fmt.Fprintf(&b, " commit=%d", m.Commit)
		}
	case MsgAccepted:
		fmt.Fprintf(&b, " b=%v", m.Ballot)
		if m.Reject {
			reject()
			break
		}
		fmt.Fprintf(&b, " slots=[%d..%d]", m.Slot, m.Index)
	case MsgHeartbeat:
		fmt.Fprintf(&b, " b=%v commit=%d", m.Ballot, m.Commit)
		if m.Context != 0 {
			fmt.Fprintf(&b, " round=%d", m.Context)
		}
	case MsgHeartbeatResp:
		fmt.Fprintf(&b, " b=%v", m.Ballot)
		if m.Context != 0 {
			fmt.Fprintf(&b, " round=%d", m.Context)
		}
		if m.Learner {
			fmt.Fprintf(&b, " learner saw=%v", m.Hint)
			if m.Token != 0 {
				b.WriteString(" token")
			}
		}
		reject()
	case MsgReadIndex:
		fmt.Fprintf(&b, " ctx=%d", m.Context)
	case MsgReadIndexResp:
		fmt.Fprintf(&b, " ctx=%d", m.Context)
		if m.Reject {
			b.WriteString(" REJECT")
		} else {
			fmt.Fprintf(&b, " index=%d", m.Index)
		}
	case MsgFetch:
		fmt.Fprintf(&b, " from=%d", m.Slot)
	case MsgFetchResp:
		fmt.Fprintf(&b, " commit=%d chosen=[%s]", m.Commit, fmtEntries(m.Entries))
	}
	return b.String()
}

func fmtSoft(ss SoftState) string {
	switch ss.Role {
	case Master:
		if ss.Ready {
			return fmt.Sprintf("master at %v, ready (own no-op chosen)", ss.Ballot)
		}
		return fmt.Sprintf("master at %v, not ready", ss.Ballot)
	case Candidate:
		return fmt.Sprintf("candidate at %v", ss.Ballot)
	}
	if ss.Master == None {
		return "follower, no master"
	}
	return fmt.Sprintf("follower of %d at %v", ss.Master, ss.Ballot)
}

// stateTable is the short table written after each step: per replica its
// role, master and ballot, promise, chosen prefix, the values it applied and
// what it holds above its chosen prefix.
func (c *cluster) stateTable() string {
	var b bytes.Buffer
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "  node\trole\tmaster\tballot\tpromise\tcommit\tapplied\tabove commit")
	for _, nd := range c.nodes {
		if !nd.up {
			fmt.Fprintf(w, "  %d\tdown\t-\t-\t%s\t%d\t-\t%s\n", nd.id, fmtBallot(nd.promise), nd.committed, diskAbove(nd))
			continue
		}
		ss, commit := nd.r.Status()
		role := ss.Role.String()
		if ss.Role == Master && ss.Ready {
			role = "master*"
		}
		if m := nd.r.learn.membership; m != Voter {
			role += "/" + m.String()
		}
		if nd.paused {
			role += " (paused)"
		}
		master, ballot := "-", "-"
		if ss.Master != None {
			master = fmt.Sprint(ss.Master)
		}
		if !ss.Ballot.IsZero() {
			ballot = ss.Ballot.String()
		}
		fmt.Fprintf(w, "  %d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", nd.id, role, master, ballot, fmtBallot(nd.r.Promise()), commit,
			fmtApplied(nd.applied), fmtHeld(nd.r.entriesFrom(commit+1)))
	}
	w.Flush()
	return b.String()
}

// diskAbove lists what a down replica's log holds above its committed hint.
func diskAbove(nd *tnode) string {
	last := map[uint64]Entry{}
	for _, e := range nd.log {
		if e.Slot > nd.committed {
			last[e.Slot] = e
		}
	}
	es := make([]Entry, 0, len(last))
	for _, e := range last {
		es = append(es, e)
	}
	slices.SortFunc(es, func(a, b Entry) int { return cmp.Compare(a.Slot, b.Slot) })
	return fmtHeld(es)
}

func fmtBallot(b Ballot) string {
	if b.IsZero() {
		return "-"
	}
	return b.String()
}

// fmtApplied lists applied values for a table cell: long lists are elided.
func fmtApplied(es []Entry) string {
	if len(es) == 0 {
		return "-"
	}
	return abbreviate(strings.Fields(valueList(es)))
}

// valueList lists the values of es, in order, separated by spaces.
func valueList(es []Entry) string {
	vals := make([]string, len(es))
	for i, e := range es {
		vals[i] = fmtValue(e.Value)
	}
	return strings.Join(vals, " ")
}

// abbreviate joins parts, eliding the middle of a long list so a table row
// stays readable.
func abbreviate(parts []string) string {
	if len(parts) <= 8 {
		return strings.Join(parts, " ")
	}
	n := len(parts)
	return fmt.Sprintf("%s ... %s (%d)", strings.Join(parts[:3], " "), strings.Join(parts[n-2:], " "), n)
}

// ---- Checks ----

// sent returns the messages of type t from -> to delivered so far
// (None matches any replica).
func (c *cluster) sent(t MsgType, from, to NodeID) []Message {
	var out []Message
	is := msgIs(t, from, to)
	for _, m := range c.delivered {
		if is(m) {
			out = append(out, m)
		}
	}
	return out
}

// diskPromise returns the ballot a replica would restore as its promise from
// its disk: the promise file or the highest ballot in its log.
func (nd *tnode) diskPromise() Ballot {
	p := nd.promise
	for _, e := range nd.log {
		if p.Less(e.Ballot) {
			p = e.Ballot
		}
	}
	return p
}

// msgIs matches messages of type t from -> to (None matches any replica).
func msgIs(t MsgType, from, to NodeID) func(Message) bool {
	return func(m Message) bool {
		return m.Type == t && (from == None || m.From == from) && (to == None || m.To == to)
	}
}

// appliedValues returns the values replica id applied, in slot order.
func (c *cluster) appliedValues(id NodeID) string { return valueList(c.node(id).applied) }

func (c *cluster) expectApplied(id NodeID, want string) {
	c.tb.Helper()
	if got := c.appliedValues(id); got != want {
		c.tb.Errorf("node %d applied %q, want %q", id, got, want)
	}
}

func (c *cluster) expectRole(id NodeID, want Role) {
	c.tb.Helper()
	if got := c.node(id).r.role; got != want {
		c.tb.Errorf("node %d is %v, want %v", id, got, want)
	}
}

// expectMaster checks that id is the one master and every other live
// replica follows it.
func (c *cluster) expectMaster(id NodeID) {
	c.tb.Helper()
	for _, nd := range c.nodes {
		if !nd.up {
			continue
		}
		ss, _ := nd.r.Status()
		switch {
		case nd.id == id && ss.Role != Master:
			c.tb.Errorf("node %d is %v, want master", nd.id, ss.Role)
		case nd.id != id && (ss.Role != Follower || ss.Master != id):
			c.tb.Errorf("node %d is %v of %d, want follower of %d", nd.id, ss.Role, ss.Master, id)
		}
	}
}

func (c *cluster) expectCommit(id NodeID, want uint64) {
	c.tb.Helper()
	if got := c.node(id).r.Committed(); got != want {
		c.tb.Errorf("node %d: commit %d, want %d", id, got, want)
	}
}

func (c *cluster) expectPromise(id NodeID, want Ballot) {
	c.tb.Helper()
	if got := c.node(id).r.Promise(); got != want {
		c.tb.Errorf("node %d: promise %v, want %v", id, got, want)
	}
}

// expectRead checks the answer replica id got for read ctx; index 0 means
// the read must have failed, -1 that no answer came yet.
func (c *cluster) expectRead(id NodeID, ctx uint64, index int) {
	c.tb.Helper()
	rs, ok := c.node(id).reads[ctx]
	switch {
	case index < 0 && ok:
		c.tb.Errorf("node %d: read ctx=%d answered %+v, want no answer yet", id, ctx, rs)
	case index < 0:
	case !ok:
		c.tb.Errorf("node %d: read ctx=%d not answered, want index %d", id, ctx, index)
	case index == 0 && !rs.Failed:
		c.tb.Errorf("node %d: read ctx=%d granted at %d, want it refused", id, ctx, rs.Index)
	case index > 0 && (rs.Failed || rs.Index != uint64(index)):
		c.tb.Errorf("node %d: read ctx=%d answered %+v, want granted at %d", id, ctx, rs, index)
	}
}

// ---- The test ----

// transcriptScenario is one scripted story with its golden file.
type transcriptScenario struct {
	name    string
	nodes   int
	offsets map[NodeID]int // election-timeout offsets other than 2*(id-1)
	lease   bool           // replicas hold leases (leaseConfig)
	title   string
	run     func(c *cluster)
}

// options returns how to build the scenario's cluster.
func (sc transcriptScenario) options() clusterOptions {
	o := clusterOptions{nodes: sc.nodes, offsets: sc.offsets}
	if sc.lease {
		o.config = leaseConfig
	}
	return o
}

// leaseConfig is scriptConfig with the longest lease the drift bound
// allows: 8 ticks, of an election timeout of 10.
func leaseConfig(id NodeID, members []NodeID, rnd Rand) Config {
	c := scriptConfig(id, members, rnd)
	c.LeaseTicks = MaxLeaseTicks(c.ElectionTicks)
	return c
}

func TestTranscript(t *testing.T) {
	for _, sc := range transcriptScenarios {
		t.Run(sc.name, func(t *testing.T) {
			o := sc.options()
			o.transcript = true
			c := newCluster(t, o)
			lease := ""
			if sc.lease {
				lease = fmt.Sprintf("; lease %d ticks", MaxLeaseTicks(10))
			}
			c.printf("# %s\n# %d replicas; heartbeat every 3 ticks; election timeout 10 ticks + offset (%s)%s.\n", sc.title, sc.nodes, c.offsets(), lease)
			c.printf("# A state table follows each step that changed something. master* = a master whose own no-op is\n")
			c.printf("# chosen; \"above commit\" = slot:value@ballot held above the chosen prefix. A down replica shows\n")
			c.printf("# its disk: the promise file, the committed hint and its log above it.\n")
			c.endStep()
			path := filepath.Join("testdata", sc.name+".txt")
			if *updateTranscripts {
				// Written even when a check fails, to show how far it got.
				defer writeGolden(t, path, c.out)
			}
			sc.run(c)
			if !*updateTranscripts {
				compareGolden(t, path, c.out.String())
			}
		})
	}
}

func writeGolden(t *testing.T, path string, out *strings.Builder) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Error(err)
	}
	if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
		t.Error(err)
	}
}

// recordTB stands in for the test while a scenario runs against a core with
// a planted bug: it records the failures, and stops the scenario at the
// first fatal one.
type recordTB struct {
	testing.TB
	failures []string
}

type stopScenario struct{}

func (r *recordTB) Helper() {}

func (r *recordTB) Errorf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

func (r *recordTB) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	panic(stopScenario{})
}

// runRecorded runs a scenario and returns the failures it reported.
func runRecorded(parent testing.TB, sc transcriptScenario, b bugs, oneTick bool) (failures []string) {
	rec := &recordTB{TB: parent}
	defer func() {
		if v := recover(); v != nil {
			if _, ok := v.(stopScenario); !ok {
				panic(v)
			}
		}
		failures = rec.failures
	}()
	o := sc.options()
	o.bugs, o.oneTickOnResume = b, oneTick
	c := newCluster(rec, o)
	sc.run(c)
	return rec.failures
}

// TestTranscriptChecksBite runs scenarios against a core with a planted
// bug, each the mistake a scenario is about, and expects the scenario's own
// checks (not the golden file) to fail.
func TestTranscriptChecksBite(t *testing.T) {
	byName := map[string]transcriptScenario{}
	for _, sc := range transcriptScenarios {
		byName[sc.name] = sc
	}
	for _, tc := range []struct {
		scenario string
		bug      string
		bugs     bugs
		oneTick  bool
	}{
		{"03_old_master_rejoins", "apply a value accepted under an older ballot", bugs{applyOlderBallot: true}, false},
		{"09_read_index", "serve reads before the own no-op is chosen", bugs{serveBeforeNoop: true}, false},
		{"09_read_index", "grant reads without a quorum round", bugs{readWithoutQuorum: true}, false},
		{"11_paused_master", "one tick per wake-up", bugs{}, true},
		{"12_forgotten_promise", "promote a learner at once, with the master's ballot", bugs{promoteEarly: true}, false},
		{"13_late_timeout_now", "a TimeoutNow that forces an election whenever it arrives", bugs{looseTimeoutNow: true}, false},
		{"14_early_election_margin", "stop being sticky after exactly the lease", bugs{earlyNoMargin: true}, false},
		{"15_stale_fetch_commit", "read a fetched commit index under the ballot followed", bugs{fetchCommit: true}, false},
	} {
		t.Run(tc.scenario+"/"+tc.bug, func(t *testing.T) {
			if failures := runRecorded(t, byName[tc.scenario], bugs{}, false); len(failures) != 0 {
				t.Fatalf("fails without the bug: %v", failures)
			}
			failures := runRecorded(t, byName[tc.scenario], tc.bugs, tc.oneTick)
			if len(failures) == 0 {
				t.Fatalf("planted bug %q: the scenario's checks all passed", tc.bug)
			}
			t.Logf("planted bug %q caught: %s", tc.bug, failures[0])
		})
	}
}

// compareGolden fails the test where got differs from the golden file.
func compareGolden(t *testing.T, path, got string) {
	t.Helper()
	wantB, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run `go test ./paxos -run TestTranscript -update` to create it)", err)
	}
	want := string(wantB)
	if got == want {
		return
	}
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < max(len(g), len(w)); i++ {
		gl, wl := "<end>", "<end>"
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			lo := max(0, i-3)
			t.Fatalf("%s differs from this run at line %d (rerun with -update if the change is intended)\ncontext:\n%s\nwant: %s\ngot:  %s",
				path, i+1, strings.Join(g[lo:i], "\n"), wl, gl)
		}
	}
}

// ---- Scenarios ----

var transcriptScenarios = []transcriptScenario{
	{name: "01_first_election", nodes: 3, run: scenarioFirstElection,
		title: "First election: pre-prepare, prepare, promises, the no-op, then a proposal chosen and applied everywhere."},
	{name: "02_master_crash", nodes: 3, run: scenarioMasterCrash,
		title: "Master crash and re-election: the value chosen at slot 2 survives there; the new master serves a new proposal."},
	{name: "03_old_master_rejoins", nodes: 3, run: scenarioOldMasterRejoins,
		title: "A partitioned old master keeps proposing into its minority; on heal it steps down and applies the new master's value, never its own (trap 1)."},
	{name: "04_minority_cannot_commit", nodes: 5, run: scenarioMinority,
		title: "A master with one follower, cut from the other three, cannot choose anything: its commit index does not move."},
	{name: "05_overlapping_ballots", nodes: 5, offsets: map[NodeID]int{1: 0, 2: 3, 3: 8, 4: 9, 5: 1}, run: scenarioOverlappingBallots,
		title: "Overlapping ballots (the Raft paper's Figure 8, in Paxos form): the highest ballot's value wins, and counts as chosen only under the new ballot (trap 2)."},
	{name: "06_gap_filling", nodes: 3, run: scenarioGapFilling,
		title: "Gap filling: a new master finds a hole between accepted slots and fills it with a no-op."},
	{name: "07_catch_up", nodes: 3, run: scenarioCatchUp,
		title: "Catch-up: a replica down while 20 values are chosen fetches them on restart and applies them in order."},
	{name: "08_accept_raises_promise", nodes: 3, run: scenarioAcceptRaisesPromise,
		title: "Trap 3: an Accept above the promise raises it, persisted with the value; after a restart lower ballots are refused."},
	{name: "09_read_index", nodes: 3, run: scenarioReadIndex,
		title: "Trap 4: read indexes wait for the master's own no-op and a quorum heartbeat round, at the commit index of the moment asked."},
	{name: "10_stickiness", nodes: 3, run: scenarioStickiness,
		title: "Stickiness: a replica cut off and back cannot depose a healthy master; no ballot rises on the others."},
	{name: "11_paused_master", nodes: 3, lease: true, run: scenarioPausedMaster,
		title: "Trap 8: a master paused past its lease wakes up older, with no lease, and serves no stale read."},
	{name: "12_forgotten_promise", nodes: 5, offsets: map[NodeID]int{1: 0, 2: 2, 3: 4, 4: 6, 5: 9}, run: scenarioForgottenPromise,
		title: "Trap 7: a wiped replica votes again only above any promise it may have forgotten; a phase 1 that counted that promise cannot override a value it helped choose."},
	{name: "13_late_timeout_now", nodes: 3, lease: true, run: scenarioLateTimeoutNow,
		title: "Trap 9: a TimeoutNow that arrives after its handover was abandoned forces no election while the master holds a lease again."},
	{name: "14_early_election_margin", nodes: 3, lease: true, run: scenarioEarlyElectionMargin,
		title: "The early election after a lost connection waits out the master's lease on the slowest clock the drift bound allows."},
	{name: "15_stale_fetch_commit", nodes: 5, run: scenarioStaleFetchCommit,
		title: "Trap 1 again: a replica following a stale master, after a late message, fetches from it; the fetch answer's commit index speaks of the new master's ballot and does not make the stale values chosen."},
}

// scenarioPausedMaster is issue 12.1: a master stopped past its lease.
func scenarioPausedMaster(c *cluster) {
	c.setup("node 1 elected at 2.1, its no-op chosen everywhere, a lease from its last heartbeat round", func() {
		c.electFirst()
		c.tick(3)
	})
	c.note("A lease read at the master is granted at once.")
	c.readIndex(1, 1)
	c.deliver()
	c.expectRead(1, 1, 1)

	c.note("The master's process stops (SIGSTOP, a VM stall). The others elect node 2, which chooses w; its\n# Accepts and heartbeats to node 1 wait in node 1's socket.")
	c.pause(1)
	c.tick(14, 2, 3)
	c.expectRole(2, Master)
	c.mustPropose(2, "w")
	c.deliver()
	c.expectApplied(2, "noop noop w")

	c.note("Node 1 is cut off from the others, then runs again. It is handed the 14 ticks it missed first: its\n# lease ran out and its quorum did not answer, so it is no master serving reads alone. A read there is\n# not granted, so it cannot miss w.")
	c.isolate(1)
	c.resume(1)
	c.readIndex(1, 2)
	c.deliver()
	if rs, ok := c.node(1).reads[2]; ok && !rs.Failed {
		c.tb.Errorf("node 1 granted a read at index %d after being paused past its lease; w was chosen at slot 3", rs.Index)
	}
	c.expectRole(1, Follower)
}

// scenarioForgottenPromise is issue 12.3: a wiped replica's forgotten
// promise, counted by a phase 1 that completes after the replica voted
// again. Handovers start the campaigns at once, so the whole story fits in
// one candidate's election timeout.
func scenarioForgottenPromise(c *cluster) {
	c.setup("node 1 elected at 2.1, its no-op chosen everywhere", c.electFirst)

	c.note("Node 5 once saw round 50 (a probe of node 2 that reached nobody else; the answer to it is lost).\n# u goes to slot 2 and reaches node 5 only, so node 5 is the most caught-up follower; node 1 hands over\n# to it. Node 5 campaigns at once at 51.5. Its Prepare reaches node 3, which promises; the one to node 4\n# is delayed in the network; the others are lost, as is everything else node 5 sends nodes 2 and 4.")
	c.hold("Prepare 5->4", msgIs(MsgPrepare, 5, 4))
	c.drop("5->2, 5->4, Prepare 5->1", func(m Message) bool {
		return m.From == 5 && (m.To == 2 || m.To == 4 || (m.To == 1 && m.Type == MsgPrepare))
	})
	c.inject(Message{Type: MsgPrePrepare, From: 2, To: 5, Ballot: Ballot{Round: 50, Node: 2}})
	sendingU := true
	c.drop("Accepts to 2, 3, 4 while u goes out", func(m Message) bool { return sendingU && m.Type == MsgAccept && m.To != 5 })
	c.mustPropose(1, "u")
	c.deliver()
	sendingU = false
	if to, err := c.node(1).r.TransferMastership(); err != nil || to != 5 {
		c.tb.Fatalf("handover to %d (%v), want 5", to, err)
	}
	c.deliver()
	if p := c.node(3).r.Promise(); p != (Ballot{Round: 51, Node: 5}) {
		c.tb.Fatalf("node 3 promised %v, want 51.5", p)
	}

	c.note("Node 5's process stalls with two promises of five (its own and node 3's). Node 3's disk is wiped; it\n# restarts as a learner, with no memory of promising 51.5.")
	c.pause(5)
	c.wipe(3)
	c.restart(3)

	c.note("Node 1 gives the handover up after an election timeout and hands over to node 2, which is elected by\n# nodes 2, 1 and 4 at a ballot far below 51.5: none of them saw round 50.")
	c.unfilter()
	c.tick(10)
	if to, err := c.node(1).r.TransferMastership(); err != nil || to != 2 {
		c.tb.Fatalf("handover to %d (%v), want 2", to, err)
	}
	c.deliver()
	c.tickUntil(5, func() bool { return c.node(2).r.isReady() })

	c.note("v goes to node 2; its Accept to node 4 is held, so v is chosen only if node 3 votes for it.")
	c.hold("Accept 2->4", msgIs(MsgAccept, 2, 4))
	c.mustPropose(2, "v")
	c.deliver()

	c.note("Node 4 loses its connection to node 2 and is cut off from it; a tick later the late Prepare(51.5)\n# reaches it and it promises. Node 5 runs again, its candidacy still alive, with the promises of nodes 3 (forgotten) and 4.")
	c.partition([]NodeID{2}, []NodeID{4})
	c.connLost(4, 2)
	c.tick(1, 4)
	c.release()
	c.resume(5)
	c.heal()
	c.unfilter()
	c.note("Whatever each replica chose, they all apply the same values (each step checks it).")
	c.tick(12)
	c.tick(12)
	c.tick(12)
}

// scenarioLateTimeoutNow is issue 12.4.
func scenarioLateTimeoutNow(c *cluster) {
	c.setup("node 1 elected at 2.1, its no-op chosen everywhere, with a lease", func() {
		c.electFirst()
		c.tick(3)
	})
	c.note("Node 1 hands over to node 2, but the TimeoutNow is delayed in the network. After an election timeout\n# the master gives up and serves again; its next heartbeat round, which names no handover, gives it a\n# lease again.")
	c.hold("TimeoutNow", func(m Message) bool { return m.Type == MsgTimeoutNow })
	if _, err := c.node(1).r.TransferMastership(); err != nil {
		c.tb.Fatalf("transfer: %v", err)
	}
	c.tick(10)
	c.tick(3)
	c.readIndex(1, 1)
	c.deliver()
	c.expectRead(1, 1, 1)

	c.note("The master stops hearing its followers (one-way cut), and the late TimeoutNow reaches node 2.")
	c.drop("2->1 and 3->1", func(m Message) bool { return m.To == 1 })
	c.release()
	if c.node(2).r.role == Master {
		c.mustPropose(2, "w")
		c.deliver()
	}
	c.note("A lease read at node 1 now must not miss anything node 2 chose.")
	c.readIndex(1, 2)
	c.deliver()
	rs, ok := c.node(1).reads[2]
	if ok && !rs.Failed {
		for _, id := range []NodeID{2, 3} {
			if n := len(c.node(id).applied); uint64(n) > rs.Index && valueList(c.node(id).applied[rs.Index:]) != "" {
				c.tb.Errorf("node 1 granted a lease read at %d while node %d applied %q past it", rs.Index, id, valueList(c.node(id).applied[rs.Index:]))
			}
		}
	}
	c.expectRole(2, Follower)
}

// scenarioEarlyElectionMargin is issue 12.9: clocks apart within the bound.
func scenarioEarlyElectionMargin(c *cluster) {
	c.setup("node 1 elected at 2.1, its no-op chosen everywhere", c.electFirst)
	c.note("A heartbeat round gives node 1 a lease of 8 ticks on its own clock, from when it sent the round.")
	c.tick(3)
	c.note("Node 1's connections close and it is cut off, still serving reads. Its clock runs a tick behind the\n# followers' (drift and the phase of their ticks). The followers, which saw the connections close,\n# campaign once they are sure its lease is over: %d ticks on their clocks, not 8.", c.node(2).r.cfg.leaseOutlived())
	c.node(2).rand.off, c.node(3).rand.off = 0, 1
	c.isolate(1)
	c.connLost(2, 1)
	c.connLost(3, 1)
	ctx := uint64(0)
	for i := 1; i <= 12; i++ {
		c.tick(1, 2, 3)
		if i > 1 {
			c.tick(1, 1)
		}
		var fresh *tnode
		for _, id := range []NodeID{2, 3} {
			if nd := c.node(id); nd.r.isReady() && len(nd.applied) < 3 {
				fresh = nd
			}
		}
		if fresh == nil {
			continue
		}
		c.mustPropose(fresh.id, "w")
		c.deliver()
		ctx++
		c.readIndex(1, ctx)
		c.deliver()
		if rs, ok := c.node(1).reads[ctx]; ok && !rs.Failed && uint64(len(fresh.applied)) > rs.Index {
			c.tb.Errorf("node 1 granted a lease read at %d while node %d applied %q past it", rs.Index, fresh.id, valueList(fresh.applied[rs.Index:]))
		}
		break
	}
	if ctx == 0 {
		c.tb.Errorf("no new master was elected")
	}
}

// scenarioStaleFetchCommit is the bug the simulator found (seed 8702 of the
// first real-world sweep).
func scenarioStaleFetchCommit(c *cluster) {
	c.setup("node 1 elected at 2.1, its no-op chosen everywhere", c.electFirst)
	c.note("Node 1 proposes x2..x12 (slots 2..12) and y at slot 13. Everything node 1 sends node 3 is delayed in\n# the network, and the Accepts of slots 2..9 to it are lost; nodes 2, 4, 5 miss the Accept for slot 13.\n# Slots 2..12 are chosen by nodes 1, 2, 4, 5; y is held by node 1 only.")
	c.drop("Accepts of slots 2..9 to 3", func(m Message) bool {
		return m.Type == MsgAccept && m.To == 3 && len(m.Entries) > 0 && m.Entries[0].Slot <= 9
	})
	c.drop("Accept of slot 13 to 2, 4, 5", func(m Message) bool {
		return m.Type == MsgAccept && m.To != 3 && len(m.Entries) > 0 && m.Entries[len(m.Entries)-1].Slot >= 13
	})
	c.hold("1->3", func(m Message) bool { return m.From == 1 && m.To == 3 })
	var xs []string
	for i := 2; i <= 12; i++ {
		xs = append(xs, fmt.Sprintf("x%d", i))
	}
	c.proposeEach(1, xs...)
	c.deliver()
	c.mustPropose(1, "y")
	c.deliver()
	c.tick(3)
	c.expectCommit(1, 12)

	c.note("Node 1 is cut off. Nodes 2, 4 and 5 elect node 2, which fills slot 13 with its no-op. Node 3 is cut off\n# from them too.")
	c.unfilter()
	c.partition([]NodeID{1, 3}, []NodeID{2, 4, 5})
	c.partition([]NodeID{1}, []NodeID{3})
	c.tick(14, 2, 4, 5)
	c.expectRole(2, Master)
	c.tick(3, 2, 4, 5)
	c.expectCommit(2, 13)

	c.note("Node 1 rejoins and follows node 2: it fetches slot 13 and takes the no-op (commit 13).")
	c.heal()
	c.partition([]NodeID{3}, []NodeID{2, 4, 5})
	c.tick(3, 1, 2, 4, 5)
	c.expectCommit(1, 13)

	c.note("What node 1 sent node 3 long ago arrives: Accepts at 2.1 for slots 10..13 (y among them) and heartbeats\n# with commit 12. Node 3 follows node 1 at 2.1, lacks slots 2..9 and fetches them from node 1, whose\n# answer says commit 13, for node 2's ballot. Slot 13 holds y at 2.1 on node 3: not chosen, never applied.")
	c.release()
	c.deliver()
	for _, e := range c.node(3).applied {
		if fmtValue(e.Value) == "y" {
			c.tb.Errorf("node 3 applied y at slot %d, which was never chosen", e.Slot)
		}
	}
	c.heal()
	c.tick(6)
	for _, id := range c.members {
		c.expectApplied(id, "noop "+strings.Join(xs, " ")+" noop")
	}
}

func scenarioFirstElection(c *cluster) {
	c.note("Node 1 times out first (tick 10). Its pre-prepare probe changes no state; with a quorum of grants it\n# prepares at a ballot above every round it has seen, then takes office and proposes its no-op in slot 1.")
	c.tick(10)
	c.expectMaster(1)
	if len(c.sent(MsgPrePrepare, 1, None)) != 2 || len(c.sent(MsgPrepare, 1, None)) != 2 {
		c.tb.Errorf("node 1 did not probe then prepare both peers")
	}
	b := c.node(1).r.masterBallot
	for _, id := range c.members {
		c.expectPromise(id, b)
	}
	c.expectCommit(1, 1)
	if !c.node(1).r.isReady() {
		c.tb.Errorf("node 1 is not ready once its no-op is chosen")
	}
	c.expectApplied(1, "noop")

	c.note("The followers learn that slot 1 is chosen from the next heartbeat.")
	c.tick(3)
	for _, id := range c.members {
		c.expectApplied(id, "noop")
	}

	c.note("A proposal: the master accepts it, sends Accept, and counts it chosen with one follower's vote.")
	slot := c.mustPropose(1, "x")
	if slot != 2 {
		c.tb.Errorf("x went to slot %d, want 2", slot)
	}
	c.deliver()
	c.expectCommit(1, 2)
	c.expectApplied(1, "noop x")
	c.expectCommit(2, 1)

	c.note("The next heartbeat carries commit=2: every replica applies x.")
	c.tick(3)
	for _, id := range c.members {
		c.expectCommit(id, 2)
		c.expectApplied(id, "noop x")
	}

	c.note("A proposal to a follower is refused.")
	if _, err := c.propose(2, "y"); !errors.Is(err, ErrNotMaster) {
		c.tb.Errorf("propose at a follower: %v, want ErrNotMaster", err)
	}
}

func scenarioMasterCrash(c *cluster) {
	c.setup("node 1 elected at 2.1, its no-op chosen everywhere", c.electFirst)

	c.note("x is chosen at slot 2 (master and node 2 accepted it), but the master dies before any follower\n# hears that: the followers hold x above their commit index.")
	c.mustPropose(1, "x")
	c.deliver()
	c.expectCommit(1, 2)
	c.expectCommit(2, 1)
	c.crash(1)

	c.note("Node 2 times out first. Its Prepare asks from slot 2; node 3's Promise reports x there, and the\n# new master re-proposes x at slot 2 under its own ballot, then its own no-op at slot 3.")
	c.tick(12)
	c.expectMaster(2)
	c.expectCommit(2, 3)

	c.note("The new master serves a new proposal.")
	c.mustPropose(2, "y")
	c.deliver()
	c.tick(3)
	c.expectApplied(2, "noop x noop y")
	c.expectApplied(3, "noop x noop y")

	c.note("Node 1 comes back: it replays its own log (x at slot 2 was chosen) and catches up from node 2.")
	c.restart(1)
	c.tick(3)
	c.expectMaster(2)
	for _, id := range c.members {
		c.expectApplied(id, "noop x noop y")
	}
}

func scenarioOldMasterRejoins(c *cluster) {
	c.setup("node 1 elected at 2.1, x chosen at slot 2 everywhere", func() {
		c.electFirst()
		c.mustPropose(1, "x")
		c.deliver()
		c.tick(3)
	})

	c.note("Node 1 is cut off. It is still master and keeps proposing: old1 and old2 go to slots 3 and 4,\n# accepted by node 1 alone. Nothing is chosen.")
	c.isolate(1)
	c.mustPropose(1, "old1")
	c.deliver()
	c.mustPropose(1, "old2")
	c.deliver()
	c.expectCommit(1, 2)

	c.note("Node 1's clock stands still (a long pause), so it does not notice it lost its quorum.\n# Nodes 2 and 3 elect node 2, which fills slot 3 with its no-op and chooses new at slot 4.")
	c.tick(12, 2, 3)
	c.expectRole(1, Master)
	c.expectRole(2, Master)
	c.mustPropose(2, "new")
	c.deliver()
	c.tick(3, 2, 3)
	c.expectApplied(2, "noop x noop new")

	c.note("The partition heals and node 1's clock runs again. Its heartbeat and Accepts at the old ballot are\n# refused with the higher promise, and node 2's heartbeat makes it a follower. Its old1 and old2 were\n# accepted under ballot 2.1, not under node 2's ballot, so the commit notice (commit=4) does not make\n# them chosen: it fetches, and takes node 2's values for slots 3 and 4.")
	c.heal()
	c.tick(6)
	c.expectMaster(2)
	for _, id := range c.members {
		c.expectApplied(id, "noop x noop new")
	}
	for _, e := range c.node(1).applied {
		if v := fmtValue(e.Value); strings.HasPrefix(v, "old") {
			c.tb.Errorf("node 1 applied its unchosen %s at slot %d", v, e.Slot)
		}
	}
}

func scenarioMinority(c *cluster) {
	c.setup("node 1 elected at 2.1, its no-op chosen everywhere", c.electFirst)

	c.partition([]NodeID{1, 2}, []NodeID{3, 4, 5})
	c.note("m is accepted by nodes 1 and 2 only: two votes of five. Nothing is chosen.")
	c.mustPropose(1, "m")
	c.deliver()
	c.expectCommit(1, 1)
	c.expectCommit(2, 1)

	c.note("Time passes. The master resends its window and heartbeats; the commit index does not move.")
	c.tick(13)
	c.expectRole(1, Master)
	c.expectCommit(1, 1)
	c.expectCommit(2, 1)

	c.note("The majority side elects node 3 (tick 27), whose promises know nothing of m. Node 1 checks its\n# quorum every election timeout from its election (ticks 20, 30, ...): at tick 30 it finds that only\n# node 2 answered since the last check, and steps down.")
	c.tick(3)
	c.expectRole(3, Master)
	c.expectRole(1, Master)
	c.tick(1)
	c.expectRole(1, Follower)
	c.expectCommit(1, 1)
	c.expectCommit(2, 1)
	c.expectApplied(1, "noop")
	c.expectApplied(2, "noop")

	c.mustPropose(3, "n")
	c.deliver()

	c.note("Healed: nodes 1 and 2 follow node 3 and take its values; m was never chosen and is never applied.")
	c.heal()
	c.tick(3)
	c.expectMaster(3)
	for _, id := range c.members {
		c.expectApplied(id, "noop noop n")
	}
}

func scenarioOverlappingBallots(c *cluster) {
	c.setup("node 1 elected at 2.1, its no-op chosen everywhere", c.electFirst)

	c.note("Ballot 2.1: a goes to slot 2 and reaches node 2 only (a minority: nodes 1 and 2).")
	c.partition([]NodeID{1, 2}, []NodeID{3, 4, 5})
	c.mustPropose(1, "a")
	c.deliver()
	c.expectCommit(1, 1)
	c.crash(1)

	c.note("A competing ballot in between: node 5 is elected by 3, 4 and 5, none of which saw a. Its Accepts are\n# lost, so its no-op at slot 2 and b at slot 3 stay on node 5 alone.")
	c.drop("Accept from 5", msgIs(MsgAccept, 5, None))
	c.tick(11)
	c.expectRole(5, Master)
	c.mustPropose(5, "b")
	c.deliver()
	c.crash(5)
	c.restart(5)

	c.note("Slot 2 now holds a@2.1 on nodes 1 and 2, noop at node 5's ballot on node 5; slot 3 holds b on node 5.\n# Node 2 campaigns with node 3 cut from it, so its quorum is {2, 4, 5}. The others' clocks first run\n# past the stickiness window (node 2's has already run).")
	c.unfilter()
	c.heal()
	c.partition([]NodeID{2}, []NodeID{3})
	c.tick(10, 3, 4, 5)
	c.hold("Accept 2->5", msgIs(MsgAccept, 2, 5))
	c.note("Node 2's first probe, at 3.2, is below the promises of nodes 4 and 5; their refusals tell it the round\n# to beat, and its next probe, one timeout later, is above it.")
	c.tick(15, 2)
	c.expectRole(2, Master)
	promises := c.sent(MsgPromise, 5, 2)
	if len(promises) != 1 || promises[0].Commit != 1 || len(promises[0].Entries) != 2 {
		c.tb.Fatalf("node 5's promise %+v does not report its two slots above its commit index 1", promises)
	}
	b5 := promises[0].Entries[0].Ballot
	bm := c.node(2).r.masterBallot

	c.note("Node 2 took, per slot, the value of the highest ballot reported: noop (not a) at slot 2, b at slot 3,\n# re-proposed under its own ballot. With node 5's Accept held, b is held by three of five replicas\n# (nodes 2 and 4 under the new ballot, node 5 under the old one) but accepted by only two under the\n# new ballot: it is not chosen, and the commit index stays at 1.")
	c.expectCommit(2, 1)
	for _, id := range []NodeID{2, 4, 5} {
		if st := c.node(id).r.slot(3, false); st == nil || !st.present || fmtValue(st.value) != "b" {
			c.tb.Errorf("node %d does not hold b at slot 3", id)
		}
	}
	if st := c.node(5).r.slot(3, false); st.ballot != b5 || !b5.Less(bm) {
		c.tb.Errorf("node 5 holds b at %v, want the old ballot %v below %v", st.ballot, b5, bm)
	}

	c.note("Node 5's Accept arrives: a third vote under the new ballot, and slots 2 to 4 are chosen.")
	c.release()
	c.expectCommit(2, 4)

	c.note("Everyone heals; node 1 restarts, and its a@2.1 at slot 2 is overwritten, never applied.")
	c.heal()
	c.restart(1)
	c.tick(3)
	c.expectMaster(2)
	for _, id := range c.members {
		c.expectApplied(id, "noop noop b noop")
	}
}

func scenarioGapFilling(c *cluster) {
	c.setup("node 1 elected at 2.1, its no-op chosen everywhere", c.electFirst)

	c.note("a, b and c go to slots 2, 3 and 4, one Accept each; the Accepts for slot 3 are lost. The followers\n# hold slots 2 and 4 with a hole at 3; only slot 2 is chosen.")
	c.drop("Accept of slot 3", func(m Message) bool {
		return m.Type == MsgAccept && len(m.Entries) > 0 && m.Entries[0].Slot == 3
	})
	c.mustPropose(1, "a")
	c.deliver()
	c.mustPropose(1, "b")
	c.deliver()
	c.mustPropose(1, "c")
	c.deliver()
	c.expectCommit(1, 2)
	c.unfilter()

	c.note("The master dies. Node 2 is elected; its own log and node 3's Promise hold c at slot 4 but nothing at\n# slot 3: it proposes a no-op there, c at slot 4, then its own no-op at slot 5.")
	c.crash(1)
	c.tick(12)
	c.expectMaster(2)
	c.tick(3)
	for _, id := range []NodeID{2, 3} {
		c.expectApplied(id, "noop a noop c noop")
	}

	c.note("Node 1 comes back; its b at slot 3 was never chosen and is replaced by the no-op.")
	c.restart(1)
	c.tick(3)
	for _, id := range c.members {
		c.expectApplied(id, "noop a noop c noop")
	}
}

func scenarioCatchUp(c *cluster) {
	c.setup("node 1 elected at 2.1, its no-op chosen everywhere", c.electFirst)

	c.crash(3)
	c.note("20 values are chosen by nodes 1 and 2 while node 3 is down.")
	var values []string
	for i := 1; i <= 20; i++ {
		values = append(values, fmt.Sprintf("v%d", i))
	}
	c.proposeEach(1, values...)
	c.deliver()
	c.tick(3)
	c.expectCommit(1, 21)
	c.expectCommit(2, 21)

	c.note("Node 3 restarts with slot 1 on disk. The master's Accepts to it are lost, so only the heartbeat\n# reaches it: slots up to 21 are chosen. It fetches them from the master, 8 per message, one\n# request after another, and applies them in order.")
	c.restart(3)
	c.drop("Accept 1->3", msgIs(MsgAccept, 1, 3))
	c.tick(3)
	if f := c.sent(MsgFetch, 3, 1); len(f) != 3 || f[0].Slot != 2 || f[1].Slot != 10 || f[2].Slot != 18 {
		c.tb.Errorf("node 3 fetched %+v, want from slots 2, 10 and 18", f)
	}
	for _, id := range c.members {
		c.expectCommit(id, 21)
		c.expectApplied(id, "noop "+strings.Join(values, " "))
	}

	c.note("The Accepts flow again: the master's next resend tells it node 3 holds everything.")
	c.unfilter()
	c.tick(3)
	if pr := c.node(1).r.lead.prs[3]; pr.match != 21 {
		c.tb.Errorf("master's match for node 3 is %d, want 21", pr.match)
	}
}

func scenarioAcceptRaisesPromise(c *cluster) {
	c.setup("node 1 elected at 2.1, its no-op chosen everywhere", c.electFirst)

	c.note("a goes to slot 2. Its Accept to node 3 is delayed in the network; nodes 1 and 2 choose a.")
	c.hold("Accept 1->3 at 2.1", func(m Message) bool {
		return msgIs(MsgAccept, 1, 3)(m) && m.Ballot == Ballot{Round: 2, Node: 1}
	})
	c.mustPropose(1, "a")
	c.deliver()

	c.note("Node 3 is cut off. Node 1 reboots and is elected again by nodes 1 and 2, at a higher ballot that\n# node 3 never promised.")
	c.isolate(3)
	c.crash(1)
	c.restart(1)
	c.tick(10, 1, 2)
	c.expectRole(1, Master)
	high := c.node(1).r.masterBallot
	c.expectPromise(3, Ballot{Round: 2, Node: 1})

	c.note("Healed: node 3 hears the new master's heartbeat (which does not touch its promise), then an Accept at\n# the new ballot. Accepting raises its promise; the disk's promise file is not rewritten, the ballot\n# of the entry it appended carries the raise.")
	c.heal()
	c.tick(3)
	c.expectPromise(3, high)
	n3 := c.node(3)
	if n3.promise != (Ballot{Round: 2, Node: 1}) || n3.diskPromise() != high {
		c.tb.Errorf("node 3's disk: promise file %v, log ballots up to %v; want 2.1 and %v", n3.promise, n3.diskPromise(), high)
	}

	c.note("Node 3 crashes and restarts: its promise comes back from its log. Then it is cut off for a whole\n# election timeout, so stickiness plays no part in what follows.")
	c.crash(3)
	c.restart(3)
	c.expectPromise(3, high)
	c.isolate(3)
	c.tick(10, 3)
	if n3.r.sticky() {
		c.tb.Fatalf("node 3 is still sticky")
	}

	c.note("The delayed Accept at 2.1 and a stale Prepare at 3.2 reach node 3: both are below its promise, refused.")
	c.heal()
	c.release()
	c.inject(Message{Type: MsgPrepare, From: 2, To: 3, Ballot: Ballot{Round: 3, Node: 2}, Slot: 1})
	if r := c.sent(MsgAccepted, 3, 1); len(r) == 0 || !r[len(r)-1].Reject || r[len(r)-1].Hint != high {
		c.tb.Errorf("node 3 did not refuse the old Accept with hint %v: %+v", high, r)
	}
	if r := c.sent(MsgPromise, 3, 2); len(r) != 1 || !r[0].Reject || r[0].Hint != high {
		c.tb.Errorf("node 3 did not refuse the stale Prepare with hint %v: %+v", high, r)
	}
	c.expectPromise(3, high)
	c.expectApplied(3, "noop a noop")
}

func scenarioReadIndex(c *cluster) {
	c.note("Node 1 is elected, but the votes for its no-op are held back: it is master, not ready.")
	c.hold("Accepted", func(m Message) bool { return m.Type == MsgAccepted })
	c.tick(10)
	c.expectRole(1, Master)
	c.expectCommit(1, 0)

	c.note("A read index asked of the master, and one asked through follower 2, both fail at once.")
	c.readIndex(1, 1)
	c.readIndex(2, 2)
	c.deliver()
	c.expectRead(1, 1, 0)
	c.expectRead(2, 2, 0)

	c.note("The votes arrive: the no-op is chosen and the master is ready.")
	c.release()
	c.expectCommit(1, 1)

	c.note("A read at the master: it waits for a heartbeat round that a quorum answers. The answers are held, and\n# meanwhile x is chosen (commit 2). When the round completes the read is granted at 1, the commit\n# index when it was asked.")
	c.hold("HeartbeatResp", msgIs(MsgHeartbeatResp, None, 1))
	c.readIndex(1, 3)
	c.deliver()
	c.expectRead(1, 3, -1)
	c.mustPropose(1, "x")
	c.deliver()
	c.expectCommit(1, 2)
	c.expectRead(1, 3, -1)
	c.release()
	c.expectRead(1, 3, 1)

	c.note("A read through follower 2 goes to the master, which runs a round and answers with its commit index.")
	c.readIndex(2, 4)
	c.deliver()
	c.expectRead(2, 4, 2)
	if len(c.sent(MsgReadIndex, 2, 1)) != 2 {
		c.tb.Errorf("follower 2 did not ask the master")
	}
}

func scenarioStickiness(c *cluster) {
	c.setup("node 1 elected at 2.1, its no-op chosen everywhere", c.electFirst)

	c.note("Node 3 is cut off. It times out and probes with pre-prepares that are lost: its promise stays.")
	c.isolate(3)
	c.tick(14)
	c.expectRole(3, Candidate)
	c.expectPromise(3, Ballot{Round: 2, Node: 1})

	c.note("Healed, node 3's clock fires again before any heartbeat reaches it. The master and node 2 heard a\n# live master within the election timeout: both refuse the probe, and no ballot rises.")
	c.heal()
	c.tick(14, 3)
	for _, m := range c.sent(MsgPrePromise, None, 3) {
		if !m.Reject {
			c.tb.Errorf("node %d granted node 3's pre-prepare", m.From)
		}
	}
	if len(c.sent(MsgPrepare, 3, None)) != 0 {
		c.tb.Errorf("node 3 went on to prepare")
	}
	for _, id := range c.members {
		c.expectPromise(id, Ballot{Round: 2, Node: 1})
	}

	c.note("The next heartbeat brings node 3 back as a follower; the master serves on, unchanged.")
	c.tick(3)
	c.expectMaster(1)
	c.mustPropose(1, "x")
	c.deliver()
	c.tick(3)
	for _, id := range c.members {
		c.expectApplied(id, "noop x")
		c.expectPromise(id, Ballot{Round: 2, Node: 1})
	}
}
