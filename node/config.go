// Package node runs one synod replica: it drives the paxos core with ticks
// and peer messages, persists what the core asks through filestore/wal,
// applies chosen commands to the filestore state machine, and serves
// proxies over the wire protocol.
//
// A node is four goroutines that own their state, in the spirit of etcd's
// raft node and hashicorp/raft's FSM goroutine, plus one per connection:
//
//   - the engine (engine.go), the event loop, alone owns the paxos.Replica.
//     It sends a Ready's early messages at once, so heartbeats never wait
//     for the disk, and hands the rest to the persister;
//   - the persister (persister.go, storage.go) alone writes the log and the
//     acceptor file: it group-commits every Ready queued behind the previous
//     fsync, sends the votes that waited for it, hands the chosen entries to
//     the applier and tells the engine to Advance;
//   - the applier (applier.go) alone changes the state machine: it applies
//     chosen entries, answers the writes this replica proposed and the reads
//     waiting for their index, installs snapshots fetched from peers, and
//     starts snapshots of its own (snapshot.go);
//   - the server (server.go, transport.go) answers clients and peers, one
//     goroutine per connection, reading the state machine under the
//     applier's read lock and handing writes and read indexes to the engine.
//
// Two index spaces run through it, never mixed: a slot is a position in the
// Multi-Paxos log (one slot may carry a batch of commands, or a no-op or a
// configuration); a command index counts applied commands, the number a
// client sees in a write's reply and asks for with MinIndex.
package node

// This file owns Config, what a replica is told at start: its fields, their
// defaults and checks, and their conversion to core ticks and wal options.
// New validates it on the caller's goroutine; it never changes after that,
// so every goroutine of the node reads n.cfg without a lock.

import (
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"synod/filestore/wal"
	"synod/paxos"
	"synod/wire/tlsconf"
)

// Config configures a Node. Durations are wall-clock; the node turns them
// into ticks of TickInterval for the core.
type Config struct {
	// ID is this replica's id, a key of Peers.
	ID uint64
	// ClusterID must match on every replica and proxy of the cluster.
	ClusterID string
	// Listen is the address to serve peers and proxies on.
	Listen string
	// Peers maps every replica id, this one included, to its address: the
	// configuration of a new cluster. A replica that joins a running
	// cluster sets Join instead.
	Peers map[uint64]string
	// Join is the address of any live member of a running cluster: a
	// replica on an empty data directory asks it for the configuration,
	// in which it must be a member already (synod member add).
	Join string
	// AutoPromote makes a master promote a learner to voter once it has
	// caught up. Default true.
	AutoPromote bool
	// Dir is the data directory.
	Dir string
	// Repair lets the node start after corruption of acknowledged log data
	// by cutting the log there (DESIGN.md, "Files on disk").
	Repair bool

	// TickInterval is the core's unit of time. Default 10 ms.
	TickInterval time.Duration
	// Heartbeat is the master's heartbeat interval. Default 50 ms.
	Heartbeat time.Duration
	// ElectionTimeout is the minimum election timeout; the actual one is
	// drawn from [ElectionTimeout, 2*ElectionTimeout). Default 500 ms.
	ElectionTimeout time.Duration

	// Lease is how long the master serves linearizable reads alone after a
	// quorum acknowledged a heartbeat, counted from when it was sent. With
	// clocks drifting by paxos.MaxDriftPercent it must end before the
	// followers stop refusing other candidates: at most MaxLease of the
	// election timeout. 0 turns leases off. Default 400 ms.
	Lease time.Duration

	// MaxValue bounds a file's size in bytes. Default 1 MiB.
	MaxValue int
	// MaxBatchBytes bounds the command bytes proposed in one slot.
	// Default 1 MiB.
	MaxBatchBytes int
	// ReadTimeout bounds how long a read waits to reach its index.
	// Default 5 s.
	ReadTimeout time.Duration
	// MaxFrame bounds a frame on peer and client connections. Default 64 MiB.
	MaxFrame int
	// SnapshotEvery is how many applied commands pass between snapshots.
	// Default 10,000.
	SnapshotEvery uint64
	// SnapshotWindow is how many slots the log keeps behind a snapshot, so
	// a replica briefly down catches up from the log rather than a
	// snapshot. Default 10,000.
	SnapshotWindow uint64
	// SegmentBytes is the size at which the log starts a new segment file;
	// compaction deletes whole segments. Default 64 MiB.
	SegmentBytes int64
	// SnapshotChunk is the size of one piece of a snapshot transfer.
	// Default 1 MiB.
	SnapshotChunk int

	// WatchHistory bounds the changes the replica keeps in memory for
	// watches (watch.go), and WatchHistoryBytes their bytes (keys, values
	// and previous values, counted even where they share memory with the
	// files); the oldest go first. A watch from an index older than what
	// is kept is refused COMPACTED. Defaults 100,000 and 64 MiB.
	WatchHistory      int
	WatchHistoryBytes int64
	// MaxWatchPolls bounds the watch polls parked waiting for a change at
	// once; one more is answered BUSY. Default 10,000.
	MaxWatchPolls int

	// ChunkGCGrace is how long a chunk must have gone unreferenced (by
	// the applied state, a kept snapshot, a log entry not yet applied or a
	// backup being streamed), and unstored, before the chunk collector
	// removes it (chunkgc.go): longer than any upload takes between its
	// first chunk and its write being chosen, any backup takes to stream,
	// and any range read or snapshot takes to write. Default 1 h.
	ChunkGCGrace time.Duration
	// ChunkGCInterval is how often the chunk collector looks. Default
	// 1 min.
	ChunkGCInterval time.Duration

	// The fields below are test hooks: fault injection and planted bugs.
	// The synod binary sets them only when built with the synodtest tag,
	// and a node with any of them on says so loudly when it starts.

	// ReadDelay delays every read answer (makes one replica slow).
	ReadDelay time.Duration
	// UnsafeFollowerReads is a planted bug for the nemesis tests: followers
	// answer linearizable reads from local state without a read index.
	UnsafeFollowerReads bool
	// FsyncDelay slows every log write by this much between its write and
	// its fsync (a slow disk).
	FsyncDelay time.Duration
	// TestCutSnapshotOnce closes the connection after the first chunk of
	// the first snapshot this replica serves.
	TestCutSnapshotOnce bool
	// TestClockRate makes the node's clock run at this rate of real time
	// (1.05: five percent fast); 0 means 1.
	TestClockRate float64
	// TestLossyFsync keeps written log bytes in the process until their
	// fsync, so a kill -9 loses them as a power cut would.
	TestLossyFsync bool
	// TestAckBeforeFsync is a planted bug: votes and answers go out before
	// the batch they depend on is fsynced.
	TestAckBeforeFsync bool
	// TestDropChunkPuts acknowledges every chunk a proxy puts without
	// keeping it, as a disk that loses a chunk file right after storing
	// it (chunks fetched from peers are kept).
	TestDropChunkPuts bool
	// TestFetchDelay makes the chunk fetcher wait this long before each
	// file it checks (a slow peer link).
	TestFetchDelay time.Duration

	// TLS, when not nil, runs every connection of the replica over mutual
	// TLS 1.3 with certificates from its CA: peers, proxies and the
	// replica's own dials (see node/tls.go). nil means plaintext.
	TLS *tlsconf.Bundle

	// Logger receives the node's logs.
	Logger zerolog.Logger

	// onSync is the log's fsync hook (metrics.go); New sets it.
	onSync func(bytes int, d time.Duration)
}

// DefaultConfig returns the design's defaults; ID, ClusterID, Listen, Peers
// and Dir are left for the caller.
func DefaultConfig() Config {
	return Config{
		ClusterID:         "synod",
		TickInterval:      10 * time.Millisecond,
		Heartbeat:         50 * time.Millisecond,
		ElectionTimeout:   500 * time.Millisecond,
		Lease:             400 * time.Millisecond,
		MaxValue:          1 << 20,
		MaxBatchBytes:     1 << 20,
		ReadTimeout:       5 * time.Second,
		MaxFrame:          64 << 20,
		SnapshotEvery:     10000,
		SnapshotWindow:    10000,
		SnapshotChunk:     1 << 20,
		WatchHistory:      100000,
		WatchHistoryBytes: 64 << 20,
		MaxWatchPolls:     10000,
		SegmentBytes:      64 << 20,
		Logger:            zerolog.Nop(),
		AutoPromote:       true,
		ChunkGCGrace:      time.Hour,
		ChunkGCInterval:   time.Minute,
	}
}

// ErrInvalidConfig is returned by Validate and New for a Config that cannot
// work.
var ErrInvalidConfig = errors.New("node: invalid config")

// Validate reports what is wrong with c, wrapping ErrInvalidConfig.
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.ID == 0:
		return bad("id must be positive")
	case c.Join == "" && c.Peers[c.ID] == "":
		return bad("id %d is not among the peers", c.ID)
	case c.Dir == "":
		return bad("a data directory is required")
	case c.Listen == "":
		return bad("a listen address is required")
	case c.TickInterval <= 0:
		return bad("tick interval must be positive")
	case c.Heartbeat < c.TickInterval:
		return bad("heartbeat %v is shorter than a tick (%v)", c.Heartbeat, c.TickInterval)
	case c.ElectionTimeout <= c.Heartbeat:
		return bad("election timeout %v must exceed the heartbeat %v", c.ElectionTimeout, c.Heartbeat)
	case c.Lease < 0 || c.Lease > c.MaxLease():
		return bad("lease %v must be at most %v: with clocks drifting by %d%%, a longer lease could outlast the followers' refusal of other candidates (election timeout %v)",
			c.Lease, c.MaxLease(), paxos.MaxDriftPercent, c.ElectionTimeout)
	case c.TestClockRate < 0:
		return bad("clock rate %v must be positive", c.TestClockRate)
	case c.WatchHistory <= 0 || c.WatchHistoryBytes <= 0 || c.MaxWatchPolls <= 0:
		return bad("watch history, its bytes and the parked watch polls must be positive")
	case c.MaxValue <= 0 || c.MaxBatchBytes <= 0 || c.MaxFrame <= 0:
		return bad("limits must be positive")
	case c.SnapshotEvery == 0 || c.SnapshotChunk <= 0 || c.SnapshotChunk > c.MaxFrame/2 || c.SegmentBytes <= 0:
		return bad("snapshot interval and chunk size must be positive (chunk at most half a frame)")
	case c.ReadTimeout <= 0:
		return bad("read timeout must be positive")
	case c.ChunkGCGrace <= 0 || c.ChunkGCInterval <= 0:
		return bad("chunk collection grace %v and interval %v must be positive", c.ChunkGCGrace, c.ChunkGCInterval)
	}
	for id, addr := range c.Peers {
		if id == 0 || addr == "" {
			return bad("peer %d has no address", id)
		}
	}
	return nil
}

func (c *Config) ticks(d time.Duration) int {
	return int((d + c.TickInterval - 1) / c.TickInterval)
}

// walOptions returns the log's options, test hooks included.
func (c *Config) walOptions(repair bool) wal.Options {
	opts := wal.DefaultOptions()
	opts.Repair = repair
	opts.SegmentBytes = c.SegmentBytes
	opts.TestSyncDelay = c.FsyncDelay
	opts.TestLossy = c.TestLossyFsync
	opts.OnSync = c.onSync
	return opts
}

// MaxLease returns the longest lease the drift bound allows with c's
// election timeout and tick.
func (c *Config) MaxLease() time.Duration {
	return time.Duration(paxos.MaxLeaseTicks(c.ticks(c.ElectionTimeout))) * c.TickInterval
}

// testHooks names the test hooks that are on.
func (c *Config) testHooks() []string {
	var on []string
	add := func(set bool, name string) {
		if set {
			on = append(on, name)
		}
	}
	add(c.ReadDelay != 0, "read delay "+c.ReadDelay.String())
	add(c.UnsafeFollowerReads, "PLANTED BUG: unsafe follower reads")
	add(c.FsyncDelay != 0, "fsync delay "+c.FsyncDelay.String())
	add(c.TestCutSnapshotOnce, "cut the first snapshot transfer")
	add(c.TestClockRate != 0 && c.TestClockRate != 1, fmt.Sprintf("clock rate %v", c.TestClockRate))
	add(c.TestLossyFsync, "lossy fsync: kill -9 loses unsynced log writes")
	add(c.TestAckBeforeFsync, "PLANTED BUG: votes and answers before fsync")
	add(c.TestDropChunkPuts, "chunk puts acknowledged and dropped")
	add(c.TestFetchDelay != 0, "chunk fetch delay "+c.TestFetchDelay.String())
	return on
}
