// Package proxy is synod's client-facing proxy: it serves the line protocol
// (package wire/line) to clients and talks to the replicas over package
// wire. Several proxies can front one cluster; they share nothing.
//
// # Routing
//
// Every replica's STATUS is polled (Config.Poll, 100 ms) over one long-lived
// connection per replica that also carries requests, many in flight. The
// master is the replica that reports itself a ready master (the highest
// ballot if two claim it); a not-master answer naming another replica makes
// the proxy try that one at once, and a connection that dies takes its
// replica down until a poll answers again.
//
// Writes go to the master, each stamped with a (client id, sequence) pair
// that makes a retry apply once. A replica remembers only the last sequence
// of each client id, so no two writes in flight share an id: a write takes
// an id from a pool (a random per-proxy base plus a counter) and returns it
// only once answered for good. Writes leave in the order they arrived.
//
// Reads go to one of two distinct followers drawn at random, the one with
// the lower latency average times requests in flight plus one (power of two
// choices). A follower is eligible when it is up, not ejected, and its
// applied index is not more than Config.MaxLag below what the read needs.
// A follower that fails a read or does not answer in time is ejected until
// its next good poll. The master serves reads only when no follower can.
//
// # Failover
//
// With no master known, writes and linearizable reads wait in a bounded
// queue (Config.QueueSize) for up to Config.Hold from their arrival, and go
// out in arrival order, with their original ids, once a master answers; a
// write whose master died or refused it goes back to its place in that
// queue. A request that finds the queue full, or whose window ends, is
// answered ERR UNAVAILABLE: nothing was applied. A write that may have
// reached a master whose answer never came, still unresolved when its
// window ends, cannot be answered honestly either way, so its connection
// is closed after the replies before it, the way a client learns that a
// write's outcome is unknown.
//
// # Connections
//
// Each client connection has a reader goroutine, which parses requests and
// starts them, and a writer goroutine, which writes the replies strictly in
// request order and flushes whenever the next one is not ready. A pipeline
// means what the same requests one after the other would: consecutive
// writes run together (they reach the master in order, so they apply in
// order) and so do consecutive reads, but a read starts only once the
// writes before it are answered and a write only once the reads before it
// are. At consistency session a read also asks for the index of its
// connection's latest write, so a client reads its writes on any replica.
//
// Limits: request lines (64 KiB) and values (Config.MaxValue) as package
// line enforces them, Config.MaxPipeline unanswered requests per
// connection, Config.MaxConns connections (one more is answered ERR BUSY
// and closed), Config.IdleTimeout without a complete request,
// Config.WriteTimeout for a client that does not read its replies.
package proxy
