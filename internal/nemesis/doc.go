// Package nemesis tests a real synod cluster under faults, Jepsen style, and
// checks what its clients saw.
//
// Run starts replicas and proxies as processes on loopback (package
// internal/cluster). Every peer link goes through a Relay, one listener per
// directed link, so the nemesis can cut any link one way or both, dropping
// bytes like a firewall that drops packets or refusing connections like one
// that rejects them. Clients talk to the proxies with the line protocol:
// PUT, APPEND and CAS of unique tokens, and GETs at every consistency level,
// on many keys, some of them only ever appended to. Meanwhile the nemesis
// injects one fault every few seconds (kill -9 of the master or of
// followers, SIGSTOP past the election timeout, partitions of a minority, of
// the master, one-way and bridged, a slow disk, a wiped data directory, a
// graceful restart), heals it and waits for the cluster to settle before
// the next. The faults never take more than a minority of the replicas.
//
// Every operation is recorded with its call and return times on the test
// process's monotonic clock (Recorder). A write whose connection broke is
// recorded as Unknown, never as failed: it may still apply, even much later
// (Paxos may choose an accepted value under a later ballot). A write the
// proxy refused with UNAVAILABLE or BUSY is Failed: the proxy promises
// nothing applied, and the checks hold it to that.
//
// After the run everything is healed, every key is read once more, and the
// replicas must reach one state digest. Check then judges the history:
//
//   - porcupine checks the writes and linearizable reads, partitioned by
//     key, against a model of versioned files (Model); running out of time
//     is a failure;
//   - every read, at any level, must show a prefix of the key's log: only
//     tokens written to that key, none refused, each once, in index order,
//     none written after the read returned, and no acknowledged write
//     missing between the first token it shows and its version;
//   - a session read must show its client's own last acknowledged write;
//   - the final reads must show every acknowledged write (nothing lost).
//
// A failed run writes its history (JSON), porcupine's HTML view of the keys
// at fault and every process's log to a directory named after the seed.
package nemesis
