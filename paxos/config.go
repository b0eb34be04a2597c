package paxos

// This file owns the core's configuration: Config and its checks, the
// timing rules that rest on clock drift (MaxDriftPercent, the lease bound,
// the learner's wait), the one source of randomness and the test-only
// planted bugs. Pure: no goroutines; node.New validates a Config on its
// caller's goroutine and the core reads it on the node's engine.

import (
	"errors"
	"fmt"
)

// Rand is the one source of randomness the core uses (to spread election
// timeouts). Tests pass a seeded source, so every run replays exactly.
type Rand interface {
	// IntN returns a number in [0, n).
	IntN(n int) int
}

// Config configures a Replica. Times are in ticks: the node decides how long a
// tick is (10 ms by default), the core never reads a clock.
type Config struct {
	// ID is this replica's id; it must be one of Members.
	ID NodeID
	// Members lists the voters of the configuration the replica starts
	// with, when its HardState holds none (a new cluster, or a replica
	// joining one); Learners the members that do not vote; Addrs their
	// addresses, carried in the configuration the first master writes at
	// slot 1. The configuration then changes through the log.
	Members  []NodeID
	Learners []NodeID
	Addrs    map[NodeID]string
	// HeartbeatTicks is how often the master sends heartbeats.
	HeartbeatTicks int
	// ElectionTicks is the minimum election timeout; the actual timeout is
	// drawn from [ElectionTicks, 2*ElectionTicks). It is also the stickiness
	// window: a replica that heard the master within it refuses to prepare
	// for anyone else, and the master steps down when a quorum has not
	// answered within it.
	ElectionTicks int
	// LeaseTicks is how long a master may serve reads alone after a quorum
	// acknowledged a heartbeat, counted from when the heartbeat was sent. It
	// must end before any follower of that quorum stops refusing other
	// candidates, with clocks drifting by MaxDriftPercent: at most
	// MaxLeaseTicks(ElectionTicks). 0 turns leases off.
	LeaseTicks int
	// MaxEntriesPerMsg bounds the slots one Accept or FetchResp carries.
	MaxEntriesPerMsg int
	// MaxInflight bounds the slots sent to one follower and not yet
	// acknowledged (the pipeline window).
	MaxInflight int
	// MaxUncommitted bounds the slots the master holds proposed but not yet
	// chosen; Propose returns ErrBusy past it.
	MaxUncommitted int
	// LogMembers makes the first master of a new log choose the member list
	// as slot 1 (a config value), so membership lives in the log and in
	// snapshots and can later change through it.
	LogMembers bool
	// SideState says the application keeps state beside the log that a
	// replica which lost its disk must hold again before it votes (large
	// files' chunks): it reports how far it does with SettledUpTo.
	SideState bool
	// Incarnation tells this run of the replica from every other run on
	// the same directory (the node draws it at random when it starts; 0
	// is allowed where no replica restarts). A replica on an empty
	// directory puts it in its probes and counts only the answers that
	// echo it: an answer to a probe of an earlier run, held up in a
	// queue, may say a peer is fresh that has voted since.
	Incarnation uint64
	// Rand draws election timeouts. Required.
	Rand Rand

	// bugs plants known bugs so tests can prove the simulator catches them.
	bugs bugs
}

// bugs are test-only switches, each one a mistake the simulator must find.
// The later ones are mistakes this core once made.
type bugs struct {
	serveBeforeNoop    bool // (b) grant read indexes before the own no-op is chosen
	readWithoutQuorum  bool // (d) grant read indexes without a confirming round
	applyOlderBallot   bool // (e) treat any held value as chosen on a commit notice
	skipPromiseOnCrash bool // (c) used by the simulator's restart, not the core
	leaseFromAcks      bool // (f) count the lease from when the acks arrived
	wipedVotes         bool // (g) a replica on a wiped directory votes at once
	promoteEarly       bool // (h) a learner votes after any phase 1 without it, at once, with the master's ballot as promise
	looseTimeoutNow    bool // (i) a TimeoutNow forces an election whenever it arrives; rounds sent during a handover renew the lease
	earlyNoMargin      bool // (j) a follower that lost its master's connection stops being sticky after exactly the lease
	fetchCommit        bool // (k) a FetchResp's commit index is read under the ballot of the master followed
	configAtOnce       bool // (l) a configuration governs the slots after it at once, before it is chosen
	departEarly        bool // (m) a removed replica leaves after its grace, whether or not the new configuration applied its removal
	departSansChunks   bool // (n) a removed replica leaves once a majority of the new configuration knows its removal, whether or not they hold its chunks, and hands none off
}

// MaxDriftPercent is the clock drift the timing rules tolerate: every
// replica's clock may run up to this many percent faster or slower than
// real time. A master's lease, counted on its clock from when it sent the
// heartbeat a quorum acknowledged, then still ends before any of those
// followers, counting on theirs from when they received it, stops refusing
// other candidates; the same holds for the early election after a lost
// connection, and for how long a learner waits out promises it may have
// given before it lost its state. Quartz clocks drift by parts per
// million; the bound is for clocks that misbehave (a VM whose clock is
// slewed or stepped), and the defaults hold it with room to spare.
const MaxDriftPercent = 5

// driftBound returns the ticks a clock running at the fastest allowed rate
// counts while one at the slowest counts t: what a replica must count on
// its own clock to be sure t ticks of another replica's clock have passed.
func driftBound(t int) int {
	num := t * (100 + MaxDriftPercent)
	den := 100 - MaxDriftPercent
	return (num + den - 1) / den
}

// leaseOutlived is how many ticks after it last heard the master a follower
// is sure that master's lease is over: the lease counted on the slowest
// clock, plus one tick for counting in whole ticks.
func (c *Config) leaseOutlived() int { return driftBound(c.LeaseTicks) + 1 }

// MaxLeaseTicks returns the longest lease the drift bound allows with an
// election timeout (stickiness) of electionTicks, 0 if none does.
func MaxLeaseTicks(electionTicks int) int {
	l := electionTicks
	for l > 0 && driftBound(l)+1 > electionTicks {
		l--
	}
	return l
}

// learnerWait returns how long a replica that lost its state waits, from
// its start, before it asks to vote again: long enough that every phase 1
// begun before the loss, which may count a promise it forgot, has ended.
// A candidate gives up its phase 1 after at most two election timeouts on
// its own clock.
func learnerWait(c Config) int { return driftBound(2*c.ElectionTicks) + 2 }

// DefaultConfig returns a Config with the design's defaults for a tick of
// 10 ms: heartbeat 50 ms, election timeout in [500 ms, 1 s). ID, Members and
// Rand are left for the caller.
func DefaultConfig() Config {
	return Config{
		HeartbeatTicks:   5,
		ElectionTicks:    50,
		LeaseTicks:       40,
		MaxEntriesPerMsg: 64,
		MaxInflight:      1024,
		MaxUncommitted:   4096,
		LogMembers:       true,
	}
}

// configuration returns the configuration Members, Learners and Addrs make.
func (c *Config) configuration() Configuration {
	conf := NewConfiguration(c.Members, c.Addrs)
	for _, id := range c.Learners {
		conf.Members = append(conf.Members, Member{ID: id, Addr: c.Addrs[id]})
	}
	conf.sort()
	return conf
}

// ErrInvalidConfig is returned by Validate for a Config that cannot work.
var ErrInvalidConfig = errors.New("paxos: invalid config")

// Validate reports what is wrong with c, wrapping ErrInvalidConfig.
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if c.ID == None {
		return bad("id must not be 0")
	}
	if err := c.configuration().Validate(); err != nil {
		return bad("%v", err)
	}
	if _, ok := c.configuration().Member(c.ID); !ok {
		return bad("id %d is not among members %v and learners %v", c.ID, c.Members, c.Learners)
	}
	if c.HeartbeatTicks <= 0 {
		return bad("heartbeat ticks %d must be positive", c.HeartbeatTicks)
	}
	if c.ElectionTicks <= c.HeartbeatTicks {
		return bad("election ticks %d must exceed heartbeat ticks %d", c.ElectionTicks, c.HeartbeatTicks)
	}
	if c.LeaseTicks < 0 || c.LeaseTicks > MaxLeaseTicks(c.ElectionTicks) {
		return bad("lease ticks %d must be in [0, %d]: with clocks drifting by %d%%, a longer lease could outlast the followers' stickiness of %d ticks",
			c.LeaseTicks, MaxLeaseTicks(c.ElectionTicks), MaxDriftPercent, c.ElectionTicks)
	}
	if c.MaxEntriesPerMsg <= 0 || c.MaxInflight <= 0 || c.MaxUncommitted <= 0 {
		return bad("limits must be positive")
	}
	if c.Rand == nil {
		return bad("rand is required")
	}
	return nil
}
