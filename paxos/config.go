package paxos

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
	// Members lists every voting replica, this one included.
	Members []NodeID
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
	// must be below ElectionTicks (the followers' stickiness) by a margin for
	// clock drift; 0 turns leases off.
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
	// Rand draws election timeouts. Required.
	Rand Rand

	// bugs plants known bugs so tests can prove the simulator catches them.
	bugs bugs
}

// bugs are test-only switches, each one a mistake the simulator must find.
type bugs struct {
	serveBeforeNoop    bool // (b) grant read indexes before the own no-op is chosen
	readWithoutQuorum  bool // (d) grant read indexes without a confirming round
	applyOlderBallot   bool // (e) treat any held value as chosen on a commit notice
	skipPromiseOnCrash bool // (c) used by the simulator's restart, not the core
	leaseFromAcks      bool // (f) count the lease from when the acks arrived
	wipedVotes         bool // (g) a replica on a wiped directory votes at once
}

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
	found := false
	seen := map[NodeID]bool{}
	for _, m := range c.Members {
		if m == None {
			return bad("member id 0")
		}
		if seen[m] {
			return bad("member %d listed twice", m)
		}
		seen[m] = true
		found = found || m == c.ID
	}
	if !found {
		return bad("id %d is not among members %v", c.ID, c.Members)
	}
	if c.HeartbeatTicks <= 0 {
		return bad("heartbeat ticks %d must be positive", c.HeartbeatTicks)
	}
	if c.ElectionTicks <= c.HeartbeatTicks {
		return bad("election ticks %d must exceed heartbeat ticks %d", c.ElectionTicks, c.HeartbeatTicks)
	}
	if c.LeaseTicks < 0 || c.LeaseTicks >= c.ElectionTicks {
		return bad("lease ticks %d must be in [0, election ticks %d)", c.LeaseTicks, c.ElectionTicks)
	}
	if c.MaxEntriesPerMsg <= 0 || c.MaxInflight <= 0 || c.MaxUncommitted <= 0 {
		return bad("limits must be positive")
	}
	if c.Rand == nil {
		return bad("rand is required")
	}
	return nil
}
