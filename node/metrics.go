package node

// This file owns the replica's Prometheus metrics and its readiness. The
// histograms and counters are observed where things happen: the persister
// times every fsync (through the log's OnSync hook), the engine counts
// proposals, elections, handovers and learner rejoins, the snapshot
// goroutines time snapshots. Everything else (role, ballot, indexes, lag,
// sizes, peer connections) is read at scrape time, on the HTTP server's
// goroutine, from what the node already publishes for STATUS: atomics and
// the applier's read lock, never the engine's own state. Each Node has a
// registry of its own, so tests can run several in one process.

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"synod/paxos"
	"synod/wire"
)

// ReadyLag is how many commands a replica may have left to apply and still
// count as caught up for Ready.
const ReadyLag = 1000

// metrics are a replica's observed figures.
type metrics struct {
	reg *prometheus.Registry

	fsyncSeconds   prometheus.Histogram
	fsyncBytes     prometheus.Histogram
	batchCommands  prometheus.Histogram
	proposals      prometheus.Counter
	elections      prometheus.Counter
	masterChanges  prometheus.Counter
	handovers      prometheus.Counter
	learnerRejoins prometheus.Counter
	snapSave       prometheus.Histogram
	snapSaveFailed prometheus.Counter
	snapFetch      prometheus.Histogram
	snapInstalls   prometheus.Counter
	gcChunks       prometheus.Counter // chunkgc.go
	gcBytes        prometheus.Counter

	// lastMaster is the engine's tick count when it last stepped a message
	// from the master it follows; -1 before any.
	lastMaster atomic.Int64
	clock      *clock // the engine's clock; safe to read from any goroutine
}

// exponential buckets from lo, each factor times the one before, n of them.
func buckets(lo, factor float64, n int) []float64 {
	return prometheus.ExponentialBuckets(lo, factor, n)
}

// newMetrics makes the metrics observed where things happen; register
// adds those read from n at scrape time.
func newMetrics() *metrics {
	reg := prometheus.NewRegistry()
	f := func(o prometheus.Opts) prometheus.Opts { o.Namespace = "synod"; o.Subsystem = "replica"; return o }
	hist := func(name, help string, b []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "synod", Subsystem: "replica", Name: name, Help: help, Buckets: b})
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts(f(prometheus.Opts{Name: name, Help: help})))
	}
	m := &metrics{
		reg:            reg,
		fsyncSeconds:   hist("wal_fsync_duration_seconds", "Time one fsync of a log batch took.", buckets(50e-6, 2, 16)),
		fsyncBytes:     hist("wal_fsync_bytes", "Bytes one fsync of the log made durable (one group-committed batch).", buckets(64, 4, 12)),
		batchCommands:  hist("proposal_commands", "Client commands in one proposed slot (a batch).", buckets(1, 2, 12)),
		proposals:      counter("proposals_total", "Slots of client commands this replica proposed as master."),
		elections:      counter("elections_total", "Elections this replica started (it became a candidate)."),
		masterChanges:  counter("master_changes_total", "Times this replica saw the master change to another known replica."),
		handovers:      counter("handovers_total", "Mastership handovers this replica started as master."),
		learnerRejoins: counter("learner_rejoins_total", "Times this replica became a learner because it may have forgotten votes (lost or repaired state)."),
		snapSave:       hist("snapshot_save_duration_seconds", "Time writing and fsyncing one snapshot took.", buckets(1e-3, 2, 16)),
		snapSaveFailed: counter("snapshot_save_failures_total", "Snapshots that could not be written."),
		snapFetch:      hist("snapshot_fetch_duration_seconds", "Time one fetch of a peer's snapshot took, transfer and validation.", buckets(1e-3, 2, 16)),
		snapInstalls:   counter("snapshot_installs_total", "Snapshots from a peer installed in place of the state machine."),
		gcChunks:       counter("chunks_removed_total", "Chunk files of large files the chunk collector removed: no file, kept snapshot, log entry or backup referred to them for the grace."),
		gcBytes:        counter("chunks_removed_bytes_total", "Bytes of the chunk files the chunk collector removed."),
	}
	m.lastMaster.Store(-1)
	reg.MustRegister(m.fsyncSeconds, m.fsyncBytes, m.batchCommands, m.proposals, m.elections, m.masterChanges,
		m.handovers, m.learnerRejoins, m.snapSave, m.snapSaveFailed, m.snapFetch, m.snapInstalls,
		m.gcChunks, m.gcBytes,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// register adds the figures read from n at scrape time; n's engine clock
// must be set.
func (m *metrics) register(n *Node) {
	m.clock = n.eng.clock
	m.reg.MustRegister(&replicaCollector{n: n})
}

// onSync is the log's OnSync hook, on the persister.
func (m *metrics) onSync(bytes int, d time.Duration) {
	m.fsyncSeconds.Observe(d.Seconds())
	m.fsyncBytes.Observe(float64(bytes))
}

// Registry returns the registry of the replica's metrics, for an HTTP
// handler to serve.
func (n *Node) Registry() *prometheus.Registry { return n.met.reg }

// masterContact returns how long ago the engine last heard from the master
// it follows, and false if it never did.
func (n *Node) masterContact() (time.Duration, bool) {
	last := n.met.lastMaster.Load()
	if last < 0 {
		return 0, false
	}
	now := int64(n.met.clock.elapsed() / n.cfg.TickInterval)
	return time.Duration(max(now-last, 0)) * n.cfg.TickInterval, true
}

// Ready returns nil when the replica is fit to serve: its disk works, it
// knows a live master (it is that master, ready, or heard from it within
// the election timeout) and it has applied all but ReadyLag of the
// commands it knows chosen. Otherwise the error says why not.
func (n *Node) Ready() error {
	if n.degraded.Load() {
		return fmt.Errorf("node: storage failing: serving reads only")
	}
	si := n.soft.Load()
	switch {
	case si.Master == paxos.None:
		return fmt.Errorf("node: no master known")
	case si.Master == paxos.NodeID(n.cfg.ID):
		if si.Role != paxos.Master || !si.Ready {
			return fmt.Errorf("node: elected, but not serving yet")
		}
	default:
		ago, ok := n.masterContact()
		if !ok || ago > n.cfg.ElectionTimeout {
			return fmt.Errorf("node: nothing heard from master %d for over %v", si.Master, n.cfg.ElectionTimeout)
		}
	}
	commit := n.commitIndex.load()
	n.app.mu.RLock()
	applied := n.app.fsm.Applied()
	n.app.mu.RUnlock()
	if commit > applied+ReadyLag {
		return fmt.Errorf("node: catching up: applied %d of %d", applied, commit)
	}
	return nil
}

// replicaCollector reads the replica's state at scrape time.
type replicaCollector struct{ n *Node }

var (
	descRole          = replicaDesc("role", "1 for the role this replica has now (master, candidate, follower, learner, degraded), 0 for the others.", "role")
	descBallot        = replicaDesc("ballot_round", "Round of the ballot this replica works under.")
	descMaster        = replicaDesc("master_id", "Id of the master this replica follows (itself when master), 0 if none is known.")
	descCommit        = replicaDesc("commit_index", "Highest command index this replica knows chosen.")
	descApplied       = replicaDesc("applied_index", "Highest command index this replica applied.")
	descLag           = replicaDesc("lag_commands", "Commands known chosen that this replica has not applied yet (behind the master's commit index as last heard).")
	descContact       = replicaDesc("master_last_contact_seconds", "Time since this replica last heard from the master it follows; 0 on the master. Absent before any contact.")
	descReady         = replicaDesc("ready", "1 when /readyz answers ready: a live master known and caught up.")
	descVoter         = replicaDesc("voter", "1 when this replica votes, 0 while it is a learner or new.")
	descLogBytes      = replicaDesc("log_bytes", "Bytes of log segments on disk.")
	descLogSegs       = replicaDesc("log_segments", "Log segment files on disk.")
	descSnapBytes     = replicaDesc("snapshot_bytes", "Size of the newest snapshot file.")
	descDiskFree      = replicaDesc("disk_free_bytes", "Bytes available to the replica in its data directory's file system.")
	descDiskSize      = replicaDesc("disk_size_bytes", "Size of the data directory's file system.")
	descPeerUp        = replicaDesc("peer_up", "1 while this replica's connection to the peer is open.", "peer")
	descProposedCmds  = replicaDesc("proposed_commands_total", "Client commands this replica proposed as master.")
	descDropped       = replicaDesc("dropped_messages_total", "Peer messages dropped because a peer's queue was full.")
	descReadsServed   = replicaDesc("reads_total", "Reads this replica answered.")
	descFsyncs        = replicaDesc("fsyncs_total", "Fsyncs of the log and the acceptor file.")
	descSnapshotting  = replicaDesc("snapshot_in_progress", "1 while a snapshot is being written.")
	descFetching      = replicaDesc("snapshot_fetch_in_progress", "1 while a snapshot is being fetched from a peer.")
	descWatchOldest   = replicaDesc("watch_history_oldest_index", "The oldest index a watch can start from at this replica; older is refused COMPACTED.")
	descWatchChanges  = replicaDesc("watch_history_changes", "Changes kept in memory for watches (--watch-history).")
	descWatchBytes    = replicaDesc("watch_history_bytes", "Bytes of the changes kept for watches (--watch-history-bytes).")
	descWatchParked   = replicaDesc("watch_polls_parked", "Watch polls waiting for a change now.")
	replicaRoleValues = []wire.NodeRole{wire.NodeMaster, wire.NodeCandidate, wire.NodeFollower, wire.NodeLearner, wire.NodeDegraded}
)

func replicaDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("synod_replica_"+name, help, labels, nil)
}

func (c *replicaCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRole, descBallot, descMaster, descCommit, descApplied, descLag, descContact,
		descReady, descVoter, descLogBytes, descLogSegs, descSnapBytes, descDiskFree, descDiskSize, descPeerUp,
		descProposedCmds, descDropped, descReadsServed, descFsyncs, descSnapshotting, descFetching,
		descWatchOldest, descWatchChanges, descWatchBytes, descWatchParked} {
		ch <- d
	}
}

func (c *replicaCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	st := n.Status() // the role as STATUS names it, indexes, free disk
	for _, r := range replicaRoleValues {
		gauge(descRole, b2f(st.Role == r), string(r))
	}
	gauge(descBallot, float64(st.Round))
	gauge(descMaster, float64(st.MasterID))
	gauge(descCommit, float64(st.Commit))
	gauge(descApplied, float64(st.Applied))
	gauge(descLag, float64(st.Commit-min(st.Applied, st.Commit)))
	switch ago, ok := n.masterContact(); {
	case st.MasterID == n.cfg.ID && st.Role == "master":
		gauge(descContact, 0)
	case ok:
		gauge(descContact, ago.Seconds())
	}
	gauge(descReady, b2f(n.Ready() == nil))
	gauge(descVoter, b2f(n.members().conf.IsVoter(paxos.NodeID(n.cfg.ID))))
	logBytes, segs := dirSize(filepath.Join(n.cfg.Dir, "log"), ".log")
	gauge(descLogBytes, float64(logBytes))
	gauge(descLogSegs, float64(segs))
	gauge(descSnapBytes, float64(newestSnapshotSize(filepath.Join(n.cfg.Dir, "snap"))))
	var fs syscall.Statfs_t
	if syscall.Statfs(n.cfg.Dir, &fs) == nil {
		gauge(descDiskFree, float64(fs.Bavail*uint64(fs.Bsize)))
		gauge(descDiskSize, float64(fs.Blocks*uint64(fs.Bsize)))
	}
	for id, p := range *n.peers.Load() {
		if id != n.cfg.ID {
			gauge(descPeerUp, b2f(p.up.Load()), strconv.FormatUint(id, 10))
		}
	}
	counter(descProposedCmds, n.stats.proposed.Load())
	counter(descDropped, n.stats.dropped.Load())
	counter(descReadsServed, n.stats.reads.Load())
	counter(descFsyncs, n.stats.fsyncs.Load())
	gauge(descSnapshotting, b2f(n.snapshotting.Load()))
	oldest, changes, bytes := n.hist.figures()
	gauge(descWatchOldest, float64(oldest))
	gauge(descWatchChanges, float64(changes))
	gauge(descWatchBytes, float64(bytes))
	gauge(descWatchParked, float64(n.watchPolls.Load()))
	gauge(descFetching, b2f(n.fetching.Load()))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// dirSize sums the sizes of the files in dir whose names end in ext.
func dirSize(dir, ext string) (int64, int) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0
	}
	var total int64
	n := 0
	for _, e := range ents {
		if filepath.Ext(e.Name()) != ext {
			continue
		}
		if fi, err := e.Info(); err == nil {
			total += fi.Size()
			n++
		}
	}
	return total, n
}

// newestSnapshotSize returns the size of the snapshot file of the highest
// slot in dir, 0 if there is none.
func newestSnapshotSize(dir string) int64 {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var best uint64
	var size int64
	for _, e := range ents {
		name := e.Name()
		if filepath.Ext(name) != ".snap" {
			continue
		}
		slot, err := strconv.ParseUint(name[:len(name)-len(".snap")], 10, 64)
		if err != nil || slot < best {
			continue
		}
		if fi, err := e.Info(); err == nil {
			best, size = slot, fi.Size()
		}
	}
	return size
}
