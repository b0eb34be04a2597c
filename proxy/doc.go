// Package proxy is synod's client-facing proxy: it serves the line protocol
// (package wire/line) to clients and talks to the replicas over package
// wire. Several proxies can front one cluster; they share nothing.
//
// # Routing
//
// Every replica's STATUS is polled (Config.Poll, 100 ms) over a connection
// of its own, so a poll never waits behind data; requests travel on a
// second long-lived connection per replica, many in flight, written by a
// goroutine of their own (small requests pass large ones) so that no
// routing step waits on the network. The master is the replica that
// reports itself a ready master (the highest ballot if two claim it); a
// not-master answer naming another replica (during a handover, the one
// taking over) makes the proxy try that one at once. A replica whose
// connection dies, or whose poll fails, is down until a poll answers
// again; what was in flight there is tried elsewhere.
//
// Reads go to one of two distinct followers drawn at random, the one with
// the lower latency average times requests in flight plus one (power of two
// choices). A follower is eligible when it is up, not ejected, and its
// applied index is not more than Config.MaxLag below what the read needs;
// a read that needs the current master's commit (linearizable, or a
// session read above the replica's applied index) goes only to replicas
// whose STATUS names the current master as theirs, never to one that
// claims mastership at a lower ballot, is still electing itself, or
// follows another. A follower that fails a read or does not answer in
// time is ejected until its next good poll. The master serves reads only
// when no follower can.
//
// # Writes: one ordered session per connection
//
// Each connection that writes has a session (session.go): a client id
// never reused (a random per-proxy base plus a counter), and its writes
// numbered 1, 2, 3 ... in request order. The replicas' state machine
// (package filestore) applies a session's write n only after n-1, each
// once, and refuses one that comes early; so the proxy sends a
// connection's writes in order, and whenever one comes back unresolved
// (refused, timed out, its connection lost) it sends nothing more until
// every attempt out has come back, then sends everything unresolved again,
// in order. Each write carries the lowest seq still unresolved (the
// replicas forget the replies below it) and, when an earlier attempt may
// have been proposed (it got no definitive refusal), the retry mark: a
// retry whose session the replicas lost (expired, evicted) is refused, not
// applied twice. A write that ends unapplied (its hold window ran out, a
// definitive refusal) leaves a hole in the numbering; the writes after it
// move to a fresh client id, as do those of a lost session when the first
// of them was surely never applied.
//
// # Failover
//
// With no master known, writes (in their sessions) and linearizable reads
// (in a bounded hold queue) wait for up to Config.Hold from their arrival,
// within Config.QueueSize requests and Config.QueueBytes bytes; a request
// that does not fit is answered ERR UNAVAILABLE at once, and one whose
// window ends ERR UNAVAILABLE (ERR TIMEOUT for a read that no replica
// could bring far enough): nothing was applied. A write whose fate is
// unknown when its window ends, or whose session the replicas lost while
// it was in doubt, cannot be answered honestly either way: its connection
// is closed after the replies before it, which clients read as "outcome
// unknown", and no request read after it is started.
//
// # Membership
//
// The replicas the proxy uses are the cluster's configuration
// (paxos/RECONFIG.md), which every replica's STATUS carries with the slot
// that chose it; the highest slot seen wins, so a replica that lags cannot
// undo a newer configuration (members.go). Config.Nodes and Config.Seeds
// are only where the proxy starts: one reachable replica is enough, and a
// seed, an address without an id, is asked for its STATUS until it
// answers. A member added is polled from then on, at the address the
// configuration gives it, and routed to once it answers; a replica the
// proxy already reaches keeps the address it reaches it at (an id never
// changes address, so another one names the same replica). A learner (a
// member catching up, not voting) gets no reads. A
// member removed is dropped at once: its poller stops, its connections
// close, and what was in flight there is tried elsewhere. Replicas whose
// STATUS carries no configuration (an older version) leave Config.Nodes
// as the cluster.
//
// MEMBER LIST goes to the master, or to any live replica when there is
// none. A change (MEMBER ADD, REMOVE, PROMOTE) goes to the master like a
// write and is held through a failover like one, but belongs to no
// session: a change already in force answers OK, so the proxy sends it
// again after a not-master answer, a BUSY one (another change is under
// way), a timeout or a lost connection, within Config.Hold. The master's
// refusals (UNAVAILABLE when the new majority is not live, naming who is
// not; BAD_REQUEST for a change that makes no sense) go to the client as
// they are. A change that reached a master and got no answer in its window
// is answered TIMEOUT, saying that it may be in force. In a pipeline a
// MEMBER request starts once everything before it is answered, and what
// follows it waits for its answer.
//
// # Connections
//
// Each client connection has a reader goroutine, which parses requests and
// starts them, and a writer goroutine, which writes the replies strictly in
// request order and flushes whenever the next one is not ready. A pipeline
// means what the same requests one after the other would: consecutive
// writes run together (their session keeps them in order) and so do
// consecutive reads, but a read starts only once the writes before it are
// answered and a write only once the reads before it are. At consistency
// session a read asks for the newest state the connection has seen (the
// index of its writes and of the states its reads showed), and a pipelined
// read whose reply is older than one already written is asked again, so
// session reads are monotonic in request order.
//
// Limits: request lines (64 KiB) and values (Config.MaxValue) as package
// line enforces them; Config.MaxPipeline unanswered requests and
// Config.MaxPipelineBytes bytes per connection (requests, reads counted at
// a MaxValue reply until answered, and unwritten replies), past which the
// connection is not read further, so a client that reads slowly stalls
// itself; Config.MaxInflight requests and Config.MaxInflightBytes bytes
// proxy-wide, past which a request is answered ERR BUSY (a value block that
// does not fit is drained unread); Config.MaxConns connections (one more is
// answered ERR BUSY and closed); Config.IdleTimeout without a complete
// request; Config.WriteTimeout for a client that does not read its replies.
//
// # Redis's protocol
//
// A connection whose first byte is '*' speaks RESP (package wire/resp)
// instead of the line protocol, on the same port: no flag, no second
// listener. Each Redis command is translated into the line requests above
// and runs through the same connection machinery (budgets, pipeline order,
// sessions, hold queue, retries); a multi-key command (DEL, EXISTS, MGET,
// MSET) is several of them, one per key, and the writer renders one reply
// from all their results once it reaches the last (resp.go).
package proxy
