// Package nemesis tests a real synod cluster under faults, Jepsen style, and
// checks what its clients saw.
//
// # The cluster
//
// Run starts replicas and proxies as processes on loopback (package
// internal/cluster). Every link goes through a Relay, each directed link
// apart: the peer links, and (Config.ProxyRelay) each proxy's connection
// to each replica. The configuration names every replica at one address
// that every peer dials, so each replica has a member listener there,
// which tells the senders apart by the hello that opens each connection
// (a replica added during the run gets one too); a proxy reaches the
// replicas it was started with at listeners of its own, one per link, and
// a replica added later at its member listener, on a link shared by the
// proxies (AnyProxy). The relay cuts a link one way or both,
// dropping bytes like a firewall that drops packets or refusing
// connections like one that rejects them; on a proxy's link, whose one
// connection carries requests and replies, it can drop only the requests or
// only the replies; and it can slow any link.
//
// Every start of a replica is a new life (Lives): its clock runs at a rate
// drawn within the drift the design tolerates, ±5% (--test-clock-rate; a
// third of the starts at 0.95 or 1.05, a third at 1), and half the starts
// get a slow disk (--test-fsync-delay). The replicas run with
// --test-lossy-fsync, so a kill -9 loses every log write not yet fsynced,
// as a power cut would. Every life is written to the test log and the
// history.
//
// # The clients
//
// Clients talk to the proxies with the line protocol: PUT, APPEND and CAS
// of unique tokens, and GETs at every consistency level, on many keys, some
// of them only ever appended to. Most are sequential; some are pipelined:
// they send eight appends to one or two append-only keys, with a session
// read in the middle and one at the end, before reading any reply. Half
// the session reads carry the client's last write index as MIN, half rely
// on the proxy's per-connection session alone. A share of the sequential
// clients' operations go to keys of large files (files.go): PUTFILE, with
// and without VERSION, of files made from a unique token (three chunks at
// the proxies' small --chunk-size), and whole-file GET RANGE reads at
// every level, whose bytes must match the SHA-256 the reply names; that
// SHA-256 names the write, so a file is a value like any other to every
// check below.
//
// # The nemesis
//
// The nemesis runs one scenario at a time, a single fault or a combined
// one, then heals everything and waits for the cluster to settle (every
// replica back, a learner voting again, everyone caught up) before the
// next. The single faults: kill -9 of the master or of followers, SIGSTOP
// past the election timeout, minority, one-way, bridged and
// master-isolating partitions, slow peer links, a slow disk, a wiped data
// directory, one lost file of a stopped replica (its acceptor file, a log
// segment, the segment manifest log/SEGMENTS, a snapshot, the whole log;
// it must rejoin as a learner), a restart at an edge of the clock bound, a
// graceful restart, a power cut of every replica at once (the old master
// restarting last half the time), and on the proxies' links: a proxy
// losing one replica, losing the master, losing only its requests or only
// the replies to one replica, slow links. The combined faults overlap
// several: a pause during a partition (the paused master may wake still
// cut off), a crash during a partition, a partition while a replica is
// paused, two or three random faults each starting while the one before
// lasts, and a power cut while every follower's disk is slower than the
// master's.
//
// The membership faults change the cluster while the clients run, with
// MEMBER REMOVE, ADD and PROMOTE through a proxy: replace-member removes a
// follower or the master (which hands over first), waits for it to exit
// by itself and, half the time, restarts it on its data directory, where
// it must refuse to run; then it adds a new replica id at a new address,
// behind a member listener of the relay, starts it with --join on an
// empty directory, and waits until it is a voter (promoted by the master
// once it caught up, or by MEMBER PROMOTE). grow-shrink adds a sixth
// replica the same way and later removes one again. A removed replica is
// gone, not dead: no fault picks it, nothing restarts it, the checks at
// the end are over the members in force then. A change not done within
// 30 s, a removed replica that does not exit or that runs again, and a
// caught-up learner left unpromoted fail the run.
//
// A fault is admitted only if, with it and every fault still live, some
// majority of the replicas stays running, unpaused, voting (not a learner
// that lost state) and connected to each other both ways; otherwise the
// nemesis tries a smaller one or skips it. So no more than a minority is
// ever taken and the cluster stays live, with one exception: a power cut
// takes every replica, alone, for under a second.
//
// # The checks
//
// Every operation is recorded with its call and return times on the test
// process's monotonic clock (Recorder), with its connection and its place
// on it. A write whose connection broke is recorded as Unknown, never as
// failed: it may still apply, even much later (Paxos may choose an
// accepted value under a later ballot). A write the proxy refused with
// UNAVAILABLE or BUSY is Failed: the proxy promises nothing applied, and
// the checks hold it to that.
//
// After the run everything is healed, every key is read once more, and the
// replicas (the members in force) must reach one state digest. Check then judges the history:
//
//   - porcupine checks the writes and linearizable reads, key by key,
//     against a model of versioned files (Model); running out of time is a
//     failure;
//   - every read, at any level, must show a prefix of the key's log: only
//     tokens written to that key, none refused, each once, in index order,
//     none written after the read returned, and no acknowledged write
//     missing between the write it starts with and its version;
//   - a session read must show every acknowledged write of its connection
//     before it and every one at or below the MIN index it sent;
//   - the final reads must show every acknowledged write (nothing lost);
//   - every replica in force must serve each file key's final file byte
//     for byte at its version (a stale GET RANGE straight to the replica:
//     a wiped one must have fetched its chunks again);
//   - one connection's acknowledged writes must have indexes in request
//     order, its writes' tokens must appear in values in request order, and
//     its session reads must never go back (issue 21's promises: these fail
//     a run only with CheckOptions.Order, -nemesis.order, until the proxy's
//     known bugs are fixed; otherwise they are reported as known).
//
// A failed run writes its history (JSON), porcupine's HTML view of the keys
// at fault and every process's log to a directory named after the seed.
package nemesis
